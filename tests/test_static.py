"""Static paths over real sockets, before the app, for every interface (--static-path-*)."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import ServerProc, start_server
from wire import Conn

DATA = bytes(range(256)) * 600  # 153600 bytes
# Larger than a loopback socket buffer: the zero-copy path must wait for room and resume.
BIG = os.urandom(1 << 20) * 12


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("static")
    mount = root / "pub"
    (mount / "docs").mkdir(parents=True)
    (mount / "data.bin").write_bytes(DATA)
    (mount / "big.bin").write_bytes(BIG)
    (mount / "cert.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    (mount / "app.js").write_text("let x = 1;\n")
    (mount / "docs" / "index.html").write_text("<h1>index</h1>")
    (mount / "caf\u00e9 \u00fc.txt").write_text("unicode")
    (mount / "noext").write_text("?")
    (root / "secret.txt").write_text("secret")
    os.symlink(root / "secret.txt", mount / "escape.txt")
    return root


@pytest.fixture(scope="module", params=["rsgi", "wsgi", "asgi"])
def server(request: pytest.FixtureRequest, tree: Path) -> Iterator[ServerProc]:
    iface = request.param
    s = start_server(
        f"static_apps:{iface}",
        interface=iface,
        static_path_route=["/static"],
        static_path_mount=[str(tree / "pub")],
        static_path_dir_to_file="index.html",
        static_path_expires=3600,
    )
    try:
        yield s
    finally:
        s.stop()


def test_serves_files_before_app(server: ServerProc) -> None:
    with Conn(server.port) as c:
        r = c.request("GET", "/static/data.bin")
        assert (r.status, r.body) == (200, DATA)
        assert r.headers["content-length"] == str(len(DATA))
        assert r.headers["cache-control"] == "max-age=3600"
        assert r.headers["accept-ranges"] == "bytes"
        assert "content-type" not in r.headers or r.headers["content-type"] == "application/octet-stream"
        r = c.request("GET", "/static/cert.pem")
        assert r.headers["content-type"] == "application/x-x509-ca-cert"
        assert r.body == b"-----BEGIN CERTIFICATE-----\n"
        r = c.request("GET", "/static/app.js")
        assert r.headers["content-type"] == "text/javascript"
        assert "content-type" not in c.request("GET", "/static/noext").headers
        r = c.request("GET", "/static/caf%C3%A9%20%C3%BC.txt")
        assert (r.status, r.body) == (200, b"unicode")
        r = c.request("GET", "/static/docs")
        assert (r.status, r.body, r.headers["content-type"]) == (200, b"<h1>index</h1>", "text/html")
        # outside the routes the app answers
        r = c.request("GET", "/other")
        assert (r.status, r.body) == (200, b"app /other")
        r = c.request("GET", "/staticx")
        assert r.body == b"app /staticx"
        r = c.request("HEAD", "/static/data.bin")
        assert r.status == 200 and r.headers["content-length"] == str(len(DATA))
        assert c.request("GET", "/static/app.js").body == b"let x = 1;\n"  # still in sync


@pytest.mark.parametrize(
    "target",
    [
        "/static/missing.txt",
        "/static/../secret.txt",
        "/static/%2e%2e/secret.txt",
        "/static/%2E%2E%2Fsecret.txt",
        "/static/escape.txt",
        "/static/a%00b",
    ],
)
def test_never_outside_mount(server: ServerProc, target: str) -> None:
    with Conn(server.port) as c:
        r = c.request("GET", target)
        assert r.status == 404
        assert b"secret" not in r.body


def test_conditional_requests(server: ServerProc) -> None:
    with Conn(server.port) as c:
        r = c.request("GET", "/static/data.bin")
        etag, lm = r.headers["etag"], r.headers["last-modified"]
        r = c.request("GET", "/static/data.bin", {"if-none-match": etag})
        assert (r.status, r.body, r.headers["etag"]) == (304, b"", etag)
        assert r.headers["cache-control"] == "max-age=3600"
        r = c.request("GET", "/static/data.bin", {"if-modified-since": lm})
        assert r.status == 304
        r = c.request("GET", "/static/data.bin", {"if-none-match": '"other"', "if-modified-since": lm})
        assert (r.status, r.body) == (200, DATA)
        r = c.request("GET", "/static/data.bin", {"if-match": '"other"'})
        assert r.status == 412
        assert c.request("GET", "/static/cert.pem").status == 200


def test_ranges(server: ServerProc) -> None:
    size = len(DATA)
    with Conn(server.port) as c:
        etag = c.request("GET", "/static/data.bin").headers["etag"]
        r = c.request("GET", "/static/data.bin", {"range": "bytes=100-1099"})
        assert (r.status, r.body) == (206, DATA[100:1100])
        assert r.headers["content-range"] == f"bytes 100-1099/{size}"
        assert r.headers["content-length"] == "1000"
        r = c.request("GET", "/static/data.bin", {"range": "bytes=-10"})
        assert (r.status, r.body) == (206, DATA[-10:])
        r = c.request("GET", "/static/data.bin", {"range": "bytes=150000-"})
        assert r.body == DATA[150000:]
        r = c.request("GET", "/static/data.bin", {"range": f"bytes={size}-"})
        assert (r.status, r.headers["content-range"]) == (416, f"bytes */{size}")
        r = c.request("GET", "/static/data.bin", {"range": "bytes=0-1,5-6"})
        assert (r.status, r.body) == (200, DATA)
        r = c.request("GET", "/static/data.bin", {"range": "bytes=0-9", "if-range": etag})
        assert (r.status, r.body) == (206, DATA[:10])
        r = c.request("GET", "/static/data.bin", {"range": "bytes=0-9", "if-range": '"stale"'})
        assert (r.status, r.body) == (200, DATA)
        assert c.request("GET", "/other").body == b"app /other"


def test_methods(server: ServerProc) -> None:
    with Conn(server.port) as c:
        r = c.request("POST", "/static/data.bin", body=b"x")
        assert r.status == 405 and r.headers["allow"] == "GET, HEAD"


def test_large_file_with_slow_reader(server: ServerProc) -> None:
    with Conn(server.port) as c:
        c.send(b"GET /static/big.bin HTTP/1.1\r\nhost: x\r\n\r\n")
        time.sleep(0.3)  # let the socket buffers fill: the server must block and resume
        r = c.response()
        assert r.status == 200 and len(r.body) == len(BIG) and r.body == BIG
        r = c.request("GET", "/static/big.bin", {"range": "bytes=5000000-9000000"})
        assert r.body == BIG[5000000:9000001]
        assert c.request("GET", "/other").body == b"app /other"


def test_client_leaving_mid_file_keeps_worker_healthy(server: ServerProc) -> None:
    for _ in range(3):
        s = socket.create_connection(("127.0.0.1", server.port))
        s.sendall(b"GET /static/big.bin HTTP/1.1\r\nhost: x\r\n\r\n")
        s.recv(1000)
        s.close()
    with Conn(server.port) as c:
        assert c.request("GET", "/static/data.bin").body == DATA
