"""The worker interpreter the master's fork execs into (`child.BOOTSTRAP` calls `main`).

This process never imports pydantic, click, psutil or `granian.settings`: it gets the resolved
settings as a plain snapshot (`granian._snapshot.SettingsSnapshot`) and its descriptors from the
snapshot file `child.worker_main` wrote (docs/internals.md §5). Keep its imports light: whatever
this module and `granian.server` import is resident in every worker.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import sys
import threading
from collections.abc import Mapping
from typing import IO, TYPE_CHECKING, Any, NoReturn, cast

from .._snapshot import SettingsSnapshot
from ..constants import SERVER_LOGGER
from ..errors import EXIT_APP_LOAD, EXIT_CRASH, AppLoadError

if TYPE_CHECKING:
    from ..settings import Settings

log = logging.getLogger(SERVER_LOGGER)

# Without a kill timeout, how long an orphaned worker may drain before it exits regardless:
# nobody is left to enforce --workers-kill-timeout, and an orphan must never live on.
ORPHAN_GRACE = 30.0


def _watch_master(pipe_r: int, armed: bool, grace: float) -> None:
    """Block on the pipe whose write end only the master holds: EOF means the master is gone."""
    try:
        while os.read(pipe_r, 64):
            pass
    except OSError:
        pass
    if not armed:
        os.kill(os.getpid(), signal.SIGTERM)
    # The graceful stop above normally ends the process long before this; this is the backstop.
    threading.Event().wait(grace)
    log.error("master is gone and the worker did not stop within %.1fs; exiting", grace)
    os._exit(EXIT_CRASH)


def _set_title(settings: Any, worker_id: int) -> None:
    if not settings.process_name:
        return
    from setproctitle import setproctitle

    setproctitle(f"{settings.process_name} worker-{worker_id}")


def _apply_env(values: Mapping[str, str]) -> None:
    # --env-files, as granian.supervisor.envfiles.apply (not imported: it pulls in python-dotenv):
    # python-dotenv's `load_dotenv` default, a variable already set in the real environment wins.
    for key, value in values.items():
        os.environ.setdefault(key, value)


def main(snapshot: IO[bytes]) -> NoReturn:
    code = EXIT_CRASH
    worker_id = 0
    try:
        with snapshot:
            me: dict[str, Any] = pickle.load(snapshot)
            shared: dict[str, Any] = pickle.load(snapshot)
        worker_id = int(me["worker_id"])
        sys.argv[:] = shared["argv"]
        if os.getppid() != me["master_pid"]:
            # The master died before the exec finished: nothing will signal us any more.
            os._exit(EXIT_CRASH)
        settings = SettingsSnapshot.of(shared["settings"])
        grace = settings.workers_kill_timeout or ORPHAN_GRACE
        threading.Thread(
            target=_watch_master, args=(me["death_fd"], me["armed"], grace), name="master-watch", daemon=True
        ).start()
        if me["report_fd"] is not None:
            from ..server.metrics import set_report_fd

            set_report_fd(int(me["report_fd"]))
        _set_title(settings, worker_id)
        _apply_env(shared["env"])
        import socket

        sock = socket.socket(fileno=int(me["sock_fd"]))
        from ..server.worker import serve_worker

        code = serve_worker(cast("Settings", settings), sock, worker_id)
    except AppLoadError as exc:
        log.error("worker-%d: %s", worker_id, exc)
        code = EXIT_APP_LOAD
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else EXIT_CRASH
    except KeyboardInterrupt:
        # Ctrl-C reaches the whole process group; before serve_worker installs its own handler
        # this is just the stop the master is already carrying out.
        code = 0
    except BaseException:
        log.exception("worker-%d crashed", worker_id)
        code = EXIT_CRASH
    finally:
        # Skip the interpreter's teardown (atexit of the app's libraries, GC of every module):
        # the master only reads the status, as it did when workers were plain forks.
        try:
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
