"""Real frameworks over real sockets: Emmett on RSGI; Flask and Django on WSGI."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import ServerProc, start_server
from wire import Conn

pytest.importorskip("emmett")
pytest.importorskip("flask")
pytest.importorskip("django")

UPLOAD = os.urandom(50_000).replace(b"\r\n", b"xx")


def _multipart(field: str, data: bytes) -> tuple[dict[str, str], bytes]:
    b = "----granianBoundary7MA4YWxk"
    body = (
        (
            f'--{b}\r\nContent-Disposition: form-data; name="field"\r\n\r\n{field}\r\n'
            f'--{b}\r\nContent-Disposition: form-data; name="upload"; filename="up.bin"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{b}--\r\n".encode()
    )
    return {"content-type": f"multipart/form-data; boundary={b}"}, body


FORM = {"content-type": "application/x-www-form-urlencoded"}


@pytest.fixture(scope="module")
def emmett_server() -> Iterator[ServerProc]:
    s = start_server("fw_emmett:app", interface="rsgi")
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def flask_server() -> Iterator[ServerProc]:
    s = start_server("fw_flask:app", interface="wsgi", blocking_threads=4)
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def django_server() -> Iterator[ServerProc]:
    s = start_server("fw_django:application", interface="wsgi", blocking_threads=4, url_path_prefix="/dj")
    try:
        yield s
    finally:
        s.stop()


def test_emmett(emmett_server: ServerProc) -> None:
    with Conn(emmett_server.port) as c:
        r = c.request("GET", "/")
        assert (r.status, r.body, r.headers["content-type"]) == (200, b"hello emmett", "text/plain")
        assert c.request("POST", "/params?q=1", FORM, b"name=bob").body == b"q=1;name=bob"
        r = c.request("POST", "/json", {"content-type": "application/json"}, b'{"a": [1, 2]}')
        assert json.loads(r.body) == {"got": {"a": [1, 2]}, "path": "/json", "method": "POST", "host": "test"}
        headers, body = _multipart("v", UPLOAD)
        assert c.request("POST", "/upload", headers, body).body == f"up.bin:{len(UPLOAD)}".encode()
        r = c.request("GET", "/stream")
        assert r.chunked and r.body == b"part0;part1;part2;"
        assert c.request("GET", "/missing").status == 404


def test_flask(flask_server: ServerProc, tmp_path: Path) -> None:
    with Conn(flask_server.port) as c:
        assert c.request("GET", "/").body == b"hello flask"
        assert c.request("POST", "/form?q=7", FORM, b"name=al+ice").body == b"name=al ice;q=7"
        headers, body = _multipart("fv", UPLOAD)
        r = c.request("POST", "/upload", headers, body)
        assert r.body == f"up.bin:{len(UPLOAD)}:fv:{UPLOAD[:4].hex()}".encode()
        r = c.request("POST", "/json", {"content-type": "application/json"}, b'{"k": "v"}')
        assert json.loads(r.body) == {"got": {"k": "v"}, "path": "/json", "root": ""}
        r = c.request("GET", "/stream")
        assert r.chunked and r.chunks == [b"row0\n", b"row1\n", b"row2\n", b"row3\n"]
        p = tmp_path / "f.bin"
        p.write_bytes(UPLOAD)
        r = c.request("GET", f"/file?p={p}")
        assert (r.status, r.body) == (200, UPLOAD)


def test_django(django_server: ServerProc, tmp_path: Path) -> None:
    with Conn(django_server.port) as c:
        r = c.request("GET", "/dj/")
        assert (r.status, r.body) == (200, b"hello django")
        r = c.request("POST", "/dj/form?q=3", FORM, b"name=b%C3%B6b")
        assert r.body.decode() == "name=b\u00f6b;q=3;path=/dj/form"
        headers, body = _multipart("dv", UPLOAD)
        r = c.request("POST", "/dj/upload", headers, body)
        assert r.body == f"up.bin:{len(UPLOAD)}:dv:{UPLOAD[:4].hex()}".encode()
        r = c.request("GET", "/dj/meta", {"user-agent": "granian-test", "host": "ex.com:8080"})
        meta = json.loads(r.body)
        assert meta["host"] == "ex.com:8080" and meta["path"] == "/dj/meta" and meta["path_info"] == "/meta"
        assert meta["script"] == "/dj" and meta["remote"] == "127.0.0.1" and meta["agent"] == "granian-test"
        r = c.request("GET", "/dj/stream")
        assert r.chunked and r.chunks == [b"row0\n", b"row1\n", b"row2\n", b"row3\n"]
        p = tmp_path / "f.bin"
        p.write_bytes(UPLOAD)
        r = c.request("GET", f"/dj/file?p={p}")
        assert (r.status, r.body, r.headers["content-length"]) == (200, UPLOAD, str(len(UPLOAD)))
