"""HTTP/2 (h2c prior knowledge) throughput and worker RSS: ours vs the Rust granian vs hypercorn.

    .venv/bin/python loadtests/h2_bench.py [--quick] [--servers ours-asgi,granian-rust-asgi]

Each server runs one worker, pinned `taskset -c 0`; h2load (`-c16 -m10`, one thread) runs on
`taskset -c 1`. Scenarios: GET `/` (`Hello, world!`), a 16 KiB POST echoed back, a 64 KiB GET.
The machine-wide load lock of run.py is held for the whole run (one load run at a time).
Helpers come from run.py by import (process control, RSS sampling, h2load's summary parser).

Prints one table per scenario (median req/s over the rounds, the ratio to the Rust granian,
the worker's peak RSS) and h2load's own summary lines, whose `0 failed, 0 errored` is the
correctness check; a round with any failed or errored request is reported as such.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import (  # noqa: E402
    APPS,
    PEERS,
    REPO,
    RESULTS,
    RssSampler,
    Running,
    acquire_machine_lock,
    free_port,
    parse_h2load,
    worker_processes,
)

HELLO = b"Hello, world!"
ECHO = 16 * 1024
BIG = 64 * 1024


@dataclass(frozen=True)
class H2Server:
    name: str
    iface: str
    argv: list[str]  # with {port}


def servers(ours: str, peers: Path) -> list[H2Server]:
    def granian(exe: str, iface: str) -> list[str]:
        module = {"asgi": "asgi_app:app", "rsgi": "rsgi_app:app"}[iface]
        return [
            exe,
            "--interface",
            iface,
            "--http",
            "2",
            "--host",
            "127.0.0.1",
            "--port",
            "{port}",
            "--workers",
            "1",
            module,
        ]

    return [
        H2Server("ours-asgi", "asgi", granian(ours, "asgi")),
        H2Server("granian-rust-asgi", "asgi", granian(str(peers / "granian"), "asgi")),
        H2Server("ours-rsgi", "rsgi", granian(ours, "rsgi")),
        H2Server("granian-rust-rsgi", "rsgi", granian(str(peers / "granian"), "rsgi")),
        H2Server(
            "hypercorn-asgi",
            "asgi",
            # -c: keep_alive_max_requests off (hypercorn closes a connection after 1000
            # requests by default, and h2load does not reconnect: every later request fails)
            [
                str(peers / "hypercorn"),
                "--bind",
                "127.0.0.1:{port}",
                "--workers",
                "1",
                "-c",
                "{tmp}/hypercorn.toml",
                "asgi_app:app",
            ],
        ),
    ]


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    path: str
    data: bool = False  # POST the 16 KiB file
    want: bytes = HELLO


SCENARIOS = (
    Scenario("get", "h2c GET / (`Hello, world!`)", "/"),
    Scenario("echo16k", "h2c 16 KiB POST echoed", "/echo", data=True, want=b"x" * ECHO),
    Scenario("get64k", "h2c 64 KiB GET", "/64k", want=b"x" * BIG),
)


def curl_h2(port: int, path: str, data: Path | None) -> tuple[str, bytes]:
    argv = ["curl", "-s", "--http2-prior-knowledge", "-w", "\n%{http_version}", "-m", "3"]
    if data is not None:
        argv += ["--data-binary", f"@{data}"]
    done = subprocess.run([*argv, f"http://127.0.0.1:{port}{path}"], capture_output=True, timeout=10)
    body, _, version = done.stdout.rpartition(b"\n")
    return version.decode(), body


def wait_ready(run: Running, port: int, sc: Scenario, data: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if run.proc.poll() is not None:
            raise RuntimeError(f"exited {run.proc.returncode}: {run.log_tail()}")
        version, body = curl_h2(port, sc.path, data if sc.data else None)
        if version == "2":
            if body.strip() != sc.want.strip():
                raise RuntimeError(f"wrong answer on {sc.path}: {len(body)} bytes")
            return
        time.sleep(0.2)
    raise RuntimeError("not ready")


def h2load(port: int, sc: Scenario, n: int, data: Path, cpu: int | None) -> tuple[dict[str, Any], str]:
    argv = ["h2load", "-c16", "-m10", "-t1", "-n", str(n)]
    if sc.data:
        argv += ["-d", str(data), "-H", "content-type: application/octet-stream"]
    argv.append(f"http://127.0.0.1:{port}{sc.path}")
    if cpu is not None:
        argv = ["taskset", "-c", str(cpu), *argv]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"h2load failed: {done.stderr[-300:]}")
    return parse_h2load(done.stdout), done.stdout


def cpu_seconds(root: psutil.Process) -> float:
    """User + system CPU of the serving processes (all their threads): a per-request cost that
    holds up better than req/s on a machine shared with other work."""
    total = 0.0
    for p in worker_processes(root):
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def summary_lines(out: str) -> str:
    keep = ("finished in", "requests:", "status codes:", "traffic:")
    return "\n".join(line for line in out.splitlines() if line.strip().startswith(keep))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="2 rounds of 20000 requests")
    p.add_argument("--rounds", type=int, default=None)
    p.add_argument("-n", type=int, default=None, help="requests per measured run (default 200000)")
    p.add_argument("--servers", default="", help="comma list of server names (default all)")
    p.add_argument("--scenarios", default="get,echo16k,get64k")
    p.add_argument("--ours", default=str(REPO / ".venv" / "bin" / "granian"))
    p.add_argument("--peers-bin", type=Path, default=PEERS / "bin")
    p.add_argument("--engine", default="", help="GRANIAN_HTTP2_ENGINE for ours (nghttp2, h2)")
    p.add_argument("--output", type=Path, default=None)
    args = p.parse_args()
    rounds = args.rounds or (2 if args.quick else 3)
    n = args.n or (20000 if args.quick else 200000)
    for tool in ("h2load", "taskset", "curl"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found: run `bash loadtests/setup.sh`")
    chosen = [
        s for s in servers(args.ours, args.peers_bin) if not args.servers or s.name in args.servers.split(",")
    ]
    chosen = [s for s in chosen if Path(s.argv[0]).exists() or shutil.which(s.argv[0])]
    scenarios = [sc for sc in SCENARIOS if sc.key in args.scenarios.split(",")]
    lock = acquire_machine_lock()
    tmp = Path(tempfile.mkdtemp(prefix="h2bench-"))
    data = tmp / "post16k.bin"
    data.write_bytes(b"x" * ECHO)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRANIAN_")}
    env["PYTHONPATH"] = str(APPS)
    env["LOADTEST_FILE"] = str(tmp / "file50k.bin")
    (tmp / "file50k.bin").write_bytes(b"f" * 50 * 1024)
    (tmp / "hypercorn.toml").write_text("keep_alive_max_requests = 1000000000\n")
    results: list[dict[str, Any]] = []
    try:
        for sc in scenarios:
            rows: dict[str, list[dict[str, Any]]] = {s.name: [] for s in chosen}
            for rnd in range(rounds):
                order = chosen if rnd % 2 == 0 else list(reversed(chosen))
                for srv in order:
                    port = free_port()
                    argv = [
                        "taskset",
                        "-c",
                        "0",
                        *[a.replace("{port}", str(port)).replace("{tmp}", str(tmp)) for a in srv.argv],
                    ]
                    senv = dict(env)
                    if args.engine and srv.name.startswith("ours"):
                        senv["GRANIAN_HTTP2_ENGINE"] = args.engine
                    run = Running(argv, senv, tmp / f"{srv.name}-{sc.key}-{rnd}.log")
                    try:
                        wait_ready(run, port, sc, data)
                        run.remember_workers()
                        h2load(port, sc, max(2000, n // 10), data, 1)  # warm-up
                        root = psutil.Process(run.proc.pid)
                        sampler = RssSampler(root)
                        sampler.start()
                        cpu0 = cpu_seconds(root)
                        res, out = h2load(port, sc, n, data, 1)
                        cpu = cpu_seconds(root) - cpu0
                        sampler.stop()
                        res.update(
                            server=srv.name,
                            scenario=sc.key,
                            round=rnd,
                            rss=sampler.peak,
                            cpu_us=cpu / n * 1e6,
                            summary=summary_lines(out),
                        )
                        rows[srv.name].append(res)
                        results.append(res)
                        print(
                            f"[{sc.key}] {srv.name} round {rnd}: {res['rps']:.0f} req/s, "
                            f"{res['non_2xx']} failed, {res['socket_errors']} errored, "
                            f"rss {sampler.peak / 2**20:.1f} MiB, {res['cpu_us']:.1f} us CPU/request",
                            flush=True,
                        )
                    except Exception as exc:  # noqa: BLE001 - report and go on with the others
                        print(f"[{sc.key}] {srv.name} round {rnd}: FAILED {exc}", flush=True)
                    finally:
                        run.stop()
            print(f"\n### {sc.title} (h2load -c16 -m10 -t1 -n {n}, median of {rounds})")
            print("| server | req/s | vs Rust granian | CPU us/req | failed | errored | worker RSS MiB |")
            print("|---|---|---|---|---|---|---|")
            for srv in chosen:
                got = rows[srv.name]
                if not got:
                    print(f"| {srv.name} | failed | | | | | |")
                    continue
                rps = statistics.median(r["rps"] for r in got)
                rust = rows.get(f"granian-rust-{srv.iface}") or []
                base = statistics.median(r["rps"] for r in rust) if rust else None
                ratio = f"{rps / base:.2f}x" if base else "-"
                failed = sum(r["non_2xx"] for r in got)
                errored = sum(r["socket_errors"] for r in got)
                rss = max(r["rss"] for r in got) / 2**20
                cpu_us = statistics.median(r["cpu_us"] for r in got)
                print(
                    f"| {srv.name} | {rps:.0f} | {ratio} | {cpu_us:.1f} | {failed} | {errored} | {rss:.1f} |"
                )
            for srv in chosen:
                if rows[srv.name]:
                    print(f"\n{srv.name}, last round:\n{rows[srv.name][-1]['summary']}")
            print(flush=True)
    finally:
        lock.close()
    out_path = args.output or RESULTS / f"h2-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(results, indent=1))
    print(f"raw results: {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
