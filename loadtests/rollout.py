"""A Kubernetes rolling update, simulated with real processes on 127.0.0.1.

    .venv/bin/python loadtests/rollout.py            # ~30 s
    .venv/bin/python loadtests/rollout.py --short    # the CI version, a few seconds

- Two "pods": two granian masters with 2 workers each, on two ports; each answers with its pod
  name and worker PID, so every response is attributed.
- One nginx (Debian `nginx-light`, installed with apt-get when missing) as the Service: an
  upstream of the pods with passive health checks (`max_fails`/`fail_timeout`) and
  `proxy_next_upstream` for idempotent requests, keep-alive to the pods. It runs as an
  unprivileged process (UID 65534 when we are root) with its config, logs and temp files in a
  temporary directory.
- A client load through nginx: a few keep-alive connections, paced, bounded in time and count.
- What a Deployment rollout does, step by step:
  1. start a third pod and wait until its readiness probe answers 200;
  2. add it to the upstream (nginx reload);
  3. make the old pod unready (the prober marks it; Kubernetes: the pod is Terminating);
  4. after a preStop-like delay take it out of the upstream (nginx reload);
  5. SIGTERM it (graceful drain) and wait for it to exit.
  Then a SIGHUP (rolling worker restart) inside one of the remaining pods, still under load.
- Result: requests per pod and per phase, failures, connection resets, stale keep-alive
  retries (a request whose reused connection was closed before any byte of the answer, which
  HTTP clients retry: RFC 9112 §9.3.1). Exit status 0 only when failures and resets are zero.
  `--json FILE` writes the counts.

Readiness is probed on the server's own `--health-path` answer (HEALTH_PATH below; None probes
the app's "/" instead).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The readiness path, answered by the worker itself (--health-path). None: the app's own "/".
HEALTH_PATH: str | None = "/healthz"

GRANIAN = Path(sys.executable).parent / "granian"
HOST = "127.0.0.1"
# nginx passive health check: one failure takes a pod out of the upstream this long (s)
FAIL_TIMEOUT = 2.0
NOBODY = 65534

APP = """\
import os

POD = os.environ["ROLLOUT_POD"].encode()


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = POD + b" " + str(os.getpid()).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def log(msg: str) -> None:
    print(f"[rollout {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ------------------------------------------------------------------------------------ pods


@dataclass
class Pod:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    logfile: Path
    ready: bool = False

    def probe(self) -> bool:
        """One readiness probe, like the kubelet's httpGet: a fresh connection, 1 s timeout."""
        conn = http.client.HTTPConnection(HOST, self.port, timeout=1)
        try:
            conn.request("GET", HEALTH_PATH or "/")
            resp = conn.getresponse()
            resp.read()
            return resp.status == 200
        except OSError:
            return False
        finally:
            conn.close()


def start_pod(name: str, workdir: Path, args: argparse.Namespace) -> Pod:
    port = free_port()
    logfile = workdir / f"{name}.log"
    cmd = [
        str(GRANIAN),
        "--interface", "asgi",
        "--host", HOST,
        "--port", str(port),
        "--workers", "2",
        "--working-dir", str(workdir),
        "--workers-kill-timeout", str(args.kill_timeout),
        "--respawn-interval", str(args.respawn_interval),
        "--no-access-log",
    ]  # fmt: skip
    if HEALTH_PATH:
        cmd += ["--health-path", HEALTH_PATH]
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRANIAN_")}
    env["ROLLOUT_POD"] = name
    with open(logfile, "wb") as out:
        proc = subprocess.Popen(
            [*cmd, "rollout_app:app"], stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    return Pod(name, port, proc, logfile)


def wait_ready(pod: Pod, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pod.proc.poll() is not None:
            raise RuntimeError(f"pod {pod.name} exited with {pod.proc.returncode}: {tail(pod.logfile)}")
        if pod.probe():
            pod.ready = True
            return
        time.sleep(0.1)
    raise RuntimeError(f"pod {pod.name} not ready after {timeout}s: {tail(pod.logfile)}")


def stop_pod(pod: Pod, timeout: float) -> int:
    """SIGTERM to the master (by PID), then wait; SIGKILL to its process group if overdue."""
    if pod.proc.poll() is None:
        pod.proc.send_signal(signal.SIGTERM)
    try:
        return pod.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pod.proc.pid, signal.SIGKILL)  # the group this script created for it
        return pod.proc.wait(timeout=5)


def tail(path: Path, n: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


# ----------------------------------------------------------------------------------- nginx


def ensure_nginx() -> str:
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )
    if found:
        return found
    log("nginx not found: installing Debian's nginx-light")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, timeout=300)
    subprocess.run(["apt-get", "install", "-y", "-qq", "nginx-light"], check=True, env=env, timeout=300)
    found = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.access(found, os.X_OK):
        raise RuntimeError("nginx-light installed but no nginx binary found")
    return found


NGINX_CONF = """\
# Generated by loadtests/rollout.py: nginx as the Service in front of the pods.
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_timeout 60s;
    keepalive_requests 100000;
    upstream pods {{
{servers}
        keepalive 16;
    }}
    server {{
        listen {host}:{port};
        location / {{
            proxy_pass http://pods;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_connect_timeout 1s;
            proxy_read_timeout 5s;
            # Idempotent requests (our GETs) go to the next pod on a connection error, a
            # timeout or a 502/503; POSTs would not (no `non_idempotent`).
            proxy_next_upstream error timeout http_502 http_503;
            proxy_next_upstream_tries 3;
        }}
    }}
}}
"""


@dataclass
class Nginx:
    binary: str
    dir: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    upstream: list[Pod] = field(default_factory=list)

    @property
    def conf(self) -> Path:
        return self.dir / "nginx.conf"

    def write_conf(self) -> None:
        # Passive health checks: one failure takes a pod out for 2 s (nginx's max_fails /
        # fail_timeout, what it has without active checks).
        servers = "\n".join(
            f"        server {HOST}:{p.port} max_fails=1 fail_timeout={FAIL_TIMEOUT:g}s;"
            for p in self.upstream
        )
        self.conf.write_text(NGINX_CONF.format(dir=self.dir, servers=servers, host=HOST, port=self.port))

    def _demote(self) -> None:
        if os.getuid() == 0:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)

    def start(self, pods: list[Pod]) -> None:
        self.upstream = list(pods)
        self.write_conf()
        if os.getuid() == 0:
            for path in (self.dir, *self.dir.iterdir()):
                os.chown(path, NOBODY, NOBODY)
        cmd = [self.binary, "-p", str(self.dir), "-e", str(self.dir / "error.log"), "-c", str(self.conf)]
        subprocess.run([*cmd, "-t", "-q"], check=True, preexec_fn=self._demote, timeout=30)
        out = open(self.dir / "nginx.stdout", "wb")  # closed below: nginx keeps its own descriptor
        self.proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, preexec_fn=self._demote, start_new_session=True
        )
        out.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), timeout=0.5):
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited: {tail(self.dir / 'error.log')}")
            time.sleep(0.05)
        raise RuntimeError("nginx did not start listening")

    def set_upstream(self, pods: list[Pod]) -> None:
        """Rewrite the upstream and reload (SIGHUP: new workers, old ones finish gracefully)."""
        assert self.proc is not None
        self.upstream = list(pods)
        self.write_conf()
        self.proc.send_signal(signal.SIGHUP)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGQUIT)  # graceful
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


# ---------------------------------------------------------------------------------- client


@dataclass
class Stats:
    ok: int = 0
    failures: int = 0
    resets: int = 0
    stale_retries: int = 0
    stale_per_phase: Counter[str] = field(default_factory=Counter)
    per_pod: Counter[str] = field(default_factory=Counter)
    per_phase: dict[str, Counter[str]] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Load:
    """`clients` keep-alive connections to nginx, each sending GET / at `rate` per second,
    until stopped, the deadline, or `max_requests` in total."""

    def __init__(self, port: int, clients: int, rate: float, max_requests: int, deadline: float) -> None:
        self.port = port
        self.clients = clients
        self.interval = 1.0 / rate
        self.max_requests = max_requests
        self.deadline = deadline
        self.stats = Stats()
        self.phase = "start"
        self.sent = 0
        self.stop_event = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def stop(self) -> None:
        self.stop_event.set()
        for t in self.threads:
            t.join(timeout=15)

    def _take(self) -> bool:
        with self.stats.lock:
            if self.sent >= self.max_requests or time.monotonic() >= self.deadline:
                return False
            self.sent += 1
            return True

    def _run(self) -> None:
        conn: http.client.HTTPConnection | None = None
        reused = False
        next_at = time.monotonic()
        while not self.stop_event.is_set() and self._take():
            phase = self.phase
            for attempt in (1, 2):
                if conn is None:
                    conn = http.client.HTTPConnection(HOST, self.port, timeout=10)
                    reused = False
                try:
                    conn.request("GET", "/")
                    resp = conn.getresponse()
                    body = resp.read()
                except (http.client.RemoteDisconnected, BrokenPipeError) as exc:
                    # Closed before any byte of the answer: on a reused connection this is the
                    # keep-alive race every HTTP client retries once (RFC 9112 §9.3.1).
                    conn.close()
                    conn = None
                    if reused and attempt == 1:
                        self._count(stale=True, phase=phase)
                        continue
                    self._count(error=type(exc).__name__)
                    break
                except OSError as exc:
                    conn.close()
                    conn = None
                    reset = isinstance(exc, ConnectionResetError) or exc.errno == errno.ECONNRESET
                    self._count(error=type(exc).__name__, reset=reset)
                    break
                reused = True
                if resp.status == 200:
                    self._count(pod=body.split(b" ", 1)[0].decode(), phase=phase)
                else:
                    self._count(error=f"HTTP {resp.status}")
                if resp.will_close:
                    conn.close()
                    conn = None
                break
            next_at += self.interval
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                next_at = time.monotonic()
        if conn is not None:
            conn.close()

    def _count(
        self,
        pod: str | None = None,
        phase: str = "",
        error: str | None = None,
        reset: bool = False,
        stale: bool = False,
    ) -> None:
        s = self.stats
        with s.lock:
            if stale:
                s.stale_retries += 1
                s.stale_per_phase[phase] += 1
            elif error is not None:
                s.failures += 1
                s.errors[error] += 1
                if reset:
                    s.resets += 1
            elif pod is not None:
                s.ok += 1
                s.per_pod[pod] += 1
                s.per_phase.setdefault(phase, Counter())[pod] += 1


# ----------------------------------------------------------------------------------- steps


def rollout(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    (workdir / "rollout_app.py").write_text(APP)
    # Its own directory (not under workdir, which is 0700 root's): nginx runs as nobody.
    nginx_dir = Path(tempfile.mkdtemp(prefix="granian-rollout-nginx-"))
    nginx = Nginx(ensure_nginx(), nginx_dir, free_port())
    pods: list[Pod] = []
    load: Load | None = None
    step = args.step
    exits: dict[str, int] = {}
    try:
        a, b = start_pod("pod-a", workdir, args), start_pod("pod-b", workdir, args)
        pods += [a, b]
        for pod in (a, b):
            wait_ready(pod, 30)
        nginx.start([a, b])
        log(f"pods a:{a.port} b:{b.port} ready; nginx on {nginx.port}, probing {HEALTH_PATH or '/'}")

        load = Load(
            nginx.port, args.clients, args.rate, args.max_requests, time.monotonic() + args.max_seconds
        )
        load.start()
        time.sleep(step)

        load.phase = "surge"
        c = start_pod("pod-c", workdir, args)  # 1. a new pod ...
        pods.append(c)
        wait_ready(c, 30)  # ... and its readiness probe
        log("1. pod-c ready")
        nginx.set_upstream([a, b, c])  # 2. endpoints gain it
        log("2. pod-c added to the upstream (nginx reload)")
        time.sleep(step)

        load.phase = "drain-a"
        a.ready = False  # 3. the old pod is unready (Terminating)
        log("3. pod-a unready")
        time.sleep(args.pre_stop)  # preStop-like delay while endpoints update
        nginx.set_upstream([b, c])  # 4. endpoints lose it
        log(f"4. pod-a removed from the upstream after {args.pre_stop}s")
        time.sleep(0.2)
        t0 = time.monotonic()
        exits["pod-a"] = stop_pod(a, args.kill_timeout + 10)  # 5. SIGTERM, graceful drain
        log(f"5. pod-a SIGTERMed, exited {exits['pod-a']} after {time.monotonic() - t0:.2f}s")
        time.sleep(step)

        load.phase = "sighup-b"
        b.proc.send_signal(signal.SIGHUP)  # rolling worker restart inside pod-b
        log("SIGHUP to pod-b: rolling restart of its 2 workers")
        time.sleep(2 * args.respawn_interval + step)
        load.phase = "after"
        # One upstream error near the end of the roll (a keep-alive connection the old worker
        # closed as nginx reused it: retried, so no client sees it) ejects pod-b for
        # FAIL_TIMEOUT; the phase outlasts that, so pod-b's return to service is observed.
        time.sleep(step + FAIL_TIMEOUT)
    finally:
        if load is not None:
            load.stop()
        nginx.stop()
        for pod in pods:
            if pod.name not in exits:
                exits[pod.name] = stop_pod(pod, args.kill_timeout + 10)
        nginx_errors = tail(nginx_dir / "error.log", 100000)
        if args.keep:
            log(f"kept {nginx_dir}")
        else:
            shutil.rmtree(nginx_dir, ignore_errors=True)

    assert load is not None
    s = load.stats
    # Errors nginx met talking to the pods (and then retried elsewhere, for our GETs): they
    # show what the client-side zero could hide.
    upstream_errors = [line for line in nginx_errors.splitlines() if "upstream" in line]
    sighup_log = tail(b.logfile, 20000)
    return {
        "requests": s.ok + s.failures,
        "ok": s.ok,
        "failures": s.failures,
        "resets": s.resets,
        "stale_keepalive_retries": s.stale_retries,
        "stale_keepalive_retries_per_phase": dict(s.stale_per_phase),
        "errors": dict(s.errors),
        "per_pod": dict(s.per_pod),
        "per_phase": {k: dict(v) for k, v in s.per_phase.items()},
        "exit_codes": exits,
        "pod_b_rolled": sighup_log.count("Replacing worker-"),
        "nginx_upstream_errors": upstream_errors,
        "health_path": HEALTH_PATH,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--short", action="store_true", help="the CI version: shorter steps")
    p.add_argument("--clients", type=int, default=4, help="keep-alive client connections")
    p.add_argument("--rate", type=float, default=50.0, help="requests/s per client")
    p.add_argument("--json", type=Path, help="write the counts here")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (logs, nginx config)")
    args = p.parse_args(argv)
    args.step = 1.0 if args.short else 5.0
    args.pre_stop = 1.0 if args.short else 5.0
    args.respawn_interval = 0.5 if args.short else 2.0
    args.kill_timeout = 10
    args.max_seconds = 30.0 if args.short else 90.0
    args.max_requests = 20000 if args.short else 100000

    workdir = Path(tempfile.mkdtemp(prefix="granian-rollout-"))
    try:
        result = rollout(args, workdir)
    finally:
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    good = (
        result["failures"] == 0
        and result["resets"] == 0
        and all(code == 0 for code in result["exit_codes"].values())
        and result["per_pod"].get("pod-c", 0) > 0
    )
    log(
        f"requests {result['requests']}, failures {result['failures']}, resets {result['resets']}, "
        f"per pod {result['per_pod']}: {'OK' if good else 'FAILED'}"
    )
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
