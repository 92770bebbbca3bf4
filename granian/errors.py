"""Error types and worker exit statuses shared by every layer (the bottom of the import graph)."""

from __future__ import annotations


class ConfigurationError(Exception):
    """A bad option value; the message names the option and where it came from."""


class AppLoadError(Exception):
    """The APP target could not be imported or resolved; the message names module and reason."""


class ProtocolError(Exception):
    """The peer broke the protocol. `status_hint` is the HTTP status to answer with before closing
    (h11's split: the peer's errors get their status, ours or the app's get a 500)."""

    def __init__(self, msg: str, status_hint: int = 400) -> None:
        super().__init__(msg)
        self.status_hint = status_hint


class RSGIProtocolError(RuntimeError):
    """An RSGI call made in a state that does not allow it (e.g. a second response). Granian 2.x
    names it `granian._granian.RSGIProtocolError` (re-exported there and as
    `granian.rsgi.ProtocolError`)."""


class RSGIProtocolClosed(RuntimeError):
    """The RSGI transport (HTTP stream or WebSocket) is closed (`granian.rsgi.ProtocolClosed`)."""


# A worker process's exit statuses, the one definition the worker (granian.server.worker,
# granian.supervisor.workerproc) and the master (granian.supervisor.master) share. The master
# tells "respawning cannot help" from a crash by them, as gunicorn's arbiter does with its
# WORKER_BOOT_ERROR (3) and APP_LOAD_ERROR (4).
EXIT_OK = 0
# An unexpected exception escaped the worker, or it could not start its interpreter.
EXIT_CRASH = 1
# The app's startup failed (ASGI lifespan startup, RSGI `__rsgi_init__`).
EXIT_STARTUP_FAILED = 3
# The app could not be imported or resolved (AppLoadError).
EXIT_APP_LOAD = 4
