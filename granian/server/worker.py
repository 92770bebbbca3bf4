"""One worker: loop, app, lifespan, HTTP/1.1 serving on an inherited socket, graceful drain.

`serve_worker(settings, sock, worker_id)` is what the master calls in each forked child
(docs/internals.md §4); `granian.server.embed.Server` drives the same `Worker` inside a loop the
caller already runs.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import signal
import socket
import threading
from typing import TYPE_CHECKING, Any

from ..apps.loader import load_target
from .context import ServerContext
from .loop import new_event_loop
from .protocol import H1Protocol

if TYPE_CHECKING:
    from .metrics import MetricsReporter, WorkerMetrics

__all__ = ["ADAPTERS", "Worker", "make_adapter", "serve_worker"]

logger = logging.getLogger("_granian")

# Interface name -> (module, class) of its adapter (see granian.server.cycle's contract).
ADAPTERS: dict[str, tuple[str, str]] = {
    "asgi": ("granian.apps.asgi", "ASGIAdapter"),
    "asginl": ("granian.apps.asgi", "ASGINLAdapter"),
    "rsgi": ("granian.apps.rsgi", "RSGIAdapter"),
    "wsgi": ("granian.apps.wsgi", "WSGIAdapter"),
}

EXIT_OK = 0
EXIT_STARTUP_FAILED = 3


def make_adapter(interface: str, app: Any, settings: Any) -> Any:
    module, cls = ADAPTERS[str(interface)]
    adapter = getattr(importlib.import_module(module), cls)(app, settings)
    # --static-path-*: static routes are answered before the app, for every interface.
    from ..apps.static import with_static

    return with_static(adapter, settings)


def _opt(settings: Any, name: str, default: Any) -> Any:
    value = getattr(settings, name, default)
    return default if value is None else value


class Worker:
    """Serves one adapter on one listening socket in the running loop until `request_stop()`."""

    def __init__(self, settings: Any, sock: socket.socket, adapter: Any, worker_id: int = 1) -> None:
        self.settings = settings
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
        settings = self.settings
        if not await self.adapter.startup():
            return EXIT_STARTUP_FAILED
        metrics = self._make_metrics()
        ctx = self.ctx = ServerContext(
            loop,
            self.adapter.handler,
            buffer_size=_opt(settings, "http1_buffer_size", 417792),
            keep_alive=_opt(settings, "http1_keep_alive", True),
            pipeline_flush=_opt(settings, "http1_pipeline_flush", False),
            header_read_timeout=_opt(settings, "http1_header_read_timeout", 30000) / 1000.0,
            backpressure=_opt(settings, "backpressure", 1024),
            root_path=_opt(settings, "url_path_prefix", ""),
            eager=bool(_opt(settings, "opt", False)) or str(_opt(settings, "task_impl", "")) == "rust",
        )
        self._install_observers(ctx, metrics)
        ctx.start()
        try:
            self.server = await loop.create_server(
                lambda: H1Protocol(ctx), sock=self.sock, backlog=_opt(settings, "backlog", 1024)
            )
            self.started.set()
            await self._stop.wait()
            # Stop accepting, answer what is in flight, close idle keep-alive connections.
            self.server.close()
            await ctx.drain()
        finally:
            ctx.stop()
            await self.adapter.shutdown()
            if self._reporter is not None:
                self._reporter.stop()  # the final counts reach the master
        return EXIT_OK

    def _make_metrics(self) -> WorkerMetrics | None:
        """--metrics: the worker's counters, handed to the static files before the handler is
        taken (the counting wrapper is chosen when the static handler is built)."""
        if not getattr(self.settings, "metrics", False):
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

    def _install_observers(self, ctx: ServerContext, metrics: WorkerMetrics | None) -> None:
        """Access log and metrics (granian.log, granian.server.metrics), only when enabled: with
        both off nothing is installed and the connection skips even the start timestamp."""
        settings = self.settings
        if not (getattr(settings, "access_log", False) or metrics is not None):
            return
        from ..log import make_access_log
        from .metrics import MetricsReporter, make_completion_hook, report_fd

        if metrics is not None:
            ctx.metrics = metrics
            fd = report_fd()
            if fd is not None:
                self._reporter = MetricsReporter(metrics, fd, _opt(settings, "metrics_scrape_interval", 15))
                self._reporter.start(ctx.loop)
        ctx.on_complete = make_completion_hook(make_access_log(settings), metrics)


def _install_signals(loop: asyncio.AbstractEventLoop, worker: Worker) -> list[signal.Signals]:
    if threading.current_thread() is not threading.main_thread():
        return []
    installed = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, worker.request_stop)
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
    loop = new_event_loop(_opt(settings, "loop", "auto"))
    asyncio.set_event_loop(loop)
    try:
        app = load_target(settings.app, bool(_opt(settings, "factory", False)), settings.working_dir)
        # The adapter is built with the loop current but not running: RSGI's __rsgi_init__(loop)
        # may call loop.run_until_complete there.
        adapter = make_adapter(settings.interface, app, settings)
        worker = Worker(settings, sock, adapter, worker_id)
        # The handlers stay until loop.close() removes them, so a repeated signal during the
        # final cleanup cannot kill the worker with the default action.
        _install_signals(loop, worker)
        return loop.run_until_complete(worker.run())
    finally:
        try:
            _cancel_leftovers(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def _cancel_leftovers(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel app tasks still running (background work past the drain) so the loop can close."""
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    if not tasks:
        return
    for task in tasks:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
