"""`--pid-file`: the master's PID, written at start-up and removed at exit.

A file that names another live process means another master is probably running with the same
configuration: refuse to start rather than overwrite it (gunicorn's `Pidfile.validate` habit).
A file naming a dead PID is stale (a crash or SIGKILL) and is replaced.
"""

from __future__ import annotations

import os

from ..errors import ConfigurationError
from .procinfo import pid_exists


def _read_pid(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as f:
            text = f.read().strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"--pid-file {path}: cannot read it: {exc}") from exc
    try:
        return int(text)
    except ValueError:
        # Not a PID file we wrote: do not clobber what may be someone else's file.
        raise ConfigurationError(f"--pid-file {path}: exists and does not hold a PID") from None


def create(path: str) -> None:
    """Write our PID to `path`; ConfigurationError when it names another live process."""
    me = os.getpid()
    old = _read_pid(path)
    if old is not None and old != me and pid_exists(old):
        raise ConfigurationError(f"--pid-file {path}: names PID {old}, which is still running")
    tmp = f"{path}.{me}.tmp"
    with open(tmp, "w", encoding="ascii") as f:
        f.write(f"{me}\n")
    # Atomic: a reader never sees a half-written file.
    os.replace(tmp, path)


def remove(path: str) -> None:
    """Remove the file if it still holds our PID (a successor may have replaced it)."""
    try:
        if _read_pid(path) == os.getpid():
            os.unlink(path)
    except (ConfigurationError, OSError):
        pass
