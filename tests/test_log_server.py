"""Server logging end to end: the lifecycle lines a user relies on, each log option through the
real CLI, and app exceptions logged once with their traceback."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from test_access_log_server import APPS, free_port, request, run_server

GET = b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"

BOOM_APP = """
async def asgi(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            m = await receive()
            if m["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    raise ValueError("obs-boom-marker")


async def rsgi(scope, proto):
    raise ValueError("obs-boom-marker")


def wsgi(environ, start_response):
    raise ValueError("obs-boom-marker")
"""


def test_lifecycle_lines(tmp_path: Path) -> None:
    # One worker: a request answered after the respawn proves the new worker is past its
    # start-up before the SIGTERM (a SIGTERM right after fork can be lost; see the report).
    args = ("--interface", "asgi", "--respawn-failed-workers", "--respawn-interval", "0", "obs_apps:asgi")
    with run_server(tmp_path, *args) as srv:
        master = srv.proc.pid
        srv.wait_for(rf"^\[INFO\] .*master PID: {master}\b")
        srv.wait_for(rf"^\[INFO\] Listening at: http://127\.0\.0\.1:{srv.port}$")
        first = int(srv.wait_for(r"^\[INFO\] Spawned worker-1 with PID: (\d+)$").group(1))
        assert first != master
        assert request(srv.port, GET).startswith(b"HTTP/1.1 200")
        os.kill(first, signal.SIGKILL)
        srv.wait_for(rf"^\[ERROR\] worker-1 \(PID {first}\) exited unexpectedly \(signal SIGKILL\)$")
        srv.wait_for(r"^\[INFO\] Respawning worker-1")
        srv.wait_for(rf"^\[INFO\] Spawned worker-1 with PID: (?!{first}$)\d+$")
        assert request(srv.port, GET).startswith(b"HTTP/1.1 200")
        srv.proc.send_signal(signal.SIGTERM)
        srv.wait_for(r"^\[INFO\] Shutdown complete$")
        assert srv.proc.wait(15) == 0


def test_each_worker_spawn_is_logged(tmp_path: Path) -> None:
    with run_server(tmp_path, "--interface", "asgi", "--workers", "3", "obs_apps:asgi") as srv:
        spawned = (srv.wait_for(rf"^\[INFO\] Spawned worker-{n} with PID: (\d+)$") for n in (1, 2, 3))
        pids = {int(m.group(1)) for m in spawned}
        assert len(pids) == 3 and srv.proc.pid not in pids
        assert request(srv.port, GET).startswith(b"HTTP/1.1 200")


def test_listening_line_for_unix_socket(tmp_path: Path) -> None:
    (tmp_path / "obs_apps.py").write_text(APPS)
    path = tmp_path / "s.sock"
    proc = subprocess.Popen(
        [sys.executable, "-m", "granian", "--interface", "asgi", "--uds", str(path), "obs_apps:asgi"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "Listening at" in line:
                assert line.rstrip("\n") == f"[INFO] Listening at: unix:{path}"
                break
        else:
            raise AssertionError("no Listening line")
        # Served over the socket: the worker is up before the SIGTERM below.
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(str(path))
            s.sendall(GET)
            assert s.recv(65536).startswith(b"HTTP/1.1 200")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate(timeout=5)


def test_log_level_and_no_log(tmp_path: Path) -> None:
    args = ("--interface", "asgi", "--access-log", "obs_apps:asgi")
    with run_server(tmp_path, "--log-level", "warning", *args, port=free_port()) as srv:
        request(srv.port, GET)
        srv.wait_for(r'"GET / HTTP/1\.1" 200')
        srv.proc.send_signal(signal.SIGTERM)
        srv.proc.wait(15)
    assert srv.lines and not srv.matching(r"^\[INFO\]")
    with run_server(tmp_path, "--log-level", "debug", *args) as srv:
        srv.wait_for(r"^\[INFO\] Spawned worker-1")
    with run_server(tmp_path, "--no-log", *args, port=free_port()) as srv:
        request(srv.port, GET)
        srv.wait_for(r'"GET / HTTP/1\.1" 200')  # the access log is its own switch
        srv.proc.send_signal(signal.SIGTERM)
        srv.proc.wait(15)
    assert not srv.matching(r"^\[(DEBUG|INFO|WARNING|ERROR)\]")


def test_log_config_file(tmp_path: Path) -> None:
    cfg = {
        "version": 1,
        "formatters": {"tagged": {"format": "CFG %(name)s %(levelname)s %(message)s"}},
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": "tagged", "stream": "ext://sys.stdout"}
        },
        "loggers": {"granian.access": {"handlers": ["console"], "level": "INFO", "propagate": False}},
    }
    path = tmp_path / "log.json"
    path.write_text(json.dumps(cfg))
    with run_server(
        tmp_path, "--interface", "asgi", "--access-log", "--log-config", str(path), "obs_apps:asgi"
    ) as srv:
        srv.wait_for(r"^CFG _granian INFO Spawned worker-1 with PID: \d+$")
        request(srv.port, GET)
        srv.wait_for(r'^CFG granian\.access INFO \[.*\] 127\.0\.0\.1 - "GET / HTTP/1\.1" 200 ')


def test_invalid_log_config_exits_with_file_and_reason(tmp_path: Path) -> None:
    (tmp_path / "obs_apps.py").write_text(APPS)
    path = tmp_path / "broken.json"
    path.write_text("{ not json")
    p = subprocess.run(
        [sys.executable, "-m", "granian", "--port", "0", "--log-config", str(path), "obs_apps:asgi"],
        cwd=tmp_path, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert p.returncode != 0
    out = p.stdout + p.stderr
    assert f"--log-config {path}: invalid JSON" in out
    assert "Listening at" not in out


@pytest.mark.parametrize("interface", ["asgi", "rsgi", "wsgi"])
def test_app_exception_logged_once_with_traceback(tmp_path: Path, interface: str) -> None:
    (tmp_path / "boom_app.py").write_text(BOOM_APP)
    with run_server(tmp_path, "--interface", interface, f"boom_app:{interface}") as srv:
        assert request(srv.port, GET).startswith(b"HTTP/1.1 500")
        srv.wait_for(r"ValueError: obs-boom-marker")
        srv.proc.send_signal(signal.SIGTERM)
        srv.wait_for(r"Shutdown complete")
        srv.proc.wait(15)
    text = "\n".join(srv.lines)
    assert text.count("ValueError: obs-boom-marker") == 1
    assert text.count("Traceback (most recent call last):") == 1
    # The traceback follows an error-level line.
    before = text[: text.index("Traceback (most recent call last):")].rstrip("\n").splitlines()[-1]
    assert re.match(r"^\[ERROR\] ", before), before
