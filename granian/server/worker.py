"""One worker: loop, app, lifespan, HTTP/1.1 serving on an inherited socket, graceful drain.

`serve_worker(settings, sock, worker_id)` is what the master calls in each forked child
(docs/internals.md §4); `granian.server.embed.Server` drives the same `WorkerServer` inside a loop the
caller already runs.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import signal
import socket
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..apps.loader import load_target
from ..constants import SERVER_LOGGER
from ..errors import EXIT_OK, EXIT_STARTUP_FAILED
from ..health import Health
from ..proxy import ProxyHeaders
from .config import WorkerConfig
from .context import ServerContext
from .dispatch import Dispatch
from .loop import new_event_loop
from .threads import LoopThread, close_loop, handler_for, round_robin_factory

if TYPE_CHECKING:
    from ..log import AccessLog
    from .metrics import MetricsReporter, WorkerMetrics

__all__ = ["ADAPTERS", "WorkerServer", "make_adapter", "serve_worker"]

logger = logging.getLogger(SERVER_LOGGER)

# Interface name -> (module, class) of its adapter (see granian.server.cycle's contract).
ADAPTERS: dict[str, tuple[str, str]] = {
    "asgi": ("granian.apps.asgi", "ASGIAdapter"),
    "asginl": ("granian.apps.asgi", "ASGINLAdapter"),
    "rsgi": ("granian.apps.rsgi", "RSGIAdapter"),
    "wsgi": ("granian.apps.wsgi", "WSGIAdapter"),
}


def make_adapter(
    interface: str, app: Any, settings: Any, loop: asyncio.AbstractEventLoop | None = None
) -> Any:
    """`loop`: the loop the adapter serves on (RSGI hands it to `__rsgi_init__`); None means the
    running loop (embedding)."""
    module, cls = ADAPTERS[str(interface)]
    klass = getattr(importlib.import_module(module), cls)
    adapter = klass(app, settings, loop=loop) if str(interface) == "rsgi" else klass(app, settings)
    # --static-path-*: static routes are answered before the app, for every interface.
    from ..apps.static import with_static

    return with_static(adapter, settings)


class WorkerServer:
    """Serves one adapter on one listening socket in the running loop until `request_stop()`."""

    def __init__(self, settings: Any, sock: socket.socket, adapter: Any, worker_id: int = 1) -> None:
        self.settings = settings
        self.config = WorkerConfig.of(settings)
        # One Health for all loop threads of this worker (granian.health).
        self.health = Health(self.config.health_paths)
        self.proxy = ProxyHeaders(self.config.forwarded_allow_ips) if self.config.proxy_headers else None
        self.sock = sock
        self.adapter = adapter
        self.worker_id = worker_id
        self.ctx: ServerContext | None = None
        self.server: asyncio.AbstractServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._stop_requested = False
        self.started = threading.Event()
        self._reporter: MetricsReporter | None = None
        # --threads: the extra loop threads and their counters (granian.server.threads).
        self._threads: list[LoopThread] = []
        self._thread_metrics: list[WorkerMetrics] = []
        # --ssl-*: the keywords every create_server / connect_accepted_socket of this worker
        # gets (empty on plain TCP, so that path is exactly what it is without TLS).
        self.serve_kw: dict[str, Any] = {}

    def drain_notice(self) -> None:
        """A graceful stop is coming (--shutdown-delay): health paths say 503, all else goes on."""
        self.health.start_draining()

    def request_stop(self) -> None:
        """Ask the worker to stop gracefully; safe from any thread and before serving started."""
        self._stop_requested = True
        loop = self._loop
        if loop is None or self._stop is None:
            return
        if loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._stop.set()
        else:
            loop.call_soon_threadsafe(self._stop.set)

    async def run(self) -> int:
        loop = self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        if self._stop_requested:
            self._stop.set()
        cfg = self.config
        if cfg.tls is not None and not self._build_tls():
            return EXIT_STARTUP_FAILED  # before lifespan: the app never starts without its TLS
        if not await self.adapter.startup():
            return EXIT_STARTUP_FAILED
        n = cfg.threads
        runtime_mode = cfg.runtime_mode
        metrics = self._make_metrics()
        access_log = self._make_access_log()
        ctx = self.ctx = self._context(loop, self.adapter.handler, metrics, access_log, n)
        if metrics is not None:
            self._start_reporter(loop, metrics)
        ctx.start()
        try:
            if n > 1:
                if not await self._start_threads(n, runtime_mode, metrics, access_log):
                    return EXIT_STARTUP_FAILED
                _log_threads(n, runtime_mode, self.worker_id)
            # The dispatch seam picks each connection's protocol (granian.server.dispatch).
            assert ctx.dispatch is not None  # set by _context()
            factory: Callable[[], asyncio.Protocol] = ctx.dispatch.factory()
            serve_kw = self.serve_kw
            if runtime_mode and self._threads:
                factory = round_robin_factory(self._threads)
                # The acceptor hands raw sockets on; each loop thread does the TLS handshake
                # in its own connect_accepted_socket (granian.server.threads).
                serve_kw = {}
            self.server = await loop.create_server(factory, sock=self.sock, backlog=cfg.backlog, **serve_kw)
            self.started.set()
            await self._stop.wait()
            self.health.start_draining()  # 503 from the moment the graceful stop begins
            # Stop accepting, answer what is in flight, close idle keep-alive connections. The
            # main loop closes its server first: in runtime mode hand-offs already queued reach
            # their loop before that loop's stop request (same queue), within its drain grace.
            self.server.close()
            for t in self._threads:
                t.request_stop()
            await ctx.drain()
        finally:
            await self._stop_threads()
            ctx.stop()
            if access_log is not None:
                access_log.flush()  # the last requests' lines (each loop batches them)
            await self.adapter.shutdown()
            if self._reporter is not None:
                self._reporter.stop()  # the final counts reach the master
        return EXIT_OK

    def _context(
        self,
        loop: asyncio.AbstractEventLoop,
        handler: Any,
        metrics: WorkerMetrics | None,
        access_log: AccessLog | None,
        threads: int = 1,
    ) -> ServerContext:
        cfg = self.config
        h1 = cfg.http1
        # --backpressure bounds the requests of the whole worker (CLI.md): each of N loops gets
        # its share, rounded up so the total is never below the setting.
        backpressure = -(-cfg.backpressure // threads)
        ctx = ServerContext(
            loop,
            handler,
            buffer_size=h1.buffer_size,
            keep_alive=h1.keep_alive,
            pipeline_flush=h1.pipeline_flush,
            header_read_timeout=h1.header_read_timeout,
            backpressure=backpressure,
            root_path=cfg.root_path,
            # the connection's scheme, which cycles copy; "https" is also the connections'
            # sign that TLS is on (H1Protocol.connection_made reads the handshake's results)
            scheme="https" if self.serve_kw else "http",
            eager=cfg.eager,
        )
        ctx.dispatch = Dispatch(ctx)
        ws_handler = getattr(self.adapter, "ws_handler", None) if cfg.ws.enabled else None
        if ws_handler is not None:
            # WebSockets (ASGI, RSGI; --no-ws or WSGI: an upgrade request is a plain request)
            from .ws import register as register_ws

            register_ws(ctx, ws_handler, cfg.ws)
        if cfg.http in ("auto", "2"):
            # HTTP/2 (granian.server.h2): h2c prior knowledge, ALPN h2, and on `--http 2` the
            # protocol of every connection.
            from .h2 import register

            register(ctx.dispatch, cfg.http2, cfg.interface, cfg.http)
        ctx.health_routes = self.health.routes
        ctx.proxy = self.proxy
        ctx.access_log = access_log
        # Access log and metrics (granian.log, granian.server.metrics), only when enabled: with
        # both off nothing is installed and the connection skips even the start timestamp.
        if access_log is not None or metrics is not None:
            from .metrics import make_completion_hook

            ctx.metrics = metrics
            ctx.on_complete = make_completion_hook(access_log, metrics)
        return ctx

    async def _start_threads(
        self, n: int, runtime_mode: bool, metrics: WorkerMetrics | None, access_log: AccessLog | None
    ) -> bool:
        """Start the extra loop threads and wait until each serves; False if one failed."""
        from .metrics import WorkerMetrics

        kind = self.config.loop
        backlog = self.config.backlog
        # workers mode: the main loop is one of the N serving loops; runtime mode: N loop
        # threads serve and the main loop only accepts (granian.server.threads).
        for i in range(1, n + 1 if runtime_mode else n):
            # Each loop counts into its own WorkerMetrics (summed by the reporter): no int is
            # incremented from two threads.
            m = WorkerMetrics() if metrics is not None else None
            if m is not None:
                self._thread_metrics.append(m)
            handler = handler_for(self.adapter, m)

            def make_ctx(
                lp: asyncio.AbstractEventLoop, handler: Any = handler, m: WorkerMetrics | None = m
            ) -> ServerContext:
                return self._context(lp, handler, m, access_log, n)

            listen = None if runtime_mode else self.sock.dup()
            t = LoopThread(i, kind, make_ctx, listen, backlog, self.serve_kw)
            self._threads.append(t)
            t.start()
        try:
            for t in self._threads:
                await asyncio.wrap_future(t.ready)
        except Exception:
            logger.exception("worker-%d: a loop thread failed to start", self.worker_id)
            return False
        return True

    def _build_tls(self) -> bool:
        """--ssl-*: the worker's one SSLContext, shared by its loop threads (an SSL_CTX may be
        used from several threads; each connection gets its own SSL object). Built here, in
        the worker, so that the new workers of a rolling restart (SIGHUP) read the certificate
        and key files again: that is certificate rotation. False when it cannot be built."""
        from ..errors import ConfigurationError
        from . import tls

        cfg = self.config
        assert cfg.tls is not None
        try:
            # ALPN offers h2 (granian.server.h2) unless `--http 1`, and http/1.1 unless `--http 2`.
            context = tls.build_server_context(cfg.tls, tls.alpn_protocols(cfg.http, h2_implemented=True))
        except ConfigurationError as exc:
            # settings.load() ran the same checks; a file changed or went away since then.
            logger.error("worker-%d: TLS: %s", self.worker_id, exc)
            return False
        # A handshake must complete within the header-read timeout, as the request head must
        # afterwards (issue 13): a client that opens TLS and stalls is closed, so slowloris over
        # TLS holds nothing longer than over plain TCP. ssl_shutdown_timeout stays the loops'
        # default (30 s): it bounds the whole close, the flush of a `Connection: close`
        # response's tail included (on expiry the loop aborts and drops what is still
        # buffered), so tying it to a short header-read timeout would truncate large
        # responses to slow clients.
        self.serve_kw = {"ssl": context, "ssl_handshake_timeout": cfg.http1.header_read_timeout}
        return True

    async def _stop_threads(self) -> None:
        for t in self._threads:
            t.request_stop()
        for t in self._threads:
            await asyncio.wrap_future(t.done)
            t.join()

    def _make_metrics(self) -> WorkerMetrics | None:
        """--metrics: the worker's counters, handed to the static files before the handler is
        taken (the counting wrapper is chosen when the static handler is built)."""
        if not self.config.metrics:
            return None
        from ..apps.static import StaticAdapter
        from .metrics import WorkerMetrics, thread_pool_probe

        metrics = WorkerMetrics()
        if isinstance(self.adapter, StaticAdapter):
            self.adapter.static.metrics = metrics
        pool = getattr(self.adapter, "pool", None)  # the WSGI blocking pool, when there is one
        if pool is not None:
            metrics.blocking_probe = thread_pool_probe(pool)
        return metrics

    def _make_access_log(self) -> AccessLog | None:
        if not self.config.access_log:
            return None
        from ..log import make_access_log

        return make_access_log(self.settings)

    def _start_reporter(self, loop: asyncio.AbstractEventLoop, metrics: WorkerMetrics) -> None:
        from .metrics import MetricsGroup, MetricsReporter, report_fd

        fd = report_fd()
        if fd is None:
            return
        # With --threads the loops' counters are summed when a snapshot is taken; the list
        # fills as the threads start.
        group = MetricsGroup(metrics, self._thread_metrics)
        self._reporter = MetricsReporter(group, fd, self.config.metrics_scrape_interval)
        self._reporter.start(loop)


def _log_threads(n: int, runtime_mode: bool, worker_id: int) -> None:
    """Say at start-up what the threads buy (ARCHITECTURE.md): on a GIL build only one of them
    runs Python at a time, so they overlap waits (I/O, sleeps, C code that releases the GIL)
    rather than computing in parallel."""
    from ..constants import BUILD_GIL

    mode = "runtime" if runtime_mode else "workers"
    if BUILD_GIL:
        logger.warning(
            "worker-%d: %d event-loop threads (%s mode) on a Python build with the GIL: threads add "
            "concurrency, not parallelism (use --workers for more cores)",
            worker_id,
            n,
            mode,
        )
    else:
        logger.info("worker-%d: %d event-loop threads (%s mode), free-threaded Python", worker_id, n, mode)


def _install_signals(loop: asyncio.AbstractEventLoop, worker: WorkerServer) -> list[signal.Signals]:
    if threading.current_thread() is not threading.main_thread():
        return []
    installed = []
    handlers = {signal.SIGTERM: worker.request_stop, signal.SIGINT: worker.request_stop}
    # The master's notice that a --shutdown-delay began: health paths answer 503 from now on.
    handlers[signal.SIGUSR2] = worker.drain_notice
    for sig, handler in handlers.items():
        try:
            loop.add_signal_handler(sig, handler)
        except (NotImplementedError, RuntimeError, ValueError):
            continue
        installed.append(sig)
    return installed


def serve_worker(settings: Any, sock: socket.socket, worker_id: int = 1) -> int:
    """Run one worker in this process until SIGTERM/SIGINT; returns the exit code (internals §4).

    Raises AppLoadError when the app cannot be imported (the master reports it)."""
    from ..log import configure

    try:
        configure(settings)
    except Exception:  # noqa: BLE001 - logging must not keep a worker from serving
        logger.exception("worker-%d: logging setup failed", worker_id)
    cfg = WorkerConfig.of(settings)
    loop = new_event_loop(cfg.loop)
    asyncio.set_event_loop(loop)
    try:
        app = load_target(settings.app, bool(getattr(settings, "factory", False)), settings.working_dir)
        # The adapter is built with the loop current but not running: RSGI's __rsgi_init__(loop)
        # may call loop.run_until_complete there.
        adapter = make_adapter(cfg.interface, app, cfg.app, loop)
        worker = WorkerServer(settings, sock, adapter, worker_id)
        # The handlers stay until loop.close() removes them, so a repeated signal during the
        # final cleanup cannot kill the worker with the default action.
        _install_signals(loop, worker)
        return loop.run_until_complete(worker.run())
    finally:
        # loop.close() puts SIGTERM/SIGINT back to their default action, which would turn a
        # repeated stop signal during the last teardown into a death by signal (exit -15) of a
        # worker that is already exiting cleanly. Hold them across the close, then ignore them.
        held = _hold_stop_signals()
        try:
            close_loop(loop)
        finally:
            asyncio.set_event_loop(None)
            _ignore_held_signals(held)


_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


def _hold_stop_signals() -> bool:
    if threading.current_thread() is not threading.main_thread():
        return False
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    return True


def _ignore_held_signals(held: bool) -> None:
    if not held:
        return
    for sig in _STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
