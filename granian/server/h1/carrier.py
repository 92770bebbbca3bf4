"""The HTTP/1 carrier: how a request cycle's response goes out on an HTTP/1.1 connection.

`H1Carrier` holds the framing methods of `granian._types.Carrier` (Content-Length or chunked
framing, nothing after HEAD/1xx/204/304, `100 Continue`, raw sendfile) and the connection's
write side (one write per simple response, gathered pipelined responses). `H1Protocol` inherits
them, so the cycle calls one object per request: a connection serves one request at a time
(RFC 9112 §9.3.2), so the framing state of that request lives on it. `H1Cycle` is the cycle
an HTTP/1 connection creates: the core `Cycle` with `respond()` framing directly (the whole-body
response is the hot path; tests/test_h1_fastpath.py holds it to the general route's bytes).
"""

from __future__ import annotations

import asyncio
from typing import IO, TYPE_CHECKING, Any

from ..._headers import declared_length
from ...http1.conn import CONTINUE_RESPONSE
from ...http1.connection import CLOSE, DROP_BODY, IDLE, NEXT, H1State
from ...http1.response import (
    FRAME_CHUNKED,
    FRAME_CLOSE,
    FRAME_LENGTH,
    FRAME_NONE,
    build_head,
    simple_response,
)
from ..cycle import Cycle
from ..sendfile import sendfile_dup

if TYPE_CHECKING:
    from ..._types import Headers
    from ...proxy import ProxyHeaders
    from ..context import ServerContext
    from ..flow import FlowControl

__all__ = ["H1Carrier", "H1Cycle"]

# Bodies above this size are handed to the transport next to the head (writev) rather than
# concatenated, saving a copy; below it one small concatenation is cheaper than a list.
_JOIN_MAX = 16384

# Why reading is paused (a bit set: reading resumes only when none holds): body waiting for
# the app, pipelined bytes over the buffer, and `--backpressure`.
_PAUSE_BODY = 1
_PAUSE_PIPELINE = 2
_PAUSE_PARKED = 4

# Carrier.send_data / file_mode results (granian._types.Carrier)
_QUEUED, _PAUSED, _CLOSING = 0, 1, 2
_FILE_COPY, _FILE_RAW, _FILE_SKIP = 0, 1, 2


def _without_length(headers: Headers) -> list[tuple[bytes | str, bytes | str]]:
    """`headers` minus `content-length` (any case); other items pass as they are, so build_head
    still refuses what it would refuse."""
    out: list[tuple[bytes | str, bytes | str]] = []
    for field in headers:
        name = field[0]
        if isinstance(name, (bytes, str)) and name.lower() in _CL_NAMES:
            continue
        out.append(field)
    return out


_CL_NAMES = (b"content-length", "content-length")


class H1Carrier(H1State):
    """Framing half of `H1Protocol`. The connection state both halves use is declared here."""

    __slots__ = (
        "ctx",
        "transport",
        "client",
        "server",
        "scheme",
        "root_path",
        "waiting_since",
        "body_paused",
        "flow",
        "_cycle",
        "_closing",
        "_lost",
        "_out",
        "_lost_fut",
        "_minor",
        "_is_head",
        "_framing",
        "_pending_head",
        "_expected",
        "_proxy",
    )
    ctx: ServerContext
    transport: Any
    client: tuple[str, int] | None
    server: tuple[str, int] | None
    scheme: str
    root_path: str
    waiting_since: float
    body_paused: bool
    flow: FlowControl  # reading pauses and write backpressure (granian.server.flow)
    _cycle: Cycle | None
    _closing: bool
    _lost: bool
    _out: list[bytes]
    _lost_fut: asyncio.Future[None] | None
    # the request in flight: its HTTP minor version, HEAD or not, a pending `100 Continue`,
    # and the response's framing (FRAME_*), held-back head and declared length
    _minor: int
    _is_head: bool
    _framing: int
    _pending_head: bytes | None
    _expected: int
    _proxy: ProxyHeaders | None  # set when the peer is a trusted proxy (--proxy-headers)

    def resume_body(self) -> None:
        raise NotImplementedError

    def _release(self, cycle: Cycle) -> None:
        raise NotImplementedError

    def _next_request(self) -> None:
        raise NotImplementedError

    def _resume(self, reason: int) -> None:
        raise NotImplementedError

    # ---------------------------------------------------------------- Carrier: response

    def send_response(self, cycle: Cycle, status: int, headers: Headers, body: bytes) -> None:
        if not cycle._body_eof and self.unread_too_large():
            cycle.keep_alive = False
        head, framing, keep = build_head(
            status, headers, len(body), self._minor, cycle.keep_alive, self._is_head
        )
        cycle.response_started = True
        cycle.status = status
        cycle.keep_alive = keep
        if framing == FRAME_NONE:
            self.complete(cycle, head, None)
        else:
            cycle.bytes_sent = len(body)
            self.complete(cycle, head, body)

    def send_head_trailers(self, cycle: Cycle, status: int, headers: Headers, flush: bool) -> None:
        if self._minor and not self._is_head and 200 <= status and status != 204 and status != 304:
            # The trailers need chunked framing (RFC 9112 §7.1.2), and a chunked message must
            # not carry a content-length (§6.2; a receiver would ignore it, §6.3): the app's
            # length is dropped and the body chunked, rather than the trailers dropped. On
            # HTTP/1.0 and for responses without a body the trailers are what is dropped
            # (send_trailers), so the length stays.
            headers = _without_length(headers)
        self.send_head(cycle, status, headers, flush)

    def send_head(self, cycle: Cycle, status: int, headers: Headers, flush: bool) -> None:
        if not cycle._body_eof and self.unread_too_large():
            cycle.keep_alive = False
        head, framing, keep = build_head(status, headers, -1, self._minor, cycle.keep_alive, self._is_head)
        cycle.response_started = True
        cycle.status = status
        cycle.keep_alive = keep
        self._framing = framing
        if framing == FRAME_LENGTH:
            self._expected = declared_length(headers)
        if flush:
            self.write(head)
        else:
            self._pending_head = head

    def send_data(self, cycle: Cycle, data: bytes) -> int:
        framing = self._framing
        head = self._pending_head
        if data:
            cycle.bytes_sent += len(data)
            if framing == FRAME_CHUNKED:
                data = b"%x\r\n%b\r\n" % (len(data), data)
            elif framing == FRAME_NONE:
                data = b""
        if head is not None:
            self._pending_head = None
            data = head + data
        if data:
            self.write(data)
            if self.flow.write_paused:
                return _PAUSED
            if self.transport.is_closing():
                return _CLOSING
        return _QUEUED

    def end(self, cycle: Cycle) -> None:
        head = self._pending_head
        self._pending_head = None
        framing = self._framing
        tail = b"0\r\n\r\n" if framing == FRAME_CHUNKED else None
        if framing == FRAME_LENGTH and cycle.bytes_sent != self._expected:
            # The declared length was not honoured: the connection's framing is broken.
            cycle.keep_alive = False
        elif framing == FRAME_CLOSE:
            cycle.keep_alive = False
        self.complete(cycle, head or b"", tail)

    def send_trailers(self, cycle: Cycle, fields: list[tuple[bytes, bytes]]) -> None:
        if self._framing != FRAME_CHUNKED:
            # HTTP/1.0 (length- or close-delimited) or no body (HEAD, 1xx, 204, 304): nowhere to
            # put a trailer section; the response ends as without one.
            self.end(cycle)
            return
        head = self._pending_head
        self._pending_head = None
        # The last chunk, the trailer fields, the final CRLF (RFC 9112 §7.1).
        tail = b"0\r\n" + b"".join([b"%b: %b\r\n" % field for field in fields]) + b"\r\n"
        self.complete(cycle, head or b"", tail)

    def send_error(self, cycle: Cycle, status: int, body: bytes) -> None:
        self.complete(cycle, simple_response(status, body, close=not cycle.keep_alive), None)

    def abort(self, cycle: Cycle) -> None:
        """Drop the connection mid-response: the client sees a truncated message."""
        cycle.response_done = True
        self._cycle = None
        cycle._detach(True)
        self._release(cycle)
        self._closing = True
        if not self._lost:
            self._out.clear()
            self.transport.abort()

    def want_body(self, cycle: Cycle) -> None:
        # `100 Continue` once, on the app's first wait for body, and only while no response
        # has started (RFC 9110 §10.1.1: a server that answers first need not send it).
        if self._continue:
            self._continue = False
            if not cycle.response_started:
                self.write(CONTINUE_RESPONSE)

    # ---------------------------------------------------------------- Carrier: files

    def file_mode(self, cycle: Cycle) -> int:
        framing = self._framing
        if framing == FRAME_NONE:
            return _FILE_SKIP
        if framing == FRAME_CHUNKED or not self._can_sendfile():
            return _FILE_COPY
        return _FILE_RAW

    def _can_sendfile(self) -> bool:
        loop = self.ctx.loop
        return (
            not self._lost
            and (
                isinstance(loop, asyncio.BaseEventLoop) or self.transport.get_extra_info("socket") is not None
            )
            and (self.transport.get_extra_info("sslcontext") is None)
        )

    async def send_file(self, cycle: Cycle, file: IO[bytes], offset: int, count: int) -> None:
        head = self._pending_head
        if head is not None:
            self._pending_head = None
            self.write(head)
        if self._out:
            self._flush()
        try:
            loop = self.ctx.loop
            if isinstance(loop, asyncio.BaseEventLoop):
                await loop.sendfile(self.transport, file, offset, count)
            else:
                # uvloop has no loop.sendfile: zero-copy on a dup of the socket fd
                await sendfile_dup(loop, self.transport, file, offset, count)
        except (ConnectionError, RuntimeError):
            # The peer went away mid-file (or the transport closed under us).
            self._lost = self._lost or self.transport.is_closing()

    # ---------------------------------------------------------------- Carrier: waits

    async def drain(self) -> None:
        await self.flow.drain()

    @property
    def write_paused(self) -> bool:
        return self.flow.write_paused

    def lost_future(self) -> asyncio.Future[None]:
        fut = self._lost_fut
        if fut is None:
            fut = self._lost_fut = self.ctx.loop.create_future()
            if self._lost:
                fut.set_result(None)
        return fut

    # ---------------------------------------------------------------- writing

    def write(self, data: bytes) -> None:
        if self._out:
            self._flush()
        if not self._lost:
            self.transport.write(data)

    def _flush(self) -> None:
        out = self._out
        if not self._lost:
            self.transport.writelines(out)
        out.clear()

    def complete(self, cycle: Cycle, head: bytes, body: bytes | None) -> None:
        """Write the rest of a response (`head` may be b'' for a stream's end) and move on."""
        cycle.response_done = True
        ctx = self.ctx
        if not self._lost:
            out = self._out
            if out or (ctx.pipeline_flush and self.pipelined()):
                if head:
                    out.append(head)
                if body:
                    out.append(body)
                # More pipelined requests are already here: gather their responses and write
                # them together once the batch is answered (--http1-pipeline-flush).
                if not (cycle.keep_alive and len(out) < 128 and ctx.pipeline_flush and self.pipelined()):
                    self._flush()
            elif body is None:
                if head:
                    self.transport.write(head)
            elif len(body) <= _JOIN_MAX:
                self.transport.write(head + body)
            else:
                self.transport.writelines((head, body))
        self._cycle = None
        # Inlined cycle._detach(False) and self._release(cycle): this runs once per request.
        cycle._carrier = None
        if cycle._read_waiter is not None or cycle._done_waiter is not None:
            cycle._detach(False)
        if ctx.on_complete is not None:
            ctx.on_complete(cycle)
        ctx.active -= 1
        if ctx.waiting or ctx.draining:
            ctx.active += 1
            ctx.release()
        if self._lost:
            return
        if cycle.keep_alive and not self._closing and self._reader is None:
            # H1State.response_done()'s commonest case (a persistent connection whose request
            # body, if any, was read), inlined: this runs once per request.
            self.state = IDLE
            self.waiting_since = ctx.now
            if self.body_paused:
                self.resume_body()
            if self._partial or self._pos < len(self._buf):
                # Pipelined requests: parse the next one from a fresh loop callback, so an
                # eager (`--opt`) handler never starts inside another request's task.
                ctx.loop.call_soon(self._next_request)
            elif self.flow.reasons & _PAUSE_PIPELINE:
                self._resume(_PAUSE_PIPELINE)
            return
        after = self.response_done(cycle.keep_alive and not self._closing)
        if after == CLOSE:
            self._closing = True
            if self._out:
                self._flush()
            self.transport.close()
            return
        if self.body_paused:
            self.resume_body()
        if after == DROP_BODY:
            return
        self.waiting_since = ctx.now
        if after == NEXT:
            # Pipelined requests: parse the next one from a fresh loop callback, so an eager
            # (`--opt`) handler never starts inside another request's task.
            ctx.loop.call_soon(self._next_request)
        elif self.flow.reasons & _PAUSE_PIPELINE:
            self._resume(_PAUSE_PIPELINE)


class H1Cycle(Cycle):
    """A request cycle on an HTTP/1.1 connection. The whole-body response, the commonest one
    by far, frames here directly: `Cycle.respond()` followed by `H1Carrier.send_response()`
    in one call, which saves a Python call per request on the hot path. Every other response
    method is the core's, through the carrier."""

    def respond(self, status: int, headers: Headers, body: bytes = b"") -> None:
        if self.response_started:
            raise RuntimeError("response already started")
        conn: H1Carrier | None = self._carrier  # type: ignore[assignment]
        if conn is None:
            self.response_started = self.response_done = True
            self.status = status
            return
        if not self._body_eof and conn.unread_too_large():
            self.keep_alive = False
        head, framing, keep = build_head(
            status, headers, len(body), conn._minor, self.keep_alive, conn._is_head
        )
        self.response_started = True
        self.status = status
        self.keep_alive = keep
        if framing == FRAME_NONE:
            conn.complete(self, head, None)
        else:
            self.bytes_sent = len(body)
            conn.complete(self, head, body)
