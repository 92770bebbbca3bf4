"""Checks of the harness's own logic (no load generated, no peers needed).

Run with: .venv/bin/pytest loadtests/test_run.py  (not part of tests/: the
harness is a tool, not the product).
"""

from __future__ import annotations

import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # noqa: E402

WRK_OUT = """Running 3s test @ http://127.0.0.1:1/
  1 threads and 64 connections
  Latency Distribution
     50%    1.53ms
     75%    1.68ms
     90%    1.92ms
     99%  850.00us
  120722 requests in 3.00s, 16.12MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 5
Requests/sec:  40234.15
Transfer/sec:      5.37MB
"""

H2LOAD_OUT = """finished in 808.00ms, 24752.63 req/s, 3.12MB/s
requests: 20000 total, 20000 started, 19990 done, 19990 succeeded, 10 failed, 0 errored, 0 timeout
status codes: 19990 2xx, 0 3xx, 0 4xx, 0 5xx
"""


def test_parse_wrk_reads_rate_p99_and_errors() -> None:
    got = run.parse_wrk(WRK_OUT)
    assert got["rps"] == 40234.15
    assert got["p99_ms"] == pytest.approx(0.85)
    assert got["requests"] == 120722
    assert got["socket_errors"] == 3
    assert got["non_2xx"] == 5


def test_parse_wrk_time_units() -> None:
    assert run._ms("2.5s") == 2500
    assert run._ms("12.00ms") == 12
    assert run._ms("1.00m") == 60000
    with pytest.raises(ValueError):
        run._ms("12 parsecs")


def test_parse_wrk_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        run.parse_wrk("unable to connect to 127.0.0.1:1 Connection refused")


def test_parse_h2load_ms_duration_and_failures() -> None:
    got = run.parse_h2load(H2LOAD_OUT)
    assert got["rps"] == 24752.63
    assert got["requests"] == 19990
    assert got["non_2xx"] == 10
    assert got["p99_ms"] is None


def test_select_scenarios_by_group_and_key() -> None:
    keys = [sc.key for sc in run.select_scenarios("rss,rsgi-plaintext")]
    assert keys == ["asgi-rss100k", "rsgi-plaintext"]  # in table order
    assert len(run.select_scenarios("issue3")) == 5
    with pytest.raises(SystemExit):
        run.select_scenarios("nope")


def test_summarize_ratios_against_baseline() -> None:
    sc = run.SCENARIOS[0]
    runs = [
        {"server": "ours", "rps": r, "p99_ms": 2.0, "rss_peak": 30, "socket_errors": 0,
         "non_2xx": 0} for r in (80.0, 90.0, 100.0)
    ] + [
        {"server": run.RUST, "rps": 100.0, "p99_ms": 1.0, "rss_peak": 20, "socket_errors": 1,
         "non_2xx": 0} for _ in range(3)
    ] + [{"server": "uvicorn", "error": "exited with status 1"}]
    rows = {r["server"]: r for r in run.summarize(sc, ["ours", run.RUST, "uvicorn"], runs)}
    assert rows["ours"]["rps"] == 90.0  # median, not mean or max
    assert rows["ours"]["ratio_rps"] == pytest.approx(0.9)
    assert rows["ours"]["ratio_p99"] == pytest.approx(2.0)
    assert rows["ours"]["ratio_rss"] == pytest.approx(1.5)
    assert rows["ours"]["spread"] == pytest.approx(20 / 90)
    assert rows[run.RUST]["errors"] == 3
    assert rows["uvicorn"]["error"] == "exited with status 1"
    assert "failed: exited with status 1" in run.table(sc, list(rows.values()), _opts())


def _opts() -> run.Options:
    return run.Options(rounds=3, duration=10, warmup=2, rss_requests=100, pin=True,
                       startup_timeout=5, verbose=False, tmp=Path("/tmp"))


MASTER = textwrap.dedent("""
    import subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    print(child.pid, flush=True)
    time.sleep(60)
""")


def test_stop_kills_master_and_worker_and_workers_are_the_leaves(tmp_path: Path) -> None:
    proc = run.Running([sys.executable, "-c", MASTER], {"PATH": "/usr/bin:/bin"},
                       tmp_path / "log")
    try:
        deadline = time.monotonic() + 10
        while not (tmp_path / "log").read_text().strip() and time.monotonic() < deadline:
            time.sleep(0.05)
        worker_pid = int((tmp_path / "log").read_text().split()[0])
        assert [p.pid for p in run.worker_processes(proc.ps)] == [worker_pid]
    finally:
        proc.stop()
    assert proc.proc.returncode is not None
    # Killed, it may stay a zombie of init for an instant; never a live process.
    deadline = time.monotonic() + 5
    while _alive(worker_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(worker_pid)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False

def test_single_process_server_is_its_own_worker(tmp_path: Path) -> None:
    proc = run.Running([sys.executable, "-c", "import time; time.sleep(60)"],
                       {"PATH": "/usr/bin:/bin"}, tmp_path / "log")
    try:
        assert [p.pid for p in run.worker_processes(proc.ps)] == [proc.proc.pid]
    finally:
        proc.stop()
    assert proc.proc.returncode is not None
