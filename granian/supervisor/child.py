"""What a freshly forked worker does before it becomes a new interpreter (docs/internals.md §5).

A master may hold pydantic and psutil (the Python API runs the master in the caller's process,
masterproc.py), and any master holds its own modules; a forked worker would carry them (16-25 MiB
of RSS per worker) for its whole life. So right after fork the child re-executes a fresh Python
(`os.execv`, multiprocessing's "spawn" start method does the same for the same reason) that
runs `granian.supervisor.workerproc`, and hands it everything it needs through descriptors:
the listening socket, the death pipe, the metrics pipe and a memfd holding the pickled settings
snapshot (`settings.model_dump()`), the --env-files values and the master's `sys.path`.

Order matters: first arm the parent-death signal (it survives execve, so a master killed a
microsecond later still takes us down), then drop the master's signal plumbing, then pass only
the descriptors the worker must hold (everything else is closed) and exec. The exec'd side
re-checks the parent, starts the master watch, sets the title and environment, and serves.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any, NoReturn

from ..constants import SERVER_LOGGER
from ..errors import EXIT_CRASH

if TYPE_CHECKING:
    import socket

    from .signals import SignalQueue

log = logging.getLogger(SERVER_LOGGER)

# linux/prctl.h: deliver a signal to this process when its parent thread exits.
_PR_SET_PDEATHSIG = 1

# What the new interpreter runs (argv: the snapshot's descriptor). The master's sys.path comes
# first so `granian` and the app resolve exactly as in the master (a script's directory, paths a
# launcher added at run time), as multiprocessing's spawn does; only then is granian imported.
BOOTSTRAP = (
    "import os, pickle, sys; f = os.fdopen(int(sys.argv[1]), 'rb'); sys.path[:] = pickle.load(f); "
    "from granian.supervisor.workerproc import main; main(f)"
)


def _arm_parent_death_signal() -> bool:
    """Ask Linux to SIGTERM us when the master dies (even by SIGKILL). False when unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        return int(libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def encode_static(settings_values: Mapping[str, Any], env: Mapping[str, str]) -> tuple[bytes, bytes]:
    """The parts of the snapshot that are the same for every worker, pickled once by the master:
    `sys.path` (read by BOOTSTRAP before granian is importable), and the settings, the env and
    `sys.argv` (restored in the worker as multiprocessing's spawn does: apps may read it)."""
    return (
        pickle.dumps(list(sys.path)),
        pickle.dumps(
            {"settings": dict(settings_values), "env": dict(env), "argv": list(sys.argv)},
            pickle.HIGHEST_PROTOCOL,
        ),
    )


def interpreter_argv(snapshot_fd: int, bootstrap: str = BOOTSTRAP, shown: Sequence[str] = ()) -> list[str]:
    """`sys.executable`'s argv running `bootstrap` on the snapshot descriptor; `shown` only
    follows it so that `ps` keeps showing what was started (the slim master's original argv)."""
    # The master's interpreter flags (-O, -W, -X, -I...) carry over, as multiprocessing does.
    flags_of = getattr(subprocess, "_args_from_interpreter_flags", None)
    flags: list[str] = list(flags_of()) if callable(flags_of) else []
    return [sys.executable, *flags, "-c", bootstrap, str(snapshot_fd), *shown]


def snapshot_file(name: str = "granian-worker-snapshot") -> IO[bytes]:
    """An anonymous file for a snapshot that an exec'd interpreter reads from its descriptor."""
    # A memfd has no size limit (a pipe written before exec would block past 64 KiB of env-files)
    # and never touches the disk; an unlinked temporary file elsewhere.
    if hasattr(os, "memfd_create"):
        return os.fdopen(os.memfd_create(name), "w+b")
    import tempfile  # not at module level: only a system without memfd needs it

    return tempfile.TemporaryFile()


def _close_all_but(keep: Iterable[int]) -> None:
    """Close every descriptor >= 3 that is not in `keep` (the exporter's sockets and client
    connections, other workers' metrics pipes, the reloader's inotify fd...). Non-inheritable
    ones would close at exec anyway; this also drops inheritable ones the master was given."""
    wanted = sorted({fd for fd in keep if fd >= 3})
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        low = 3
        for fd in wanted:
            os.closerange(low, fd)
            low = fd + 1
        os.closerange(low, os.sysconf("SC_OPEN_MAX") if hasattr(os, "sysconf") else 65536)
        return
    for fd in fds:
        if fd >= 3 and fd not in wanted:
            try:
                os.close(fd)
            except OSError:
                pass  # the listing's own directory descriptor, already gone


def worker_main(
    static: tuple[bytes, bytes],
    sock: socket.socket,
    worker_id: int,
    master_pid: int,
    death_pipe: tuple[int, int],
    sigqueue: SignalQueue,
    report_fd: int | None = None,
) -> NoReturn:
    """In the forked child: exec the worker interpreter. Never returns to the master's code."""
    try:
        armed = _arm_parent_death_signal()
        # Handlers back to SIG_DFL, the master's wakeup pipe closed, then the signals the master
        # blocked across fork are unblocked: one that arrived meanwhile hits the default action
        # (a SIGTERM ends this not-yet-serving worker, as the master asked).
        sigqueue.close_in_child()
        # The master's drain notice (--shutdown-delay) may reach a worker before it installed
        # its handler: ignored until then (SIG_IGN survives execve) rather than fatal.
        signal.signal(signal.SIGUSR2, signal.SIG_IGN)
        os.close(death_pipe[1])
        if os.getppid() != master_pid:
            # The master died between fork and prctl: the signal will never come.
            os._exit(EXIT_CRASH)
        snap = snapshot_file()
        per_worker = {
            "worker_id": worker_id,
            "master_pid": master_pid,
            "armed": armed,
            "sock_fd": sock.fileno(),
            "death_fd": death_pipe[0],
            "report_fd": report_fd,
        }
        # Read back in this order: BOOTSTRAP takes sys.path, workerproc.main the other two.
        snap.write(static[0])
        snap.write(pickle.dumps(per_worker))
        snap.write(static[1])
        snap.flush()
        snap.seek(0)
        keep = [snap.fileno(), sock.fileno(), death_pipe[0]]
        if report_fd is not None:
            keep.append(report_fd)
        for fd in keep:
            os.set_inheritable(fd, True)
        _close_all_but(keep)
        os.execv(sys.executable, interpreter_argv(snap.fileno()))
    except BaseException:
        try:
            log.exception("worker-%d could not start a worker interpreter", worker_id)
        finally:
            os._exit(EXIT_CRASH)
