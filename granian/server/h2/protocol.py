"""One asyncio.Protocol per HTTP/2 connection: bytes into the sans-I/O session, streams out as
request cycles, the session's bytes back (RFC 9113).

Each `data_received` feeds the session once and handles the batch of events it returns; what
the session then has to send (responses answered meanwhile, WINDOW_UPDATE, SETTINGS and PING
acks) is written with one `transport.write`. Responses that apps complete later, from their
tasks, schedule one flush per loop iteration (`schedule_flush`), so the streams answered in
the same iteration share a write.

As a `granian._types.Connection` the connection has one timer, `waiting_since`, checked by the
ServerContext ticker against the header-read timeout (`--http1-header-read-timeout`, the bound
every connection gets): an idle connection (no open stream) is closed with GOAWAY, as an idle
HTTP/1.1 keep-alive connection is closed; and a stream whose response is held at a zero
window (the peer never opens it) is reset, which the engine leaves to us (docs/internals.md
§9). A graceful stop sends GOAWAY with the last stream id, lets the open streams finish, then
closes (RFC 9113 §6.8).

`--backpressure` counts streams as HTTP/1 counts requests (`ctx.active`): a stream past the
cap is parked and started when a slot frees (`_park`, `unpark`); `--http2-adaptive-window`
is granian.server.h2.window's.
"""

from __future__ import annotations

import asyncio
import math
import os
import struct
from collections.abc import Callable
from time import perf_counter
from typing import TYPE_CHECKING, Any

from ...http2 import (
    CLOSE,
    DATA,
    NO_ERROR,
    PING_ACK,
    REFUSED_STREAM,
    REQUEST,
    RESET,
    TRAILERS,
    H2Config,
    new_session,
)
from ..cycle import Cycle
from ..eager import start_eager

if TYPE_CHECKING:
    from ssl import SSLObject

    from ...health import Health
    from ..config import HTTP2Config
    from ..context import ServerContext
    from ..tls import TLSExtension

from .stream import H2Stream, response_fields
from .window import BDP_PING, AdaptiveWindow

__all__ = ["H2Protocol", "H2Server"]

_NEVER = math.inf

# Seconds an idle TLS connection that we close waits for the peer's close_notify (RFC 8446
# §6.1 lets us not wait; the same bound as the HTTP/1 connection's).
_TLS_CLOSE_WAIT = 1.0

# The engine for new sessions: "auto" (libnghttp2 when it loads, else h2), or forced for tests
# and comparisons ("nghttp2", "h2"). Read once per worker.
ENGINE_ENV = "GRANIAN_HTTP2_ENGINE"

_METHODS = {
    m: m.decode("ascii")
    for m in (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS", b"CONNECT", b"TRACE")
}
_QMARK = 0x3F  # "?" as an int: `in` is then a memchr
_HOST = b"host"
_COOKIE = b"cookie"
_PING = struct.Struct(">Q")
# The graceful stop's round-trip probe: top bit set like window.BDP_PING, low bit told apart
# (keep-alive PINGs count up from 1 with the top bit clear).
_DRAIN_PING = _PING.pack((1 << 63) | 1)
# Longest wait for that PING's ack before the final GOAWAY goes anyway (a peer that does not
# answer PINGs): RFC 9113 §6.8 asks for "at least one round-trip time".
_NOTICE_WAIT = 1.0
# ... and the shortest: nghttp2's client queues its PING ack ahead of the HEADERS of streams it
# had already submitted, so the ack can overtake them (h2load in a roll lost 53 such streams on
# the h2 engine with the final GOAWAY at the ack, none with this floor).
_NOTICE_MIN = 0.2
_SWITCHING = b"HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: h2c\r\n\r\n"


class H2Server:
    """What the HTTP/2 connections of one ServerContext share: the session parameters, the
    engine, the keep-alive PING timing and the interface's needs."""

    def __init__(self, ctx: ServerContext, opts: HTTP2Config, interface: str) -> None:
        self.ctx = ctx
        self.config = H2Config(
            max_concurrent_streams=opts.max_concurrent_streams,
            initial_stream_window_size=opts.initial_stream_window_size,
            initial_connection_window_size=opts.initial_connection_window_size,
            max_frame_size=opts.max_frame_size,
            max_headers_size=opts.max_headers_size,
            max_send_buffer_size=opts.max_send_buffer_size,
        )
        self.engine = os.environ.get(ENGINE_ENV, "auto") or "auto"
        # --http2-keep-alive-interval (ms, None: off) and --http2-keep-alive-timeout (s)
        self.ping_interval = None if opts.keep_alive_interval is None else opts.keep_alive_interval / 1000.0
        self.ping_timeout = float(opts.keep_alive_timeout)
        self.adaptive_window = opts.adaptive_window
        # WSGI: several cookie fields become one, joined with "; " (RFC 9113 §8.2.3: HTTP/2
        # may split the cookie field; a CGI environ has a single HTTP_COOKIE).
        self.join_cookies = interface == "wsgi"

    def factory(self) -> H2Protocol:
        return H2Protocol(self)

    def upgrade_maker(self, cycle: Any) -> Callable[[Any], None] | None:
        """`Upgrade: h2c` (RFC 7540 §3.2; Dispatch.upgrades): taken on cleartext only (§3.2:
        `h2c` is HTTP/2 over TCP), with exactly one HTTP2-Settings field (§3.2.1), for a
        request without a body (a body would have to be read whole before the switch; such a
        request is simply served on HTTP/1.1, which §3.2 allows)."""
        if cycle.scheme != "http" or self.ctx.scheme != "http":
            return None
        settings = [v for n, v in cycle.headers if n == b"http2-settings"]
        if len(settings) != 1 or not cycle._body_eof or cycle._body:
            return None
        value = settings[0]
        return lambda c: self._switch(c, value)

    def _switch(self, cycle: Any, value: bytes) -> None:
        conn = cycle._carrier
        upgrade = (value, cycle.method == "HEAD")
        try:
            # A malformed HTTP2-Settings value is refused before anything is written.
            probe = H2Protocol(self, upgrade, cycle)
        except Exception:  # noqa: BLE001 - the engine's error: answer on HTTP/1.1
            cycle.respond(400, [(b"content-type", b"text/plain")], b"Bad HTTP2-Settings")
            return
        conn.switch_after(cycle, _SWITCHING, lambda: probe)


class H2Protocol(asyncio.Protocol):
    """The connection's I/O (a `granian._types.Connection`); each stream is an `H2Stream`."""

    __slots__ = (
        "srv",
        "ctx",
        "session",
        "streams",
        "transport",
        "client",
        "server",
        "scheme",
        "root_path",
        "waiting_since",
        "max_send_buffer",
        "write_paused",
        "lost",
        "_flushing",
        "_batch",
        "_closing",
        "_idle_since",
        "_stalled",
        "_tail",
        "_done",
        "_watchers",
        "_ping_handle",
        "_ping_deadline",
        "_ping_n",
        "_notice",
        "_ssl_object",
        "_tls_info",
        "_proxy",
        "_upgraded",
        "_parked",
        "_bdp",
    )

    def __init__(
        self, srv: H2Server, upgrade: tuple[bytes, bool] | None = None, upgraded: Cycle | None = None
    ) -> None:
        self.srv = srv
        ctx = self.ctx = srv.ctx
        if upgrade is None:
            self.session = new_session(srv.config, engine=srv.engine)
        else:
            self.session = new_session(
                srv.config, engine=srv.engine, upgrade_settings=upgrade[0], upgrade_head=upgrade[1]
            )
        self.streams: dict[int, H2Stream] = {}
        self.transport: Any = None
        self.client: tuple[str, int] | None = None
        self.server: tuple[str, int] | None = None
        self.scheme = ctx.scheme
        self.root_path = ctx.root_path
        self.waiting_since = ctx.now
        self.max_send_buffer = srv.config.max_send_buffer_size
        self.write_paused = False
        self.lost = False
        self._flushing = False  # a flush is scheduled
        self._batch = False  # inside data_received: its end flushes
        self._closing = False
        self._idle_since = ctx.now
        self._stalled: set[H2Stream] = set()
        # completed streams whose body still waits in the session for the peer's window
        self._tail: dict[int, float] = {}
        self._done: list[int] = []  # streams completed since the last flush
        self._watchers: set[H2Stream] = set()
        self._ping_handle: asyncio.TimerHandle | None = None
        self._ping_deadline: asyncio.TimerHandle | None = None
        self._ping_n = 0
        # a graceful stop's first GOAWAY is out and its final one not yet: the timer that sends it
        self._notice: asyncio.TimerHandle | None = None
        self._ssl_object: SSLObject | None = None
        self._tls_info: TLSExtension | None = None
        self._proxy: Any = None
        # h2c Upgrade (RFC 7540 §3.2): the HTTP/1.1 request, answered as stream 1
        self._upgraded = upgraded
        # --backpressure: streams past the worker's cap, in arrival order, with the loop time
        # they arrived (see _park)
        self._parked: dict[int, tuple[H2Stream, float]] = {}
        # --http2-adaptive-window (granian.server.h2.window); None: off
        self._bdp: AdaptiveWindow | None = None
        if srv.adaptive_window:
            cfg = srv.config
            self._bdp = AdaptiveWindow(
                self, cfg.initial_stream_window_size, cfg.initial_connection_window_size
            )

    # ---------------------------------------------------------------- transport callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        ctx = self.ctx
        self.transport = transport
        ctx.connections.add(self)
        m = ctx.metrics
        if m is not None:
            m.conn_active += 1
            m.conn_handled += 1
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            self.client = (peer[0], peer[1])
        local = transport.get_extra_info("sockname")
        if isinstance(local, tuple):
            self.server = (local[0], local[1])
        if ctx.scheme == "https":
            self._ssl_object = transport.get_extra_info("ssl_object")
        proxy = ctx.proxy
        if proxy is not None and self.client is not None and self.client[0] in proxy.trusted:
            self._proxy = proxy
        # Our SETTINGS (and the connection WINDOW_UPDATE) go first (RFC 9113 §3.4).
        self.flush()
        if self._upgraded is not None:
            self._serve_upgraded(self._upgraded)
            self._upgraded = None
        if self.srv.ping_interval is not None:
            self._ping_handle = ctx.loop.call_later(self.srv.ping_interval, self._ping)
        if ctx.draining:
            self.shutdown()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        ctx = self.ctx
        m = ctx.metrics
        if m is not None:
            m.conn_active -= 1
            if exc is not None:
                m.conn_err += 1
        self.waiting_since = _NEVER
        self._cancel_pings()
        if self._notice is not None:
            self._notice.cancel()
            self._notice = None
        for st in list(self.streams.values()):
            st.lost()
        if self._parked:
            self._drop_parked()
        for st in self._watchers:
            st.lost()
        self._watchers.clear()
        ctx.connection_closed(self)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self.flush()
        for st in list(self.streams.values()):
            st.wake()

    def data_received(self, data: bytes) -> None:
        self._batch = True
        try:
            events = self.session.feed(data)
            streams = self.streams
            for ev in events:
                kind = ev[0]
                if kind == REQUEST:
                    self._request(ev)
                elif kind == DATA:
                    st = streams.get(ev[1])
                    if st is not None:
                        st.data(ev[2], ev[3], ev[4])
                    else:
                        self._orphan_data(ev[1], ev[2], ev[3], ev[4])
                    if self._bdp is not None and ev[4]:
                        self._bdp.data(ev[1], ev[4], ev[3])
                elif kind == TRAILERS:
                    # Request trailers end the body; no interface passes them on.
                    st = streams.get(ev[1])
                    if st is not None:
                        st.data(b"", True, 0)
                    else:
                        self._orphan_data(ev[1], b"", True, 0)
                elif kind == RESET:
                    st = streams.get(ev[1])
                    if st is not None:
                        st.lost()
                    elif ev[1] in self._parked:
                        self._drop_parked(ev[1])
                    else:
                        self._tail.pop(ev[1], None)
                elif kind == PING_ACK:
                    if ev[1] == BDP_PING:
                        if self._bdp is not None:
                            self._bdp.ack()
                    elif ev[1] == _DRAIN_PING:
                        self._drain_acked()
                    elif self._ping_deadline is not None:
                        self._ping_deadline.cancel()
                        self._ping_deadline = None
                        self._ping_handle = self.ctx.loop.call_later(
                            self.srv.ping_interval or 1.0, self._ping
                        )
                elif kind == CLOSE:
                    # The session reads no more (a flood, a protocol error, or the end of a
                    # graceful stop): write its GOAWAY and close, staged as every close is (a
                    # reset would lose the GOAWAY); the streams in flight end as disconnects.
                    m = self.ctx.metrics
                    if m is not None and ev[1] != NO_ERROR:
                        m.conn_err += 1
                    self._closing = True
                    if self._notice is not None:
                        self._notice.cancel()
                        self._notice = None
                    self._batch = False
                    self.flush()
                    self._close()
                    return
                # GOAWAY from the peer: it opens no more streams; ours finish. SETTINGS_ACK:
                # nothing to do.
        finally:
            self._batch = False
        self.flush()

    # ---------------------------------------------------------------- streams

    def _request(self, ev: tuple[Any, ...]) -> None:
        _, sid, method, path, _scheme, authority, headers, end = ev
        ctx = self.ctx
        name = _METHODS.get(method) or method.decode("latin-1")
        if _QMARK in path:
            raw_path, _, query = path.partition(b"?")
        else:
            raw_path, query = path, b""
        if authority:
            # RFC 9113 §8.3.1: `:authority` stands for Host; apps read `host` (Granian #188).
            for n, _v in headers:
                if n == _HOST:
                    break
            else:
                headers.append((_HOST, authority))
        if self.srv.join_cookies:
            headers = _join_cookies(headers)
        routes = ctx.health_routes
        if routes:
            health = routes.get(raw_path)
            if health is not None:
                self._health(sid, health, name, raw_path, query, headers)
                return
        st = H2Stream(self, sid, name == "HEAD")
        cycle = Cycle(st, name, raw_path, query, "2", headers, True, end)
        # RSGI's scope.authority (RSGI.md: the `:authority` of HTTP/2 requests)
        if authority:
            cycle.authority = authority.decode("latin-1")
        if self._proxy is not None:
            self._forwarded(cycle, headers)
        st.cycle = cycle
        if ctx.on_complete is not None:
            cycle.t0 = perf_counter()
        if ctx.active >= ctx.backpressure:
            self._park(st)
            return
        self.streams[sid] = st
        ctx.active += 1
        coro = ctx.handler(cycle)
        if coro is None:
            return
        if ctx.eager:
            start_eager(ctx.loop, coro)
        else:
            ctx.loop.create_task(coro)

    def _orphan_data(self, sid: int, data: bytes, end: bool, flow: int) -> None:
        """Body bytes for a stream not running: a parked one takes them into its cycle (its
        credit then held past the read buffer, as for an app not reading yet); else nobody
        reads them any more and the credit goes back at once."""
        parked = self._parked.get(sid)
        if parked is not None:
            parked[0].data(data, end, flow)
        elif flow:
            self.session.consume(sid, flow)

    # ---------------------------------------------------------------- --backpressure

    def _park(self, st: H2Stream) -> None:
        """The worker runs `--backpressure` requests already: the stream waits, in arrival
        order, with one entry in `ctx.waiting` per parked stream (the HTTP/1 precedent parks
        the connection there), and starts in `unpark` when `ctx.release` frees a slot. Not
        REFUSED_STREAM: not every client retries one (RFC 9113 §8.7 allows it, no more)."""
        now = self.ctx.now
        self._parked[st.sid] = (st, now)
        self.ctx.waiting.append(self)
        # The wait is bounded as a parked HTTP/1 connection's is, by the header-read timeout
        # (_parked_timeout): the body credit a parked upload holds is connection credit too,
        # and unbounded it could stall this connection's running uploads for good.
        if now < self.waiting_since:
            self.waiting_since = now

    def unpark(self) -> None:
        """A slot is free (`ServerContext.release`): start the oldest parked stream."""
        parked = self._parked
        if self.lost or not parked:
            return
        ctx = self.ctx
        if ctx.active >= ctx.backpressure:
            # A stream that arrived meanwhile took the slot: keep our place in the queue.
            ctx.waiting.appendleft(self)
            return
        sid = next(iter(parked))
        st = parked.pop(sid)[0]
        cycle = st.cycle
        if cycle is None:  # gone meanwhile (cannot happen: _drop_parked removes it)
            return
        self.streams[sid] = st
        ctx.active += 1
        coro = ctx.handler(cycle)
        if coro is not None:
            ctx.loop.create_task(coro)
        self.schedule_flush()

    def _drop_parked(self, sid: int | None = None) -> None:
        """Parked streams that will not run (RST_STREAM from the peer: `sid`; the connection
        lost: all of them): out of the queue, their cycles see a disconnect."""
        waiting = self.ctx.waiting
        sids = list(self._parked) if sid is None else [sid]
        for s in sids:
            st = self._parked.pop(s)[0]
            try:
                waiting.remove(self)  # any one of our entries: they are interchangeable
            except ValueError:
                pass
            st.lost()  # not in `streams`: stream_done leaves `ctx.active` alone
        if not self.streams and not self._parked:
            # idle from now: the idle timer must not count the time the streams waited
            self._idle_since = self.ctx.now

    def open_stream_ids(self) -> list[int]:
        """The streams that may still receive body bytes: running and parked."""
        return [*self.streams, *self._parked]

    def _serve_upgraded(self, cycle: Cycle) -> None:
        """The h2c Upgrade's request (RFC 7540 §3.2): its response goes out on stream 1, which
        the session opened half-closed. The cycle moves from the HTTP/1 connection (which
        wrote the 101 and counted it as started) to the stream, before the app sees it."""
        ctx = self.ctx
        st = H2Stream(self, 1, cycle.method == "HEAD")
        st.cycle = cycle
        if type(cycle) is not Cycle:
            # HTTP/1's cycle (h1.carrier.H1Cycle) frames whole-body responses itself, as
            # HTTP/1.1; from here on the core's methods go through the stream.
            cycle.__class__ = Cycle
        cycle._carrier = cycle._served_on = st
        cycle.response_started = False
        cycle.status = 0
        cycle.http_version = "2"
        self.streams[1] = st
        ctx.active += 1
        coro = ctx.handler(cycle)
        if coro is not None:
            ctx.loop.create_task(coro)

    def stream_done(self, st: H2Stream, cycle: Cycle) -> None:
        """A stream's response is complete or it is gone: bookkeeping, access log, metrics."""
        if self.streams.pop(st.sid, None) is None:
            return
        if not st.gone:
            self._done.append(st.sid)
        ctx = self.ctx
        if ctx.on_complete is not None:
            ctx.on_complete(cycle)
        ctx.active -= 1
        if ctx.waiting or ctx.draining:
            ctx.active += 1
            ctx.release()
        if st.stall_since != _NEVER:
            self._stalled.discard(st)
        if not self.streams:
            self._idle_since = ctx.now
            if ctx.now < self.waiting_since:
                self.waiting_since = ctx.now
        self.schedule_flush()

    def stalled(self, st: H2Stream) -> None:
        """A streamed response waits for its window: arm the connection's timer for it."""
        self._stalled.add(st)
        if st.stall_since < self.waiting_since:
            self.waiting_since = st.stall_since

    def watch(self, st: H2Stream) -> None:
        """RSGI's client_disconnect() follows the connection after the stream's response."""
        self._watchers.add(st)

    # ---------------------------------------------------------------- writing

    def schedule_flush(self) -> None:
        if not (self._flushing or self._batch):
            self._flushing = True
            self.ctx.loop.call_soon(self._scheduled_flush)

    def _scheduled_flush(self) -> None:
        self._flushing = False
        self.flush()

    def flush(self) -> None:
        """Write what the session has ready (one write); wake streams whose buffer drained."""
        if self.lost:
            return
        session = self.session
        if not self.write_paused:
            data = session.data_to_write()
            if data:
                if isinstance(data, bytes):
                    self.transport.write(data)
                elif self._ssl_object is None:
                    # frame bytes and slices of the apps' bodies: one gathered write, no copy
                    self.transport.writelines(data)
                else:
                    # TLS would make a record of each piece: one buffer for the TLS layer
                    self.transport.write(b"".join(data))
            drained = session.drained()
            if drained:
                streams = self.streams
                for sid in drained:
                    st = streams.get(sid)
                    if st is not None:
                        st.wake()
        done = self._done
        tail = self._tail
        if done or tail:
            self._track_tail(done, tail)
        if self._closing and not self.streams and not tail and not self._parked and self._notice is None:
            self._close()

    def _track_tail(self, done: list[int], tail: dict[int, float]) -> None:
        buffered = self.session.buffered
        if tail:
            for sid in [s for s in tail if buffered(s) <= 0]:
                del tail[sid]
        if done:
            now = self.ctx.now
            for sid in done:
                if buffered(sid) > 0:
                    # Its response waits for the peer's window: the stall timer covers it.
                    tail[sid] = now
                    if now < self.waiting_since:
                        self.waiting_since = now
            done.clear()

    def _close(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing() or self.lost:
            return
        if self.ctx.scheme == "https":
            transport.close()
            self.ctx.loop.call_later(_TLS_CLOSE_WAIT, self._abort_if_open)
            return
        # The peer may still be sending (WINDOW_UPDATE for our last DATA, PING, streams our
        # GOAWAY refused): closing with those bytes unread resets the connection and loses the
        # end of our last response (RFC 9112 §9.6). Half-close and drain until the peer closes
        # (granian.server.linger); from here on nothing is read into or written from the session.
        from ..linger import linger

        self.lost = True
        self.waiting_since = _NEVER
        released = linger(transport, self.connection_lost, self.ctx.loop)
        if released is None:
            transport.close()
        else:
            self.transport = released  # a later transport.close() here (CLOSE) is the linger's

    def _abort_if_open(self) -> None:
        if not self.lost:
            self.transport.abort()

    # ---------------------------------------------------------------- Connection

    def head_timeout(self) -> None:
        """The ticker: `waiting_since` is past the header-read timeout. Close an idle
        connection with GOAWAY; reset the streams held at a zero window that long."""
        ctx = self.ctx
        deadline = ctx.now - ctx.header_read_timeout
        parked = self._parked
        if parked:
            self._parked_timeout(deadline)
        if not self.streams and not self._tail and not parked:
            if self._idle_since < deadline or self._closing:
                self.waiting_since = _NEVER
                self._closing = True
                if self._notice is not None:  # a stop's notice: this GOAWAY is its final one
                    self._notice.cancel()
                    self._notice = None
                self.session.goaway(NO_ERROR)
                self.flush()
                self._close()
                return
            self.waiting_since = self._idle_since
            return
        for st in [s for s in self._stalled if s.stall_since < deadline]:
            self._stalled.discard(st)
            st.timeout()
        tail = self._tail
        for sid in [s for s, t in tail.items() if t < deadline]:
            del tail[sid]
            self.session.reset(sid, 0x8)  # CANCEL (RFC 9113 §7)
        since = _NEVER
        for st in self._stalled:
            since = min(since, st.stall_since)
        for t in tail.values():
            since = min(since, t)
        if parked:
            since = min(since, next(iter(parked.values()))[1])
        if not self.streams and not tail and not parked:
            since = min(since, self._idle_since)
        self.waiting_since = since
        self.flush()

    def shutdown(self) -> None:
        """Graceful stop in two GOAWAYs (RFC 9113 §6.8): first one with 2^31-1, so the streams
        the client opens while it is on its way are still served, with a PING before it; once
        that PING is answered (one round trip; at most `_NOTICE_WAIT`), the GOAWAY with the
        last stream id. Open streams finish, then the connection closes."""
        if self._closing or self.lost:
            return
        self._closing = True
        self._cancel_pings()
        # the PING goes first: a client library that stops reading at a GOAWAY still acks it
        self.session.ping(_DRAIN_PING)
        self.session.shutdown_notice()
        self._notice = self.ctx.loop.call_later(_NOTICE_WAIT, self._final_goaway)
        self.flush()

    def _drain_acked(self) -> None:
        """The stop's PING came back: the final GOAWAY, but not before `_NOTICE_MIN`."""
        notice = self._notice
        if notice is None:
            return
        at = notice.when() - _NOTICE_WAIT + _NOTICE_MIN
        if self.ctx.loop.time() >= at:
            self._final_goaway()
        else:
            notice.cancel()
            self._notice = self.ctx.loop.call_at(at, self._final_goaway)

    def _final_goaway(self) -> None:
        notice = self._notice
        if notice is None:
            return
        notice.cancel()
        self._notice = None
        if self.lost:
            return
        self.session.goaway(NO_ERROR)
        self.flush()

    def _parked_timeout(self, deadline: float) -> None:
        """Streams parked longer than the header-read timeout: RST_STREAM REFUSED_STREAM,
        which tells the client no part of the request was processed (RFC 9113 §8.7), as a
        parked HTTP/1 connection gets its 408 and close."""
        late = [sid for sid, (_, since) in self._parked.items() if since < deadline]
        for sid in late:
            self.session.reset(sid, REFUSED_STREAM)
            self._drop_parked(sid)

    # ---------------------------------------------------------------- keep-alive PINGs

    def _ping(self) -> None:
        """--http2-keep-alive-interval: PING the peer; no ack within the timeout closes."""
        self._ping_handle = None
        if self.lost or self._closing:
            return
        self._ping_n += 1
        self.session.ping(_PING.pack(self._ping_n))
        self.flush()
        self._ping_deadline = self.ctx.loop.call_later(self.srv.ping_timeout, self._ping_missed)

    def _ping_missed(self) -> None:
        self._ping_deadline = None
        if self.lost:
            return
        self._closing = True
        self.session.terminate(NO_ERROR)
        self.flush()
        self.transport.close()

    def _cancel_pings(self) -> None:
        for handle in (self._ping_handle, self._ping_deadline):
            if handle is not None:
                handle.cancel()
        self._ping_handle = self._ping_deadline = None

    # ---------------------------------------------------------------- extras

    def tls_info(self) -> TLSExtension | None:
        """The ASGI `tls` extension of this connection, computed once (as H1Protocol's)."""
        ssl_object = self._ssl_object
        if ssl_object is None:
            return None
        info = self._tls_info
        if info is None:
            from ..tls import tls_extension

            info = self._tls_info = tls_extension(ssl_object)
        return info

    def _health(
        self,
        sid: int,
        health: Health,
        method: str,
        path: bytes,
        query: bytes,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        """--health-path: answered without a cycle, as on HTTP/1.1."""
        ctx = self.ctx
        t0 = perf_counter()
        status, fields, body = health.answer(method)
        if method == "HEAD":
            body = b""
        self.session.send_response(sid, status, response_fields(fields, len(body)), body, True)
        if ctx.access_log is not None:
            from ...health import HealthView

            view = HealthView(method, path, query, 1, headers, self.scheme, self.client)
            view.http_version = "2"
            view.status = status
            ctx.access_log.log(view, perf_counter() - t0)
        self.schedule_flush()

    def _forwarded(self, cycle: Cycle, headers: list[tuple[bytes, bytes]]) -> None:
        """--proxy-headers from a trusted peer: the client, scheme and host it forwarded."""
        client = self.client
        assert client is not None
        found = self._proxy.resolve(client[0], client[1], headers)
        if found is None:
            return
        host, port, scheme, forwarded_host = found
        if host is not None:
            cycle.client = (host, port or 0)
        if scheme is not None:
            cycle.scheme = scheme
        if forwarded_host is not None:
            value = forwarded_host.encode("latin-1")
            cycle.headers = [(n, value if n == _HOST else v) for n, v in headers]
            if not any(n == _HOST for n, _ in headers):
                cycle.headers.append((_HOST, value))


def _join_cookies(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """One `cookie` field, its pieces joined with "; " (RFC 9113 §8.2.3, Granian #287)."""
    cookies = [v for n, v in headers if n == _COOKIE]
    if len(cookies) < 2:
        return headers
    out = [(n, v) for n, v in headers if n != _COOKIE]
    out.append((_COOKIE, b"; ".join(cookies)))
    return out
