"""One HTTP/2 stream as the carrier of one request cycle (`granian._types.Carrier`).

The cycle core (granian.server.cycle) is the same as on HTTP/1.1; only the framing differs:
the response goes to the connection's sans-I/O session (granian.http2) as HEADERS plus DATA
with END_STREAM, and the connection writes what the session has ready once per batch
(`H2Protocol.flush`). A whole-body response is one `send_response` call: the body is handed to
the session as is and framed from the shim's buffer (no copy here). A streamed one waits, in
`drain()`, while the stream holds more than `--http2-max-send-buffer-size` bytes not framed yet
(its peer's window is closed) or while the transport's buffer is full.

The request body is pushed into the cycle as DATA arrives. Its flow-control credit goes back
to the peer (`consume`, the WINDOW_UPDATE) at once while the body waiting for the app stays
within the read buffer, as HTTP/1 keeps reading that far; above it the credit is held until
the app reads (`resume_body`), which is the request-body backpressure (RFC 9113 §5.2).
"""

from __future__ import annotations

import asyncio
import math
from time import time
from typing import IO, TYPE_CHECKING, Any

from ...http1.response import SERVER_NAME, http_date
from ...http2 import CANCEL, INTERNAL_ERROR
from ...http2.engine import field_block

if TYPE_CHECKING:
    from ..._types import Headers
    from ..cycle import Cycle
    from .protocol import H2Protocol

__all__ = ["H2Stream", "response_fields"]

_NEVER = math.inf

# Carrier.send_data / file_mode results (granian._types.Carrier)
_QUEUED, _PAUSED, _CLOSING = 0, 1, 2
_FILE_COPY, _FILE_SKIP = 0, 2

# Message framing is the server's: an app's content-length is replaced for a whole body, and
# transfer-encoding is connection-specific (RFC 9113 §8.2.2: never sent on HTTP/2).
_FRAMING = frozenset({b"content-length", b"transfer-encoding"})
_TE = b"transfer-encoding"
_CL = b"content-length"
_SERVER = (b"server", SERVER_NAME)
_EXPECT = b"expect"
_CONTINUE = b"100-continue"

_date_second = -1
_date_field: tuple[bytes, bytes] = (b"date", b"")


def _date() -> tuple[bytes, bytes]:
    """The `date` field (RFC 9110 §6.6.1), rendered once per second."""
    global _date_second, _date_field
    second = int(time())
    if second != _date_second:
        _date_second = second
        _date_field = (b"date", http_date(second))
    return _date_field


def response_fields(headers: Headers, length: int) -> list[tuple[bytes, bytes]]:
    """The app's fields as HTTP/2 carries them: bytes, names lower-cased; `date` and `server`
    added when absent (as on HTTP/1.1). `length` >= 0: a whole body of that size, whose
    `content-length` the server sets; -1: a stream, which keeps the app's `content-length`.
    The session rejects what HTTP/2 cannot carry (H2HeaderError, a ValueError)."""
    out: list[tuple[bytes, bytes]] = []
    have_date = have_server = False
    for name, value in headers:
        if type(name) is not bytes:
            if not isinstance(name, str):
                raise TypeError(f"header name must be bytes or str, not {type(name).__name__}")
            name = name.encode("latin-1")
        if type(value) is not bytes:
            if not isinstance(value, str):
                raise TypeError(f"header value must be bytes or str, not {type(value).__name__}")
            value = value.encode("latin-1")
        name = name.lower()
        if name in _FRAMING:
            if length >= 0 or name == _TE:
                continue
        elif name == b"date":
            have_date = True
        elif name == b"server":
            have_server = True
        out.append((name, value))
    if length >= 0:
        out.append((_CL, b"%d" % length))
    if not have_server:
        out.append(_SERVER)
    if not have_date:
        out.append(_date())
    return out


# Response heads already joined for the session (`field_block`), by the app's fields and the
# body length: apps answer with the same few header lists, as build_head's cache relies on for
# HTTP/1.1. Cleared each second (the `date` field), bounded so odd lists are built, not kept.
_BLOCKS: dict[Any, tuple[bytes, int]] = {}
_BLOCKS_MAX = 256
_blocks_second = -1


def response_block(headers: Headers, length: int) -> tuple[bytes, int]:
    """`response_fields` joined for `send_response_block`: (block, number of fields)."""
    global _blocks_second
    second = int(time())
    if second != _blocks_second:
        _blocks_second = second
        _BLOCKS.clear()
    headers = tuple(headers)
    try:
        key: Any = (headers, length)
        hit = _BLOCKS.get(key)
    except TypeError:  # a field as a list: not hashable, built every time
        key = hit = None
    if hit is not None:
        return hit
    fields = response_fields(headers, length)
    hit = (field_block(fields), len(fields))
    if key is not None and len(_BLOCKS) < _BLOCKS_MAX:
        _BLOCKS[key] = hit
    return hit


def _no_body(status: int, is_head: bool) -> bool:
    # RFC 9110 §6.4.1: no content after HEAD, 1xx, 204 and 304.
    return is_head or status < 200 or status == 204 or status == 304


class H2Stream:
    """The carrier of one stream's cycle. `cycle` is None once its response is complete or the
    stream is gone (RST_STREAM, connection lost); `gone` says the latter."""

    __slots__ = (
        "conn",
        "sid",
        "cycle",
        "scheme",
        "root_path",
        "client",
        "server",
        "body_paused",
        "gone",
        "stall_since",
        "_is_head",
        "_no_body",
        "_asked",
        "_head",
        "_unconsumed",
        "_waiter",
        "_lost_fut",
    )

    def __init__(self, conn: H2Protocol, sid: int, is_head: bool) -> None:
        self.conn = conn
        self.sid = sid
        self.cycle: Cycle | None = None
        self.scheme = conn.scheme
        self.root_path = conn.root_path
        self.client = conn.client
        self.server = conn.server
        self.body_paused = False
        self.gone = False
        # loop time since a streamed response waits for its window (the stall timer)
        self.stall_since = _NEVER
        self._is_head = is_head
        self._no_body = is_head
        self._asked = False  # the app has waited for body once (want_body)
        self._head: tuple[int, list[tuple[bytes, bytes]]] | None = None
        self._unconsumed = 0
        self._waiter: asyncio.Future[None] | None = None
        self._lost_fut: asyncio.Future[None] | None = None

    # ---------------------------------------------------------------- request body

    def data(self, data: bytes, end: bool, flow: int) -> None:
        cycle = self.cycle
        if cycle is None:
            if flow:
                self.conn.session.consume(self.sid, flow)
            return
        size = cycle._push(data, end)
        if flow:
            if size <= self.conn.ctx.buffer_size or end:
                self.conn.session.consume(self.sid, flow)
            else:
                # The app is not keeping up: hold the peer's credit until it reads.
                self._unconsumed += flow
                self.body_paused = True

    def resume_body(self) -> None:
        self.body_paused = False
        n = self._unconsumed
        if n:
            self._unconsumed = 0
            self.conn.session.consume(self.sid, n)
            self.conn.schedule_flush()

    def want_body(self, cycle: Cycle) -> None:
        # `100 Continue` (RFC 9110 §10.1.1; on HTTP/2 an interim HEADERS, RFC 9113 §8.1) once,
        # on the app's first wait for body, and only while no response has started: a client
        # that holds its body back until then (RFC 9110 §10.1.1 lets it wait a while) goes
        # ahead at once, and one whose request the app answers without reading never gets it,
        # as on HTTP/1.1 (H1Carrier.want_body). The cycle calls this only while body is due.
        if self._asked:
            return
        self._asked = True
        if cycle.response_started or self.gone:
            return
        for name, value in cycle.headers:
            if name == _EXPECT:
                # The one expectation defined (RFC 9110 §10.1.1), compared case-insensitively.
                if value.lower() == _CONTINUE and self.conn.session.send_informational(self.sid, 100, []):
                    self.conn.schedule_flush()
                return

    # ---------------------------------------------------------------- Carrier: response

    def send_response(self, cycle: Cycle, status: int, headers: Headers, body: bytes) -> None:
        no_body = _no_body(status, self._is_head)
        # HEAD gets the length its GET would have (RFC 9110 §9.3.2), as on HTTP/1.1.
        block, n = response_block(headers, -1 if no_body and not self._is_head else len(body))
        self.conn.session.send_response_block(self.sid, status, block, n, b"" if no_body else body, True)
        cycle.response_started = True
        cycle.status = status
        if not no_body:
            cycle.bytes_sent = len(body)
        self._complete(cycle)

    def send_head_trailers(self, cycle: Cycle, status: int, headers: Headers, flush: bool) -> None:
        # The head is the same: HTTP/2 frames any body alike, and an app's content-length may
        # go with trailers (RFC 9113 §8.1).
        self.send_head(cycle, status, headers, flush)

    def send_head(self, cycle: Cycle, status: int, headers: Headers, flush: bool) -> None:
        fields = response_fields(headers, -1)
        self._no_body = _no_body(status, self._is_head)
        cycle.response_started = True
        cycle.status = status
        if flush:
            self.conn.session.send_response(self.sid, status, fields, b"", False)
            self.conn.schedule_flush()
        else:
            self._head = (status, fields)

    def send_data(self, cycle: Cycle, data: bytes) -> int:
        if self.gone:
            return _CLOSING
        conn = self.conn
        if data:
            cycle.bytes_sent += len(data)
            if self._no_body:
                data = b""
        head = self._head
        if head is not None:
            self._head = None
            n = conn.session.send_response(self.sid, head[0], head[1], data, False)
        elif data:
            n = conn.session.send_data(self.sid, data, False)
        else:
            return _QUEUED
        if n < 0:
            return _CLOSING
        conn.schedule_flush()
        if n > conn.max_send_buffer or conn.write_paused:
            return _PAUSED
        return _QUEUED

    def end(self, cycle: Cycle) -> None:
        head = self._head
        session = self.conn.session
        if head is not None:
            self._head = None
            session.send_response(self.sid, head[0], head[1], b"", True)
        else:
            session.send_data(self.sid, b"", True)
        self._complete(cycle)

    def send_trailers(self, cycle: Cycle, fields: list[tuple[bytes, bytes]]) -> None:
        """The trailer section: a HEADERS frame with END_STREAM after the last DATA (RFC 9113
        §8.1), which then carries no END_STREAM. None to send, or a response without a body
        (HEAD, 1xx, 204, 304, dropped as on HTTP/1.1): ends as `end()` does."""
        if self._no_body or not fields:
            self.end(cycle)
            return
        session = self.conn.session
        head = self._head
        if head is not None:
            self._head = None
            session.send_response(self.sid, head[0], head[1], b"", False)
        session.send_trailers(self.sid, fields)
        self._complete(cycle)

    def send_error(self, cycle: Cycle, status: int, body: bytes) -> None:
        fields = response_fields(((b"content-type", b"text/plain; charset=utf-8"),), len(body))
        self.conn.session.send_response(self.sid, status, fields, body, True)
        self._complete(cycle)

    def abort(self, cycle: Cycle) -> None:
        """Drop the stream mid-response (RST_STREAM INTERNAL_ERROR): the client sees this one
        request fail; the connection and its other streams go on."""
        cycle.response_done = True
        if not self.gone:
            self.conn.session.reset(self.sid, INTERNAL_ERROR)
            self.conn.schedule_flush()
        self.lost()

    def _complete(self, cycle: Cycle) -> None:
        cycle.response_done = True
        self.cycle = None
        cycle._carrier = None
        if cycle._read_waiter is not None or cycle._done_waiter is not None:
            cycle._detach(False)
        self.conn.stream_done(self, cycle)

    # ---------------------------------------------------------------- going away

    def lost(self) -> None:
        """RST_STREAM from the peer, our own reset, or the connection is gone: `http.disconnect`
        for this stream's cycle only."""
        if self.gone:
            return
        self.gone = True
        self.body_paused = False
        cycle = self.cycle
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        fut = self._lost_fut
        if fut is not None and not fut.done():
            fut.set_result(None)
        if cycle is not None:
            self.cycle = None
            cycle._detach(True)
            cycle.response_done = True
            self.conn.stream_done(self, cycle)

    def timeout(self) -> None:
        """Held at a zero window past the timeout: RST_STREAM CANCEL (RFC 9113 §6.4)."""
        if not self.gone:
            self.conn.session.reset(self.sid, CANCEL)
            self.conn.schedule_flush()
        self.lost()

    # ---------------------------------------------------------------- Carrier: files, waits

    def file_mode(self, cycle: Cycle) -> int:
        # No sendfile under HTTP/2: file bodies go out as DATA frames read in chunks.
        return _FILE_SKIP if self._no_body else _FILE_COPY

    async def send_file(self, cycle: Cycle, file: IO[bytes], offset: int, count: int) -> None:
        raise RuntimeError("HTTP/2 streams copy files (file_mode 0), never send them raw")

    @property
    def write_paused(self) -> bool:
        return self.conn.write_paused

    async def drain(self) -> None:
        conn = self.conn
        limit = conn.max_send_buffer
        while not self.gone and (conn.write_paused or conn.session.buffered(self.sid) > limit):
            if self.stall_since == _NEVER:
                self.stall_since = conn.ctx.now
                conn.stalled(self)
            waiter = self._waiter = conn.ctx.loop.create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        self.stall_since = _NEVER

    def wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            self.stall_since = _NEVER
            waiter.set_result(None)

    def lost_future(self) -> asyncio.Future[None]:
        fut = self._lost_fut
        if fut is None:
            fut = self._lost_fut = self.conn.ctx.loop.create_future()
            if self.gone or self.conn.lost:
                fut.set_result(None)
            else:
                self.conn.watch(self)
        return fut

    def tls_info(self) -> Any:
        """The connection's ASGI `tls` extension (granian.apps.asgi reads it from the carrier)."""
        return self.conn.tls_info()
