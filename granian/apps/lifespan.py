"""ASGI lifespan, per worker (shared/docs/ASGI.md "Lifespan").

The app runs as one long task on the lifespan scope. Startup: `lifespan.startup` is delivered,
then we wait for `complete` or `failed`; `failed`, or an exception once the app has taken the
startup message, fails the worker. An app that raises (or returns) before taking the startup
message does not speak lifespan (e.g. frameworks without lifespan support): one warning and the
worker serves without it, as uvicorn's `--lifespan auto` does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ..constants import SERVER_LOGGER

__all__ = ["Lifespan"]

logger = logging.getLogger(SERVER_LOGGER)

Message = MutableMapping[str, Any]

_VERSION = {"version": "3.0", "spec_version": "2.3"}

# Bound on waiting for `lifespan.shutdown.complete`, so a stuck shutdown handler cannot keep a
# stopping worker alive forever (the master's --workers-kill-timeout is the outer bound).
SHUTDOWN_TIMEOUT = 30.0


class Lifespan:
    def __init__(self, app: Callable[[Message, Any, Any], Awaitable[None]]) -> None:
        self.app = app
        self.state: dict[str, Any] = {}
        self.supported = True
        self._task: asyncio.Task[None] | None = None
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._startup_taken = False
        self._startup_done: asyncio.Future[bool] | None = None
        self._shutdown_done: asyncio.Future[None] | None = None
        self._shutting_down = False

    async def _receive(self) -> Message:
        msg = await self._inbox.get()
        if msg["type"] == "lifespan.startup":
            self._startup_taken = True
        return msg

    async def _send(self, message: Message) -> None:
        kind = message.get("type") if isinstance(message, MutableMapping) else None
        startup = self._startup_done
        shutdown = self._shutdown_done
        if kind == "lifespan.startup.complete":
            if startup is None or startup.done():
                raise RuntimeError("ASGI flow error: lifespan startup already answered")
            startup.set_result(True)
        elif kind == "lifespan.startup.failed":
            if startup is None or startup.done():
                raise RuntimeError("ASGI flow error: lifespan startup already answered")
            logger.error("Lifespan startup failed: %s", message.get("message", ""))
            startup.set_result(False)
        elif kind == "lifespan.shutdown.complete":
            if shutdown is not None and not shutdown.done():
                shutdown.set_result(None)
        elif kind == "lifespan.shutdown.failed":
            logger.error("Lifespan shutdown failed: %s", message.get("message", ""))
            if shutdown is not None and not shutdown.done():
                shutdown.set_result(None)
        else:
            raise RuntimeError("Unsupported ASGI message")

    async def _run(self) -> None:
        scope = {"type": "lifespan", "asgi": _VERSION, "state": self.state}
        try:
            await self.app(scope, self._receive, self._send)
        except BaseException as exc:  # noqa: BLE001
            startup = self._startup_done
            if startup is not None and not startup.done():
                if self._startup_taken:
                    logger.error("Exception in lifespan startup", exc_info=exc)
                    startup.set_result(False)
                else:
                    self.supported = False
                    logger.warning("ASGI lifespan protocol appears unsupported: %r", exc)
                    startup.set_result(True)
            elif self._shutting_down:
                logger.error("Exception in lifespan shutdown", exc_info=exc)
            else:
                logger.error("Lifespan task raised after startup", exc_info=exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            startup = self._startup_done
            if startup is not None and not startup.done():
                # Returned without answering: treat as no lifespan support.
                self.supported = False
                logger.warning("ASGI lifespan protocol appears unsupported: app returned")
                startup.set_result(True)
            shutdown = self._shutdown_done
            if shutdown is not None and not shutdown.done():
                shutdown.set_result(None)

    async def startup(self) -> bool:
        """Run startup; False means the worker must not serve (exit non-zero)."""
        loop = asyncio.get_running_loop()
        self._startup_done = loop.create_future()
        self._inbox.put_nowait({"type": "lifespan.startup"})
        self._task = loop.create_task(self._run())
        ok = await self._startup_done
        if not ok:
            await self._reap()
        return ok

    async def shutdown(self) -> None:
        task = self._task
        if task is None or task.done() or not self.supported:
            await self._reap()
            return
        self._shutting_down = True
        self._shutdown_done = asyncio.get_running_loop().create_future()
        self._inbox.put_nowait({"type": "lifespan.shutdown"})
        try:
            await asyncio.wait_for(asyncio.shield(self._shutdown_done), SHUTDOWN_TIMEOUT)
        except asyncio.TimeoutError:
            logger.error("Lifespan shutdown timed out after %.0f s", SHUTDOWN_TIMEOUT)
        await self._reap()

    async def _reap(self) -> None:
        task = self._task
        if task is None:
            return
        if not task.done():
            task.cancel()
        try:
            await task
        except BaseException:  # noqa: BLE001 - already logged by _run
            pass
