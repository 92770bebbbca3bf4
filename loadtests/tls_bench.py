"""TLS speed, side by side (issue 13): ours (ASGI) vs the Rust granian vs uvicorn[standard].

    .venv/bin/python loadtests/tls_bench.py [--rounds 3] [--duration 10] [--quick] [-v]

One worker each on 127.0.0.1, the server under `taskset -c 0`, wrk under `taskset -c 1`, the
same EC P-256 certificate (trustme, 90 days, PKCS#8 key: the Rust granian reads no other key
format) and each server's default TLS settings (both granians: TLS 1.3 minimum; uvicorn also
allows TLS 1.2, and wrk picks 1.3). Two loads, GET `/` -> `Hello, world!`:

- `keepalive`: `wrk -t1 -c64 -d10s --latency https://127.0.0.1:PORT/`, HTTPS on 64 kept
  connections (the record layer's cost);
- `handshake`: the same with `-H 'Connection: close'`: every request is a new connection and a
  new TLS handshake (the handshake's cost).

A fresh server per (load, round, server); the order of the servers rotates each round; the
medians over the rounds are compared as ours / Rust granian and ours / uvicorn against the
issue's targets. Before the first measured run of each (load, server), a 1 s `wrk -c1` runs
under strace: the ServerHellos it reads show the TLS version the server chose and whether it
resumed a session (a TLS 1.3 pre_shared_key), so "TLS 1.3" and "a full handshake" are checked,
not assumed. Reuses loadtests/run.py's process control, wrk parser and machine lock.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import (  # noqa: E402 - loadtests/ is not a package
    HELLO,
    PEERS,
    REPO,
    RESULTS,
    Running,
    acquire_machine_lock,
    free_port,
    parse_wrk,
    server_env,
)

RUST = "granian-rust"
SERVERS = ("ours", RUST, "uvicorn")
LOADS: dict[str, list[str]] = {
    "keepalive": [],
    "handshake": ["-H", "Connection: close"],
    "full-handshake": [],
}
# `full-handshake` is not wrk (which resumes, see above) but S_TIME_CLIENTS parallel
# `openssl s_time -new -www /` clients: each connection a full TLS 1.3 handshake, no session
# reused, an HTTP/1.0 GET, the close. Off by default (--loads); its client side costs about
# what the server's does, so the figure is bounded by the client core as much as the server.
S_TIME_CLIENTS = 16
DEFAULT_LOADS = "keepalive,handshake"
# The issue's targets: (load, peer, minimum ratio ours / peer).
TARGETS = (("keepalive", RUST, 1.2), ("handshake", RUST, 0.8), ("handshake", "uvicorn", 1.2))


# ---------------------------------------------------------------- servers and certificate


@dataclass(frozen=True)
class Cert:
    cert: Path
    key: Path  # PKCS#8
    ca: Path


def make_cert(where: Path) -> Cert:
    import trustme
    from cryptography.hazmat.primitives import serialization

    ca = trustme.CA(key_type=trustme.KeyType.ECDSA)  # ECDSA is P-256 in trustme
    now = _dt.datetime.now(_dt.timezone.utc)
    leaf = ca.issue_cert(
        "127.0.0.1",
        "localhost",
        key_type=trustme.KeyType.ECDSA,
        not_before=now - _dt.timedelta(days=1),
        not_after=now + _dt.timedelta(days=89),
    )
    paths = Cert(where / "cert.pem", where / "key.pem", where / "ca.pem")
    leaf.cert_chain_pems[0].write_to_path(str(paths.cert))
    key = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), password=None)
    paths.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    ca.cert_pem.write_to_path(str(paths.ca))
    return paths


def server_argv(name: str, port: int, cert: Cert, ours: str, peers_bin: Path) -> list[str]:
    tls = ["--ssl-certificate", str(cert.cert), "--ssl-keyfile", str(cert.key)]
    if name in ("ours", RUST):
        exe = ours if name == "ours" else str(peers_bin / "granian")
        # the same flags for both granians (loadtests/run.py), plus the certificate
        return [exe, "--interface", "asgi", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"] + [
            *tls,
            "asgi_app:app",
        ]
    if name == "uvicorn":
        # --no-access-log: both granians log nothing by default either
        uvicorn = [str(peers_bin / "uvicorn"), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
        return (
            uvicorn
            + ["--no-access-log", "--ssl-certfile", str(cert.cert), "--ssl-keyfile", str(cert.key)]
            + ["asgi_app:app"]
        )
    raise ValueError(name)


def https_get(port: int, ca: Path, timeout: float = 3.0) -> tuple[str, bytes, str | None]:
    """GET / over TLS (Connection: close): status line, body, TLS version."""
    ctx = ssl.create_default_context(cafile=str(ca))
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
            version = s.version()
    head, _, body = data.partition(b"\r\n\r\n")
    if b"chunked" in head.lower():
        body = dechunk(body)
    return head.split(b"\r\n", 1)[0].decode(errors="replace"), body, version


def dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out, data = out + data[:size], data[size + 2 :]
    return out


def wait_tls_ready(run: Running, port: int, ca: Path, timeout: float) -> str | None:
    """Poll until GET / over TLS answers 200 `Hello, world!`; the TLS version it used."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if run.proc.poll() is not None:
            raise RuntimeError(f"exited with status {run.proc.returncode}")
        try:
            status, body, version = https_get(port, ca)
        except (OSError, ValueError) as exc:
            last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.1)
            continue
        if " 200 " not in status + " " or body != HELLO:
            raise RuntimeError(f"wrong answer: {status!r}, body {body[:60]!r}")
        return version
    raise RuntimeError(f"not ready after {timeout:.0f}s ({last})")


# ---------------------------------------------------------------- what wrk negotiated (strace)

# strace -xx prints every byte of a read as \xHH; a connect() starts a new stream on its fd.
_STRACE_LINE = re.compile(
    r'^(?:\d+\s+)?(?:(read|recvfrom)\((\d+), "((?:\\x[0-9a-f]{2})*)"|connect\((\d+),)', re.M
)
# RFC 8446 §4.1.3: a HelloRetryRequest is a ServerHello with this random.
HRR_RANDOM = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")
EXT_SUPPORTED_VERSIONS = 0x002B  # RFC 8446 §4.2.1
EXT_PRE_SHARED_KEY = 0x0029  # RFC 8446 §4.2.11


def strace_streams(text: str) -> list[bytes]:
    """What the client read on each connection, from `strace -xx -e trace=read,recvfrom,connect`
    output: the reads of one fd concatenated until the next connect() on it."""
    streams: list[bytes] = []
    current: dict[int, bytearray] = {}
    for m in _STRACE_LINE.finditer(text):
        if m.group(4) is not None:  # connect(fd, ...): a new connection on this fd
            fd = int(m.group(4))
            if current.get(fd):
                streams.append(bytes(current[fd]))
            current[fd] = bytearray()
            continue
        fd = int(m.group(2))
        current.setdefault(fd, bytearray()).extend(bytes.fromhex(m.group(3).replace("\\x", "")))
    streams.extend(bytes(b) for b in current.values() if b)
    return streams


def tls_records(stream: bytes) -> list[tuple[int, bytes]]:
    """(content type, fragment) of each TLS record of a stream (RFC 8446 §5.1), up to the first
    bytes that are not a record header."""
    out = []
    pos = 0
    while pos + 5 <= len(stream):
        ctype, major, length = stream[pos], stream[pos + 1], int.from_bytes(stream[pos + 3 : pos + 5], "big")
        if ctype not in (20, 21, 22, 23) or major != 3 or pos + 5 + length > len(stream):
            break
        out.append((ctype, stream[pos + 5 : pos + 5 + length]))
        pos += 5 + length
    return out


def server_hello(fragment: bytes) -> dict[str, Any] | None:
    """The ServerHello at the start of a handshake record's fragment (RFC 8446 §4.1.3,
    RFC 5246 §7.4.1.3): the version chosen, whether a PSK was accepted (a resumed TLS 1.3
    session), whether it is a HelloRetryRequest. None if it is not one."""
    if len(fragment) < 4 or fragment[0] != 0x02:
        return None
    body = fragment[4:]
    try:
        legacy = int.from_bytes(body[0:2], "big")
        random = body[2:34]
        pos = 34
        pos += 1 + body[pos]  # legacy_session_id_echo
        pos += 2 + 1  # cipher_suite, legacy_compression_method
        exts: dict[int, bytes] = {}
        if pos + 2 <= len(body):
            end = pos + 2 + int.from_bytes(body[pos : pos + 2], "big")
            pos += 2
            while pos + 4 <= min(end, len(body)):
                etype = int.from_bytes(body[pos : pos + 2], "big")
                elen = int.from_bytes(body[pos + 2 : pos + 4], "big")
                exts[etype] = body[pos + 4 : pos + 4 + elen]
                pos += 4 + elen
    except IndexError:
        return None
    sv = exts.get(EXT_SUPPORTED_VERSIONS)
    version = int.from_bytes(sv, "big") if sv is not None and len(sv) == 2 else legacy
    return {"version": version, "resumed": EXT_PRE_SHARED_KEY in exts, "hrr": random == HRR_RANDOM}


def handshake_facts(strace_text: str) -> dict[str, int]:
    """Counts over the ServerHellos the client read: total, TLS 1.3, resumed, retries."""
    hellos = []
    for stream in strace_streams(strace_text):
        for ctype, fragment in tls_records(stream):
            hello = server_hello(fragment) if ctype == 22 else None
            if hello is not None:
                hellos.append(hello)
    final = [h for h in hellos if not h["hrr"]]
    return {
        "server_hellos": len(final),
        "tls13": sum(1 for h in final if h["version"] == 0x0304),
        "resumed": sum(1 for h in final if h["resumed"]),
        "hello_retries": len(hellos) - len(final),
    }


def check_negotiation(port: int, extra: list[str], cpu: int | None) -> dict[str, Any]:
    if shutil.which("strace") is None:
        return {"error": "strace not installed"}
    with tempfile.NamedTemporaryFile(prefix="tls-bench-strace-", suffix=".txt") as out:
        argv = ["strace", "-f", "-xx", "-s", "65536", "-e", "trace=read,recvfrom,connect", "-o", out.name]
        argv += ["wrk", "-t1", "-c1", "-d1s", *extra, f"https://127.0.0.1:{port}/"]
        done = subprocess.run(_pin(argv, cpu), capture_output=True, text=True, timeout=60)
        facts: dict[str, Any] = handshake_facts(Path(out.name).read_text(errors="replace"))
    facts["wrk_rc"] = done.returncode
    return facts


# ---------------------------------------------------------------- load


def _pin(argv: list[str], cpu: int | None) -> list[str]:
    return ["taskset", "-c", str(cpu), *argv] if cpu is not None else argv


_S_TIME = re.compile(r"^(\d+) connections in [\d.]+s;", re.M)


def parse_s_time(outputs: list[str], seconds: float) -> dict[str, Any]:
    """The connections of parallel `openssl s_time` runs, as one rate over `seconds`."""
    counts = []
    for out in outputs:
        m = _S_TIME.search(out)
        if m is None:
            raise ValueError("could not parse openssl s_time output:\n" + out[-400:])
        counts.append(int(m.group(1)))
    total = sum(counts)
    return {"rps": total / seconds, "p99_ms": None, "requests": total, "socket_errors": 0, "non_2xx": 0}


def run_s_time(port: int, seconds: float, cpu: int | None) -> tuple[dict[str, Any], str]:
    t = max(1, round(seconds))
    argv = ["openssl", "s_time", "-connect", f"127.0.0.1:{port}", "-new", "-time", str(t), "-www", "/"]
    procs = [
        subprocess.Popen(_pin(argv, cpu), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(S_TIME_CLIENTS)
    ]
    outs = []
    for p in procs:
        try:
            out, _ = p.communicate(timeout=t + 60)
        except subprocess.TimeoutExpired:
            p.kill()
            out, _ = p.communicate()
        outs.append(out)
    return parse_s_time(outs, t), "\n".join(outs)


def run_load(load: str, port: int, seconds: float, cpu: int | None) -> tuple[dict[str, Any], str]:
    if load == "full-handshake":
        return run_s_time(port, seconds, cpu)
    return run_wrk(port, LOADS[load], seconds, cpu)


def run_wrk(port: int, extra: list[str], seconds: float, cpu: int | None) -> tuple[dict[str, Any], str]:
    argv = _pin(
        ["wrk", "-t1", "-c64", f"-d{max(1, round(seconds))}s", "--latency", *extra]
        + [f"https://127.0.0.1:{port}/"],
        cpu,
    )
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()[-300:]}")
    return parse_wrk(done.stdout), done.stdout


@dataclass
class Opts:
    rounds: int
    duration: float
    warmup: float
    pin: bool
    ours: str
    peers_bin: Path
    tmp: Path
    cert: Cert
    startup_timeout: float = 30.0
    verbose: bool = False


def run_one(load: str, name: str, rnd: int, opts: Opts, check: bool) -> dict[str, Any]:
    server_cpu, load_cpu = (0, 1) if opts.pin else (None, None)
    port = free_port()
    argv = _pin(server_argv(name, port, opts.cert, opts.ours, opts.peers_bin), server_cpu)
    result: dict[str, Any] = {"load": load, "server": name, "round": rnd, "argv": argv}
    run = Running(argv, server_env_tls(opts), opts.tmp / f"{load}-{name}-r{rnd}.log")
    try:
        result["probe_tls_version"] = wait_tls_ready(run, port, opts.cert.ca, opts.startup_timeout)
        time.sleep(0.2)
        if check and load != "full-handshake":
            result["negotiation"] = check_negotiation(port, LOADS[load], load_cpu)
        if opts.warmup > 0:
            run_load(load, port, opts.warmup, load_cpu)
        stats, raw = run_load(load, port, opts.duration, load_cpu)
        result.update(stats)
        result["raw"] = raw
        if run.proc.poll() is not None:
            raise RuntimeError(f"server exited during the run (status {run.proc.returncode})")
    except Exception as exc:  # recorded; the bench goes on with the next server
        result["error"] = str(exc)
        result["log_tail"] = run.log_tail()
    finally:
        run.stop()
    return result


def server_env_tls(opts: Opts) -> dict[str, str]:
    class _O:  # run.server_env reads only .tmp
        tmp = opts.tmp

    return server_env(_O())  # type: ignore[arg-type]


# ---------------------------------------------------------------- summary


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of req/s and p99 per (load, server), the ratios ours / peer, the targets."""
    table: dict[str, dict[str, Any]] = {}
    for load in [x for x in LOADS if any(r["load"] == x for r in runs)]:
        rows: dict[str, Any] = {}
        for name in SERVERS:
            mine = [r for r in runs if r["load"] == load and r["server"] == name]
            ok = [r for r in mine if "error" not in r]
            row: dict[str, Any] = {"runs": len(ok), "failed": len(mine) - len(ok)}
            if ok:
                rps = [r["rps"] for r in ok]
                row["rps"] = statistics.median(rps)
                row["spread"] = (max(rps) - min(rps)) / row["rps"] if row["rps"] else None
                p99 = [r["p99_ms"] for r in ok if r.get("p99_ms") is not None]
                row["p99_ms"] = statistics.median(p99) if p99 else None
                row["errors"] = sum(r["socket_errors"] + r["non_2xx"] for r in ok)
            elif mine:
                row["error"] = mine[-1]["error"]
            neg = next((r["negotiation"] for r in mine if "negotiation" in r), None)
            if neg is not None:
                row["negotiation"] = neg
            rows[name] = row
        ours = rows.get("ours", {}).get("rps")
        for name in SERVERS:
            peer = rows.get(name, {}).get("rps")
            if name != "ours" and ours and peer:
                rows["ours"][f"vs_{name}"] = ours / peer
        table[load] = rows
    targets = []
    for load, peer, want in TARGETS:
        got = table.get(load, {}).get("ours", {}).get(f"vs_{peer}")
        targets.append(
            {
                "load": load,
                "peer": peer,
                "target": want,
                "ratio": got,
                "met": None if got is None else got >= want,
            }
        )
    return {"table": table, "targets": targets}


def render(summary: dict[str, Any]) -> str:
    out = []
    for load, rows in summary["table"].items():
        how = {
            "keepalive": "wrk -t1 -c64",
            "handshake": "wrk -t1 -c64 -H 'Connection: close'",
            "full-handshake": f"{S_TIME_CLIENTS} x openssl s_time -new -www /",
        }[load]
        out.append(f"\n{load}: {how}")
        out.append("| server | req/s | p99 | ours / this | errors | spread | TLS (strace) |")
        out.append("|---|---:|---:|---:|---:|---:|---|")
        for name, r in rows.items():
            neg = r.get("negotiation") or {}
            tls = (
                (
                    f"{neg.get('tls13', '?')}/{neg.get('server_hellos', '?')} TLS 1.3, "
                    f"{neg.get('resumed', '?')} resumed"
                )
                if "server_hellos" in neg
                else neg.get("error", "—")
            )
            if "rps" not in r:
                out.append(f"| {name} | failed: {r.get('error', '?')} | | | | | {tls} |")
                continue
            vs = rows.get("ours", {}).get("vs_" + name)
            ratio = "1.00×" if name == "ours" else ("—" if vs is None else f"{vs:.2f}×")
            spread = f"{r['spread'] * 100:.0f}%" if r.get("spread") is not None else "—"
            p99 = "—" if r.get("p99_ms") is None else f"{r['p99_ms']:.2f} ms"
            out.append(f"| {name} | {r['rps']:.0f} | {p99} | {ratio} | {r['errors']} | {spread} | {tls} |")
    out.append("")
    for t in summary["targets"]:
        got = "n/a" if t["ratio"] is None else f"{t['ratio']:.2f}×"
        verdict = {True: "met", False: "MISSED", None: "not measured"}[t["met"]]
        out.append(f"target {t['load']}: ours >= {t['target']}× {t['peer']}: {got} ({verdict})")
    return "\n".join(out)


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=None, help="rounds per load (default 3)")
    p.add_argument("--duration", type=float, default=None, help="seconds per measured run (default 10)")
    p.add_argument("--warmup", type=float, default=None, help="seconds of warm-up (default 2)")
    p.add_argument("--quick", action="store_true", help="2 rounds of 3 s, 1 s warm-up")
    p.add_argument("--loads", default=DEFAULT_LOADS, help="keepalive, handshake, full-handshake (comma list)")
    p.add_argument("--servers", default=",".join(SERVERS), help="ours, granian-rust, uvicorn")
    p.add_argument("--ours", default=str(REPO / ".venv" / "bin" / "granian"))
    p.add_argument("--peers-bin", type=Path, default=PEERS / "bin")
    p.add_argument("--no-pin", action="store_true")
    p.add_argument("--output", type=Path, default=None, help="JSON (default results/tls-<stamp>.json)")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    defaults = (
        {"rounds": 2, "duration": 3.0, "warmup": 1.0}
        if args.quick
        else {"rounds": 3, "duration": 10.0, "warmup": 2.0}
    )
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    return args


def rotation(names: list[str], rnd: int) -> list[str]:
    """The servers' order in round `rnd`: rotated by one each round."""
    k = rnd % len(names) if names else 0
    return names[k:] + names[:k]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found: run `bash loadtests/setup.sh`")
    if not (args.peers_bin / "granian").exists():
        sys.exit(f"{args.peers_bin}/granian not found: run `bash loadtests/setup.sh`")
    loads = [x for x in args.loads.split(",") if x in LOADS]
    names = [x for x in args.servers.split(",") if x in SERVERS]

    def _term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _term)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        lock = acquire_machine_lock()
    except KeyboardInterrupt:
        return 130
    tmp = Path(tempfile.mkdtemp(prefix="granian-tls-bench-"))
    opts = Opts(
        rounds=args.rounds,
        duration=args.duration,
        warmup=args.warmup,
        pin=not args.no_pin and (shutil.which("taskset") is not None),
        ours=args.ours,
        peers_bin=args.peers_bin,
        tmp=tmp,
        cert=make_cert(tmp),
        verbose=args.verbose,
    )
    RESULTS.mkdir(exist_ok=True)
    out_json = args.output or RESULTS / f"tls-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    runs: list[dict[str, Any]] = []
    try:
        for load in loads:
            for rnd in range(opts.rounds):
                for name in rotation(names, rnd):
                    r = run_one(load, name, rnd, opts, check=(rnd == 0))
                    runs.append(r)
                    if opts.verbose:
                        what = r.get("error") or f"{r['rps']:.0f} req/s, p99 {r.get('p99_ms')} ms"
                        print(f"[{load} r{rnd}] {name}: {what} {r.get('negotiation', '')}", flush=True)
    except KeyboardInterrupt:
        print("interrupted: partial results", file=sys.stderr)
    finally:
        lock.close()
    summary = summarize(runs)
    text = render(summary)
    print(text)
    doc = {
        "argv": sys.argv,
        "rounds": opts.rounds,
        "duration": opts.duration,
        "warmup": opts.warmup,
        "pinned": opts.pin,
        "summary": summary,
        "runs": runs,
    }
    out_json.write_text(json.dumps(doc, indent=2, default=str))
    print(f"\nJSON: {out_json}")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
