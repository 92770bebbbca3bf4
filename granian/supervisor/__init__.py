"""The master process (docs/internals.md §5): `run(settings) -> int`, `exec_master(settings)`.

Binds once, forks `--workers` children that exec a worker interpreter (child.py, workerproc.py)
running `granian.server.worker.serve_worker`, supervises them and returns the process exit
status. The master never imports the app. The CLI does not call `run` itself: it calls
`exec_master`, which replaces the CLI process by a slim interpreter that calls `run` without
click or pydantic loaded (masterproc.py); the Python API calls `run` in its own process.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from ..constants import SERVER_LOGGER
from ..errors import ConfigurationError

# The master's modules (psutil, python-dotenv, ...) are imported on use: the worker interpreter
# runs `granian.supervisor.workerproc`, and importing this package must not load them there.
if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..settings import Settings
    from .bind import Listener
    from .master import Hooks
    from .masterproc import exec_master

__all__ = ["Hooks", "exec_master", "run"]

log = logging.getLogger(SERVER_LOGGER)


def __getattr__(name: str) -> Any:
    if name == "Hooks":
        from .master import Hooks

        return Hooks
    if name == "exec_master":
        from .masterproc import exec_master

        return exec_master
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _bind(settings: Settings) -> Listener:
    from .bind import bind_tcp, bind_uds

    if settings.uds:
        return bind_uds(str(settings.uds), settings.backlog, settings.uds_permissions)
    scheme = "https" if settings.ssl_certificate else "http"
    return bind_tcp(settings.host, settings.port, settings.backlog, scheme)


def run(settings: Settings, hooks: Hooks | None = None, env: Mapping[str, str] | None = None) -> int:
    """Run the master until it stops; the return value is the process exit status. `env` is
    the --env-files values when they were already read (exec_master reads them before it
    execs); None reads them here."""
    from .. import __version__
    from ..log import configure
    from . import pidfile
    from .bind import BindError, unlink_uds
    from .master import Hooks, Master

    hooks = hooks or Hooks()
    try:
        configure(settings)
    except ConfigurationError as exc:
        log.error("%s", exc)
        return 1
    if settings.process_name:
        try:
            from setproctitle import setproctitle
        except ImportError:
            log.error("--process-name needs the setproctitle package: pip install 'granian[pname]'")
            return 1
        setproctitle(str(settings.process_name))
    log.info("Starting granian %s (master PID: %d)", __version__, os.getpid())
    pid_path = str(settings.pid_file) if settings.pid_file else None
    listener: Listener | None = None
    code = 1
    try:
        if pid_path:
            pidfile.create(pid_path)
        if env is None:
            from . import envfiles  # python-dotenv: the slim master never needs it

            env = envfiles.read([str(p) for p in settings.env_files or []])
        if settings.reload:
            from .reload import Reloader

            Reloader.check_available()
        listener = _bind(settings)
        log.info("Listening at: %s", listener.display)
        Master.run_hooks_static(hooks.on_startup, "on_startup")
        code = Master(settings, listener, env, hooks).loop()
    except (ConfigurationError, BindError) as exc:
        log.error("%s", exc)
        code = 1
    finally:
        if listener is not None:
            listener.close()
            unlink_uds(listener)
            Master.run_hooks_static(hooks.on_shutdown, "on_shutdown")
        if pid_path:
            pidfile.remove(pid_path)
    log.info("Shutdown complete")
    return code
