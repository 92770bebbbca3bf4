"""Side-by-side load tests: our granian vs the Rust granian, uvicorn and gunicorn.

Run through ``bash loadtests/run.sh [options]`` (which installs wrk, h2load and
the peers first); ``--help`` lists the options and loadtests/README.md explains
the scenarios and how to read the ratios.

Method (kept identical for every server so the ratios mean something):
- one worker per server, bound to 127.0.0.1 on a free port, cwd = apps/ (so
  neither granian can import the other's package from the repo root);
- server pinned to CPU 0 (``taskset -c 0``, inherited by its workers), load
  generator pinned to CPU 1, except in the ``ours-workers`` mode;
- a fresh server process per (scenario, round, server); the servers of a
  scenario alternate within each round and the order rotates every round, so a
  noisy neighbour on this shared machine hits every server alike;
- a warm-up run precedes each measured run; the worker RSS is sampled with
  psutil every 50 ms during the measured run;
- every started server is stopped by its process group (it is a session
  leader) in a ``finally``, also on Ctrl-C or an error, and any worker PID seen
  during the run that survived is killed by PID.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
APPS = HERE / "apps"
RESULTS = HERE / "results"
PEERS = HERE / ".peers"

HELLO = b"Hello, world!"
ECHO_SIZE = 16 * 1024
BIG_SIZE = 64 * 1024
FILE_SIZE = 50 * 1024
RUST = "granian-rust"


# ---------------------------------------------------------------- servers


@dataclass(frozen=True)
class Server:
    """One way of launching a server; ``argv`` gets (interface, port)."""

    name: str
    argv: Callable[[str, int], list[str]]
    pin: bool = True
    note: str = ""


def _granian_argv(exe: str, extra: tuple[str, ...] = (),
                  workers: int = 1) -> Callable[[str, int], list[str]]:
    # The same flags for both granians; everything else is left at its
    # default (both default to no access log, one runtime thread).
    def argv(iface: str, port: int) -> list[str]:
        module = {"asgi": "asgi_app:app", "rsgi": "rsgi_app:app", "wsgi": "wsgi_app:app"}[iface]
        return [exe, "--interface", iface, "--host", "127.0.0.1", "--port", str(port),
                "--workers", str(workers), *extra, module]
    return argv


def _uvicorn_argv(exe: str, access_log: bool = True) -> Callable[[str, int], list[str]]:
    # The issue compares "with default options": uvicorn's defaults log every request (to the
    # server's log file here). `uvicorn-nolog` adds --no-access-log as a like-for-like extra row,
    # since both granians default to no access log. --workers 1 runs in-process.
    def argv(iface: str, port: int) -> list[str]:
        assert iface == "asgi"
        extra = [] if access_log else ["--no-access-log"]
        return [exe, "--host", "127.0.0.1", "--port", str(port), "--workers", "1", *extra,
                "asgi_app:app"]
    return argv


def _gunicorn_argv(exe: str, threads: int) -> Callable[[str, int], list[str]]:
    def argv(iface: str, port: int) -> list[str]:
        assert iface == "wsgi"
        return [exe, "-k", "gthread", "--threads", str(threads), "-w", "1",
                "-b", f"127.0.0.1:{port}", "--log-level", "warning", "wsgi_app:app"]
    return argv


# ---------------------------------------------------------------- scenarios


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    iface: str
    path: str
    servers: tuple[str, ...]   # keys into the server table; first = baseline
    baseline: str
    connections: int = 64
    threads: int = 1
    script: str | None = None  # wrk Lua script name (written to the temp dir)
    rss_requests: bool = False  # h2load -n N instead of wrk -d
    groups: tuple[str, ...] = ()


ASGI3 = ("ours", RUST, "uvicorn", "uvicorn-nolog")
PAIR = ("ours", RUST)

SCENARIOS: tuple[Scenario, ...] = (
    Scenario("asgi-plaintext", "ASGI plaintext `Hello, world!`", "asgi", "/", ASGI3, RUST,
             groups=("asgi", "issue3")),
    Scenario("asgi-echo16k", "ASGI 16 KiB POST echoed back", "asgi", "/echo", ASGI3, RUST,
             script="post16k.lua", groups=("asgi", "issue3")),
    Scenario("asgi-64k", "ASGI 64 KiB response", "asgi", "/64k", ASGI3, RUST,
             groups=("asgi", "issue3")),
    Scenario("asgi-c256", "ASGI plaintext, 256 connections", "asgi", "/", ASGI3, RUST,
             connections=256, groups=("asgi", "issue3")),
    Scenario("asgi-rss100k", "ASGI worker RSS after N plaintext requests", "asgi", "/", ASGI3,
             RUST, rss_requests=True, groups=("asgi", "issue3", "rss")),
    Scenario("rsgi-plaintext", "RSGI plaintext `Hello, world!`", "rsgi", "/", PAIR, RUST,
             groups=("rsgi",)),
    Scenario("wsgi-plaintext", "WSGI plaintext `Hello, world!`", "wsgi", "/",
             ("ours", RUST, "gunicorn"), RUST, groups=("wsgi",)),
    Scenario("asgi-file", "ASGI 50 KiB file via `http.response.pathsend`", "asgi", "/file",
             PAIR, RUST, groups=("file", "asgi")),
    Scenario("rsgi-file", "RSGI 50 KiB file via `response_file`", "rsgi", "/file", PAIR, RUST,
             groups=("file", "rsgi")),
    Scenario("ours-workers", "Ours, ASGI plaintext: `--workers 2` vs `--workers 1` "
             "(NOT pinned: server and wrk -t2 share both cores)", "asgi", "/",
             ("ours-w1", "ours-w2"), "ours-w1", threads=2, groups=("modes",)),
    Scenario("ours-accesslog", "Ours, ASGI plaintext: `--access-log` on vs off "
             "(log written to a file)", "asgi", "/", ("ours-nolog", "ours-log"), "ours-nolog",
             groups=("modes",)),
    Scenario("ours-opt", "Ours, ASGI plaintext: `--opt` vs the default", "asgi", "/",
             ("ours-default", "ours-opt"), "ours-default", groups=("modes",)),
    Scenario("ours-health", "Ours, ASGI plaintext to `/`: `--health-path /healthz` set vs not",
             "asgi", "/", ("ours-default", "ours-health"), "ours-default", groups=("modes",)),
)

POST_LUA = f"""-- 16 KiB POST body; wrk adds the content-length itself.
wrk.method = "POST"
wrk.body = string.rep("x", {ECHO_SIZE})
wrk.headers["Content-Type"] = "application/octet-stream"
"""


# ---------------------------------------------------------------- process control


def free_port() -> int:
    # Bind to port 0 and release it; the small race with another process is
    # acceptable on a dev machine and caught by the readiness check.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _is_helper(p: psutil.Process) -> bool:
    # multiprocessing's resource tracker is not a worker.
    try:
        return any("resource_tracker" in part or "semaphore_tracker" in part
                   for part in p.cmdline())
    except psutil.Error:
        return True


def worker_processes(root: psutil.Process) -> list[psutil.Process]:
    """The processes that serve requests: the descendants of a master, or the
    root itself for a single-process server (uvicorn --workers 1)."""
    try:
        kids = [p for p in root.children(recursive=True) if not _is_helper(p)]
    except psutil.Error:
        return []
    # With a master + worker layout only leaves serve (a worker never forks
    # further here); fall back to the root when it serves alone.
    leaves = []
    for p in kids:
        try:
            if not [c for c in p.children() if not _is_helper(c)]:
                leaves.append(p)
        except psutil.Error:
            continue
    return leaves or [root]


class RssSampler(threading.Thread):
    """Samples the summed RSS of the worker processes every ``interval`` s."""

    def __init__(self, root: psutil.Process, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.interval = interval
        self.peak = 0
        self.last = 0
        self.seen_pids: set[int] = set()
        self._stop_evt = threading.Event()

    def sample(self) -> int:
        total = 0
        for p in worker_processes(self.root):
            try:
                total += p.memory_info().rss
                self.seen_pids.add(p.pid)
            except psutil.Error:
                pass
        if total:
            self.last = total
            self.peak = max(self.peak, total)
        return total

    def run(self) -> None:
        while not self._stop_evt.is_set():
            self.sample()
            self._stop_evt.wait(self.interval)

    def stop(self) -> None:
        self._stop_evt.set()
        self.join(timeout=2)
        self.sample()


class Running:
    """A started server; ``stop()`` kills its process group and stragglers."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.argv = argv
        self.log_path = log_path
        self.log = open(log_path, "wb")
        # start_new_session: the server leads its own process group, so one
        # killpg reaches its workers too and never our own process.
        self.proc = subprocess.Popen(argv, cwd=APPS, env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        self.ps = psutil.Process(self.proc.pid)
        # pid -> create_time, so a recycled PID is never killed by mistake.
        self.known: dict[int, float] = {}

    def remember_workers(self) -> None:
        try:
            for p in self.ps.children(recursive=True):
                self.known[p.pid] = p.create_time()
        except psutil.Error:
            pass

    def stop(self) -> None:
        self.remember_workers()
        pid = self.proc.pid
        if self.proc.poll() is None:
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(pid, signal.SIGKILL)  # whatever of the group is left
        except (ProcessLookupError, PermissionError):
            pass
        if self.proc.poll() is None:
            self.proc.wait(timeout=5)
        for wpid, created in self.known.items():  # a worker that left the group
            try:
                p = psutil.Process(wpid)
                if p.create_time() == created:
                    p.kill()
            except psutil.Error:
                pass
        self.log.close()

    def log_tail(self, n: int = 15) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])


def http_request(port: int, method: str, path: str, body: bytes = b"",
                 timeout: float = 3.0) -> tuple[int, dict[str, str], bytes]:
    """A minimal HTTP/1.1 client (Connection: close) for readiness and
    correctness checks; reads until EOF."""
    head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(head + body)
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
    raw = b"".join(chunks)
    sep = raw.find(b"\r\n\r\n")
    if sep < 0:
        raise ValueError(f"no response head in {raw[:80]!r}")
    lines = raw[:sep].decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    payload = raw[sep + 4:]
    if headers.get("transfer-encoding", "").lower() == "chunked":
        payload = _dechunk(payload)
    return status, headers, payload


def _dechunk(data: bytes) -> bytes:
    out: list[bytes] = []
    i = 0
    while True:
        j = data.index(b"\r\n", i)
        size = int(data[i:j].split(b";")[0], 16)
        if size == 0:
            return b"".join(out)
        out.append(data[j + 2:j + 2 + size])
        i = j + 2 + size + 2


def expected_body(path: str, file_bytes: bytes) -> tuple[str, bytes]:
    if path == "/echo":
        return "POST", b"e" * ECHO_SIZE
    if path == "/64k":
        return "GET", b"x" * BIG_SIZE
    if path == "/file":
        return "GET", file_bytes
    return "GET", HELLO


def wait_ready(run: Running, port: int, path: str, file_bytes: bytes,
               timeout: float) -> None:
    """Poll until the route answers correctly; raise with the reason if the
    server exits, times out or answers wrongly (so we never benchmark a 404)."""
    method, want = expected_body(path, file_bytes)
    send = want if method == "POST" else b""
    deadline = time.monotonic() + timeout
    last_err = "no answer"
    while time.monotonic() < deadline:
        if run.proc.poll() is not None:
            raise RuntimeError(f"exited with status {run.proc.returncode}")
        try:
            status, _, body = http_request(port, method, path, send)
        except (OSError, ValueError) as exc:
            last_err = f"{type(exc).__name__}: {exc}"
            time.sleep(0.1)
            continue
        if status != 200 or body != want:
            raise RuntimeError(f"wrong answer on {method} {path}: status {status}, "
                               f"{len(body)} body bytes (want 200, {len(want)})")
        return
    raise RuntimeError(f"not ready after {timeout:.0f}s ({last_err})")


# ---------------------------------------------------------------- load generators

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if not m:
        raise ValueError(f"bad wrk time {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(out: str) -> dict[str, Any]:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    reqs = re.search(r"(\d+) requests in", out)
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if not rps or not p99:
        raise ValueError("could not parse wrk output:\n" + out[-800:])
    return {
        "rps": float(rps.group(1)),
        "p99_ms": _ms(p99.group(1)),
        "requests": int(reqs.group(1)) if reqs else None,
        "socket_errors": sum(int(x) for x in errs.groups()) if errs else 0,
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
    }


def parse_h2load(out: str) -> dict[str, Any]:
    fin = re.search(r"finished in ([\d.]+)(?:us|ms|s), ([\d.]+) req/s", out)
    req = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, "
                    r"(\d+) failed, (\d+) errored", out)
    if not fin or not req:
        raise ValueError("could not parse h2load output:\n" + out[-800:])
    return {
        "rps": float(fin.group(2)),
        "p99_ms": None,  # h2load prints no percentiles
        "requests": int(req.group(3)),
        "socket_errors": int(req.group(5)),
        "non_2xx": int(req.group(4)),
    }


@dataclass
class Options:
    rounds: int
    duration: float
    warmup: float
    rss_requests: int
    pin: bool
    startup_timeout: float
    verbose: bool
    tmp: Path
    file_bytes: bytes = b""
    servers: dict[str, Server] = field(default_factory=dict)


def _pin(argv: list[str], cpu: int | None) -> list[str]:
    return ["taskset", "-c", str(cpu), *argv] if cpu is not None else argv


def run_wrk(port: int, sc: Scenario, seconds: float, cpu: int | None,
            opts: Options) -> tuple[dict[str, Any], str]:
    argv = ["wrk", f"-t{sc.threads}", f"-c{sc.connections}", f"-d{max(1, round(seconds))}s",
            "--latency"]
    if sc.script:
        argv += ["-s", str(opts.tmp / sc.script)]
    argv.append(f"http://127.0.0.1:{port}{sc.path}")
    argv = _pin(argv, cpu)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()[-300:]}")
    return parse_wrk(done.stdout), done.stdout


def run_h2load(port: int, sc: Scenario, n: int, cpu: int | None) -> tuple[dict[str, Any], str]:
    # --h1: plain HTTP/1.1 keep-alive, the same protocol wrk speaks.
    argv = _pin(["h2load", "--h1", "-n", str(n), "-c", str(sc.connections), "-t", "1",
                 f"http://127.0.0.1:{port}{sc.path}"], cpu)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"h2load failed ({done.returncode}): {done.stderr.strip()[-300:]}")
    return parse_h2load(done.stdout), done.stdout


# ---------------------------------------------------------------- one measured run


def server_env(opts: Options) -> dict[str, str]:
    # Drop GRANIAN_* variables from the caller's shell: both granians read
    # them, and only the flags we pass should differ between runs.
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRANIAN_")}
    env["LOADTEST_FILE"] = str(opts.tmp / "file50k.bin")
    env["PYTHONPATH"] = str(APPS)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_one(sc: Scenario, server: Server, rnd: int, opts: Options) -> dict[str, Any]:
    pinned = opts.pin and server.pin
    server_cpu, load_cpu = (0, 1) if pinned else (None, None)
    port = free_port()
    argv = _pin(server.argv(sc.iface, port), server_cpu)
    log_path = opts.tmp / f"{sc.key}-{server.name}-r{rnd}.log"
    result: dict[str, Any] = {"scenario": sc.key, "server": server.name, "round": rnd,
                              "argv": argv, "pinned": pinned}
    run = Running(argv, server_env(opts), log_path)
    try:
        wait_ready(run, port, sc.path, opts.file_bytes, opts.startup_timeout)
        time.sleep(0.2)  # let the workers settle after their first answer
        run.remember_workers()
        workers = worker_processes(run.ps)
        result["worker_pids"] = [p.pid for p in workers]
        try:  # evidence that the pinning reached the workers
            result["worker_cpus"] = sorted({c for p in workers for c in p.cpu_affinity()})
        except psutil.Error:
            pass
        sampler = RssSampler(run.ps)
        if sc.rss_requests:
            result["rss_start"] = sampler.sample()
            sampler.start()
            stats, raw = run_h2load(port, sc, opts.rss_requests, load_cpu)
            sampler.stop()
            time.sleep(0.5)  # let in-flight cleanup finish before the final sample
            result["rss_end"] = sampler.sample()
        else:
            if opts.warmup > 0:
                run_wrk(port, sc, opts.warmup, load_cpu, opts)
            sampler.start()
            stats, raw = run_wrk(port, sc, opts.duration, load_cpu, opts)
            sampler.stop()
        result.update(stats)
        result["rss_peak"] = sampler.peak
        result["raw"] = raw
        if run.proc.poll() is not None:
            raise RuntimeError(f"server exited during the run (status {run.proc.returncode})")
    except Exception as exc:  # recorded, the harness goes on with the next server
        tail = run.log_tail()
        hint = [ln.strip() for ln in tail.splitlines() if re.search(r"Error|Exception", ln)]
        result["error"] = f"{exc}" + (f" ({hint[-1][:120]})" if hint else "")
        result["log_tail"] = tail
    finally:
        run.stop()
    return result


# ---------------------------------------------------------------- reporting


def _median(values: list[float]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def summarize(sc: Scenario, names: list[str],
              runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for name in names:
        mine = [r for r in runs if r["server"] == name]
        ok = [r for r in mine if "error" not in r]
        row: dict[str, Any] = {"server": name, "runs": len(ok), "failed": len(mine) - len(ok)}
        if mine and not ok:
            row["error"] = mine[-1]["error"]
        if ok:
            row["rps"] = _median([r["rps"] for r in ok])
            # (max - min) / median of req/s over the rounds: how noisy this row is.
            rps = [r["rps"] for r in ok]
            row["spread"] = (max(rps) - min(rps)) / row["rps"] if row["rps"] else None
            row["p99_ms"] = _median([r["p99_ms"] for r in ok])
            row["rss_peak"] = _median([r["rss_peak"] for r in ok])
            if sc.rss_requests:
                row["rss_start"] = _median([r["rss_start"] for r in ok])
                row["rss_end"] = _median([r["rss_end"] for r in ok])
            row["errors"] = sum(r["socket_errors"] + r["non_2xx"] for r in ok)
        rows.append(row)
    base = next((r for r in rows if r["server"] == sc.baseline and "rps" in r), None)
    for row in rows:
        if base and "rps" in row:
            row["ratio_rps"] = row["rps"] / base["rps"] if base["rps"] else None
            row["ratio_p99"] = (row["p99_ms"] / base["p99_ms"]
                                if row["p99_ms"] and base["p99_ms"] else None)
            key = "rss_end" if sc.rss_requests else "rss_peak"
            row["ratio_rss"] = row[key] / base[key] if base.get(key) else None
    return rows


def _mib(v: float | None) -> str:
    return "—" if v is None else f"{v / 2**20:.1f} MiB"


def _x(v: float | None) -> str:
    return "—" if v is None else f"{v:.2f}×"


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{v * 100:.0f}%"


def table(sc: Scenario, rows: list[dict[str, Any]], opts: Options) -> str:
    pinned = "server on CPU 0, load generator on CPU 1" if opts.pin and sc.key != "ours-workers" \
        else "NOT pinned"
    if sc.rss_requests:
        load = f"h2load --h1 -n {opts.rss_requests} -c{sc.connections} -t1"
    else:
        load = f"wrk -t{sc.threads} -c{sc.connections} -d{opts.duration:g}s"
        if sc.script:
            load += f" -s {sc.script}"
    out = [f"### {sc.key}: {sc.title}", "",
           f"`{load}` on `{sc.path}`; {pinned}; medians over {opts.rounds} round(s); "
           f"ratios are each server / **{sc.baseline}**.", ""]
    if sc.rss_requests:
        out += ["| server | req/s | RSS at start | RSS after | RSS peak | RSS after vs base "
                "| req/s vs base | errors | spread |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    else:
        out += ["| server | req/s | p99 | peak worker RSS | req/s vs base | p99 vs base "
                "| RSS vs base | errors | spread |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        name = f"**{r['server']}**" if r["server"] == sc.baseline else r["server"]
        if "rps" not in r:
            why = r.get("error", "not run").splitlines()[0][:160] if r.get("error") else "not run"
            out.append(f"| {name} | failed: {why.replace('|', '/')} | | | | | | | |")
            continue
        if sc.rss_requests:
            out.append(f"| {name} | {r['rps']:,.0f} | {_mib(r['rss_start'])} | "
                       f"{_mib(r['rss_end'])} | {_mib(r['rss_peak'])} | {_x(r.get('ratio_rss'))} "
                       f"| {_x(r.get('ratio_rps'))} | {r['errors']} | {_pct(r['spread'])} |")
        else:
            out.append(f"| {name} | {r['rps']:,.0f} | {r['p99_ms']:.2f} ms | "
                       f"{_mib(r['rss_peak'])} | {_x(r.get('ratio_rps'))} | "
                       f"{_x(r.get('ratio_p99'))} | {_x(r.get('ratio_rss'))} | {r['errors']} "
                       f"| {_pct(r['spread'])} |")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- main


def build_servers(args: argparse.Namespace) -> dict[str, Server]:
    ours = args.ours
    peers = args.peers_bin
    s = {
        "ours": Server("ours", _granian_argv(ours)),
        RUST: Server(RUST, _granian_argv(str(peers / "granian"))),
        "uvicorn": Server("uvicorn", _uvicorn_argv(str(peers / "uvicorn")),
                          note="default options (access log on)"),
        "uvicorn-nolog": Server("uvicorn-nolog", _uvicorn_argv(str(peers / "uvicorn"), False),
                                note="--no-access-log"),
        "gunicorn": Server("gunicorn", _gunicorn_argv(str(peers / "gunicorn"),
                                                      args.gunicorn_threads),
                           note=f"-k gthread --threads {args.gunicorn_threads}"),
        "ours-w1": Server("ours-w1", _granian_argv(ours), pin=False),
        "ours-w2": Server("ours-w2", _granian_argv(ours, workers=2), pin=False),
        "ours-nolog": Server("ours-nolog", _granian_argv(ours, ("--no-access-log",))),
        "ours-log": Server("ours-log", _granian_argv(ours, ("--access-log",))),
        "ours-default": Server("ours-default", _granian_argv(ours)),
        "ours-opt": Server("ours-opt", _granian_argv(ours, ("--opt",))),
        "ours-health": Server("ours-health", _granian_argv(ours, ("--health-path", "/healthz"))),
    }
    return s


def select_scenarios(spec: str) -> list[Scenario]:
    if spec == "all":
        return list(SCENARIOS)
    chosen: list[Scenario] = []
    for word in spec.split(","):
        word = word.strip()
        hits = [sc for sc in SCENARIOS if sc.key == word or word in sc.groups]
        if not hits:
            keys = ", ".join(sc.key for sc in SCENARIOS)
            sys.exit(f"unknown scenario {word!r}; choose from: all, asgi, rsgi, wsgi, file, "
                     f"modes, issue3, rss, {keys}")
        chosen += [sc for sc in hits if sc not in chosen]
    return [sc for sc in SCENARIOS if sc in chosen]


def versions(args: argparse.Namespace) -> dict[str, str]:
    out = {}
    for name, argv in (("ours", [args.ours, "--version"]),
                       (RUST, [str(args.peers_bin / "granian"), "--version"]),
                       ("uvicorn", [str(args.peers_bin / "uvicorn"), "--version"]),
                       ("gunicorn", [str(args.peers_bin / "gunicorn"), "--version"]),
                       ("wrk", ["wrk", "-v"]), ("h2load", ["h2load", "--version"])):
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=20, cwd=APPS)
            text = (done.stdout + done.stderr).strip().splitlines()
            if done.returncode != 0 and not (text and text[0].startswith(name)):
                out[name] = f"unavailable (exit {done.returncode}: {text[-1] if text else ''})"
            else:
                out[name] = text[0] if text else "?"
        except (OSError, subprocess.TimeoutExpired) as exc:
            out[name] = f"unavailable ({exc})"
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scenarios", default="all",
                   help="comma list of scenario keys or groups (asgi, rsgi, wsgi, file, modes, "
                        "issue3, rss) or 'all' (the default)")
    p.add_argument("--servers", default="",
                   help="comma list to restrict to (ours, granian-rust, uvicorn, gunicorn, "
                        "ours-w1, ours-w2, ours-log, ours-nolog, ours-default, ours-opt, ours-health; "
                        "'ours' includes the ours-* "
                        "variants); default all")
    p.add_argument("--rounds", type=int, default=None, help="rounds per scenario (default 3)")
    p.add_argument("--duration", type=float, default=None,
                   help="seconds per measured wrk run (default 10)")
    p.add_argument("--warmup", type=float, default=None,
                   help="seconds of warm-up before each measured run (default 2)")
    p.add_argument("--rss-requests", type=int, default=None,
                   help="requests for the RSS scenario (default 100000)")
    p.add_argument("--quick", action="store_true",
                   help="short smoke run: 2 rounds, 3 s, 1 s warm-up, 20000 RSS requests "
                        "(explicit flags still win)")
    p.add_argument("--ours", default=str(REPO / ".venv" / "bin" / "granian"),
                   help="our server's executable (default: the repo's .venv/bin/granian)")
    p.add_argument("--peers-bin", type=Path, default=PEERS / "bin",
                   help="bin/ of the peers' virtualenv (default: loadtests/.peers/bin)")
    p.add_argument("--gunicorn-threads", type=int, default=4,
                   help="gunicorn -k gthread --threads for the WSGI comparison (default 4)")
    p.add_argument("--no-pin", action="store_true", help="do not use taskset at all")
    p.add_argument("--startup-timeout", type=float, default=30.0,
                   help="seconds a server gets to answer its first request (default 30)")
    p.add_argument("--output", type=Path, default=None,
                   help="JSON file for the raw results (default results/<timestamp>.json)")
    p.add_argument("-v", "--verbose", action="store_true", help="print each run as it ends")
    args = p.parse_args(argv)
    quick = {"rounds": 2, "duration": 3.0, "warmup": 1.0, "rss_requests": 20000}
    full = {"rounds": 3, "duration": 10.0, "warmup": 2.0, "rss_requests": 100000}
    for k, v in (quick if args.quick else full).items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.rounds < 1 or args.duration < 1:
        p.error("--rounds and --duration must be at least 1")
    return args


LOCK_PATH = Path(tempfile.gettempdir()) / "granian-loadtests.lock"


def acquire_machine_lock() -> Any:
    """Serialise harness runs on this machine: two runs pinned to the same
    CPUs would each measure the other. Held until the process exits."""
    fh = open(LOCK_PATH, "a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        holder = fh.read().strip() or "?"
        print(f"waiting for another loadtests run to finish (pid {holder}; lock {LOCK_PATH})",
              file=sys.stderr, flush=True)
        fcntl.flock(fh, fcntl.LOCK_EX)
    fh.truncate(0)
    fh.write(str(os.getpid()))
    fh.flush()
    return fh


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for tool in ("wrk", "h2load", "taskset"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found: run `bash loadtests/run.sh` (it installs it)")
    scenarios = select_scenarios(args.scenarios)
    servers = build_servers(args)
    wanted = {s.strip() for s in args.servers.split(",") if s.strip()}
    pin = not args.no_pin and (os.cpu_count() or 1) >= 2
    if not args.no_pin and not pin:
        print("warning: fewer than 2 CPUs, running unpinned", file=sys.stderr)

    # A SIGTERM to the harness must run the finally blocks like Ctrl-C does.
    def _term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, _term)
    # Also when started in the background by a shell that ignores SIGINT.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    try:
        lock = acquire_machine_lock()
    except KeyboardInterrupt:
        return 130
    RESULTS.mkdir(exist_ok=True)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out_json = args.output or RESULTS / f"{stamp}.json"
    tmp = Path(tempfile.mkdtemp(prefix="granian-loadtest-"))
    opts = Options(rounds=args.rounds, duration=args.duration, warmup=args.warmup,
                   rss_requests=args.rss_requests, pin=pin,
                   startup_timeout=args.startup_timeout, verbose=args.verbose, tmp=tmp,
                   servers=servers)
    opts.file_bytes = os.urandom(FILE_SIZE)
    (tmp / "file50k.bin").write_bytes(opts.file_bytes)
    (tmp / "post16k.lua").write_text(POST_LUA)

    try:
        vers = versions(args)
    except KeyboardInterrupt:
        shutil.rmtree(tmp, ignore_errors=True)
        return 130
    header = [f"# granian load tests — {stamp}", "",
              f"rounds={opts.rounds} duration={opts.duration:g}s warmup={opts.warmup:g}s "
              f"rss-requests={opts.rss_requests} pinned={'yes' if pin else 'no'} "
              f"cpus={os.cpu_count()}; one worker per server unless stated; "
              f"gunicorn -k gthread --threads {args.gunicorn_threads}; "
              f"uvicorn[standard] (httptools + uvloop) with its default options (access log on) "
              f"and, as uvicorn-nolog, with --no-access-log.", "",
              "versions: " + "; ".join(f"{k}: {v}" for k, v in vers.items()), "",
              f"load average before the run: {os.getloadavg()[0]:.2f} (on a shared machine "
              f"anything near or above the CPU count makes the numbers noisy)", ""]
    print("\n".join(header), flush=True)

    report: dict[str, Any] = {"started": stamp, "config": {k: str(v) for k, v in vars(args).items()},
                              "pinned": pin, "versions": vers, "scenarios": {}}
    md = list(header)
    interrupted = False
    try:
        for sc in scenarios:
            # "ours" also selects the ours-* variants of the two comparison modes.
            names = [n for n in sc.servers if not wanted or n in wanted
                     or (n.startswith("ours-") and "ours" in wanted)]
            if not names:
                continue
            runs: list[dict[str, Any]] = []
            broken: set[str] = set()
            for rnd in range(opts.rounds):
                # Rotate the order each round so no server always runs first.
                order = names[rnd % len(names):] + names[:rnd % len(names)]
                for name in order:
                    if name in broken:
                        continue
                    res = run_one(sc, servers[name], rnd, opts)
                    runs.append(res)
                    if "error" in res:
                        # A server that cannot start is not retried this scenario.
                        broken.add(name)
                        print(f"  ! {sc.key} {name} round {rnd}: "
                              f"{res['error'].splitlines()[0]}\n"
                              + "\n".join("    | " + ln for ln in
                                          res.get("log_tail", "").splitlines()[-6:]),
                              file=sys.stderr, flush=True)
                    elif opts.verbose:
                        p99 = f"{res['p99_ms']:.2f} ms" if res["p99_ms"] is not None else "—"
                        print(f"  {sc.key} r{rnd} {name}: {res['rps']:,.0f} req/s p99 {p99} "
                              f"rss {_mib(res['rss_peak'])}", flush=True)
            rows = summarize(sc, names, runs)
            text = table(sc, rows, opts)
            print(text, flush=True)
            md.append(text)
            report["scenarios"][sc.key] = {"title": sc.title, "baseline": sc.baseline,
                                           "summary": rows, "runs": runs}
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted: every started server was stopped; saving partial results",
              file=sys.stderr)
    finally:
        report["interrupted"] = interrupted
        report["loadavg_end"] = os.getloadavg()
        out_json.parent.mkdir(parents=True, exist_ok=True)
        out_json.write_text(json.dumps(report, indent=1))
        out_json.with_suffix(".md").write_text("\n".join(md))
        shutil.rmtree(tmp, ignore_errors=True)
        lock.close()
        print(f"raw results: {out_json} (tables: {out_json.with_suffix('.md')})")
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
