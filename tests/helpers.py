"""Shared helpers: run a real worker (`serve_worker`) in a subprocess and talk to it.

The worker binds 127.0.0.1 on port 0 itself, prints the port, and is stopped by PID (SIGTERM,
then SIGKILL) in `stop()`. Test apps live in tests/apps/ (the worker's working dir).
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

APPS_DIR = Path(__file__).parent / "apps"

_BOOT = r"""
import json, socket, sys
from granian.settings import load
from granian.server.worker import serve_worker
opts = json.loads(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0))
s.listen(128)
print("PORT", s.getsockname()[1], flush=True)
sys.exit(serve_worker(load(opts, env={}), s))
"""


class ServerProc:
    def __init__(self, proc: subprocess.Popen[bytes], port: int) -> None:
        self.proc = proc
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.stdout = b""
        self.stopped: tuple[int, str] | None = None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> tuple[int, str]:
        """Signal the worker, wait for it; returns (exit code, its stderr). Idempotent."""
        if self.stopped is not None:
            return self.stopped
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
        if self.proc.stdout is not None:
            self.stdout = self.proc.stdout.read()
            self.proc.stdout.close()
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        self.stopped = (self.proc.returncode, err)
        return self.stopped

    def connect(self) -> socket.socket:
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        return s


def start_server(app: str, timeout: float = 15.0, **options: Any) -> ServerProc:
    """Start `serve_worker` for `app` (a tests/apps target) with settings `options`."""
    opts: dict[str, Any] = {"app": app, "interface": "asgi", "working_dir": str(APPS_DIR)}
    opts.update(options)
    import json

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(APPS_DIR), env.get("PYTHONPATH", "")])
    proc = subprocess.Popen(
        [sys.executable, "-c", _BOOT, json.dumps(opts)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    line = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.1)
        if ready:
            line = proc.stdout.readline()
            break
        if proc.poll() is not None:
            break
    if not line.startswith(b"PORT "):
        proc.kill()
        proc.wait(5)
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        raise RuntimeError(f"server did not start: {line!r} {err}")
    port = int(line.split()[1])
    # The port is bound before serve_worker runs; wait until the app is actually served.
    return ServerProc(proc, port)


def recv_all(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Read until the peer closes (or `timeout` passes without data)."""
    sock.settimeout(timeout)
    chunks = []
    while True:
        try:
            data = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def read_response(
    sock: socket.socket, timeout: float = 5.0
) -> tuple[bytes, dict[bytes, bytes], bytes, bytes]:
    """Read one Content-Length or chunked response: (status line, headers, body, leftover)."""
    sock.settimeout(timeout)
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError(f"closed before a full head: {buf!r}")
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        headers[k.strip().lower()] = v.strip()
    if b"content-length" in headers:
        n = int(headers[b"content-length"])
        while len(rest) < n:
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("closed mid-body")
            rest += data
        return lines[0], headers, rest[:n], rest[n:]
    if headers.get(b"transfer-encoding") == b"chunked":
        body = b""
        while True:
            while b"\r\n" not in rest:
                rest += sock.recv(65536)
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line, 16)
            while len(rest) < size + 2:
                rest += sock.recv(65536)
            body += rest[:size]
            rest = rest[size + 2 :]
            if size == 0:
                return lines[0], headers, body, rest
    return lines[0], headers, b"", rest
