"""One asyncio.Protocol per HTTP/1.1 connection: bytes in, request cycles out, bytes back.

Requests on a connection are served one at a time, strictly in order (RFC 9112 §9.3.2): bytes
of pipelined requests that arrive while one is in flight are kept (up to the buffer size, then
reading pauses) and parsed once its response is complete. The hot path, a whole request in one
`data_received`, is: one C parse, one Cycle, one handler call; the response is one write.

Read pausing has three independent reasons (body waiting for the app, pipelined bytes over the
buffer, and `--backpressure`); reading resumes only when none holds.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from time import perf_counter
from typing import Any

from ...errors import ProtocolError
from ...health import Health, HealthView
from ...http1.conn import DISCARD_LIMIT, body_reader, split_target, wants_keep_alive
from ...http1.parser import F_CHUNKED, F_EXPECT_CONTINUE, parse_head
from ...http1.response import FRAME_NONE, simple_response
from ...proxy import ProxyHeaders
from ..context import ServerContext
from ..cycle import Cycle
from ..eager import start_eager
from ..flow import FlowControl
from .carrier import _PAUSE_BODY, _PAUSE_PARKED, _PAUSE_PIPELINE, H1Carrier
from .switch import H2_PREFACE, switch_protocol

__all__ = ["H1Protocol"]

# Bytes membership tests take an int (a byte value) on the hot path: `b"?" in data` first tries
# to read its operand as an int, which raises and clears a TypeError (~1 us of C work, about ten
# times the memchr behind `0x3F in data`).
_QMARK = 0x3F  # "?"
_LF = 0x0A

_NEVER = math.inf

_METHODS = {
    m: m.decode("ascii")
    for m in (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS", b"CONNECT", b"TRACE")
}


class H1Protocol(H1Carrier, asyncio.Protocol):
    """The connection's I/O: transport callbacks, parsing, reading flow control, timeouts and
    shutdown (a `granian._types.Connection`); its responses go out through `H1Carrier`."""

    __slots__ = ("_discarded",)  # the rest are declared by H1Carrier

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        self.transport: Any = None
        self.client: tuple[str, int] | None = None
        self.server: tuple[str, int] | None = None
        self.scheme = ctx.scheme
        self.root_path = ctx.root_path
        self._minor = 1
        self._is_head = False
        self._continue = False
        self._framing = FRAME_NONE
        self._pending_head: bytes | None = None
        self._expected = -1
        self._proxy: ProxyHeaders | None = None
        self.waiting_since = ctx.now
        self.body_paused = False
        self._buf = b""
        self._pos = 0
        self._partial: bytearray | None = None
        self._cycle: Cycle | None = None
        self._reader: Any = None
        self._discarded = 0
        self._closing = False
        self.flow = FlowControl(None)
        self._lost_fut: asyncio.Future[None] | None = None
        self._lost = False
        self._out: list[bytes] = []

    # ---------------------------------------------------------------- transport callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.flow.transport = transport
        ctx = self.ctx
        ctx.connections.add(self)
        m = ctx.metrics
        if m is not None:
            m.conn_active += 1
            m.conn_handled += 1
        self.waiting_since = ctx.now
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            self.client = (peer[0], peer[1])
        local = transport.get_extra_info("sockname")
        if isinstance(local, tuple):
            self.server = (local[0], local[1])
        proxy = ctx.proxy
        if proxy is not None and self.client is not None and self.client[0] in proxy.trusted:
            # --proxy-headers: only a trusted peer's forwarding fields count; checked once here
            # so a request from anyone else pays one `is not None`.
            self._proxy = proxy
        if ctx.draining:
            self._closing = True
            transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        m = self.ctx.metrics
        if m is not None:
            m.conn_active -= 1
            if exc is not None:
                m.conn_err += 1
        self.waiting_since = _NEVER
        cycle = self._cycle
        if cycle is not None:
            self._cycle = None
            cycle._detach(True)
            if not cycle.response_done:
                cycle.response_done = True
                self._release(cycle)
        self.flow.connection_lost()
        fut = self._lost_fut
        if fut is not None and not fut.done():
            fut.set_result(None)
        if self.flow.reasons & _PAUSE_PARKED and self in self.ctx.waiting:
            self.ctx.waiting.remove(self)
        self.ctx.connection_closed(self)

    def pause_writing(self) -> None:
        self.flow.pause_writing()

    def resume_writing(self) -> None:
        self.flow.resume_writing()

    def data_received(self, data: bytes) -> None:
        if self._reader is not None:
            # Body bytes, for the request in flight or being discarded after its response.
            if self._pos < len(self._buf):
                data = self._buf[self._pos :] + data
            self._feed_body(data, 0)
            return
        if self._cycle is not None:
            self._stash(data)
            return
        more = self._partial
        if more is not None:
            more += data
            if _LF not in data:
                # A head only ends at a line end: do not re-parse a growing partial line.
                if len(more) > self.ctx.buffer_size:
                    self._reject(431)
                return
            data = bytes(more)
            self._partial = None
        elif self._pos < len(self._buf):
            data = self._buf[self._pos :] + data
        self._buf = data
        self._pos = 0
        if not (self._lost or self._closing) and data:
            # _next_request()'s other preconditions were just checked above.
            self._parse(data, 0)

    # ---------------------------------------------------------------- request parsing

    def _next_request(self) -> None:
        if self._cycle is not None or self._lost or self._reader is not None or self._closing:
            return
        more = self._partial
        if more is not None:
            self._buf = bytes(more)
            self._pos = 0
            self._partial = None
        buf = self._buf
        pos = self._pos
        if pos >= len(buf):
            if self._out:
                self._flush()
            if self.flow.reasons & _PAUSE_PIPELINE:
                self._resume(_PAUSE_PIPELINE)
            return
        self._parse(buf, pos)

    def _parse(self, buf: bytes, pos: int) -> None:
        """Start the request whose head begins at `buf[pos:]` (`buf` is `self._buf`)."""
        ctx = self.ctx
        if ctx.active >= ctx.backpressure:
            self._pause(_PAUSE_PARKED)
            ctx.waiting.append(self)
            return
        try:
            res = parse_head(buf, pos, ctx.limits)
        except ProtocolError as exc:
            if ctx.dispatch is not None and buf.startswith(b"PRI ", pos) and self._preface(buf, pos):
                return
            self._reject(exc.status_hint)
            return
        if res is None:
            if self._out:
                self._flush()
            if len(buf) - pos > ctx.buffer_size:
                self._reject(431)
                return
            self._partial = bytearray(buf[pos:] if pos else buf)
            self._buf = b""
            self._pos = 0
            if self.flow.reasons & _PAUSE_PIPELINE:
                self._resume(_PAUSE_PIPELINE)
            return
        end, method, target, minor, headers, content_length, flags = res
        if target[:1] == b"/" and _QMARK not in target:
            path, query = target, b""
        else:
            path, query = split_target(target)
        routes = ctx.health_routes
        if routes:
            # --health-path: answered here, before static files and the app (CLI.md "Health");
            # with none set this is one dict truthiness test, else one lookup.
            health = routes.get(path)
            if health is not None:
                self._health(health, end, method, path, query, minor, headers, content_length, flags)
                return
        if flags or content_length > 0:
            keep = wants_keep_alive(minor, flags)
            reader = body_reader(content_length, flags)
            expect = reader is not None and bool(flags & F_EXPECT_CONTINUE)
        else:
            # The common case (no body, no Connection/Expect/TE fields): HTTP/1.1 persists.
            keep = minor == 1
            reader = None
            expect = False
        # (`self._closing` is False here: checked on entry.)
        method_s = _METHODS.get(method) or method.decode("latin-1")
        cycle = Cycle(
            self,
            method_s,
            path,
            query,
            "1.1" if minor else "1.0",
            headers,
            keep and ctx.keep_alive,
            reader is None,
        )
        if self._proxy is not None:
            self._forwarded(cycle, headers)
        # The request's framing state (H1Carrier): one request at a time per connection.
        self._minor = minor
        self._is_head = method_s == "HEAD"
        self._continue = expect
        self._pending_head = None
        self._cycle = cycle
        self.waiting_since = _NEVER
        ctx.active += 1
        if ctx.on_complete is not None:
            cycle.t0 = perf_counter()
        if reader is None:
            self._pos = end  # (`buf` is self._buf)
        else:
            self._reader = reader
            self._discarded = 0
            if end < len(buf):
                self._feed_body(buf, end)
            else:
                self._buf = b""
                self._pos = 0
        coro = ctx.handler(cycle)
        if coro is None:
            # The handler finished its part synchronously (granian.server.cycle contract).
            return
        if ctx.eager:
            # --opt: a real Task whose first step runs now (granian.server.eager)
            start_eager(ctx.loop, coro)
        else:
            ctx.loop.create_task(coro)

    def _feed_body(self, buf: bytes, start: int) -> None:
        reader = self._reader
        try:
            data, end, done = reader.feed(buf, start)
        except ProtocolError:
            self._body_error()
            return
        cycle = self._cycle
        if done:
            self._reader = None
        if cycle is not None:
            if cycle._push(data, done) > self.ctx.buffer_size and not done:
                # The app is not keeping up: stop reading until it catches up (flow control).
                self.body_paused = True
                self._pause(_PAUSE_BODY)
        else:
            self._discarded += len(data)
            if not done and self._discarded > DISCARD_LIMIT:
                self.transport.close()
                return
        self._buf = buf
        self._pos = end
        if done:
            if cycle is None:
                # Finished discarding an unread body: on to the next request.
                self.waiting_since = self.ctx.now
                self._next_request()
            elif len(buf) - end > self.ctx.buffer_size:
                self._pause(_PAUSE_PIPELINE)

    def _stash(self, data: bytes) -> None:
        more = self._partial
        if more is None:
            more = self._partial = bytearray(self._buf[self._pos :])
            self._buf = b""
            self._pos = 0
        more += data
        if len(more) > self.ctx.buffer_size:
            self._pause(_PAUSE_PIPELINE)

    def _reject(self, status: int) -> None:
        """The peer's error (RFC 9112 §2.2, h11's split): answer with its status and close."""
        m = self.ctx.metrics
        if m is not None:
            m.conn_err += 1
        self._closing = True
        self._partial = None
        self._buf = b""
        self._pos = 0
        if self._out:
            self._flush()
        transport = self.transport
        if not self._lost:
            transport.write(simple_response(status))
            transport.close()

    def _body_error(self) -> None:
        cycle = self._cycle
        self._reader = None
        if cycle is not None and not cycle.response_started:
            # Let the app see the end of its body; the response becomes the 400.
            cycle.disconnected = True
            self._cycle = None
            cycle._detach(True)
            cycle.response_started = cycle.response_done = True
            cycle.status = 400
            self._release(cycle)
            self._reject(400)
        else:
            self.transport.close()

    def head_timeout(self) -> None:
        """Called by the ticker: no complete head within --http1-header-read-timeout."""
        m = self.ctx.metrics
        if m is not None:
            m.conn_err += 1
        self.waiting_since = _NEVER
        self._closing = True
        if self._partial or self._pos < len(self._buf):
            # A head was on its way: say why (RFC 9110 §15.5.9).
            self.transport.write(simple_response(408))
        self.transport.close()

    # ---------------------------------------------------------------- flow control

    def _pause(self, reason: int) -> None:
        self.flow.pause_reading(reason)

    def _resume(self, reason: int) -> None:
        self.flow.resume_reading(reason)

    def resume_body(self) -> None:
        self.body_paused = False
        self._resume(_PAUSE_BODY)

    def unpark(self) -> None:
        self._resume(_PAUSE_PARKED)
        if not self._lost:
            self._next_request()

    def _release(self, cycle: Cycle) -> None:
        ctx = self.ctx
        hook = ctx.on_complete
        if hook is not None:
            hook(cycle)
        ctx.release()

    # ---------------------------------------------------------------- health, proxies

    def _health(
        self,
        health: Health,
        end: int,
        method: bytes,
        path: bytes,
        query: bytes,
        minor: int,
        headers: list[tuple[bytes, bytes]],
        content_length: int,
        flags: int,
    ) -> None:
        """Answer a health path without a cycle. A request with a body is answered, then the
        connection closes (the body is never read: a probe sends none)."""
        ctx = self.ctx
        t0 = perf_counter()
        has_body = content_length > 0 or bool(flags & F_CHUNKED)
        keep = ctx.keep_alive and not has_body and wants_keep_alive(minor, flags) and not ctx.draining
        self._pos = end
        self.write(health.http1(method, minor, keep))
        if ctx.access_log is not None:
            # logged as any request when --access-log is on, never counted as one in metrics
            view = HealthView(method.decode("latin-1"), path, query, minor, headers, self.scheme, self.client)
            view.status = health.status(method)
            ctx.access_log.log(view, perf_counter() - t0)
        if not keep:
            self._closing = True
            self.transport.close()
            return
        self.waiting_since = ctx.now
        if self._partial or self._pos < len(self._buf):
            ctx.loop.call_soon(self._next_request)

    def _forwarded(self, cycle: Cycle, headers: list[tuple[bytes, bytes]]) -> None:
        """--proxy-headers from a trusted peer: the client, scheme and host it forwarded."""
        client = self.client
        assert self._proxy is not None and client is not None
        found = self._proxy.resolve(client[0], client[1], headers)
        if found is None:
            return
        host, port, scheme, forwarded_host = found
        if host is not None:
            cycle.client = (host, port or 0)  # ASGI servers put 0 where no port was forwarded
        if scheme is not None:
            cycle.scheme = scheme
        if forwarded_host is not None:
            value = forwarded_host.encode("latin-1")
            cycle.headers = [(n, value if n == b"host" else v) for n, v in headers]
            if not any(n == b"host" for n, _ in headers):
                cycle.headers.append((b"host", value))

    # ---------------------------------------------------------------- protocol switch

    def _preface(self, buf: bytes, pos: int) -> bool:
        """HTTP/2's connection preface where a request line should be (h2c prior knowledge,
        RFC 9113 §3.4): switch when the dispatch has HTTP/2, wait while only part of the
        preface is here. False: answer as HTTP/1 (505)."""
        data = buf[pos:]
        if len(data) < len(H2_PREFACE) and H2_PREFACE.startswith(data):
            self._partial = bytearray(data)
            self._buf = b""
            self._pos = 0
            return True
        factory = self.ctx.dispatch.on_preface(data) if self.ctx.dispatch is not None else None
        if factory is None:
            return False
        self.switch_to(factory)
        return True

    def switch_to(self, factory: Callable[[], asyncio.Protocol]) -> asyncio.Protocol:
        """Hand this connection to another protocol (granian.server.dispatch): it gets the
        transport and, as its first data, every byte read here and not consumed yet."""
        partial = self._partial
        data = bytes(partial) if partial is not None else self._buf[self._pos :]
        self._partial = None
        self._buf = b""
        self._pos = 0
        # This object no longer serves the connection: no timeouts, shutdown or unparking.
        self._closing = True
        self.waiting_since = _NEVER
        self.ctx.connection_closed(self)
        return switch_protocol(self.transport, factory, data)

    def shutdown(self) -> None:
        """Graceful stop: close now if idle, else after the response in flight."""
        self._closing = True
        cycle = self._cycle
        if cycle is not None:
            cycle.keep_alive = False  # its response says `connection: close`
        elif not self._lost:
            if self._out:
                self._flush()
            self.transport.close()
