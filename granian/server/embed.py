"""Embedded server: one worker inside the caller's running event loop (API.md).

    server = Server(app, address="127.0.0.1", port=8000, interface="asgi")
    task = asyncio.create_task(server.serve())
    ...
    server.stop(); await task

No master, no fork, no signal handlers (the caller owns the process): `serve()` binds, runs the
interface's startup (ASGI lifespan / `__rsgi_init__`), serves until `stop()`, drains in-flight
requests, runs shutdown, and returns.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from .._apikw import settings_options
from .worker import WorkerServer, make_adapter

__all__ = ["Server"]

# Accepted for signature compatibility, meaningless inside someone else's loop and process.
_IGNORED = frozenset({"log_dictconfig", "runtime_blocking_threads"})


class Server:
    def __init__(
        self,
        target: Any,
        address: str = "127.0.0.1",
        port: int = 8000,
        interface: str = "rsgi",
        **kwargs: Any,
    ) -> None:
        self.target = target
        options: dict[str, Any] = {"host": address, "port": port, "interface": str(interface)}
        options.update(settings_options(kwargs, skip=_IGNORED))
        self.options = options
        self.settings: Any = None
        self.port: int | None = None
        self._worker: WorkerServer | None = None
        self._stop_requested = False

    def _build_settings(self) -> Any:
        from ..settings import load

        # `app` names the target for messages only: the object itself is served.
        return load(dict(self.options, app="embedded:app"), env={})

    async def serve(self) -> None:
        """Serve until `stop()`; raises RuntimeError when the app's startup fails."""
        self.settings = settings = self._build_settings()
        sock = _bind(settings.host, settings.port, settings.backlog)
        self.port = sock.getsockname()[1]
        try:
            # The caller's loop is running but need not be the policy's "current" one.
            adapter = make_adapter(settings.interface, self.target, settings, asyncio.get_running_loop())
            worker = self._worker = WorkerServer(settings, sock, adapter)
            if self._stop_requested:
                worker.request_stop()
            code = await worker.run()
        finally:
            sock.close()
        if code:
            raise RuntimeError(f"embedded server startup failed (exit code {code})")

    def stop(self) -> None:
        """Stop gracefully; `serve()` returns once in-flight requests are answered."""
        self._stop_requested = True
        if self._worker is not None:
            self._worker.request_stop()

    async def wait_started(self) -> None:
        """Return once the server accepts connections (for callers that bind port 0)."""
        while self._worker is None or not self._worker.started.is_set():
            await asyncio.sleep(0.01)


def _bind(host: str, port: int, backlog: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock
