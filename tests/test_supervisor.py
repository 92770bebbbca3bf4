"""The master process, end to end: real processes, real sockets, real HTTP requests."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import threading
import time
from pathlib import Path

import psutil
import pytest
from test_supervisor_support import PY, Server, alive, get, pids_seen, wait_until, write_app

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the master forks its workers")


@pytest.fixture
def appdir(tmp_path: Path) -> Path:
    write_app(tmp_path)
    return tmp_path


@pytest.fixture
def start(appdir: Path):  # type: ignore[no-untyped-def]
    started: list[Server] = []

    def _start(overrides: dict[str, object] | None = None, workers: int = 1, **options: object) -> Server:
        opts: dict[str, object] = {"app": "app_sup:app", "workers": workers, "working_dir": str(appdir)}
        opts.update(options)
        srv = Server.launch(opts, appdir, overrides)
        started.append(srv)
        return srv

    yield _start
    for srv in started:
        srv.stop()


def test_two_workers_answer_from_two_pids(start) -> None:  # type: ignore[no-untyped-def]
    srv = start(workers=2).ready(2)
    workers = srv.worker_pids()
    assert len(workers) == 2
    assert pids_seen(srv.port, 2) == workers
    assert srv.count(rf"master PID: {srv.proc.pid}\)") == 1


def test_sigterm_lets_inflight_request_finish_then_nothing_is_left(start) -> None:  # type: ignore[no-untyped-def]
    srv = start(workers=2).ready(2)
    family = srv.worker_pids() | {srv.proc.pid}
    result: list[str | None] = []
    t = threading.Thread(target=lambda: result.append(get(srv.port, "/sleep?2", timeout=10)))
    t.start()
    time.sleep(0.5)  # the request is in flight
    srv.signal(signal.SIGTERM)
    t.join(10)
    assert result and result[0] is not None and int(result[0]) in family
    assert srv.wait(10) == 0
    assert wait_until(lambda: not any(alive(p) for p in family), 3)
    srv.wait_for("Shutdown complete", 2)


def test_killed_worker_is_respawned(start) -> None:  # type: ignore[no-untyped-def]
    srv = start(respawn_failed_workers=True, respawn_interval=0.5).ready()
    (old,) = srv.worker_pids()
    os.kill(old, signal.SIGKILL)
    assert wait_until(lambda: (b := get(srv.port, timeout=1)) is not None and int(b) != old, 0.5 + 1 + 1)
    srv.wait_for(rf"worker-1 \(PID {old}\) exited unexpectedly \(signal SIGKILL\)")
    assert srv.proc.poll() is None


def test_killed_worker_without_respawn_stops_master_nonzero(start) -> None:  # type: ignore[no-untyped-def]
    srv = start(workers=2).ready(2)
    a, b = sorted(srv.worker_pids())
    os.kill(a, signal.SIGKILL)
    assert srv.wait(10) != 0
    assert not alive(b)
    srv.wait_for(r"exited unexpectedly \(signal SIGKILL\)")


def test_master_sigkill_takes_workers_down(start) -> None:  # type: ignore[no-untyped-def]
    srv = start(workers=2).ready(2)
    workers = srv.worker_pids()
    srv.proc.kill()
    srv.wait(5)
    gone = wait_until(lambda: not any(alive(p) for p in workers), 2)
    assert gone, f"{srv.text}\n{[(p, _state(p)) for p in workers]}"


def _state(pid: int) -> str:
    try:
        p = psutil.Process(pid)
        wchan = Path(f"/proc/{pid}/wchan").read_text()
        return f"{p.status()} ppid={p.ppid()} threads={p.num_threads()} wchan={wchan}"
    except (psutil.Error, OSError) as exc:
        return repr(exc)


def test_sighup_replaces_every_worker(start) -> None:  # type: ignore[no-untyped-def]
    srv = start(workers=2, respawn_interval=0.2).ready(2)
    before = srv.worker_pids()
    srv.signal(signal.SIGHUP)
    assert wait_until(lambda: srv.count(r"worker-\d \(PID \d+\) stopped") >= 2, 15), srv.text
    after = srv.worker_pids()
    assert len(after) == 2 and not (after & before)
    assert pids_seen(srv.port, 2) == after
    for pid in before:
        srv.wait_for(rf"Replacing worker-\d \(PID {pid}\): SIGHUP", 1)


def test_sighup_rolls_every_worker_without_failed_requests(start) -> None:  # type: ignore[no-untyped-def]
    srv = start(workers=2, respawn_interval=0.3).ready(2)
    before = srv.worker_pids()
    failures: list[str] = []
    answered: set[int] = set()
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
            try:
                conn.request("GET", "/", headers={"Connection": "close"})
                resp = conn.getresponse()
                body = resp.read()
                if resp.status == 200:
                    answered.add(int(body))
                else:
                    failures.append(f"status {resp.status}")
            except (OSError, http.client.HTTPException) as exc:
                failures.append(repr(exc))
            finally:
                conn.close()

    t = threading.Thread(target=client)
    t.start()
    try:
        srv.signal(signal.SIGHUP)
        rolled = wait_until(lambda: srv.count(r"worker-\d \(PID \d+\) stopped") >= 2, 15)
        after = srv.worker_pids()
        # The second replacement may still be importing the app when its old worker has
        # drained (the backlog holds the connections meanwhile): keep the client going until
        # both new workers answered it.
        served = wait_until(lambda: after <= answered, 10)
    finally:
        stop.set()
        t.join(10)
    assert rolled, srv.text
    assert len(after) == 2 and not (after & before)
    assert failures == []
    assert served, (after, answered)  # the new workers served the client loop


@pytest.mark.parametrize("respawn", [False, True])
def test_app_import_error_exits_nonzero_naming_the_module(start, respawn: bool) -> None:  # type: ignore[no-untyped-def]
    srv = start(app="no_such_module_xyz:app", workers=2, respawn_failed_workers=respawn, respawn_interval=0)
    code = srv.wait(15)
    assert code != 0
    assert "no_such_module_xyz" in srv.text
    srv.wait_for("could not be loaded", 1)


def test_crash_loop_stops_master_instead_of_respawning_forever(start, appdir: Path) -> None:  # type: ignore[no-untyped-def]
    (appdir / "crash_app.py").write_text("import os\nos._exit(3)\n")
    srv = start(app="crash_app:app", respawn_failed_workers=True, respawn_interval=0.05)
    assert srv.wait(20) != 0
    assert srv.count(r"exited unexpectedly \(exit code 3\)") >= 2
    srv.wait_for("respawning forever", 1)


def test_port_in_use_is_an_error(start) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        srv = start(port=port)
        assert srv.wait(10) != 0
        srv.wait_for(rf"cannot listen at http://127\.0\.0\.1:{port}: .*in use", 1)
        assert srv.count("Spawned worker") == 0


def test_unix_socket_with_permissions(start, appdir: Path) -> None:  # type: ignore[no-untyped-def]
    path = appdir / "s.sock"
    srv = start(uds=str(path), uds_permissions="600")
    srv.wait_for(rf"Listening at: unix:{path}")
    assert wait_until(path.exists, 5)
    assert (path.stat().st_mode & 0o777) == 0o600

    def ask() -> bytes:
        with socket.socket(socket.AF_UNIX) as c:
            c.settimeout(5)
            c.connect(str(path))
            c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := c.recv(65536):
                data += chunk
            return data

    assert wait_until(lambda: _safe(ask).startswith(b"HTTP/1.1 200"), 10)
    srv.signal(signal.SIGTERM)
    assert srv.wait(10) == 0
    assert not path.exists()


def _safe(fn) -> bytes:  # type: ignore[no-untyped-def]
    try:
        return bytes(fn())
    except OSError:
        return b""


def test_pid_file_written_removed_and_guarded(start, appdir: Path) -> None:  # type: ignore[no-untyped-def]
    pidfile = appdir / "granian.pid"
    srv = start(pid_file=str(pidfile)).ready()
    assert int(pidfile.read_text()) == srv.proc.pid
    # A second master with the same pid file refuses to start while the first is alive.
    other = start(pid_file=str(pidfile))
    assert other.wait(10) != 0
    other.wait_for(rf"names PID {srv.proc.pid}, which is still running", 1)
    assert int(pidfile.read_text()) == srv.proc.pid
    srv.signal(signal.SIGTERM)
    assert srv.wait(10) == 0
    assert not pidfile.exists()


def test_stale_pid_file_is_replaced(start, appdir: Path) -> None:  # type: ignore[no-untyped-def]
    pidfile = appdir / "granian.pid"
    dead = psutil.Popen(["true"])
    dead.wait()
    pidfile.write_text(f"{dead.pid}\n")
    srv = start(pid_file=str(pidfile)).ready()
    assert int(pidfile.read_text()) == srv.proc.pid


def test_process_names(start) -> None:  # type: ignore[no-untyped-def]
    srv = start(workers=2, process_name="granian-test-xyz").ready(2)
    assert wait_until(lambda: psutil.Process(srv.proc.pid).cmdline()[0] == "granian-test-xyz", 5)
    # setproctitle pads the rewritten argv area with spaces.
    titles = sorted(" ".join(psutil.Process(p).cmdline()).strip() for p in srv.worker_pids())
    assert titles == ["granian-test-xyz worker-1", "granian-test-xyz worker-2"]


def test_env_files_reach_the_workers_not_the_master(start, appdir: Path) -> None:  # type: ignore[no-untyped-def]
    envfile = appdir / "a.env"
    envfile.write_text("# comment\nexport SUP_TEST_VAR='hello world'\n")
    srv = start(env_files=[str(envfile)]).ready()
    assert srv.get("/env?SUP_TEST_VAR") == "hello world"
    assert "SUP_TEST_VAR" not in psutil.Process(srv.proc.pid).environ()


def test_max_rss_respawns_a_growing_worker(start) -> None:  # type: ignore[no-untyped-def]
    srv = start(workers_max_rss=120, rss_sample_interval=1, rss_samples=1, respawn_interval=0.2).ready()
    (old,) = srv.worker_pids()
    assert srv.get("/grow?150") == str(old)
    srv.wait_for(rf"Replacing worker-1 \(PID {old}\): memory .* above --workers-max-rss 120 MiB", 10)
    assert wait_until(lambda: len(pids := srv.worker_pids()) == 1 and old not in pids, 10)
    (new,) = srv.worker_pids()
    assert srv.get() == str(new)


def test_workers_lifetime_rolls_workers(start) -> None:  # type: ignore[no-untyped-def]
    # --workers-lifetime has a 60 s floor; the override exercises the same mechanism in 1 s.
    srv = start(workers_lifetime=60, respawn_interval=0.2, overrides={"workers_lifetime": 1}).ready()
    # The first worker's PID from its spawn line: by the time the server answered (slower under
    # coverage) its 1 s lifetime may be over and the replacement already running beside it.
    old = int(srv.wait_for(r"Spawned worker-1 with PID: (\d+)").group(1))
    srv.wait_for(rf"Replacing worker-1 \(PID {old}\): lifetime", 10)
    assert wait_until(lambda: not alive(old), 10)
    assert srv.get() not in (None, str(old))


def test_reload_serves_the_edit_and_survives_a_syntax_error(start, appdir: Path) -> None:  # type: ignore[no-untyped-def]
    src = (
        "async def app(scope, receive, send):\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "    await send({'type': 'http.response.body', 'body': b'VERSION'})\n"
    )
    mod = appdir / "reload_app.py"
    mod.write_text(src.replace("VERSION", "one"))
    srv = start(app="reload_app:app", reload=True, reload_paths=[str(appdir)], reload_tick=50).ready()
    assert srv.get() == "one"
    mod.write_text(src.replace("VERSION", "two"))
    assert wait_until(lambda: srv.get(timeout=1) == "two", 15), srv.text
    mod.write_text("def broken(:\n")
    srv.wait_for("will start again after the next file change", 15)
    assert srv.proc.poll() is None
    mod.write_text(src.replace("VERSION", "three"))
    assert wait_until(lambda: srv.get(timeout=1) == "three", 15), srv.text


def test_cli_serves_and_reports_a_missing_module(appdir: Path) -> None:
    srv = Server(
        [
            PY,
            "-m",
            "granian",
            "--interface",
            "asgi",
            "--port",
            "0",
            "--workers",
            "2",
            "--working-dir",
            str(appdir),
            "app_sup:app",
        ],
        appdir,
    )
    try:
        srv.ready(2)
        assert pids_seen(srv.port, 2) == srv.worker_pids()
    finally:
        srv.stop()
    bad = Server([PY, "-m", "granian", "--interface", "asgi", "--port", "0", "nope_module_q:app"], appdir)
    try:
        assert bad.wait(15) != 0
        assert "nope_module_q" in bad.text
    finally:
        bad.stop()


def test_kill_timeout_bounds_the_drain(start) -> None:  # type: ignore[no-untyped-def]
    srv = start(workers_kill_timeout=1).ready()
    (worker,) = srv.worker_pids()
    result: list[str | None] = []
    t = threading.Thread(target=lambda: result.append(get(srv.port, "/sleep?60", timeout=30)))
    t.start()
    time.sleep(0.5)
    srv.signal(signal.SIGTERM)
    assert srv.wait(15) == 0
    t.join(30)
    assert result == [None]  # the request could not finish: its worker was killed
    srv.wait_for(rf"worker-1 \(PID {worker}\) did not stop in time", 1)
    assert not alive(worker)


def test_second_sigint_stops_at_once(start) -> None:  # type: ignore[no-untyped-def]
    srv = start().ready()
    (worker,) = srv.worker_pids()
    t = threading.Thread(target=lambda: get(srv.port, "/sleep?60", timeout=30))
    t.start()
    time.sleep(0.5)
    srv.signal(signal.SIGINT)
    srv.wait_for("Received SIGINT: shutting down gracefully", 5)
    assert srv.proc.poll() is None  # still draining the 60 s request
    srv.signal(signal.SIGINT)
    assert srv.wait(15) == 0
    srv.wait_for("stopping immediately", 1)
    assert not alive(worker)
    t.join(30)
