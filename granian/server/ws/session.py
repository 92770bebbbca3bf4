"""One WebSocket session (RFC 6455) after an HTTP/1.1 upgrade: the object behind
`granian._types.WebSocketSession` and, once accepted, the connection's asyncio protocol.

Life of a session:
- The HTTP/1 connection routes a request with `Upgrade: websocket` here (`register` puts the
  maker in `Dispatch.upgrades`). `check_request` refuses a bad handshake with 400, a wrong
  version with 426 + `Sec-WebSocket-Version: 13` (RFC 6455 §4.2.1, §4.4): through the cycle, so
  the access log has them with their status. A valid one goes to the adapter's `ws_handler(cycle,
  session)`; until `accept()` the app may still refuse through the cycle (403, a denial).
- `accept()` writes the 101 (with the negotiated permessage-deflate, RFC 7692) and takes the
  transport over (`H1Protocol.switch_after`): this object becomes its protocol and a
  `_types.Connection` tracked by the ServerContext (graceful stop, drain).
- Reading: one `WSConnection.feed()` per received chunk; messages queue for `receive()`. Above
  `_QUEUE_HIGH` queued messages reading pauses until the app is down to `_QUEUE_LOW` (websockets'
  `max_queue` 16 and its low-water mark of a quarter): a client that sends faster than the app
  reads holds a bounded amount of memory (TCP pushes back on it).
- Writing: `send()` writes one frame and awaits while the transport's buffer is over its
  high-water mark (pause_writing / resume_writing).
- Keep-alive pings (`--ws-ping-interval`): a ping is sent when nothing was received for an
  interval; when nothing at all (pong or data) comes back within `--ws-ping-timeout` the session
  closes with 1011 and the app gets its disconnect (uvicorn's and websockets' options).
- Close: the peer's close is answered (by the codec) and TCP is closed by us (RFC 6455 §7.1.1);
  our close (the app's, 1001 on a graceful stop, 1011 on a ping timeout) waits `_CLOSE_TIMEOUT`
  for the peer's before the transport is aborted. When the peer's close (or a protocol
  failure, §7.1.7) arrives while the app is still busy with earlier messages, the reply is
  held until the app comes back to `receive()` (at most `_PEER_CLOSE_HOLD`): the answers to the
  messages before the close go out before the close, as Autobahn's strict cases (7.1.x) want.
- End: `receive()` returns None; `close_code`/`close_reason` say why (the peer's code, 1005 when
  it sent none, the failure's 1002/1007/1009, 1011 after a ping timeout, 1006 on a lost
  transport). The session is logged once, with status 101 and its whole duration
  (`ctx.on_complete`), when the transport is gone.

Nothing here assumes a plain socket: the transport may be TLS (`wss`).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import deque
from collections.abc import Callable, Coroutine, Iterable
from typing import TYPE_CHECKING, Any

from ..._types import ClientDisconnected
from ...constants import SERVER_LOGGER
from ...http1.response import SERVER_NAME
from ...websocket import (
    CLOSED,
    OPEN,
    Close,
    DeflateConfig,
    Failure,
    HandshakeError,
    Upgrade,
    WSConnection,
    check_request,
    negotiate,
    response_head,
)
from ..h1 import H1Protocol

if TYPE_CHECKING:
    from ..config import WSConfig
    from ..context import ServerContext
    from ..cycle import Cycle

__all__ = ["WSSession", "register"]

logger = logging.getLogger(SERVER_LOGGER)

# Messages queued for the app before reading pauses, and the level it resumes at (websockets'
# max_queue default and its low-water mark, a quarter of it).
_QUEUE_HIGH = 16
_QUEUE_LOW = 4
# Seconds our close waits for the peer's (RFC 6455 §7.1.1 leaves it to the server; websockets'
# close_timeout is 10 s, uvicorn's ws shutdown waits 5 s): then the transport is aborted. Also
# bounds the flush of the last frames once we closed TCP.
_CLOSE_TIMEOUT = 5.0
# Seconds the reply to a peer's close may wait for a busy app to answer the messages before it.
_PEER_CLOSE_HOLD = 1.0
# Seconds a session that timed out (its peer answers nothing) gets to flush our close frame.
_DEAD_PEER_WAIT = 1.0

_NEVER = float("inf")
_END = object()  # the queue's end marker: receive() returns None from here on

_TEXT_PLAIN = (b"content-type", b"text/plain; charset=utf-8")


def register(
    ctx: ServerContext,
    ws_handler: Callable[[Any, WSSession], Coroutine[Any, Any, None] | None],
    cfg: WSConfig,
) -> None:
    """Serve `Upgrade: websocket` requests of this loop's connections with `ws_handler(cycle,
    session)` (an adapter's, e.g. granian.apps.asgi_ws)."""
    assert ctx.dispatch is not None

    def serve(cycle: Cycle) -> Coroutine[Any, Any, None] | None:
        minor = 0 if cycle.http_version == "1.0" else 1
        # This connection serves no other HTTP request after the upgrade request, whatever the
        # answer: a refusal says `connection: close`.
        cycle.keep_alive = False
        try:
            upgrade = check_request(cycle.method.encode("latin-1"), cycle.headers, minor)
        except HandshakeError as err:
            cycle.respond(err.status_hint, [_TEXT_PLAIN, *err.headers], str(err).encode("utf-8", "replace"))
            return None
        return ws_handler(cycle, WSSession(ctx, cycle, upgrade, cfg))

    def maker(cycle: Cycle) -> Callable[[Cycle], Coroutine[Any, Any, None] | None] | None:
        return serve if isinstance(cycle._carrier, H1Protocol) else None

    ctx.dispatch.upgrades[b"websocket"] = maker


def _field(v: bytes | str) -> bytes:
    return v if isinstance(v, bytes) else v.encode("latin-1")


class WSSession(asyncio.Protocol):
    """A WebSocket session: the app's side (accept, receive, send, close) and, after accept, the
    transport's protocol and a `_types.Connection` (waiting_since, head_timeout, shutdown,
    unpark)."""

    __slots__ = (
        "ctx",
        "cycle",
        "subprotocols",
        "accepted",
        "close_code",
        "close_reason",
        "waiting_since",
        "_cfg",
        "_upgrade",
        "_ws",
        "_transport",
        "_queue",
        "_waiter",
        "_read_paused",
        "_write_paused",
        "_drain_waiter",
        "_heard",
        "_timer",
        "_awaiting_pong",
        "_held",
        "_held_failure",
        "_hold_timer",
        "_over",
        "_tcp_closing",
        "_lost",
        "_close_timer",
        "_lost_waiter",
    )

    def __init__(self, ctx: ServerContext, cycle: Cycle, upgrade: Upgrade, cfg: WSConfig) -> None:
        self.ctx = ctx
        self.cycle = cycle
        #: Sec-WebSocket-Protocol split on commas and trimmed (ASGI's `subprotocols`)
        self.subprotocols = upgrade.subprotocols
        self.accepted = False
        #: why the session ended (valid once receive() returned None)
        self.close_code = 1006
        self.close_reason = ""
        self.waiting_since = _NEVER  # a session has no header-read timeout
        self._cfg = cfg
        self._upgrade = upgrade
        self._ws: WSConnection | None = None
        self._transport: Any = None
        self._queue: deque[Any] = deque()
        self._waiter: asyncio.Future[Any] | None = None
        self._read_paused = False
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._heard = False  # bytes arrived since the ping timer last looked
        self._timer: asyncio.TimerHandle | None = None
        self._awaiting_pong = False
        # the peer's close (or our failure close) held back while the app is busy: the bytes
        # to write then, and what ends it (None: nothing held)
        self._held: bytes | None = None
        self._held_failure: Failure | None = None  # a failure's close is built on release
        self._hold_timer: asyncio.TimerHandle | None = None
        self._over = False  # reading is over: the app gets None once the queue is empty
        self._tcp_closing = False
        self._lost = False
        self._close_timer: asyncio.TimerHandle | None = None
        self._lost_waiter: asyncio.Future[None] | None = None

    # ---------------------------------------------------------------- the app's side

    @property
    def closed(self) -> bool:
        """A close was sent or received, or the connection is gone: nothing more to send."""
        ws = self._ws
        return self._lost or self._tcp_closing or (ws is not None and ws.state != OPEN and self._held is None)

    async def accept(self, subprotocol: str | None = None, headers: Iterable[tuple[Any, Any]] = ()) -> None:
        """Write the 101 and take the connection over. ValueError for a subprotocol or a header
        that cannot go in a response head; ClientDisconnected when the client has gone."""
        if self.accepted:
            raise RuntimeError("WebSocket already accepted")
        cycle = self.cycle
        conn = cycle._carrier
        if conn is None or cycle.disconnected or not isinstance(conn, H1Protocol):
            raise ClientDisconnected("client disconnected")
        cfg = self._cfg
        upgrade = self._upgrade
        extension = None
        pmd = None
        if cfg.per_message_deflate and upgrade.extensions:
            agreed = negotiate(upgrade.extensions, DeflateConfig())
            if agreed is not None:
                extension, pmd = agreed
        extra = [(_field(n).lower(), _field(v)) for n, v in headers]
        if not any(n == b"server" for n, _ in extra):
            extra.append((b"server", SERVER_NAME))
        head = response_head(upgrade.accept, subprotocol, extra, extension)
        # created here, on the loop thread that serves it (it shares that thread's C buffers)
        self._ws = WSConnection(cfg.max_message_size, pmd)
        self.accepted = True
        ctx = self.ctx
        # Tracked before the H1 side lets go, so a drain never sees a moment without it.
        ctx.connections.add(self)
        self._write_paused = conn.flow.write_paused
        conn.switch_after(cycle, head, self._factory)
        if cfg.ping_interval > 0:
            self._timer = ctx.loop.call_later(cfg.ping_interval, self._ping_tick)
        if ctx.draining:
            self.shutdown()  # accepted during a graceful stop: going away at once

    def _factory(self) -> WSSession:
        return self

    async def receive(self) -> bytes | str | None:
        """The next message; None once the session is over (see close_code)."""
        q = self._queue
        if q:
            item = q.popleft()
            if self._read_paused and len(q) <= _QUEUE_LOW:
                self._read_paused = False
                if not self._lost:
                    self._transport.resume_reading()
            if item is _END:
                q.appendleft(item)  # stays: every later receive() returns None too
                if self._held is not None:
                    self._release_held()
                return None
            return item  # type: ignore[no-any-return]
        if self._over:
            return None
        if self._held is not None:
            self._release_held()
            return None
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            # two receivers would wait for one message: the first would never wake up
            raise RuntimeError("WebSocket receive already in progress")
        waiter = self._waiter = self.ctx.loop.create_future()
        item = await waiter
        return None if item is _END else item

    @property
    def receiving(self) -> bool:
        """A receive() is waiting (RSGI refuses a second concurrent one)."""
        w = self._waiter
        return w is not None and not w.done()

    async def send(self, data: bytes | str) -> None:
        """One message. ClientDisconnected once the peer has gone or closed; RuntimeError
        (WebSocketClosedError) after our own close."""
        if self.push(data):
            await self._drain()

    async def drain(self) -> None:
        """Until the transport takes writes again (after push() said so)."""
        await self._drain()

    def push(self, data: bytes | str) -> bool:
        """send() without its wait (adapters save a coroutine per message): True when the
        caller must await drain(), the transport's buffer being over its high-water mark."""
        ws = self._ws
        if ws is None:
            raise RuntimeError("WebSocket not accepted")
        if self._lost or self._tcp_closing:
            raise ClientDisconnected("WebSocket peer gone")
        if self._held is not None and ws.state == CLOSED:
            # The peer's close is in but its reply is held back for the app's answers to the
            # messages before it: those may still go out, before our close (see the docstring).
            frame = ws.send_before_reply(data)
        elif ws.close_received:
            raise ClientDisconnected("WebSocket closed by the peer")
        else:
            frame = ws.send_message(data)
        self.cycle.bytes_sent += len(frame)
        self._transport.write(frame)
        return self._write_paused

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the close handshake (nothing when one is under way or the session is over).
        ValueError for a code RFC 6455 §7.4 does not allow."""
        self.start_close(code, reason)

    def start_close(self, code: int = 1000, reason: str = "") -> None:
        """close(), synchronously (RSGI's `protocol.close()` is a plain call)."""
        ws = self._ws
        if ws is None:
            raise RuntimeError("WebSocket not accepted")
        if self._lost or self._tcp_closing:
            return
        if self._held is not None:
            self._release_held()  # the peer closed first: our reply is the end of it
            return
        frame = ws.close(code, reason)
        if frame:
            self._transport.write(frame)
            self._arm_close_timer(_CLOSE_TIMEOUT)

    async def wait_closed(self) -> None:
        """Until the transport is gone (the close handshake is over or was cut short)."""
        if self._lost or not self.accepted:
            return
        fut = self._lost_waiter
        if fut is None:
            fut = self._lost_waiter = self.ctx.loop.create_future()
        await asyncio.shield(fut)

    # ---------------------------------------------------------------- transport callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._heard = True
        ws = self._ws
        assert ws is not None
        events, out = ws.feed(data)
        end = None
        for ev in events:
            c = ev.__class__
            if c is str or c is bytes:
                waiter = self._waiter
                if waiter is not None:
                    self._waiter = None
                    if not waiter.done():
                        waiter.set_result(ev)
                        continue
                q = self._queue
                q.append(ev)
                if len(q) >= _QUEUE_HIGH and not self._read_paused:
                    # The app is not keeping up: stop reading (bounded memory; TCP pushes back).
                    self._read_paused = True
                    self._transport.pause_reading()
            elif c is Close or c is Failure:
                end = ev  # always the last event (the codec reads no further)
            # Ping: answered already (its pong is in `out`); Pong: `_heard` says enough.
        if end is None:
            if out:
                self._transport.write(out)
            return
        self._read_end(end, out)  # type: ignore[arg-type]

    def _read_end(self, end: Close | Failure, out: bytes) -> None:
        """The peer's close or a protocol failure: reading is over."""
        ws = self._ws
        assert ws is not None
        self.close_code, self.close_reason = end.code, end.reason
        self._over = True
        self._cancel_timer()
        failure = end if end.__class__ is Failure else None
        if failure is None and ws.close_sent and not out:
            # the answer to our own close: the handshake is complete
            self._close_tcp(_CLOSE_TIMEOUT)
            self._end_for_app()
            return
        if self._waiter is None and (self._queue or self.accepted):
            # The app is busy (not waiting in receive()): let it answer what came before first.
            # (A failure's close is built then: sending stays open until it is sent.)
            self._held = out
            self._held_failure = failure
            self._queue.append(_END)
            self._hold_timer = self.ctx.loop.call_later(_PEER_CLOSE_HOLD, self._release_held)
            return
        if failure is not None:
            # RFC 6455 §7.1.7: fail the connection with our close, without waiting for the peer's
            out += ws.close(failure.code, failure.reason)
        if out:
            self._transport.write(out)
        self._close_tcp(_CLOSE_TIMEOUT)
        self._end_for_app()

    def _release_held(self) -> None:
        out = self._held
        if out is None:
            return
        self._held = None
        if self._hold_timer is not None:
            self._hold_timer.cancel()
            self._hold_timer = None
        failure = self._held_failure
        self._held_failure = None
        if not self._lost:
            if failure is not None and self._ws is not None:
                out += self._ws.close(failure.code, failure.reason)  # RFC 6455 §7.1.7
            if out:
                self._transport.write(out)
            self._close_tcp(_CLOSE_TIMEOUT)

    def _end_for_app(self) -> None:
        """receive() returns None once the messages already queued are taken."""
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(_END)
                self._queue.append(_END)
                return
        if not self._queue or self._queue[-1] is not _END:
            self._queue.append(_END)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        w = self._drain_waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def _drain(self) -> None:
        if not self._write_paused or self._lost:
            return
        w = self._drain_waiter
        if w is None or w.done():
            w = self._drain_waiter = self.ctx.loop.create_future()
        await w

    def connection_lost(self, exc: Exception | None) -> None:
        if self._lost:
            return
        self._lost = True
        self._cancel_timer()
        for handle in (self._hold_timer, self._close_timer):
            if handle is not None:
                handle.cancel()
        self._hold_timer = self._close_timer = None
        self._held = None
        ws = self._ws
        if not self._over:
            self._over = True
            if ws is not None:
                self.close_code, self.close_reason = ws.connection_lost()
            self._end_for_app()
        for w in (self._drain_waiter, self._lost_waiter):
            if w is not None and not w.done():
                w.set_result(None)
        ctx = self.ctx
        ctx.connection_closed(self)
        m = ctx.metrics
        if m is not None:
            m.conn_active -= 1
            if exc is not None:
                m.conn_err += 1
        cycle = self.cycle
        cycle.response_done = True
        hook = ctx.on_complete
        if hook is not None:
            hook(cycle)  # one access-log line for the session: 101 and its whole duration

    def eof_received(self) -> bool | None:
        return None  # the transport closes itself; connection_lost reports the loss

    # ---------------------------------------------------------------- closing

    def _close_tcp(self, bound: float) -> None:
        """We close TCP (RFC 6455 §7.1.1: the server closes first), bounded by `bound` seconds
        for the last bytes to flush (a TLS close_notify included)."""
        if self._tcp_closing or self._lost:
            return
        self._tcp_closing = True
        self._transport.close()
        self._arm_close_timer(bound)

    def _arm_close_timer(self, bound: float) -> None:
        if self._close_timer is not None:
            self._close_timer.cancel()
        self._close_timer = self.ctx.loop.call_later(bound, self._abort)

    def _abort(self) -> None:
        self._close_timer = None
        if not self._lost:
            if not self._over:
                # our close was never answered (close_code stays 1006: the handshake failed)
                self._over = True
                self._end_for_app()
            self._transport.abort()

    def _fail_dead_peer(self) -> None:
        """No answer to a keep-alive ping in time: close with 1011 and tell the app now."""
        ws = self._ws
        assert ws is not None
        self.close_code, self.close_reason = 1011, "keepalive ping timeout"
        self._over = True
        frame = ws.close(1011, "keepalive ping timeout")
        if frame:
            self._transport.write(frame)
        self._end_for_app()
        self._close_tcp(_DEAD_PEER_WAIT)

    # ---------------------------------------------------------------- keep-alive pings

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _ping_tick(self) -> None:
        self._timer = None
        ws = self._ws
        if self._lost or self._over or ws is None or ws.state != OPEN:
            return
        cfg = self._cfg
        loop = self.ctx.loop
        if self._heard or self._read_paused:
            # Anything received since the last look (a pong, a message) proves the peer alive;
            # while we do not read (the app lags) a pong could not be heard: no ping then.
            self._heard = False
            self._awaiting_pong = False
            self._timer = loop.call_later(cfg.ping_interval, self._ping_tick)
            return
        if self._awaiting_pong:
            self._fail_dead_peer()
            return
        self._transport.write(ws.ping(os.urandom(4)))
        if cfg.ping_timeout > 0:
            self._awaiting_pong = True
            self._timer = loop.call_later(cfg.ping_timeout, self._ping_tick)
        else:
            self._timer = loop.call_later(cfg.ping_interval, self._ping_tick)

    # ---------------------------------------------------------------- Connection

    def head_timeout(self) -> None:  # never: waiting_since is inf
        return

    def unpark(self) -> None:  # a session is never parked by --backpressure
        return

    def shutdown(self) -> None:
        """Graceful stop: close 1001 (going away, RFC 6455 §7.4.1); the peer's answer (or
        _CLOSE_TIMEOUT) ends the session."""
        ws = self._ws
        if ws is None or self._lost or self._tcp_closing:
            return
        if self._held is not None:
            self._release_held()
            return
        frame = ws.close(1001, "server shutdown")
        if frame:
            self._transport.write(frame)
            self._arm_close_timer(_CLOSE_TIMEOUT)
