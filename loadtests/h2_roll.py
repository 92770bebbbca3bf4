"""h2load against `--workers 2` over h2c while the master rolls its workers (SIGHUP).

    .venv/bin/python loadtests/h2_roll.py [--engine nghttp2|h2|both] [--iface asgi|rsgi]
                                          [--duration 10] [--sighup-after 3] [--tls]

The server is our granian (`python -m granian`, this checkout) serving
tests/apps/roll_apps.py (each answer is the worker's PID after `--delay-ms`, 20 ms), `--http 2`,
`--workers 2`, `--respawn-interval 0.5`; h2load runs `-c16 -m10 -t1 -D <duration>` and the master
gets SIGHUP `--sighup-after` seconds in (0: no SIGHUP, the plain run; it is preceded by one
`nghttp -nv` request). Prints h2load's summary lines verbatim, the worker PIDs before and
after, and the master's roll log. The machine-wide lock of run.py is held for the whole run;
h2load (Debian nghttp2-client) is installed with apt-get when missing, as setup.sh does.

How h2load (nghttp2 1.52, Debian's) behaves in a roll, as seen in its output. The draining
worker sends a PING and GOAWAY(NO_ERROR, 2^31-1), then, at the PING's ack (0.2 s at least, 1 s
at most), GOAWAY(NO_ERROR, last stream id = the last stream it took), finishes the streams up
to that id, then closes (RFC 9113 §6.8). h2load never resends a request and never
reconnects a client after a GOAWAY:
- its streams above the last stream id (sent while the GOAWAY was on its way) are closed by
  its nghttp2 session with REFUSED_STREAM: each is counted "failed" AND "errored" (never
  "succeeded"; "status codes" has no 5xx for them). A client that retries them, as §6.8
  allows, loses nothing: tests/test_h2_roll.py does and counts them (it also fails on any
  stream <= the last stream id that is reset or cut off, which h2load's counters cannot tell
  apart from the refused ones);
- when one of its streams <= the last stream id completes, h2load tries to submit the next
  request, which its session no longer allows after a GOAWAY: it prints "Process Request
  Failure:<n>" (n: an internal running count) and that client issues nothing more for the rest
  of the run. In the final summary these never-sent requests are not in "failed"/"errored"
  (a 2-client probe printed two such lines and ended "0 failed, 0 errored"); they only show as
  a lower request count. So once every old worker has sent its GOAWAY, no h2load client is
  left: the count of those lines is printed ("clients that stopped after a GOAWAY"), and a
  second short h2load run after the roll shows the new workers serving.
So a roll run's "0 failed, 0 errored" means that no stream was refused in the GOAWAY race and
none the server took was lost; a few failed == errored are streams refused by the GOAWAY
race (never processed), not server errors.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import REPO, Running, acquire_machine_lock, free_port  # noqa: E402

TEST_APPS = REPO / "tests" / "apps"
SUMMARY = re.compile(r"^(finished in|requests:|status codes:|traffic:)")


def ensure_tools() -> None:
    """h2load and nghttp come with Debian's nghttp2-client (loadtests/setup.sh)."""
    if shutil.which("h2load") and shutil.which("nghttp"):
        return
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    print("h2_roll: installing nghttp2-client with apt-get", file=sys.stderr)
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", "nghttp2-client"], check=True, env=env)


def workers(master: Running) -> set[int]:
    try:
        return {p.pid for p in master.ps.children()}
    except psutil.Error:
        return set()


def start(engine: str, iface: str, tls: dict[str, str] | None, log: Path) -> tuple[Running, str]:
    port = free_port()
    argv = [sys.executable, "-m", "granian", "--interface", iface, "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--workers", "2", "--http", "2", "--respawn-interval", "0.5"]
    argv += ["--working-dir", str(TEST_APPS), "--log-level", "info"]
    if tls is not None:
        argv += ["--ssl-certificate", tls["cert"], "--ssl-keyfile", tls["cert"]]
    argv.append("roll_apps:app" if iface == "asgi" else "roll_apps:rsgi_app")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRANIAN_")}
    env["GRANIAN_HTTP2_ENGINE"] = engine
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(TEST_APPS)])
    master = Running(argv, env, log)
    return master, f"{'https' if tls else 'http'}://127.0.0.1:{port}"


def wait_ready(master: Running, url: str, timeout: float = 30.0) -> None:
    """Both workers spawned and one answering over HTTP/2."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if master.proc.poll() is not None:
            sys.exit("the server exited:\n" + master.log_tail())
        text = master.log_path.read_text(errors="replace")
        if len(re.findall(r"Spawned worker-\d+ with PID", text)) >= 2:
            done = subprocess.run(["nghttp", "-n", url + "/?ms=0"], capture_output=True, timeout=10)
            if done.returncode == 0:
                return
        time.sleep(0.2)
    sys.exit("the server never answered:\n" + master.log_tail())


def h2load(url: str, seconds: int, full: bool) -> tuple[int, str]:
    """One `h2load -c16 -m10` run; prints the command and its summary lines."""
    argv = ["h2load", "-c16", "-m10", "-t1", "-D", str(seconds), url]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    out = done.stdout + done.stderr
    print(f"$ {' '.join(argv)}   (exit {done.returncode})")
    for line in out.splitlines():
        if full or SUMMARY.match(line):
            print(line)
    stopped = len(re.findall(r"^Process Request Failure:", out, flags=re.M))
    if stopped:
        print(f"({stopped} 'Process Request Failure' lines: clients that stopped after a GOAWAY)")
    return done.returncode, out


def one_run(engine: str, args: argparse.Namespace, tls: dict[str, str] | None, tmp: Path) -> int:
    log = tmp / f"granian-{engine}.log"
    master, url = start(engine, args.iface, tls, log)
    target = f"{url}/?ms={args.delay_ms}"
    try:
        wait_ready(master, url)
        print(f"\n=== engine={engine} iface={args.iface} {url.split(':')[0]} "
              f"sighup_after={args.sighup_after} duration={args.duration}s")  # fmt: skip
        if not args.sighup_after:
            done = subprocess.run(
                ["nghttp", "-nv", url + "/?ms=0"], capture_output=True, text=True, timeout=20
            )
            lines = done.stdout.splitlines()
            print(f"$ nghttp -nv {url}/?ms=0   (exit {done.returncode}; {len(lines)} lines, the last ones:)")
            print("\n".join(lines[-6:]))
            code, _ = h2load(target, args.duration, args.full)
            return code
        before = workers(master)
        timer = threading.Timer(args.sighup_after, lambda: os.kill(master.proc.pid, signal.SIGHUP))
        timer.start()
        try:
            code, _ = h2load(target, args.duration, args.full)
        finally:
            timer.cancel()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if len(re.findall(r"worker-\d \(PID \d+\) stopped", log.read_text(errors="replace"))) >= 2:
                break
            time.sleep(0.2)
        after = workers(master)
        print(f"workers before {sorted(before)} after {sorted(after)}")
        for line in log.read_text(errors="replace").splitlines():
            if re.search(r"SIGHUP|Replacing|stopped|ERROR|Traceback", line):
                print("  log:", line[-160:])
        # h2load's clients do not reconnect after a GOAWAY: a second, short run shows the new
        # workers serving.
        print("after the roll:")
        code2, _ = h2load(target, 2, args.full)
        return max(code, code2, 0 if after and not (after & before) else 1)
    finally:
        master.stop()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--engine", choices=["nghttp2", "h2", "both"], default="both")
    p.add_argument("--iface", choices=["asgi", "rsgi"], default="asgi")
    p.add_argument("--duration", type=int, default=10)
    p.add_argument("--sighup-after", type=float, default=3.0, help="0: no SIGHUP (the plain run)")
    p.add_argument("--delay-ms", type=int, default=20)
    p.add_argument("--tls", action="store_true", help="h2 over TLS (ALPN) instead of h2c")
    p.add_argument("--full", action="store_true", help="print all of h2load's output")
    args = p.parse_args()
    ensure_tools()
    lock = acquire_machine_lock()
    tmp = Path(tempfile.mkdtemp(prefix="granian-h2roll-"))
    tls = None
    if args.tls:
        import trustme

        cert = trustme.CA().issue_cert("127.0.0.1")
        cert.private_key_and_cert_chain_pem.write_to_path(str(tmp / "server.pem"))
        tls = {"cert": str(tmp / "server.pem")}
    try:
        engines = ["nghttp2", "h2"] if args.engine == "both" else [args.engine]
        return max(one_run(e, args, tls, tmp) for e in engines)
    finally:
        lock.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
