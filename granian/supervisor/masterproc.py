"""The slim master: the `granian` command resolves its settings, then becomes this interpreter.

Resolving the options needs click, pydantic and pydantic-settings; kept loaded for the server's
whole life they made the master the largest process of a one-worker server (about 40 MB of RSS
against a 27 MB worker), and nothing the master does afterwards uses them. So the CLI process,
once `settings.load()` succeeded, replaces itself (`os.execv`, the same PID: signals, the pid
file, systemd and `kill` keep addressing the process the user started) with a fresh Python that
runs `main` here, the way each worker already starts (child.py, workerproc.py). It gets the
resolved settings as a plain snapshot and runs the same `granian.supervisor.run` with them.

The Python API (`Granian(...).serve()`) keeps the master in its own process instead: its hooks
are callables of the calling program and `serve()` returns to it, neither of which an exec keeps.

Snapshot (a memfd, like the workers'): two pickles, the CLI process's `sys.path` (restored by
BOOTSTRAP before granian is imported), then `{"settings": Settings.model_dump(), "env":
--env-files values, "argv": sys.argv, "comm": the process name}`. Everything that needs the
heavy modules happens before the exec: logging is checked, `--env-files` are read (python-dotenv),
so an error there is reported by the CLI process, which then exits 1 without exec'ing.
"""

from __future__ import annotations

import logging
import os
import pickle
import sys
from typing import IO, TYPE_CHECKING, Any, NoReturn, cast

from .._snapshot import SettingsSnapshot
from ..constants import SERVER_LOGGER
from ..errors import EXIT_CRASH, ConfigurationError

if TYPE_CHECKING:
    from ..settings import Settings

log = logging.getLogger(SERVER_LOGGER)

# What the new interpreter runs (argv: the snapshot's descriptor, then the original argv, shown
# by `ps` only). As child.BOOTSTRAP: the CLI process's sys.path first, then granian is imported.
BOOTSTRAP = (
    "import os, pickle, sys; f = os.fdopen(int(sys.argv[1]), 'rb'); sys.path[:] = pickle.load(f); "
    "from granian.supervisor.masterproc import main; main(f)"
)
# Modules the slim master must never hold (tests/test_master_memory.py checks a real one).
NOT_IN_MASTER = ("pydantic", "pydantic_core", "pydantic_settings", "click", "granian.settings", "granian.cli")


def _read_comm() -> str | None:
    # The kernel's process name (what `ps -e`, `top`, `pgrep` and `killall` match): `granian`
    # for the console script. execv resets it to the interpreter's file name; main puts it back.
    try:
        with open("/proc/self/comm", encoding="utf-8") as f:
            return f.read().rstrip("\n")
    except OSError:
        return None


def _write_comm(name: str | None) -> None:
    # proc(5): a process may write its own comm (truncated to 15 bytes, TASK_COMM_LEN - 1).
    if not name:
        return
    try:
        with open("/proc/self/comm", "w", encoding="utf-8") as f:
            f.write(name)
    except OSError:
        pass


def exec_master(settings: Settings) -> int:
    """Replace this process by the slim master serving `settings` (the CLI's path). Returns the
    exit status only when it stops before the exec (bad --log-config or --env-files), or runs
    the master in this process when the exec itself fails."""
    from ..log import configure
    from . import envfiles, run
    from .child import interpreter_argv, snapshot_file

    try:
        # Checked here so that a bad logging set-up is reported like any other start-up error;
        # the slim master applies it again (dictConfig is idempotent, workers do the same).
        configure(settings)
        env = envfiles.read([str(p) for p in settings.env_files or []])
    except ConfigurationError as exc:
        log.error("%s", exc)
        return 1
    snap = snapshot_file("granian-master-snapshot")
    try:
        snap.write(pickle.dumps(list(sys.path)))
        shared = {"settings": settings.model_dump(), "env": env, "argv": list(sys.argv), "comm": _read_comm()}
        snap.write(pickle.dumps(shared, pickle.HIGHEST_PROTOCOL))
        snap.flush()
        snap.seek(0)
        os.set_inheritable(snap.fileno(), True)
        # Buffered output would be lost with this interpreter.
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, interpreter_argv(snap.fileno(), BOOTSTRAP, sys.argv))
    except OSError as exc:
        # E.g. the interpreter file was replaced by an upgrade: the server still runs, as before.
        log.warning("cannot start the slim master interpreter (%s): the master stays in this process", exc)
    snap.close()
    return run(settings, env=env)


def main(snapshot: IO[bytes]) -> NoReturn:
    """In the exec'd interpreter: read the snapshot and run the master; exits with its status."""
    code = EXIT_CRASH
    try:
        with snapshot:
            shared: dict[str, Any] = pickle.load(snapshot)
        # Workers get the master's sys.argv (child.encode_static): the one the user started.
        sys.argv[:] = shared["argv"]
        _write_comm(shared["comm"])
        from . import run

        code = run(cast("Settings", SettingsSnapshot.of(shared["settings"])), env=shared["env"])
    except KeyboardInterrupt:
        # Ctrl-C before the signal queue is installed: no worker exists yet, nothing to stop.
        code = EXIT_CRASH
    except BaseException:
        log.exception("the master failed")
        code = EXIT_CRASH
    finally:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
    raise SystemExit(code)
