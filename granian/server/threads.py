"""`--threads N`: extra event-loop threads inside one worker (ARCHITECTURE.md "Threads and
threading modes").

The worker's main thread keeps the app, lifespan, signals and the drain; each `LoopThread` runs
its own loop (the same `--loop` kind) with its own `ServerContext` (date ticker, timeouts,
backpressure count, metrics counters), so nothing on the request path is shared between loops
and no lock is taken per request.

Two ways to feed the loops, both accepting in the loop's C code (libuv / the selector loop),
never in a Python `accept()` loop:

- `workers` mode: every loop runs `create_server` on its own duplicate of the listening socket,
  and the kernel decides which loop's `accept()` takes a connection (as with gunicorn's workers
  sharing one socket).
- `runtime` mode: N loop threads serve and the main loop is the one acceptor (it runs no
  request, so an app that blocks a loop cannot stall accepting). Its protocol factory deals
  connections round-robin as `HandOff`s, whose `connection_made` duplicates the socket, aborts
  its own transport (abort only closes this loop's descriptor: no FIN or RST is sent while the
  duplicate keeps the connection open; both uvloop and asyncio start reading only after
  `connection_made`, so no request bytes are consumed here) and passes the duplicate to the
  target loop's `connect_accepted_socket`.

With TLS every serving loop does its own handshakes: `serve_kw` (the worker's `ssl=` context and
its timeouts) goes to each `create_server` and to the runtime hand-off's
`connect_accepted_socket`; runtime mode's acceptor hands raw TCP sockets on before any byte of
the handshake is read.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
import socket
import threading
from collections.abc import Callable
from typing import Any

from ..constants import SERVER_LOGGER
from .context import ServerContext
from .loop import new_event_loop

__all__ = ["HandOff", "LoopThread", "close_loop", "handler_for", "round_robin_factory"]

logger = logging.getLogger(SERVER_LOGGER)

ContextFactory = Callable[[asyncio.AbstractEventLoop], ServerContext]


class LoopThread:
    """One extra event loop in its own thread, serving connections with a `ServerContext` built
    by `make_ctx` on that loop. With `listen` it accepts on its own (workers mode); without, it
    serves only what `adopt()` hands it (runtime mode)."""

    def __init__(
        self,
        index: int,
        loop_kind: str,
        make_ctx: ContextFactory,
        listen: socket.socket | None = None,
        backlog: int = 1024,
        serve_kw: dict[str, Any] | None = None,
    ) -> None:
        self.index = index
        self.loop_kind = loop_kind
        self.make_ctx = make_ctx
        self.listen = listen
        self.backlog = backlog
        self.serve_kw: dict[str, Any] = serve_kw or {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self.ctx: ServerContext | None = None
        # Resolved once the loop serves (or failed to start); `done` once the loop is closed.
        self.ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self.done: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._stop: asyncio.Event | None = None
        self._stop_requested = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._main, name=f"granian-loop-{index}", daemon=True)

    # ---------------------------------------------------------------- any thread

    def start(self) -> None:
        self._thread.start()

    def request_stop(self) -> None:
        """Stop accepting, drain, close the loop; safe from any thread, before or after start."""
        with self._lock:
            self._stop_requested = True
            loop, stop = self.loop, self._stop
        if loop is not None and stop is not None:
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:
                pass  # the loop is already closed

    def adopt(self, sock: socket.socket) -> None:
        """Serve an accepted connection on this thread's loop (runtime mode hand-off)."""
        loop = self.loop
        if loop is not None:
            try:
                loop.call_soon_threadsafe(self._adopt, sock)
                return
            except RuntimeError:
                pass  # closed: nobody will serve it
        sock.close()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    # ---------------------------------------------------------------- the thread's own loop

    def _main(self) -> None:
        try:
            loop = new_event_loop(self.loop_kind)
        except BaseException as exc:  # noqa: BLE001 - reported to the main thread
            if self.listen is not None:
                self.listen.close()
            self.ready.set_exception(exc)
            self.done.set_result(None)
            return
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve(loop))
        except BaseException as exc:  # noqa: BLE001 - reported to the main thread
            if not self.ready.done():
                self.ready.set_exception(exc)
            else:
                logger.exception("loop thread %d failed", self.index)
        finally:
            try:
                close_loop(loop)
            finally:
                asyncio.set_event_loop(None)
                if self.listen is not None:
                    self.listen.close()
                self.done.set_result(None)

    async def _serve(self, loop: asyncio.AbstractEventLoop) -> None:
        stop = asyncio.Event()
        with self._lock:
            self.loop, self._stop = loop, stop
            if self._stop_requested:
                stop.set()
        ctx = self.ctx = self.make_ctx(loop)
        ctx.start()
        try:
            server: asyncio.AbstractServer | None = None
            if self.listen is not None:
                assert ctx.dispatch is not None  # set by WorkerServer._context()
                server = await loop.create_server(
                    ctx.dispatch.factory(), sock=self.listen, backlog=self.backlog, **self.serve_kw
                )
            self.ready.set_result(None)
            await stop.wait()
            if server is not None:
                server.close()
            await ctx.drain()
        finally:
            ctx.stop()

    def _adopt(self, sock: socket.socket) -> None:
        loop = self.loop
        ctx = self.ctx
        if loop is None or ctx is None:
            sock.close()
            return
        loop.create_task(self._connect(loop, ctx, sock, self.serve_kw))

    @staticmethod
    async def _connect(
        loop: asyncio.AbstractEventLoop, ctx: ServerContext, sock: socket.socket, serve_kw: dict[str, Any]
    ) -> None:
        try:
            assert ctx.dispatch is not None  # set by WorkerServer._context()
            # With TLS this awaits the handshake too (bounded by ssl_handshake_timeout).
            await loop.connect_accepted_socket(ctx.dispatch.factory(), sock, **serve_kw)
        except Exception as exc:  # noqa: BLE001 - one connection's failure, not the loop's
            # Typically the peer went away between accept and hand-off, or (TLS) a failed or
            # timed-out handshake: nothing to answer. asyncio and uvloop have closed a socket
            # whose transport failed (fileno() is then -1 and close() a no-op).
            logger.debug("hand-off of an accepted connection failed: %s", exc)
            sock.close()


class HandOff(asyncio.Protocol):
    """Runtime mode: moves a connection the main loop accepted to another loop thread."""

    __slots__ = ("target",)

    def __init__(self, target: LoopThread) -> None:
        self.target = target

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        raw: Any = transport.get_extra_info("socket")
        try:
            dup: socket.socket = raw.dup()
        except (AttributeError, OSError) as exc:
            logger.debug("cannot hand off a connection: %s", exc)
            transport.abort()  # type: ignore[attr-defined]
            return
        # Closes only this loop's descriptor (see the module docstring); `dup` keeps the
        # connection open for the target loop.
        transport.abort()  # type: ignore[attr-defined]
        self.target.adopt(dup)


def round_robin_factory(threads: list[LoopThread]) -> Callable[[], asyncio.Protocol]:
    """The main loop's protocol factory in runtime mode: connection k goes to loop thread
    k mod N. The main loop only accepts, so an app that blocks its loop cannot stall accepting."""
    turn = itertools.cycle(threads)

    def factory() -> asyncio.Protocol:
        return HandOff(next(turn))

    return factory


def handler_for(adapter: Any, metrics: Any) -> Any:
    """The adapter's handler for a loop thread whose counters are `metrics`: static routes count
    into the thread's own counters, so no two loops increment the same int (an unlocked `+=`
    from two threads can lose updates)."""
    from ..apps.static import StaticAdapter

    if metrics is None or not isinstance(adapter, StaticAdapter):
        return adapter.handler
    static = adapter.static
    saved = static.metrics
    static.metrics = metrics  # read once by wrap(), on the main thread before the loops start
    try:
        return static.wrap(adapter.inner.handler)
    finally:
        static.metrics = saved


def close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel app tasks still running (background work past the drain), finish async generators
    and close the loop."""
    try:
        tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
        if tasks:
            for task in tasks:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()
