"""Per-worker serving state shared by every connection of one event loop.

Holds what each connection would otherwise look up per request (limits, flags, the handler),
the count of in-flight requests behind `--backpressure`, and the ticker that, once per
interval, refreshes the cached `date` line and closes connections whose request head is overdue
(the `--http1-header-read-timeout` slowloris guard, which also bounds idle keep-alive waits, as
hyper's `header_read_timeout` does for Granian). A coarse shared clock means the hot path only
copies a float instead of arming a timer per request.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..constants import HTTP1_BUFFER_SIZE
from ..http1.limits import MAX_HEADERS, MAX_TARGET
from ..http1.parser import H1Limits
from ..http1.response import refresh_date
from .eager import EAGER

if TYPE_CHECKING:
    from .._types import Connection, Handler
    from ..access_log import AccessLog
    from ..health import Health
    from ..proxy import ProxyHeaders
    from .dispatch import Dispatch
    from .metrics import WorkerMetrics

__all__ = ["ServerContext"]


# Longest gap between ticks: the `date` header has one-second resolution (RFC 9110 §5.6.7).
_TICK_MAX = 1.0
_TICK_MIN = 0.05
# Seconds a drain waits before closing idle connections (see drain()): covers the gap between
# accept() and the first request bytes, about half a round trip for a client that sends at once.
_DRAIN_GRACE = 0.1


class ServerContext:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        handler: Handler,
        *,
        buffer_size: int = HTTP1_BUFFER_SIZE,
        keep_alive: bool = True,
        pipeline_flush: bool = False,
        header_read_timeout: float = 30.0,
        backpressure: int = 1024,
        root_path: str = "",
        scheme: str = "http",
        eager: bool = False,
    ) -> None:
        self.loop = loop
        self.handler = handler
        self.buffer_size = buffer_size
        # The head must fit in the read buffer (CLI.md: --http1-buffer-size); the parser turns a
        # longer head into 431 (RFC 6585 §5).
        self.limits = H1Limits(max_head=buffer_size, max_headers=MAX_HEADERS, max_target=MAX_TARGET)
        self.keep_alive = keep_alive
        self.pipeline_flush = pipeline_flush
        self.header_read_timeout = header_read_timeout
        self.backpressure = backpressure
        self.root_path = root_path
        self.scheme = scheme
        # --opt: an eager Task start where the Python has a correct one (granian.server.eager)
        self.eager = eager and EAGER
        self.on_complete: Callable[[Any], None] | None = None
        # The protocol choices (granian.server.dispatch.Dispatch), set by the worker; None: HTTP/1.1 only.
        self.dispatch: Dispatch | None = None
        # --health-path: path bytes -> the worker's Health (empty: no health path; one dict
        # truthiness test per request then). --proxy-headers: the trust list and resolver.
        self.health_routes: dict[bytes, Health] = {}
        self.proxy: ProxyHeaders | None = None
        # the access log, for what is logged without a cycle (health answers); None when off
        self.access_log: AccessLog | None = None
        # --metrics: the worker's counters (granian.server.metrics), None when off.
        self.metrics: WorkerMetrics | None = None
        self.connections: set[Connection] = set()
        self.active = 0
        self.waiting: deque[Connection] = deque()
        self.draining = False
        self.now = loop.time()
        self._tick_handle: asyncio.TimerHandle | None = None
        self._tick_interval = min(_TICK_MAX, max(_TICK_MIN, header_read_timeout / 4))
        self._idle_waiter: asyncio.Future[None] | None = None

    # ---------------------------------------------------------------- ticker

    def start(self) -> None:
        self._tick()

    def stop(self) -> None:
        if self._tick_handle is not None:
            self._tick_handle.cancel()
            self._tick_handle = None

    def _tick(self) -> None:
        now = self.now = self.loop.time()
        refresh_date()
        deadline = now - self.header_read_timeout
        expired = [c for c in self.connections if c.waiting_since < deadline]
        for conn in expired:
            conn.head_timeout()
        self._tick_handle = self.loop.call_at(now + self._tick_interval, self._tick)

    # ---------------------------------------------------------------- backpressure

    def release(self) -> None:
        """One request finished: let a connection parked by backpressure continue."""
        self.active -= 1
        if self.waiting and self.active < self.backpressure:
            conn = self.waiting.popleft()
            self.loop.call_soon(conn.unpark)
        if self.draining:
            self._check_idle()

    # ---------------------------------------------------------------- draining

    def _check_idle(self) -> None:
        if not self.connections and self._idle_waiter is not None and not self._idle_waiter.done():
            self._idle_waiter.set_result(None)

    def connection_closed(self, conn: Connection) -> None:
        self.connections.discard(conn)
        if self.draining:
            self._check_idle()

    async def drain(self) -> None:
        """Stop taking requests: close idle connections now, the others after their in-flight
        response, and return once none is left."""
        # A connection accepted just before the listening socket closed may not have delivered
        # its first request yet: closing it now as idle fails a request the client has already
        # sent (seen in rolling restarts). A short grace lets those bytes arrive; the worker
        # stops accepting before drain() is called, so no new connection joins meanwhile.
        await asyncio.sleep(_DRAIN_GRACE)
        self.draining = True
        for conn in list(self.connections):
            conn.shutdown()
        if self.connections:
            self._idle_waiter = self.loop.create_future()
            self._check_idle()
            await self._idle_waiter
