"""RSGI HTTP over real sockets (RSGI.md): scope, headers, body, responses, files, streams, hooks."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import ServerProc, start_server
from wire import Conn


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProc]:
    s = start_server("rsgi_app:app", interface="rsgi")
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def datafile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("rsgi") / "data.bin"
    p.write_bytes(bytes(range(256)) * 1024)  # 256 KiB: several sendfile/read pieces
    return p


def test_plain_bytes_empty_keepalive_pipelined(server: ServerProc) -> None:
    with Conn(server.port) as c:
        c.send(b"GET /plain HTTP/1.1\r\nhost: x\r\n\r\nGET /bytes HTTP/1.1\r\nhost: x\r\n\r\n")
        r1, r2 = c.response(), c.response()
        assert (r1.status, r1.body, r1.headers["content-type"]) == (200, b"Hello, world!", "text/plain")
        assert r1.headers["content-length"] == "13" and "date" in r1.headers and "server" in r1.headers
        assert (r2.status, r2.body, r2.get_all("x-a")) == (201, b"\x00\xff", ["1", "2"])
        r3 = c.request("GET", "/empty")
        assert (r3.status, r3.body, r3.headers["x-e"]) == (204, b"", "y")


def test_scope_and_headers(server: ServerProc) -> None:
    with Conn(server.port) as c:
        r = c.request("GET", "/scope?a=%20b&c", {"X-Multi": "1", "x-multi": "2", "X-Other": "o"})
        s = json.loads(r.body)
        local = c.sock.getsockname()
    assert s["proto"] == "http" and s["rsgi_version"] == "1.6" and s["http_version"] == "1.1"
    assert s["server"] == f"127.0.0.1:{server.port}"
    assert s["client"] == f"{local[0]}:{local[1]}"
    assert (s["scheme"], s["method"], s["path"], s["query_string"]) == ("http", "GET", "/scope", "a=%20b&c")
    assert s["authority"] is None
    assert s["keys"] == ["host", "x-multi", "x-other"]
    assert s["multi"] == ["1", "2"] and s["first"] == "1" and s["len"] == 3 and s["in"] is True
    assert s["items"] == [["host", "test"], ["x-multi", "1"], ["x-multi", "2"], ["x-other", "o"]]


def test_scope_path_decoding_and_http10(server: ServerProc) -> None:
    with Conn(server.port) as c:
        c.send(b"GET /sc%6fpe HTTP/1.0\r\n\r\n")
        s = json.loads(c.response().body)
    assert s["path"] == "/scope" and s["http_version"] == "1"


def test_body_whole_and_iter(server: ServerProc) -> None:
    body = os.urandom(300_000)
    with Conn(server.port) as c:
        assert c.request("POST", "/echo", body=body).body == body
        chunked = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        r = c.request("POST", "/echo", {"transfer-encoding": "chunked"}, chunked)
        assert r.body == b"hello world"
        r = c.request("POST", "/iter", body=body)
        assert json.loads(r.body)["total"] == len(body)
        r = c.request("GET", "/iter")
        assert json.loads(r.body)["total"] == 0
        r = c.request("POST", "/double", body=b"abc")
        assert r.body == b"ProtocolError"
        r = c.request("POST", "/iter_then_whole", body=b"abc")
        assert r.body == b"ProtocolError"


def test_first_response_wins_and_stream_after_response_raises(server: ServerProc) -> None:
    with Conn(server.port) as c:
        r = c.request("GET", "/stream_then_error")
        assert (r.status, r.body) == (200, b"first")
        assert json.loads(c.request("GET", "/state").body).get("stream_error") is True


def test_stream(server: ServerProc) -> None:
    with Conn(server.port) as c:
        r = c.request("GET", "/stream")
        assert r.chunked and r.status == 200
        assert r.body == b"".join(b"b%d;s%d;" % (i, i) for i in range(5))
        assert c.request("GET", "/plain").body == b"Hello, world!"  # connection still usable


def test_files(server: ServerProc, datafile: Path) -> None:
    data = datafile.read_bytes()
    with Conn(server.port) as c:
        r = c.request("GET", f"/file?p={datafile}")
        assert r.status == 200 and r.body == data and r.headers["content-length"] == str(len(data))
        assert r.headers["content-type"] == "application/octet-stream"
        r = c.request("GET", f"/range?p={datafile}&s=1000&e=70000")
        assert (r.status, r.body, r.headers["x-r"]) == (206, data[1000:70000], "1")
        r = c.request("GET", f"/range?p={datafile}&s=10&e={len(data) + 500}")
        assert r.body == data[10:]
        r = c.request("GET", f"/badrange?p={datafile}")
        assert r.body == b"Invalid range"
        r = c.request("GET", "/file?p=/nonexistent/file")
        assert (r.status, r.body) == (404, b"")
        r = c.request("HEAD", f"/file?p={datafile}")
        assert r.status == 200 and r.headers["content-length"] == str(len(data))
        assert c.request("GET", "/plain").body == b"Hello, world!"


def test_errors_give_500(server: ServerProc) -> None:
    with Conn(server.port) as c:
        r = c.request("GET", "/raise")
        assert (r.status, r.body) == (500, b"")
    with Conn(server.port) as c:
        r = c.request("GET", "/noresp")
        assert (r.status, r.body) == (500, b"")
    with Conn(server.port) as c:
        # the stream already started: the client sees a truncated response, not a clean 500
        c.send(b"GET /stream_raise HTTP/1.1\r\nhost: x\r\n\r\n")
        with pytest.raises(ConnectionError):
            c.response()


def test_client_disconnect_and_closed_stream(server: ServerProc) -> None:
    with Conn(server.port) as c0:
        before = json.loads(c0.request("GET", "/state").body)["disconnects"]
    c = Conn(server.port)
    assert c.request("GET", "/watch").body == b"watching"
    c.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with Conn(server.port) as c2:
            if json.loads(c2.request("GET", "/state").body)["disconnects"] > before:
                break
        time.sleep(0.05)
    else:
        pytest.fail("client_disconnect() never resolved")
    s = socket.create_connection(("127.0.0.1", server.port))
    s.sendall(b"GET /stream_gone HTTP/1.1\r\nhost: x\r\n\r\n")
    s.recv(1000)
    s.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with Conn(server.port) as c2:
            if json.loads(c2.request("GET", "/state").body).get("stream_closed"):
                return
        time.sleep(0.05)
    pytest.fail("send_bytes to a gone client never raised ProtocolClosed")


def test_closed_stream_is_reported_to_a_producer_that_never_yields(server: ServerProc) -> None:
    s = socket.create_connection(("127.0.0.1", server.port))
    s.sendall(b"GET /stream_gone_tight HTTP/1.1\r\nhost: x\r\n\r\n")
    s.recv(1000)
    s.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with Conn(server.port) as c2:
            state = json.loads(c2.request("GET", "/state").body)
        if "tight_closed" in state:
            assert state["tight_closed"] is True, "the producer wrote 200 MB into a closed connection"
            return
        time.sleep(0.05)
    pytest.fail("the tight producer never finished")


def test_rsgi_hooks_and_dunder(tmp_path: Path) -> None:
    marker = tmp_path / "del"
    os.environ["RSGI_DEL_MARKER"] = str(marker)
    try:
        s = start_server("rsgi_app:hooked", interface="rsgi")
    finally:
        del os.environ["RSGI_DEL_MARKER"]
    try:
        with Conn(s.port) as c:
            assert c.request("GET", "/").body == b"hooked init=True"
    finally:
        code, _ = s.stop()
    assert code == 0
    assert marker.read_text() == "deleted"


def test_public_names() -> None:
    import granian.rsgi as rsgi
    from granian._granian import RSGIProtocolClosed, RSGIProtocolError

    assert rsgi.ProtocolError is RSGIProtocolError and rsgi.ProtocolClosed is RSGIProtocolClosed
    assert issubclass(RSGIProtocolError, RuntimeError) and issubclass(RSGIProtocolClosed, RuntimeError)
    assert int(rsgi.WebsocketMessageType.close) == 0
    assert int(rsgi.WebsocketMessageType.bytes) == 1
    assert int(rsgi.WebsocketMessageType.string) == 2
    for name in ("Headers", "HTTPProtocol", "WebsocketProtocol", "Scope", "WebsocketMessage"):
        assert isinstance(getattr(rsgi, name), type)


def test_app_error_is_logged_with_traceback() -> None:
    s = start_server("rsgi_app:app", interface="rsgi")
    try:
        with Conn(s.port) as c:
            assert c.request("GET", "/raise").status == 500
    finally:
        code, err = s.stop()
    out = s.stdout.decode(errors="replace") + err  # the server log goes to stdout (granian.log)
    assert code == 0
    assert "Traceback" in out and "RuntimeError: boom" in out
