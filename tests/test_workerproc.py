"""Workers run in a fresh interpreter (granian.supervisor.child/workerproc): none of the master's
heavy modules, only the descriptors they need, settings as a plain snapshot."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import psutil
import pytest
from test_supervisor_support import Server

from granian._snapshot import SettingsSnapshot
from granian.settings import Settings, load

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the master forks its workers")

HEAVY = ("pydantic", "pydantic_settings", "click", "psutil", "dotenv", "granian.settings")

APP = textwrap.dedent(
    """
    import json, os, sys

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        body = json.dumps({
            "heavy": [m for m in HEAVY if m in sys.modules],
            "pid": os.getpid(),
            "ppid": os.getppid(),
            "env": os.environ.get("WP_TEST_VALUE"),
            "argv": sys.argv,
        }).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})
    """
).replace("HEAVY", repr(HEAVY), 1)


def _pipes_and_sockets(pid: int, min_fd: int = 0) -> set[str]:
    """The pipe/socket inodes a process holds (`pipe:[N]`, `socket:[N]`)."""
    found = set()
    for name in os.listdir(f"/proc/{pid}/fd"):
        if int(name) < min_fd:
            continue
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        if target.startswith(("pipe:", "socket:")):
            found.add(target)
    return found


@pytest.fixture
def served(tmp_path: Path):  # type: ignore[no-untyped-def]
    (tmp_path / "wp_app.py").write_text(APP)
    envfile = tmp_path / "vars.env"
    envfile.write_text("WP_TEST_VALUE=from-env-file\n")
    srv = Server.launch(
        {"app": "wp_app:app", "workers": 1, "working_dir": str(tmp_path), "env_files": [str(envfile)]},
        tmp_path,
    )
    try:
        yield srv.ready()
    finally:
        srv.stop()


def test_worker_interpreter_has_none_of_the_master_modules_and_serves(served: Server) -> None:
    body = served.get("/")
    assert body is not None
    got = json.loads(body)
    assert got["heavy"] == []
    assert got["ppid"] == served.proc.pid
    assert got["env"] == "from-env-file"
    # The master's sys.argv (the launcher's `-c CODE OPTIONS_JSON ...`), as under multiprocessing.
    assert got["argv"][0] == "-c" and json.loads(got["argv"][1])["app"] == "wp_app:app"
    # A re-executed interpreter, not a bare fork of the master.
    cmdline = psutil.Process(got["pid"]).cmdline()
    assert "granian.supervisor.workerproc" in " ".join(cmdline)
    # The launcher resolved the settings with pydantic, then exec'd the slim master: neither
    # the master nor the worker maps pydantic_core's extension.
    master_maps = Path(f"/proc/{served.proc.pid}/maps").read_text()
    worker_maps = Path(f"/proc/{got['pid']}/maps").read_text()
    assert "pydantic_core" not in master_maps and "pydantic_core" not in worker_maps


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_worker_holds_only_the_listener_and_death_pipe_of_the_master(served: Server) -> None:
    body = served.get("/")
    assert body is not None
    worker = json.loads(body)["pid"]
    # Master descriptors past stdio: the listening socket, the death pipe (both ends share one
    # inode) and the signal wakeup pipe. The worker must share the first two only.
    master = _pipes_and_sockets(served.proc.pid, min_fd=3)
    shared = master & _pipes_and_sockets(worker)
    assert len(master) == 3
    assert len(shared) == 2
    assert any(s.startswith("socket:") for s in shared)
    assert any(s.startswith("pipe:") for s in shared)


def test_snapshot_has_the_settings_names_and_values_and_is_frozen() -> None:
    s = load({"app": "m:app", "workers": 3, "static_path_mount": ["/tmp"]}, env={})
    snap = SettingsSnapshot.of(s.model_dump())
    assert set(snap.model_dump()) == set(Settings.model_fields)
    for name in Settings.model_fields:
        assert getattr(snap, name) == getattr(s, name), name
    with pytest.raises(AttributeError):
        snap.workers = 4  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del snap.workers
