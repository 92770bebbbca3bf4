"""WebSocket echo speed and idle-connection memory: ours vs the Rust granian and uvicorn.

    loadtests/.peers/bin/python loadtests/ws_bench.py                     # 3 rounds x 10 s
    loadtests/.peers/bin/python loadtests/ws_bench.py --rounds 2 --duration 3
    loadtests/.peers/bin/python loadtests/ws_bench.py --servers granian-rust-asgi,uvicorn

The client is picows (PyPI; installed into loadtests/.peers on first use), a Cython
WebSocket client, run by this same script in `--client` mode as a separate process.

Speed scenarios (issue 12): 32 connections, each with exactly one message in flight (send,
wait for the whole echo, send again): `text16` (16-byte text messages) and `bin64k`
(64 KiB binary messages). Per (scenario, round, server): a fresh server, a warm-up
(`--warmup`, 2 s) and a measured window (`--duration`, 10 s) in which the echoes received
are counted. Within a round every server runs once; the order rotates each round. The
table shows the median msg/s over rounds and ratios to the Rust granian ASGI and to
uvicorn (`--ws websockets`).

Idle RSS: the client opens `--idle-connections` (1000) WebSockets, each exchanges one
16-byte message and then stays open and silent; the worker's RSS before (after a warm-up
of a few short sessions) and with all of them open gives bytes per connection.

Method as loadtests/run.py (whose helpers this imports): one worker per server, 127.0.0.1,
a free port, cwd apps/, server `taskset -c 0`, client `taskset -c 1`, process-group stop,
the machine-wide loadtests lock, worker RSS through psutil. JSON goes to loadtests/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as _dt
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run as harness  # noqa: E402  (loadtests/run.py)

RUST_ASGI = "granian-rust-asgi"
UVICORN = "uvicorn"
BASELINES = (RUST_ASGI, UVICORN)


@dataclass(frozen=True)
class WsScenario:
    key: str
    title: str
    kind: str  # "text" or "binary"
    size: int


SCENARIOS = (
    WsScenario("text16", "16-byte text messages echoed, 32 connections x 1 in flight", "text", 16),
    WsScenario("bin64k", "64 KiB binary messages echoed, 32 connections x 1 in flight", "binary", 64 * 1024),
)


@dataclass(frozen=True)
class WsServer:
    name: str
    exe: str  # "ours", "rust" or "uvicorn"
    iface: str
    extra: tuple[str, ...] = ()
    note: str = ""


SERVERS = (
    WsServer("ours-asgi", "ours", "asgi"),
    WsServer("ours-rsgi", "ours", "rsgi"),
    WsServer(RUST_ASGI, "rust", "asgi"),
    WsServer("granian-rust-rsgi", "rust", "rsgi"),
    # The uvicorn figure is with the `websockets` implementation; uvicorn's own
    # default (`--ws auto`) is websockets' sans-I/O protocol since uvicorn 0.35.
    WsServer(UVICORN, "uvicorn", "asgi", ("--ws", "websockets"), "--ws websockets"),
    WsServer("uvicorn-auto", "uvicorn", "asgi", (), "default --ws auto (websockets-sansio)"),
    # Not a competitor: picows's own echo server, the client's ceiling on these CPUs.
    WsServer("picows-ref", "picows", "-", (), "picows echo server: the client's ceiling"),
)
SERVER_NAMES = tuple(s.name for s in SERVERS)


def server_argv(srv: WsServer, port: int, ours: str, peers_bin: Path) -> list[str]:
    module = f"ws_echo_{srv.iface}:app"
    if srv.exe in ("ours", "rust"):
        exe = ours if srv.exe == "ours" else str(peers_bin / "granian")
        # The same flags for both granians, as in run.py; WebSockets are on by default.
        return [
            exe,
            "--interface",
            srv.iface,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            *srv.extra,
            module,
        ]
    if srv.exe == "picows":
        return [str(peers_bin / "python"), "ws_echo_picows.py", str(port)]
    # --no-access-log: both granians log nothing by default (run.py's uvicorn-nolog).
    return [
        str(peers_bin / "uvicorn"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--no-access-log",
        *srv.extra,
        module,
    ]


# ---------------------------------------------------------------- the picows client


def raise_nofile() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit: 1000 sockets exceed the usual 1024 with
    everything else a process has open. Children (the servers) inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


async def _client_echo(
    url: str, connections: int, kind: str, size: int, warmup: float, duration: float
) -> dict[str, Any]:
    from picows import WSListener, WSMsgType, ws_connect

    msg_type = WSMsgType.TEXT if kind == "text" else WSMsgType.BINARY
    payload = (b"x" if kind == "text" else b"\xa5") * size
    stats = {"count": 0, "bad": 0, "closed": 0}

    class Echo(WSListener):  # type: ignore[misc]
        def __init__(self) -> None:
            self.got = 0
            self.first: list[bytes] | None = []

        def on_ws_connected(self, transport: Any) -> None:
            transport.send(msg_type, payload)

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            mt = frame.msg_type
            if mt == WSMsgType.CLOSE:
                transport.disconnect()  # counted in on_ws_disconnected
                return
            if mt == WSMsgType.PING or mt == WSMsgType.PONG:
                return  # picows answers pings itself
            self.got += frame.payload_size
            if self.first is not None:  # the first echo is compared byte for byte
                self.first.append(frame.get_payload_as_bytes())
            if not frame.fin:
                return  # a server may fragment; the message ends at FIN
            if self.first is not None:
                if b"".join(self.first) != payload:
                    stats["bad"] += 1
                self.first = None
            if self.got != size:
                stats["bad"] += 1
            self.got = 0
            stats["count"] += 1
            transport.send(msg_type, payload)

        def on_ws_disconnected(self, transport: Any) -> None:
            stats["closed"] += 1

    conns = await asyncio.gather(*(ws_connect(Echo, url) for _ in range(connections)))
    await asyncio.sleep(warmup)
    c0, t0 = stats["count"], time.perf_counter()
    await asyncio.sleep(duration)
    c1, t1 = stats["count"], time.perf_counter()
    closed = stats["closed"]  # connections the server dropped before the window ended
    for transport, _ in conns:
        transport.disconnect()
    seconds = t1 - t0
    return {
        "messages": c1 - c0,
        "seconds": round(seconds, 3),
        "msg_s": round((c1 - c0) / seconds, 1),
        "bad": stats["bad"],
        "closed": closed,
        "connections": connections,
    }


async def _client_idle(url: str, n: int, parallel: int) -> None:
    from picows import WSListener, WSMsgType, ws_connect

    loop = asyncio.get_running_loop()

    class Idle(WSListener):  # type: ignore[misc]
        def __init__(self) -> None:
            self.echoed: asyncio.Future[None] = loop.create_future()

        def on_ws_connected(self, transport: Any) -> None:
            transport.send(WSMsgType.TEXT, b"x" * 16)

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type == WSMsgType.TEXT and frame.fin and not self.echoed.done():
                self.echoed.set_result(None)

    gate = asyncio.Semaphore(parallel)  # stay under the servers' listen backlogs

    async def one() -> Any:
        async with gate:
            transport, listener = await ws_connect(Idle, url)
            await asyncio.wait_for(listener.echoed, 10)
            return transport

    results = await asyncio.gather(*(one() for _ in range(n)), return_exceptions=True)
    transports = [r for r in results if not isinstance(r, BaseException)]
    errors = [f"{type(r).__name__}: {r}" for r in results if isinstance(r, BaseException)]
    print(json.dumps({"open": len(transports), "failed": len(errors), "errors": errors[:3]}), flush=True)
    # Hold them open, silent, until the bench closes our stdin (it measured the RSS).
    await loop.run_in_executor(None, sys.stdin.read)
    for t in transports:
        t.disconnect()


def client_main(args: argparse.Namespace) -> int:
    raise_nofile()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    url = f"ws://127.0.0.1:{args.port}/"
    if args.idle:
        asyncio.run(_client_idle(url, args.idle, args.idle_parallel))
    else:
        res = asyncio.run(
            _client_echo(url, args.connections, args.kind, args.size, args.warmup, args.duration)
        )
        print(json.dumps(res), flush=True)
    return 0


# ---------------------------------------------------------------- bench side


def parse_client_line(out: str) -> dict[str, Any]:
    """The client's result: the last line of its stdout that is a JSON object."""
    for line in reversed(out.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    raise ValueError("no JSON result in the client's output:\n" + out[-600:])


def client_argv(args: argparse.Namespace, port: int, cpu: int | None, extra: list[str]) -> list[str]:
    argv = [args.client_python, str(Path(__file__).resolve()), "--client", "--port", str(port), *extra]
    return ["taskset", "-c", str(cpu), *argv] if cpu is not None else argv


def ensure_picows(python: str) -> None:
    probe = subprocess.run([python, "-c", "import picows"], capture_output=True)
    if probe.returncode == 0:
        return
    pip = Path(python).with_name("pip")
    print(f"ws_bench: installing picows with {pip}", file=sys.stderr, flush=True)
    subprocess.run([str(pip), "install", "-q", "--disable-pip-version-check", "picows"], check=True)


def start_server(
    srv: WsServer, args: argparse.Namespace, tag: str, pin: bool, tmp: Path
) -> tuple[harness.Running, int]:
    port = harness.free_port()
    argv = server_argv(srv, port, args.ours, args.peers_bin)
    if pin:
        argv = ["taskset", "-c", "0", *argv]
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRANIAN_")}
    env["PYTHONUNBUFFERED"] = "1"
    run = harness.Running(argv, env, tmp / f"{tag}-{srv.name}.log")
    try:
        harness.wait_ready(run, port, "/", b"", args.startup_timeout)
    except BaseException:
        run.stop()
        raise
    time.sleep(0.2)  # let the worker settle after its first answer
    run.remember_workers()
    return run, port


def _failure(run: harness.Running, exc: BaseException) -> str:
    tail = run.log_tail(8)
    hint = [ln.strip() for ln in tail.splitlines() if "Error" in ln or "Exception" in ln]
    return f"{exc}" + (f" ({hint[-1][:160]})" if hint else "")


def run_speed(
    sc: WsScenario, srv: WsServer, rnd: int, args: argparse.Namespace, pin: bool, tmp: Path
) -> dict[str, Any]:
    res: dict[str, Any] = {"scenario": sc.key, "server": srv.name, "round": rnd}
    try:
        run, port = start_server(srv, args, f"{sc.key}-r{rnd}", pin, tmp)
    except Exception as exc:
        res["error"] = f"start: {exc}"
        return res
    try:
        res["argv"] = run.argv
        res["worker_pids"] = [p.pid for p in harness.worker_processes(run.ps)]
        sampler = harness.RssSampler(run.ps)
        sampler.start()
        argv = client_argv(
            args,
            port,
            1 if pin else None,
            [
                "--connections",
                str(args.connections),
                "--kind",
                sc.kind,
                "--size",
                str(sc.size),
                "--warmup",
                str(args.warmup),
                "--duration",
                str(args.duration),
            ],
        )
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=args.warmup + args.duration + 60
            )
        finally:
            sampler.stop()
        if done.returncode != 0:
            raise RuntimeError(f"client exit {done.returncode}: {done.stderr.strip()[-300:]}")
        res.update(parse_client_line(done.stdout))
        res["rss_peak"] = sampler.peak
        if res["messages"] <= 0:
            raise RuntimeError("no echo in the measured window")
        if run.proc.poll() is not None:
            raise RuntimeError(f"server exited during the run (status {run.proc.returncode})")
    except Exception as exc:
        res["error"] = _failure(run, exc)
        res["log_tail"] = run.log_tail()
    finally:
        run.stop()
    return res


def worker_rss(run: harness.Running) -> int:
    total = 0
    for p in harness.worker_processes(run.ps):
        try:
            total += p.memory_info().rss
        except Exception:
            pass
    return total


def run_idle(srv: WsServer, rnd: int, args: argparse.Namespace, pin: bool, tmp: Path) -> dict[str, Any]:
    res: dict[str, Any] = {
        "scenario": "idle",
        "server": srv.name,
        "round": rnd,
        "connections": args.idle_connections,
    }
    try:
        run, port = start_server(srv, args, f"idle-r{rnd}", pin, tmp)
    except Exception as exc:
        res["error"] = f"start: {exc}"
        return res
    client = None
    try:
        res["argv"] = run.argv
        cpu = 1 if pin else None
        # Warm-up: a few short sessions load whatever a first WebSocket loads lazily
        # (modules, codec buffers), so the difference below is per connection.
        warm = subprocess.run(
            client_argv(
                args,
                port,
                cpu,
                [
                    "--connections",
                    "4",
                    "--kind",
                    "text",
                    "--size",
                    "16",
                    "--warmup",
                    "0",
                    "--duration",
                    "0.3",
                ],
            ),
            capture_output=True,
            text=True,
            timeout=60,
        )
        if warm.returncode != 0:
            raise RuntimeError(f"warm-up client exit {warm.returncode}: {warm.stderr[-300:]}")
        time.sleep(0.5)
        res["rss_before"] = worker_rss(run)
        client = subprocess.Popen(
            client_argv(args, port, cpu, ["--idle", str(args.idle_connections)]),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert client.stdout is not None
        line = client.stdout.readline()
        if not line:
            raise RuntimeError(
                f"idle client ended early: {client.stderr.read()[-300:] if client.stderr else ''}"
            )
        status = parse_client_line(line)
        res["open"] = status["open"]
        if status["failed"]:
            res["client_errors"] = status["errors"]
        time.sleep(1.0)  # let the server finish its per-connection setup
        res["rss_with"] = worker_rss(run)
        if res["open"] < args.idle_connections:
            raise RuntimeError(
                f"only {res['open']} of {args.idle_connections} connections opened: {status['errors']}"
            )
        res["bytes_per_conn"] = (res["rss_with"] - res["rss_before"]) / res["open"]
        if run.proc.poll() is not None:
            raise RuntimeError(f"server exited during the run (status {run.proc.returncode})")
    except Exception as exc:
        res["error"] = _failure(run, exc)
        res["log_tail"] = run.log_tail()
    finally:
        if client is not None:
            try:
                assert client.stdin is not None
                client.stdin.close()
                client.wait(timeout=15)
            except Exception:
                pass
            if client.poll() is None:
                os.killpg(client.pid, signal.SIGKILL)
                client.wait(timeout=5)
        run.stop()
    return res


# ---------------------------------------------------------------- summary


def _median(values: list[float]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def summarize_speed(names: list[str], runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Median msg/s per server over its good rounds, spread, ratios to the baselines."""
    rows = []
    for name in names:
        mine = [r for r in runs if r["server"] == name]
        ok = [r for r in mine if "error" not in r]
        row: dict[str, Any] = {"server": name, "runs": len(ok), "failed": len(mine) - len(ok)}
        if mine and not ok:
            row["error"] = mine[-1]["error"]
        if ok:
            rates = [r["msg_s"] for r in ok]
            row["msg_s"] = _median(rates)
            row["spread"] = (max(rates) - min(rates)) / row["msg_s"] if row["msg_s"] else None
            row["rss_peak"] = _median([r.get("rss_peak") for r in ok])
            # Echoes that came back wrong plus connections the server dropped: should be 0.
            row["errors"] = sum(r.get("bad", 0) + r.get("closed", 0) for r in ok)
        rows.append(row)
    for base in BASELINES:
        b = next((r for r in rows if r["server"] == base and r.get("msg_s")), None)
        for row in rows:
            row[f"vs_{base}"] = row["msg_s"] / b["msg_s"] if b and "msg_s" in row else None
    return rows


def summarize_idle(names: list[str], runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for name in names:
        mine = [r for r in runs if r["server"] == name]
        ok = [r for r in mine if "error" not in r]
        row: dict[str, Any] = {"server": name, "runs": len(ok), "failed": len(mine) - len(ok)}
        if mine and not ok:
            row["error"] = mine[-1]["error"]
        if ok:
            row["rss_before"] = _median([r["rss_before"] for r in ok])
            row["rss_with"] = _median([r["rss_with"] for r in ok])
            row["bytes_per_conn"] = _median([r["bytes_per_conn"] for r in ok])
        rows.append(row)
    b = next((r for r in rows if r["server"] == RUST_ASGI and r.get("bytes_per_conn")), None)
    for row in rows:
        row[f"vs_{RUST_ASGI}"] = (
            row["bytes_per_conn"] / b["bytes_per_conn"] if b and "bytes_per_conn" in row else None
        )
    return rows


def _x(v: float | None) -> str:
    return "—" if v is None else f"{v:.2f}×"


def _mib(v: float | None) -> str:
    return "—" if v is None else f"{v / 2**20:.1f} MiB"


def _failed_cell(row: dict[str, Any]) -> str:
    why = (row.get("error") or "not run").splitlines()[0][:150].replace("|", "/")
    return f"failed: {why}"


def speed_table(
    sc: WsScenario, rows: list[dict[str, Any]], rounds: int, duration: float, pinned: bool
) -> str:
    pin = "server on CPU 0, client on CPU 1" if pinned else "NOT pinned"
    out = [
        f"### ws-{sc.key}: {sc.title}",
        "",
        f"picows client, {duration:g} s measured per run, {pin}; medians over {rounds} "
        f"round(s). Ratios are msg/s / the row named (higher is better).",
        "",
        f"| server | msg/s | vs {RUST_ASGI} | vs {UVICORN} | peak worker RSS | errors | spread |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        name = f"**{r['server']}**" if r["server"] in BASELINES else r["server"]
        if "msg_s" not in r:
            out.append(f"| {name} | {_failed_cell(r)} | | | | | |")
            continue
        spread = "—" if r["spread"] is None else f"{r['spread'] * 100:.0f}%"
        out.append(
            f"| {name} | {r['msg_s']:,.0f} | {_x(r[f'vs_{RUST_ASGI}'])} | "
            f"{_x(r[f'vs_{UVICORN}'])} | {_mib(r['rss_peak'])} | {r['errors']} | {spread} |"
        )
    return "\n".join(out) + "\n"


def idle_table(rows: list[dict[str, Any]], n: int, rounds: int) -> str:
    out = [
        f"### ws-idle: worker RSS with {n} open idle WebSockets",
        "",
        f"each connection exchanged one 16-byte message, then stays silent; medians over "
        f"{rounds} round(s); per connection = (RSS with - RSS before) / {n}.",
        "",
        f"| server | RSS before | RSS with {n} | bytes per connection | vs {RUST_ASGI} |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        name = f"**{r['server']}**" if r["server"] == RUST_ASGI else r["server"]
        if "bytes_per_conn" not in r:
            out.append(f"| {name} | {_failed_cell(r)} | | | |")
            continue
        out.append(
            f"| {name} | {_mib(r['rss_before'])} | {_mib(r['rss_with'])} | "
            f"{r['bytes_per_conn']:,.0f} | {_x(r[f'vs_{RUST_ASGI}'])} |"
        )
    return "\n".join(out) + "\n"


def rotated(names: list[str], rnd: int) -> list[str]:
    k = rnd % len(names) if names else 0
    return names[k:] + names[:k]


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--servers",
        default=",".join(SERVER_NAMES),
        help=f"comma list from {', '.join(SERVER_NAMES)} (default all)",
    )
    p.add_argument(
        "--scenarios",
        default="text16,bin64k,idle",
        help="comma list from text16, bin64k, idle (default all three)",
    )
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=10.0, help="measured seconds per run")
    p.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per run")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--idle-connections", type=int, default=1000)
    p.add_argument(
        "--idle-parallel",
        type=int,
        default=64,
        help="handshakes in flight while opening the idle connections",
    )
    p.add_argument("--ours", default=str(harness.REPO / ".venv" / "bin" / "granian"))
    p.add_argument("--peers-bin", type=Path, default=harness.PEERS / "bin")
    p.add_argument(
        "--client-python",
        default=sys.executable,
        help="interpreter with picows for the client (default this one)",
    )
    p.add_argument("--no-pin", action="store_true")
    p.add_argument("--startup-timeout", type=float, default=30.0)
    p.add_argument(
        "--output",
        type=Path,
        default=None,
        help="JSON results (default loadtests/results/ws-<timestamp>.json)",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="print every run as it ends")
    # client mode (run by the bench itself, pinned to CPU 1)
    p.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--kind", default="text", help=argparse.SUPPRESS)
    p.add_argument("--size", type=int, default=16, help=argparse.SUPPRESS)
    p.add_argument("--idle", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.client:
        return args
    args.server_list = [s.strip() for s in args.servers.split(",") if s.strip()]
    unknown = [s for s in args.server_list if s not in SERVER_NAMES]
    if unknown:
        p.error(f"unknown server(s) {unknown}; choose from {', '.join(SERVER_NAMES)}")
    args.scenario_list = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    keys = [sc.key for sc in SCENARIOS] + ["idle"]
    if any(s not in keys for s in args.scenario_list):
        p.error(f"--scenarios takes {', '.join(keys)}")
    if args.rounds < 1 or args.duration <= 0:
        p.error("--rounds must be at least 1 and --duration positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.client:
        return client_main(args)

    def _term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _term)
    signal.signal(signal.SIGINT, signal.default_int_handler)

    ensure_picows(args.client_python)
    nofile = raise_nofile()
    if "idle" in args.scenario_list and nofile < args.idle_connections + 100:
        sys.exit(f"RLIMIT_NOFILE is {nofile}: too low for {args.idle_connections} connections")
    pin = not args.no_pin and (os.cpu_count() or 1) >= 2
    try:
        lock = harness.acquire_machine_lock()
    except KeyboardInterrupt:
        return 130
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix="granian-wsbench-"))
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out_json = args.output or harness.RESULTS / f"ws-{stamp}.json"
    servers = {s.name: s for s in SERVERS}
    names = list(args.server_list)
    header = (
        f"# WebSocket bench — {stamp}\n\nrounds={args.rounds} duration={args.duration:g}s "
        f"warmup={args.warmup:g}s connections={args.connections} pinned={'yes' if pin else 'no'} "
        f"load average {os.getloadavg()[0]:.2f}; servers: "
        + "; ".join(f"{n}{' (' + servers[n].note + ')' if servers[n].note else ''}" for n in names)
        + "\n"
    )
    print(header, flush=True)
    report: dict[str, Any] = {
        "started": stamp,
        "config": {k: str(v) for k, v in vars(args).items()},
        "pinned": pin,
        "scenarios": {},
    }
    md = [header]
    interrupted = False
    try:
        for sc in SCENARIOS:
            if sc.key not in args.scenario_list:
                continue
            runs: list[dict[str, Any]] = []
            broken: set[str] = set()
            for rnd in range(args.rounds):
                for name in rotated(names, rnd):
                    if name in broken:
                        continue
                    res = run_speed(sc, servers[name], rnd, args, pin, tmp)
                    runs.append(res)
                    if "error" in res:
                        broken.add(name)  # not retried in this scenario, as run.py
                        print(f"  ! {sc.key} {name} round {rnd}: {res['error']}", file=sys.stderr, flush=True)
                    elif args.verbose:
                        print(
                            f"  {sc.key} r{rnd} {name}: {res['msg_s']:,.0f} msg/s (bad {res['bad']})",
                            flush=True,
                        )
            rows = summarize_speed(names, runs)
            text = speed_table(sc, rows, args.rounds, args.duration, pin)
            print(text, flush=True)
            md.append(text)
            report["scenarios"][sc.key] = {"title": sc.title, "summary": rows, "runs": runs}
        if "idle" in args.scenario_list:
            runs = []
            broken = set()
            for rnd in range(args.rounds):
                for name in rotated(names, rnd):
                    if name in broken:
                        continue
                    res = run_idle(servers[name], rnd, args, pin, tmp)
                    runs.append(res)
                    if "error" in res:
                        broken.add(name)
                        print(f"  ! idle {name} round {rnd}: {res['error']}", file=sys.stderr, flush=True)
                    elif args.verbose:
                        print(f"  idle r{rnd} {name}: {res['bytes_per_conn']:,.0f} B/conn", flush=True)
            rows = summarize_idle(names, runs)
            text = idle_table(rows, args.idle_connections, args.rounds)
            print(text, flush=True)
            md.append(text)
            report["scenarios"]["idle"] = {"summary": rows, "runs": runs}
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted: every started server was stopped; saving partial results", file=sys.stderr)
    finally:
        report["interrupted"] = interrupted
        report["loadavg_end"] = os.getloadavg()
        out_json.parent.mkdir(parents=True, exist_ok=True)
        out_json.write_text(json.dumps(report, indent=1))
        out_json.with_suffix(".md").write_text("\n".join(md))
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        lock.close()
        print(f"raw results: {out_json} (tables: {out_json.with_suffix('.md')})")
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
