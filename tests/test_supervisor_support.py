"""Helpers for the supervisor's integration tests: start a real master in a subprocess, read its
log, talk HTTP to it, and always clean up by PID. (No tests here.)"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import psutil

PY = sys.executable
ROOT = Path(__file__).resolve().parent.parent

# Starts the master the way the CLI does (exec_master: this process becomes the slim master,
# same PID), with options given as JSON. `overrides` bypass validation (model_copy) so that
# mechanisms behind a large floor (--workers-lifetime >= 60 s) can be exercised in seconds.
LAUNCHER = textwrap.dedent(
    """
    import json, sys
    from granian.settings import load
    from granian.supervisor import exec_master
    settings = load(json.loads(sys.argv[1]), env={})
    over = json.loads(sys.argv[2])
    if over:
        settings = settings.model_copy(update=over)
    sys.exit(exec_master(settings))
    """
)

APP = textwrap.dedent(
    """
    import asyncio, os

    HOG = []

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                await send({"type": msg["type"] + ".complete"})
                if msg["type"] == "lifespan.shutdown":
                    return
        path = scope["path"]
        if path == "/sleep":
            await asyncio.sleep(float(scope["query_string"] or b"2"))
        if path == "/grow":
            HOG.append(bytearray(int(scope["query_string"] or b"0") * 1024 * 1024))
        if path == "/env":
            body = os.environ.get(scope["query_string"].decode(), "-").encode()
        else:
            body = str(os.getpid()).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": body})
    """
)


def clean_env() -> dict[str, str]:
    """The test's environment without GRANIAN_* variables (they would change the options)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("GRANIAN_")}


class Server:
    """A master process started in the background; `lines` is its merged stdout/stderr."""

    def __init__(self, argv: Sequence[str], cwd: Path, env: dict[str, str] | None = None) -> None:
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=env if env is not None else clean_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.port = 0

    @classmethod
    def launch(
        cls,
        options: dict[str, object],
        cwd: Path,
        overrides: dict[str, object] | None = None,
        env: dict[str, str] | None = None,
    ) -> Server:
        opts = {"interface": "asgi", "port": 0, "host": "127.0.0.1", **options}
        argv = [PY, "-c", LAUNCHER, json.dumps(opts), json.dumps(overrides or {})]
        return cls(argv, cwd, env)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def text(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = 10.0, start: int = 0) -> re.Match[str]:
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines[start:]:
                    m = rx.search(line)
                    if m:
                        return m
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(f"no line matching {pattern!r}; output:\n" + "\n".join(self.lines))
                self._cond.wait(min(left, 0.2))

    def count(self, pattern: str) -> int:
        rx = re.compile(pattern)
        with self._cond:
            return sum(1 for line in self.lines if rx.search(line))

    def ready(self, workers: int = 1, timeout: float = 15.0) -> Server:
        self.port = int(self.wait_for(r"Listening at: http://127\.0\.0\.1:(\d+)", timeout).group(1))
        wait_until(lambda: self.count(r"Spawned worker-\d+ with PID") >= workers, timeout)
        if not wait_until(lambda: self.get("/") is not None, timeout):
            raise AssertionError("the server never answered; output:\n" + self.text)
        return self

    def get(self, path: str = "/", timeout: float = 5.0) -> str | None:
        return get(self.port, path, timeout)

    def worker_pids(self) -> set[int]:
        try:
            return {c.pid for c in psutil.Process(self.proc.pid).children()}
        except psutil.NoSuchProcess:
            return set()

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 10.0) -> int:
        return self.proc.wait(timeout)

    def stop(self) -> None:
        """Stop the master and every worker it started, whatever state they are in."""
        family = self.worker_pids()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for pid in family:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._reader.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def get(port: int, path: str = "/", timeout: float = 5.0) -> str | None:
    """One GET; the body, or None when the server does not answer (refused, reset, timeout)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        resp = conn.getresponse()
        body = resp.read().decode()
        return body if resp.status == 200 else None
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def wait_until(pred: object, timeout: float, step: float = 0.05) -> bool:
    assert callable(pred)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return bool(pred())


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def pids_seen(port: int, n: int, timeout: float = 15.0) -> set[int]:
    """PIDs answering fresh connections until `n` distinct are seen or `timeout` passes (a worker
    may still be importing the app when the first one answers)."""
    seen: set[int] = set()
    deadline = time.monotonic() + timeout
    while len(seen) < n and time.monotonic() < deadline:
        body = get(port)
        if body is not None:
            seen.add(int(body))
        else:
            time.sleep(0.02)
    return seen


def write_app(directory: Path, name: str = "app_sup", source: str = APP) -> None:
    (directory / f"{name}.py").write_text(source)
