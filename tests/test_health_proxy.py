"""--health-path, --shutdown-delay and --proxy-headers over real sockets (issue 15)."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import ServerProc, start_server
from test_supervisor_support import Server, get, wait_until, write_app
from wire import Conn


@pytest.fixture(scope="module")
def health_server() -> Iterator[ServerProc]:
    s = start_server("asgi_app:app", health_path=["/healthz", "/ready"], access_log=True)
    try:
        yield s
    finally:
        s.stop()


def test_health_path_is_answered_by_the_server(health_server: ServerProc) -> None:
    with Conn(health_server.port) as c:
        r = c.request("GET", "/healthz")
        assert (r.status, r.body) == (200, b"ok")
        assert r.headers["cache-control"] == "no-store"
        assert r.headers["content-type"].startswith("text/plain")
        # the same keep-alive connection goes on to the app, and to the other health path
        assert c.request("GET", "/scope").status == 200
        r = c.request("HEAD", "/ready")
        assert (r.status, r.body) == (200, b"")
        r = c.request("GET", "/healthz?probe=1")  # the query is not part of the path
        assert (r.status, r.body) == (200, b"ok")
        assert c.request("POST", "/healthz", body=b"").status == 405
    # a path merely starting like a health path is the app's
    with Conn(health_server.port) as c:
        assert c.request("GET", "/healthz/x").body == b"Hello, world!"


def test_health_requests_are_access_logged(health_server: ServerProc) -> None:
    with Conn(health_server.port) as c:
        assert c.request("GET", "/ready?log-me").status == 200
        assert c.request("POST", "/healthz", body=b"").status == 405
    code, err = ServerProc.stop(health_server)
    out = health_server.stdout.decode(errors="replace") + err
    assert '"GET /ready HTTP/1.1" 200' in out and '"POST /healthz HTTP/1.1" 405' in out, out[-2000:]


def test_health_answers_503_from_the_start_of_a_graceful_stop(tmp_path: Path) -> None:
    """Through the CLI's master: SIGTERM with --shutdown-delay keeps accepting and serving the
    app for the delay while the health path already says 503, then drains and exits 0."""
    write_app(tmp_path)
    opts: dict[str, object] = {
        "app": "app_sup:app",
        "workers": 2,
        "working_dir": str(tmp_path),
        "health_path": ["/healthz"],
        "shutdown_delay": 3,
    }
    srv = Server.launch(opts, tmp_path, None)
    try:
        srv.ready(2)
        assert get(srv.port, "/healthz") == "ok"
        t0 = time.monotonic()
        srv.signal(signal.SIGTERM)
        # every worker (new connections land on either) turns to 503 while still serving
        assert wait_until(lambda: all(_health(srv.port) == (503, b"draining") for _ in range(6)), 2)
        assert get(srv.port, "/") is not None  # the app is still served during the delay
        assert srv.wait(10) == 0
        assert time.monotonic() - t0 >= 2.5  # the delay was honoured before the drain
        srv.wait_for("Shutdown delay over", 2)
    finally:
        srv.stop()


def _health(port: int) -> tuple[int, bytes] | None:
    try:
        with Conn(port, timeout=2) as c:
            r = c.request("GET", "/healthz")
            return r.status, r.body
    except OSError:
        return None


# --proxy-headers: the client, scheme and host a trusted proxy forwarded reach every interface.
FORWARDED = {
    "x-forwarded-for": "203.0.113.7, 127.0.0.1",
    "x-forwarded-proto": "https",
    "x-forwarded-host": "example.com",
}


@pytest.mark.parametrize("trusted", [True, False])
def test_proxy_headers_asgi(trusted: bool) -> None:
    s = start_server(
        "asgi_app:app", proxy_headers=True, forwarded_allow_ips="127.0.0.1" if trusted else "10.9.9.9"
    )
    try:
        with Conn(s.port) as c:
            scope = json.loads(c.request("GET", "/scope", {"host": "internal:8000", **FORWARDED}).body)
            local = c.sock.getsockname()
    finally:
        s.stop()
    host = dict(scope["headers"])["host"]
    if trusted:
        assert scope["client"][0] == "203.0.113.7" and scope["scheme"] == "https" and host == "example.com"
    else:
        assert scope["client"] == [local[0], local[1]] and scope["scheme"] == "http"
        assert host == "internal:8000"


def test_proxy_headers_rsgi_and_wsgi() -> None:
    r = start_server("rsgi_app:app", interface="rsgi", proxy_headers=True)
    w = start_server("wsgi_app:app", interface="wsgi", proxy_headers=True)
    try:
        with Conn(r.port) as c:
            scope = json.loads(c.request("GET", "/scope", FORWARDED).body)
        with Conn(w.port) as c:
            env = json.loads(c.request("GET", "/environ", FORWARDED).body)
    finally:
        r.stop()
        w.stop()
    assert scope["client"].startswith("203.0.113.7") and scope["scheme"] == "https"
    assert env["REMOTE_ADDR"] == "203.0.113.7" and env["wsgi.url_scheme"] == "https"
    assert env["HTTP_HOST"] == "example.com"


def test_proxy_headers_off_by_default() -> None:
    s = start_server("asgi_app:app")
    try:
        with Conn(s.port) as c:
            scope = json.loads(c.request("GET", "/scope", FORWARDED).body)
    finally:
        s.stop()
    assert scope["client"][0] == "127.0.0.1" and scope["scheme"] == "http"


def test_proxy_headers_reach_the_access_log() -> None:
    s = start_server("asgi_app:app", proxy_headers=True, access_log=True)
    try:
        with Conn(s.port) as c:
            assert c.request("GET", "/scope", FORWARDED).status == 200
    finally:
        code, err = s.stop()
    out = s.stdout.decode(errors="replace") + err
    line = [ln for ln in out.splitlines() if '"GET /scope HTTP/1.1"' in ln]
    assert line and " 203.0.113.7 " in line[0], out[-1500:]
