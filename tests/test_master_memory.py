"""The master a user starts with `granian` is a slim interpreter (granian/supervisor/masterproc.py):
the CLI resolves the options with click and pydantic, then execs in place (same PID) a Python
that never imports them. Checked over real processes: what the master has loaded, what it maps,
its RSS against its worker's, and that the PID the user started stays the master."""

from __future__ import annotations

import json
import os
import signal
import sys
import textwrap
from pathlib import Path

import pytest
from test_supervisor_support import PY, Server, clean_env, wait_until

from granian.supervisor.masterproc import NOT_IN_MASTER

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads /proc; the exec'd master is Linux-first"
)

# Loaded by dictConfig (--log-config) in every process that configures logging; only the master
# logs "Spawned worker-N", so that record is where it reports what the master has imported.
PROBE = textwrap.dedent(
    """
    import json, logging, os, sys

    WATCH = WATCHED

    class Probe(logging.Filter):
        def filter(self, record):
            if record.getMessage().startswith("Spawned worker-"):
                loaded = sorted(m for m in WATCH if m in sys.modules)
                path = os.path.join(os.environ["MEM_PROBE_DIR"], f"{os.getpid()}.json")
                with open(path, "w") as f:
                    json.dump(loaded, f)
            return True
    """
)

APP = textwrap.dedent(
    """
    import os

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(os.getpid()).encode()})
    """
)

# Heavy modules the default master must not hold: the option machinery (NOT_IN_MASTER), plus what
# it only needs with an option on (psutil: --workers-max-rss; python-dotenv: read before exec).
WATCHED = (*NOT_IN_MASTER, "psutil", "dotenv")


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


@pytest.fixture
def appdir(tmp_path: Path) -> Path:
    (tmp_path / "mem_app.py").write_text(APP)
    (tmp_path / "mem_probe.py").write_text(PROBE.replace("WATCHED", repr(WATCHED), 1))
    (tmp_path / "log.json").write_text(
        json.dumps(
            {
                "filters": {"probe": {"()": "mem_probe.Probe"}},
                "handlers": {
                    "console": {
                        "class": "logging.StreamHandler",
                        "formatter": "generic",
                        "stream": "ext://sys.stdout",
                        "filters": ["probe"],
                    }
                },
            }
        )
    )
    return tmp_path


def _env(appdir: Path) -> dict[str, str]:
    env = clean_env()
    env["PYTHONPATH"] = os.pathsep.join([str(appdir), env.get("PYTHONPATH", "")])
    env["MEM_PROBE_DIR"] = str(appdir)
    return env


# The console script, as users start it (its kernel process name is `granian`).
GRANIAN_BIN = str(Path(PY).parent / "granian")


def _cli(appdir: Path, *extra: str) -> list[str]:
    return [
        GRANIAN_BIN, "--interface", "asgi", "--host", "127.0.0.1", "--port", "0",
        "--workers", "1", "--working-dir", str(appdir), "--log-config", str(appdir / "log.json"),
        *extra, "mem_app:app",
    ]  # fmt: skip


def test_cli_master_is_slim_same_pid_and_no_larger_than_its_worker(appdir: Path) -> None:
    srv = Server(_cli(appdir), appdir, _env(appdir))
    try:
        srv.ready()
        master = srv.proc.pid
        (worker,) = srv.worker_pids()
        assert srv.get() == str(worker)
        # The process the user started is the master (exec in place, not a fork).
        srv.wait_for(rf"master PID: {master}\)", 1)
        assert Path(f"/proc/{worker}/stat").read_text().rsplit(")", 1)[1].split()[1] == str(master)
        # What the master's interpreter has imported, reported by the master itself.
        probe = appdir / f"{master}.json"
        assert wait_until(probe.exists, 5), srv.text
        assert json.loads(probe.read_text()) == []
        # And what it maps: pydantic-core's extension is not in its address space.
        maps = Path(f"/proc/{master}/maps").read_text()
        assert "pydantic_core" not in maps
        # The kernel's process name (`ps -e`, `pgrep`, `killall`) stays `granian`, not the
        # interpreter's file name the exec gave it.
        assert Path(f"/proc/{master}/comm").read_text().strip() == "granian"
        # issue 10: after start-up the master costs at most what one worker does.
        master_kib, worker_kib = _rss_kib(master), _rss_kib(worker)
        assert master_kib <= worker_kib, (master_kib, worker_kib)
        srv.signal(signal.SIGTERM)
        assert srv.wait(10) == 0
        srv.wait_for("Shutdown complete", 2)
    finally:
        srv.stop()


def test_a_bad_log_config_stops_with_1_before_serving(appdir: Path) -> None:
    bad = appdir / "bad.json"
    bad.write_text("{not json")
    srv = Server([*_cli(appdir)[:-1], "--log-config", str(bad), "mem_app:app"], appdir, _env(appdir))
    try:
        assert srv.wait(15) == 1
        srv.wait_for(rf"--log-config {bad}: invalid JSON", 1)
        assert srv.count("Starting granian") == 0
    finally:
        srv.stop()


# exec_master when execv itself fails (e.g. the interpreter was replaced on disk): the master
# runs in the CLI process instead, and serves as before.
FALLBACK = textwrap.dedent(
    """
    import json, os, sys
    from granian.settings import load
    from granian.supervisor import exec_master

    real_execv = os.execv

    def refuse_once(path, argv):
        os.execv = real_execv  # the workers' own exec (after fork) goes through
        raise OSError(8, "Exec format error")

    os.execv = refuse_once
    sys.exit(exec_master(load(json.loads(sys.argv[1]), env={})))
    """
)


def test_master_runs_in_process_when_the_exec_fails(appdir: Path) -> None:
    opts = {"app": "mem_app:app", "interface": "asgi", "host": "127.0.0.1", "port": 0}
    opts["working_dir"] = str(appdir)
    srv = Server([PY, "-c", FALLBACK, json.dumps(opts)], appdir, _env(appdir))
    try:
        srv.ready()
        srv.wait_for("cannot start the slim master interpreter .*Exec format error", 1)
        (worker,) = srv.worker_pids()
        assert srv.get() == str(worker)
        assert "pydantic_core" in Path(f"/proc/{srv.proc.pid}/maps").read_text()
        srv.signal(signal.SIGTERM)
        assert srv.wait(10) == 0
    finally:
        srv.stop()
