"""What a worker process runs right after fork, until it exits (it never returns to the master).

Order matters: first drop the master's signal plumbing and arm the parent-death signal (so a
master killed a microsecond later still takes us down), then title, environment, and only then
the app import inside `serve_worker` (the master never imports the app).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import sys
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, NoReturn

from ..errors import AppLoadError
from . import envfiles
from .signals import SignalQueue

if TYPE_CHECKING:
    import socket

    from ..settings import Settings

log = logging.getLogger("_granian")

# Distinct exit status of a worker whose app could not be imported, so the master can tell
# "respawning cannot help" from a crash (gunicorn's APP_LOAD_ERROR is 4 for the same reason).
EXIT_APP_LOAD = 4
# Status for an unexpected exception escaping the worker.
EXIT_CRASH = 1
# serve_worker's status when the app's startup (ASGI lifespan, __rsgi_init__) failed.
EXIT_STARTUP_FAILED = 3

# linux/prctl.h: deliver a signal to this process when its parent thread exits.
_PR_SET_PDEATHSIG = 1
# Without a kill timeout, how long an orphaned worker may drain before it exits regardless:
# nobody is left to enforce --workers-kill-timeout, and an orphan must never live on.
ORPHAN_GRACE = 30.0


def _arm_parent_death_signal() -> bool:
    """Ask Linux to SIGTERM us when the master dies (even by SIGKILL). False when unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        return int(libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


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


def _set_title(settings: Settings, worker_id: int) -> None:
    if not settings.process_name:
        return
    from setproctitle import setproctitle

    setproctitle(f"{settings.process_name} worker-{worker_id}")


def worker_main(
    settings: Settings,
    sock: socket.socket,
    worker_id: int,
    master_pid: int,
    death_pipe: tuple[int, int],
    sigqueue: SignalQueue,
    env: Mapping[str, str],
) -> NoReturn:
    code = EXIT_CRASH
    try:
        sigqueue.close_in_child()
        os.close(death_pipe[1])
        armed = _arm_parent_death_signal()
        if os.getppid() != master_pid:
            # The master died between fork and prctl: the signal will never come.
            os._exit(EXIT_CRASH)
        grace = settings.workers_kill_timeout or ORPHAN_GRACE
        threading.Thread(
            target=_watch_master, args=(death_pipe[0], armed, grace), name="master-watch", daemon=True
        ).start()
        _set_title(settings, worker_id)
        envfiles.apply(env)
        from ..server.worker import serve_worker

        code = serve_worker(settings, sock, worker_id)
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
        # Never fall back into the master's code on the way out, whatever flushing raises.
        try:
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
