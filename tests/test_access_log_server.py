"""The access log end to end: a real server per interface, requests over real sockets, and
every atom checked in the line the server prints."""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from granian import settings as granian_settings

APPS = """
async def asgi(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            m = await receive()
            if m["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    while True:
        m = await receive()
        body += m.get("body", b"")
        if not m.get("more_body"):
            break
    status = 201 if scope["method"] == "POST" else 200
    out = b"hello" + body
    headers = [(b"content-type", b"text/plain")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": out})


async def rsgi(scope, proto):
    body = await proto()
    status = 201 if scope.method == "POST" else 200
    proto.response_bytes(status, [("content-type", "text/plain")], b"hello" + body)


def wsgi(environ, start_response):
    n = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(n) if n else b""
    status = "201 Created" if environ["REQUEST_METHOD"] == "POST" else "200 OK"
    start_response(status, [("Content-Type", "text/plain")])
    return [b"hello" + body]
"""

FMT = (
    "ACCESS|%(addr)s|%(time)s|%(dt_ms).3f|%(status)d|%(path)s|%(query_string)s|%(method)s|"
    "%(scheme)s|%(protocol)s|%(size)d|%(referer)s|%(user_agent)s|%(header{X-Trace-Id})s"
)
ADAPTER_MODULES = {"asgi": "granian.apps.asgi", "rsgi": "granian.apps.rsgi", "wsgi": "granian.apps.wsgi"}


class Server:
    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self.cond = threading.Condition()
        self.port = 0
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()

    def wait_for(self, pattern: str, timeout: float = 15.0) -> re.Match[str]:
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for ln in self.lines:
                    m = rx.search(ln)
                    if m:
                        return m
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None and not self.reader.is_alive():
                    raise AssertionError(f"no line matching {pattern!r} in:\n" + "\n".join(self.lines))
                self.cond.wait(min(left, 0.2))

    def matching(self, pattern: str) -> list[str]:
        with self.cond:
            return [ln for ln in self.lines if re.search(pattern, ln)]


@contextmanager
def run_server(tmp_path: Path, *args: str, port: int = 0) -> Iterator[Server]:
    """Start `granian ARGS` in `tmp_path` (with the apps above importable) and learn its port
    from the Listening line; with `port` given (when a test silences that line), use it."""
    (tmp_path / "obs_apps.py").write_text(APPS)
    cmd = [sys.executable, "-m", "granian", "--host", "127.0.0.1", "--port", str(port), *args]
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    server = Server(proc)
    try:
        if port:
            server.port = port
        else:
            server.port = int(server.wait_for(r"Listening at: http://127\.0\.0\.1:(\d+)").group(1))
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        server.reader.join(5)
        if proc.stdout is not None:
            proc.stdout.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def connect(port: int) -> socket.socket:
    # The master may not have bound yet when a test cannot wait for its Listening line.
    deadline = time.monotonic() + 15
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=10)
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def request(port: int, raw: bytes) -> bytes:
    with connect(port) as s:
        s.sendall(raw)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data


def interface_available(interface: str) -> bool:
    return importlib.util.find_spec(ADAPTER_MODULES[interface]) is not None


@pytest.mark.parametrize("interface", ["asgi", "rsgi", "wsgi"])
def test_every_atom(tmp_path: Path, interface: str) -> None:
    if not interface_available(interface):
        pytest.skip(f"{interface} adapter not built yet")
    with run_server(
        tmp_path, "--interface", interface, "--access-log", "--access-log-fmt", FMT, f"obs_apps:{interface}"
    ) as srv:
        before = time.time()
        r1 = request(
            srv.port,
            b"GET /p/a%20b?x=1&y=%22q HTTP/1.1\r\nHost: t\r\nReferer: http://ref.example/page\r\n"
            b"User-Agent: obs-test/1.0\r\nX-Trace-Id: trace-42\r\nConnection: close\r\n\r\n",
        )
        assert r1.startswith(b"HTTP/1.1 200 ")
        r2 = request(srv.port, b"POST /submit HTTP/1.0\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc")
        assert r2.startswith(b"HTTP/1.1 201 ") or r2.startswith(b"HTTP/1.0 201 ")
        lines = [srv.wait_for(r"^ACCESS\|.*\|/p/").string, srv.wait_for(r"^ACCESS\|.*\|/submit\|").string]
    get = lines[0].split("|")
    post = lines[1].split("|")
    assert get[1] == "127.0.0.1"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}", get[2])
    started = time.mktime(time.strptime(get[2][:19], "%Y-%m-%d %H:%M:%S"))
    assert before - 2 <= started <= time.time() + 1
    assert float(get[3]) >= 0.0 and re.fullmatch(r"\d+\.\d{3}", get[3])
    assert get[4:10] == ["200", "/p/a%20b", "x=1&y=%22q", "GET", "http", "HTTP/1.1"]
    assert get[10] == "5"  # b"hello"
    assert get[11:14] == ["http://ref.example/page", "obs-test/1.0", "trace-42"]
    assert post[4:10] == ["201", "/submit", "", "POST", "http", "HTTP/1.0"]
    assert post[10] == "8"  # b"hello" + b"abc"
    assert post[11:14] == ["-", "-", "-"]
    # One line per request.
    assert len([ln for ln in srv.lines if ln.startswith("ACCESS|")]) == 2


def test_default_format_and_quotes(tmp_path: Path) -> None:
    with run_server(tmp_path, "--interface", "asgi", "--access-log", "obs_apps:asgi") as srv:
        request(srv.port, b'GET /q"x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n')
        line = srv.wait_for(r'"GET ').string
    stamp = r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\]"
    assert re.fullmatch(stamp + r' 127\.0\.0\.1 - "GET /q\\"x HTTP/1\.1" 200 \d+\.\d{3}', line), line


def test_no_access_log_by_default(tmp_path: Path) -> None:
    with run_server(tmp_path, "--interface", "asgi", "obs_apps:asgi") as srv:
        assert request(srv.port, b"GET /nolog HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").startswith(
            b"HTTP/1.1 200"
        )
        srv.wait_for(r"Spawned worker-1")
    assert not srv.matching("/nolog")


def test_static_files_are_logged(tmp_path: Path) -> None:
    if "static_path_mount" in granian_settings.NOT_IMPLEMENTED:
        pytest.skip("static files not built yet")
    mount = tmp_path / "public"
    mount.mkdir()
    (mount / "f.txt").write_bytes(b"0123456789")
    with run_server(
        tmp_path, "--interface", "asgi", "--access-log", "--access-log-fmt", FMT,
        "--static-path-route", "/static", "--static-path-mount", str(mount), "obs_apps:asgi",
    ) as srv:  # fmt: skip
        request(srv.port, b"GET /static/f.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        request(srv.port, b"GET /static/nope.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        ok = srv.wait_for(r"^ACCESS\|.*\|/static/f\.txt\|").string.split("|")
        missing = srv.wait_for(r"^ACCESS\|.*\|/static/nope\.txt\|").string.split("|")
    assert ok[4] == "200" and ok[10] == "10"
    assert missing[4] == "404"


def test_last_lines_written_at_shutdown(tmp_path: Path) -> None:
    """Lines still batched in the worker when it stops are written on its way out."""
    with run_server(tmp_path, "--interface", "rsgi", "--access-log", "obs_apps:rsgi") as srv:
        for i in range(3):
            request(srv.port, f"GET /bye{i} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.proc.wait(15) == 0
    assert [len(srv.matching(rf'"GET /bye{i} HTTP/1\.1" 200')) for i in range(3)] == [1, 1, 1]
