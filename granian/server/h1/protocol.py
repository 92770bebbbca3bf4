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
from typing import TYPE_CHECKING, Any

from ...errors import ProtocolError
from ...health import Health, HealthView
from ...http1.conn import LengthBody
from ...http1.connection import BODY, DISCARD, HEAD, IDLE, NEXT, OVERFLOW, PAUSE, REQUEST, H1State
from ...http1.parser import parse_head
from ...http1.response import FRAME_NONE, simple_response
from ...proxy import ProxyHeaders
from ..context import ServerContext
from ..cycle import Cycle
from ..eager import start_eager
from ..flow import FlowControl
from .carrier import _PAUSE_BODY, _PAUSE_PARKED, _PAUSE_PIPELINE, H1Carrier, H1Cycle
from .switch import H2_PREFACE, switch_protocol

if TYPE_CHECKING:
    from ssl import SSLObject

    from ..tls import TLSExtension

__all__ = ["H1Protocol"]

# Bytes membership tests take an int (a byte value) on the hot path: `b"?" in data` first tries
# to read its operand as an int, which raises and clears a TypeError (~1 us of C work, about ten
# times the memchr behind `0x3F in data`).
_QMARK = 0x3F  # "?"
_LF = 0x0A

_NEVER = math.inf

# Seconds an idle TLS connection that we close waits for the peer's close_notify (see
# H1Protocol._bound_tls_close).
_TLS_CLOSE_WAIT = 1.0

_METHODS = {
    m: m.decode("ascii")
    for m in (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS", b"CONNECT", b"TRACE")
}


class H1Protocol(H1Carrier, asyncio.Protocol):
    """The connection's I/O: transport callbacks, parsing, reading flow control, timeouts and
    shutdown (a `granian._types.Connection`); its responses go out through `H1Carrier`."""

    # The rest is declared by H1State (the read side) and H1Carrier (the write side). These two
    # are set only on TLS connections (connection_made), so plain TCP pays nothing for them.
    __slots__ = ("_ssl_object", "_tls_info", "_tls_close_timer")

    def __init__(self, ctx: ServerContext) -> None:
        H1State.__init__(self, ctx.limits, ctx.buffer_size)
        self.ctx = ctx
        self.transport: Any = None
        self.client: tuple[str, int] | None = None
        self.server: tuple[str, int] | None = None
        self.scheme = ctx.scheme
        self.root_path = ctx.root_path
        self._minor = 1
        self._is_head = False
        self._framing = FRAME_NONE
        self._pending_head: bytes | None = None
        self._expected = -1
        self._proxy: ProxyHeaders | None = None
        self.waiting_since = ctx.now
        self.body_paused = False
        self._cycle: Cycle | None = None
        self._closing = False
        self.flow = FlowControl(None)
        self._lost_fut: asyncio.Future[None] | None = None
        self._lost = False
        self._out: list[bytes] = []

    # ---------------------------------------------------------------- transport callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        ctx = self.ctx
        # "https" is the worker's sign that it serves TLS: the TLS transport calls this only
        # once the handshake is done, so ALPN's choice is known here (granian.server.dispatch).
        if ctx.scheme == "https" and self._tls_made(transport):
            return
        self.transport = transport
        self.flow.transport = transport
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

    def _tls_made(self, transport: asyncio.BaseTransport) -> bool:
        """A TLS connection: keep its SSLObject for the ASGI `tls` extension, and hand the
        connection over when ALPN chose another protocol (True: no longer ours)."""
        # uvloop's TLS transport is not an asyncio.Transport subclass: duck-typed on purpose.
        ssl_object: SSLObject | None = transport.get_extra_info("ssl_object")
        self._ssl_object = ssl_object
        self._tls_info: TLSExtension | None = None
        dispatch = self.ctx.dispatch
        if ssl_object is None or dispatch is None:
            return False
        factory = dispatch.on_alpn(ssl_object.selected_alpn_protocol())
        if factory is None:
            return False
        switch_protocol(transport, factory, b"")
        return True

    def tls_info(self) -> TLSExtension | None:
        """The ASGI `tls` extension of this connection (asgiref tls.rst), None on plain TCP.
        Computed on first use, once per connection: an app that never reads it, or an RSGI or
        WSGI app, costs nothing per handshake."""
        ssl_object = getattr(self, "_ssl_object", None)
        if ssl_object is None:
            return None
        info = self._tls_info
        if info is None:
            from ..tls import tls_extension

            info = self._tls_info = tls_extension(ssl_object)
        return info

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        if self.ctx.scheme == "https":
            # the close_notify wait ended: the timer would only keep this object alive a second
            timer = getattr(self, "_tls_close_timer", None)
            if timer is not None:
                timer.cancel()
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
        if (
            self._reader is None
            and self.state == IDLE
            and self._partial is None
            and self._pos >= len(self._buf)
        ):
            # A fresh head in one read: H1State.receive()'s commonest case, inlined.
            self._buf = data
            self._pos = 0
            if data and not (self._lost or self._closing):
                self._parse()
            return
        action = self.receive(data)
        if action == HEAD:
            if not (self._lost or self._closing):
                self._parse()
        elif action == BODY:
            self._feed_body()
        elif action == PAUSE:
            self._pause(_PAUSE_PIPELINE)
        elif action == OVERFLOW:
            self._reject(431)

    # ---------------------------------------------------------------- request parsing

    def _next_request(self) -> None:
        if self.state != IDLE or self._lost or self._closing:
            return
        if not self.pipelined():
            if self._out:
                self._flush()
            if self.flow.reasons & _PAUSE_PIPELINE:
                self._resume(_PAUSE_PIPELINE)
            return
        self._parse()

    def _parse(self) -> None:
        """Start the request whose head begins at the unconsumed bytes (H1State.next_head)."""
        ctx = self.ctx
        if ctx.active >= ctx.backpressure:
            self._pause(_PAUSE_PARKED)
            ctx.waiting.append(self)
            return
        if self._partial is not None:
            self._buf = bytes(self._partial)
            self._pos = 0
            self._partial = None
        try:
            # H1State.next_head(), inlined, with its commonest case (no Connection, Expect or
            # Transfer-Encoding field, so at most a Content-Length body, and an origin-form
            # target without a query) decided here: this runs once per request. Every other
            # head goes through H1State.start_request(), which makes the same decisions.
            res = parse_head(self._buf, self._pos, self.limits)
            if res is None:
                self.incomplete_head()
                if self._out:
                    self._flush()
                if self.flow.reasons & _PAUSE_PIPELINE:
                    self._resume(_PAUSE_PIPELINE)
                return
            end, method_b, path, minor, headers, content_length, flags = res
            if flags or path[:1] != b"/" or _QMARK in path:
                method, path, query, minor, headers, keep, body_eof = self.start_request(res)
                upgrade = self.upgrade  # set by start_request only (F_UPGRADE)
            else:
                upgrade = 0
                self.state = REQUEST
                self._pos = end
                self._continue = False
                method = _METHODS.get(method_b) or method_b.decode("latin-1")
                query = b""
                keep = minor == 1
                if content_length > 0:
                    self._reader = LengthBody(content_length)
                    self._discarded = 0
                    body_eof = False
                else:
                    body_eof = True
        except ProtocolError as exc:
            buf, pos = self._buf, self._pos
            if ctx.dispatch is not None and buf.startswith(b"PRI ", pos) and self._preface(buf, pos):
                return
            self._reject(exc.status_hint)
            return
        routes = ctx.health_routes
        if routes:
            # --health-path: answered here, before static files and the app (CLI.md "Health");
            # with none set this is one dict truthiness test, else one lookup.
            health = routes.get(path)
            if health is not None:
                self._health(health, method, path, query, minor, headers, keep, body_eof)
                return
        # (`self._closing` is False here: checked by every caller.)
        cycle = H1Cycle(
            self, method, path, query, "1.1" if minor else "1.0", headers, keep and ctx.keep_alive, body_eof
        )
        if self._proxy is not None:
            self._forwarded(cycle, headers)
        # The response's framing state (H1Carrier): one request at a time per connection.
        self._minor = minor
        self._is_head = method == "HEAD"
        self._cycle = cycle
        self.waiting_since = _NEVER
        ctx.active += 1
        if ctx.on_complete is not None:
            cycle.t0 = perf_counter()
        if not body_eof and self._pos < len(self._buf):
            self._feed_body()  # body bytes that came with the head
        if upgrade and self._upgrade(cycle):
            return  # an upgrade (granian.server.dispatch) serves it; a plain request pays this test
        coro = ctx.handler(cycle)
        if coro is None:
            # The handler finished its part synchronously (granian.server.cycle contract).
            return
        if ctx.eager:
            # --opt: a real Task whose first step runs now (granian.server.eager)
            start_eager(ctx.loop, coro)
        else:
            ctx.loop.create_task(coro)

    def _feed_body(self) -> None:
        cycle = self._cycle
        if cycle is None:
            self._discard_body()
            return
        # H1State.feed_body() for a request in flight (state REQUEST: DISCARD only ever
        # follows a complete response, when no cycle is attached), inlined: a request with a
        # body comes here at least once.
        try:
            data, end, done = self._reader.feed(self._buf, self._pos)
        except ProtocolError:
            self._body_error()
            return
        self._pos = end
        if done:
            self._reader = None
        if cycle._push(data, done) > self.ctx.buffer_size and not done:
            # The app is not keeping up: stop reading until it catches up (flow control).
            self.body_paused = True
            self._pause(_PAUSE_BODY)
        elif done and len(self._buf) - self._pos > self.ctx.buffer_size:
            self._pause(_PAUSE_PIPELINE)

    def _discard_body(self) -> None:
        """Body bytes of a request whose response is complete (DISCARD): read and dropped."""
        discarding = self.state == DISCARD
        try:
            _, done = self.feed_body()
        except ProtocolError:
            self._body_error()
            return
        if discarding:
            if self.discard_overflow():
                self.transport.close()
            elif done:
                # Finished discarding an unread body: on to the next request.
                self.waiting_since = self.ctx.now
                self._next_request()

    def _reject(self, status: int) -> None:
        """The peer's error (RFC 9112 §2.2, h11's split): answer with its status and close."""
        m = self.ctx.metrics
        if m is not None:
            m.conn_err += 1
        self._closing = True
        self.close()
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
        if self.pipelined():
            # A head was on its way: say why (RFC 9110 §15.5.9).
            self.transport.write(simple_response(408))
        self.transport.close()
        self._bound_tls_close()

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
        method: str,
        path: bytes,
        query: bytes,
        minor: int,
        headers: list[tuple[bytes, bytes]],
        keep: bool,
        body_eof: bool,
    ) -> None:
        """Answer a health path without a cycle. A request with a body is answered, then the
        connection closes (the body is never read: a probe sends none)."""
        ctx = self.ctx
        t0 = perf_counter()
        keep = keep and body_eof and ctx.keep_alive and not ctx.draining
        self.write(health.http1(method, minor, keep))
        if ctx.access_log is not None:
            # logged as any request when --access-log is on, never counted as one in metrics
            view = HealthView(method, path, query, minor, headers, self.scheme, self.client)
            view.status = health.status(method)
            ctx.access_log.log(view, perf_counter() - t0)
        if not keep:
            self._closing = True
            self.close()
            self.transport.close()
            return
        self.waiting_since = ctx.now
        if self.response_done(True) == NEXT:
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

    def _upgrade(self, cycle: Cycle) -> bool:
        """A head with `Connection: upgrade` and an `Upgrade` field (RFC 9110 §7.8): the
        protocol registered for one of its tokens may serve the request instead of the app
        (Dispatch.upgrade_handler); False leaves it to the app as an ordinary request."""
        self.upgrade = 0
        ctx = self.ctx
        dispatch = ctx.dispatch
        handler = dispatch.upgrade_handler(cycle) if dispatch is not None else None
        if handler is None:
            return False
        coro = handler(cycle)
        if coro is not None:
            if ctx.eager:
                start_eager(ctx.loop, coro)
            else:
                ctx.loop.create_task(coro)
        return True

    def switch_after(
        self, cycle: Cycle, head: bytes, factory: Callable[[], asyncio.Protocol]
    ) -> asyncio.Protocol:
        """An upgrade's answer: write its `101` head, end the request here without completing
        it (the new protocol owns the cycle and calls `ctx.on_complete` when it ends, so the
        access log has the whole session) and hand the connection over (switch_to)."""
        self._cycle = None
        cycle._carrier = None
        cycle.response_started = True
        cycle.status = 101
        self.write(head)
        if self.flow.reasons:
            # Reading paused here (pipelined bytes past the buffer) would stay paused for the
            # new protocol, which does its own flow control.
            self.flow.reasons = 0
            self.transport.resume_reading()
        self.ctx.release()  # a session is a connection, not a request in flight (--backpressure)
        return self.switch_to(factory)

    def switch_to(self, factory: Callable[[], asyncio.Protocol]) -> asyncio.Protocol:
        """Hand this connection to another protocol (granian.server.dispatch): it gets the
        transport and, as its first data, every byte read here and not consumed yet."""
        data = self.take_unconsumed()
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
            self._bound_tls_close()

    def _bound_tls_close(self) -> None:
        """An idle TLS connection closes with close_notify and would wait up to the loop's
        ssl_shutdown_timeout (30 s) for the peer's: a pooled client that never answers would
        hold a graceful stop that long. RFC 8446 §6.1 lets us not wait: abort after a second."""
        if self.ctx.scheme == "https":
            self._tls_close_timer = self.ctx.loop.call_later(_TLS_CLOSE_WAIT, self._abort_if_open)

    def _abort_if_open(self) -> None:
        if not self._lost:
            self.transport.abort()
