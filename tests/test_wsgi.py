"""WSGI (PEP 3333) over real sockets: environ, wsgi.input, start_response, streaming, close()."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import ServerProc, start_server
from wire import Conn


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProc]:
    s = start_server("wsgi_app:app", interface="wsgi", blocking_threads=4, url_path_prefix="/mnt")
    try:
        yield s
    finally:
        s.stop()


def test_plain_and_keepalive(server: ServerProc) -> None:
    with Conn(server.port) as c:
        c.send(b"GET /mnt/plain HTTP/1.1\r\nhost: x\r\n\r\nGET /mnt/plain HTTP/1.1\r\nhost: x\r\n\r\n")
        for _ in range(2):
            r = c.response()
            assert (r.status, r.body, r.headers["content-length"]) == (200, b"Hello, world!", "13")
            assert not r.chunked


def test_environ(server: ServerProc) -> None:
    with Conn(server.port) as c:
        r = c.request(
            "POST",
            "/mnt/environ?q=%41&b",
            {"Content-Type": "text/x", "X-Rep": "a", "x-rep": "b", "host": "example.org:81"},
            b"abc",
        )
        env = json.loads(r.body)
        local = c.sock.getsockname()
    assert env["REQUEST_METHOD"] == "POST"
    assert (env["SCRIPT_NAME"], env["PATH_INFO"], env["QUERY_STRING"]) == ("/mnt", "/environ", "q=%41&b")
    # SERVER_NAME from Host, SERVER_PORT the port we listen on (RFC 3875 §4.1.15)
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("example.org", str(server.port))
    assert (env["REMOTE_ADDR"], env["REMOTE_PORT"]) == (local[0], str(local[1]))
    assert (env["CONTENT_TYPE"], env["CONTENT_LENGTH"]) == ("text/x", "3")
    assert env["HTTP_X_REP"] == "a,b"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["wsgi.version"] == [1, 0] and env["wsgi.url_scheme"] == "http"
    assert env["wsgi.multithread"] is True and env["wsgi.run_once"] is False
    assert env["errors_is_stderr"] and env["has_file_wrapper"]
    # the app ran on the blocking pool, not on the event loop thread
    assert env["thread"].startswith("granian-wsgi")


def test_path_info_latin1(server: ServerProc) -> None:
    with Conn(server.port) as c:
        c.send(b"GET /mnt/environ/caf%C3%A9 HTTP/1.0\r\n\r\n")
        env = json.loads(c.response().body)
    assert env["PATH_INFO"] == "/environ/caf\u00c3\u00a9"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.0"


def test_input_streams_with_lines_and_sizes(server: ServerProc) -> None:
    body = os.urandom(700_000)
    with Conn(server.port) as c:
        assert c.request("POST", "/mnt/echo", body=body).body == body
        r = c.request(
            "POST", "/mnt/echo", {"transfer-encoding": "chunked"}, b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
        )
        assert r.body == b"abcde"
        r = c.request("POST", "/mnt/lines", body=b"line one\nabcdef\nl3\nl4")
        assert json.loads(r.body) == {
            "first": "line one\n",
            "limited": "abc",
            "rest": ["def\n", "l3\n", "l4"],
        }
        r = c.request("POST", "/mnt/readn", body=body)
        out = json.loads(r.body)
        assert out["total"] == len(body) and out["ok"]


def test_input_body_sent_slowly(server: ServerProc) -> None:
    # the body arrives after the app started reading: read() waits for it, losing nothing
    with Conn(server.port) as c:
        c.send(b"POST /mnt/lines HTTP/1.1\r\nhost: x\r\ncontent-length: 13\r\n\r\nab")
        time.sleep(0.2)
        c.send(b"c\nxyz\nlast!")
        assert json.loads(c.response().body) == {"first": "abc\n", "limited": "xyz", "rest": ["\n", "last!"]}


def test_generator_streams_in_order(server: ServerProc) -> None:
    with Conn(server.port) as c:
        r = c.request("GET", "/mnt/gen")
        assert r.chunked and r.body == b"piece0;piece1;piece2;piece3;piece4;"
        r = c.request("GET", "/mnt/lazy_start")
        assert (r.status, r.headers["x-lazy"], r.body) == (202, "1", b"late")
        r = c.request("GET", "/mnt/write")
        assert r.body == b"written;again;returned"
        r = c.request("GET", "/mnt/big?64")
        assert r.body == b"x" * 65536 * 64


def test_close_always_called(server: ServerProc) -> None:
    with Conn(server.port) as c:
        assert c.request("GET", "/mnt/closing").body == b"abc"
    with Conn(server.port) as c:
        c.send(b"GET /mnt/closing_fail HTTP/1.1\r\nhost: x\r\n\r\n")
        with pytest.raises(ConnectionError):
            c.response()  # failed mid-stream: truncated, never a clean end
    with Conn(server.port) as c:
        closed = json.loads(c.request("GET", "/mnt/closed").body)
    assert "closing" in closed and "closing_fail" in closed


def test_exc_info(server: ServerProc) -> None:
    with Conn(server.port) as c:
        r = c.request("GET", "/mnt/exc_info")
        assert (r.status, r.body, r.headers.get("x-second"), r.headers.get("x-first")) == (
            500,
            b"recovered",
            "1",
            None,
        )
    with Conn(server.port) as c:
        # headers already sent: start_response re-raises, the response is cut short
        c.send(b"GET /mnt/exc_info_late HTTP/1.1\r\nhost: x\r\n\r\n")
        with pytest.raises(ConnectionError):
            c.response()


def test_errors(server: ServerProc) -> None:
    with Conn(server.port) as c:
        assert c.request("GET", "/mnt/raise").status == 500
    with Conn(server.port) as c:
        r = c.request("GET", "/mnt/empty")
        assert (r.status, r.body) == (204, b"")


def test_file_wrapper(server: ServerProc, tmp_path: Path) -> None:
    p = tmp_path / "f.bin"
    data = os.urandom(300_000)
    p.write_bytes(data)
    with Conn(server.port) as c:
        r = c.request("GET", f"/mnt/file?{p}")
        assert (r.status, r.body, r.headers["content-length"]) == (200, data, str(len(data)))
        r = c.request("GET", f"/mnt/file_offset?{p}")
        assert r.body == data[100:]
        r = c.request("HEAD", f"/mnt/file?{p}")
        assert r.headers["content-length"] == str(len(data))
        assert c.request("GET", "/mnt/plain").body == b"Hello, world!"


def test_client_gone_mid_stream(server: ServerProc) -> None:
    s = socket.create_connection(("127.0.0.1", server.port))
    s.sendall(b"GET /mnt/big?20000 HTTP/1.1\r\nhost: x\r\n\r\n")
    s.recv(1000)
    s.close()
    # the worker stays healthy and its pool thread is released
    for _ in range(8):
        with Conn(server.port) as c:
            assert c.request("GET", "/mnt/plain").status == 200


def test_blocking_calls_run_concurrently_on_the_pool(server: ServerProc) -> None:
    # both requests pass the barrier only if two pool threads run them at once, while the
    # event loop keeps serving other connections
    with Conn(server.port) as a, Conn(server.port) as b:
        a.send(b"GET /mnt/barrier HTTP/1.1\r\nhost: x\r\n\r\n")
        with Conn(server.port) as c:
            assert c.request("GET", "/mnt/plain").status == 200
        b.send(b"GET /mnt/barrier HTTP/1.1\r\nhost: x\r\n\r\n")
        assert (a.response().body, b.response().body) == (b"met", b"met")


def test_graceful_stop_finishes_in_flight_request() -> None:
    s = start_server("wsgi_app:app", interface="wsgi")
    try:
        with Conn(s.port) as c:
            c.send(b"GET /sleep?0.5 HTTP/1.1\r\nhost: x\r\n\r\n")
            time.sleep(0.2)  # the app is running on the pool now
            s.proc.send_signal(signal.SIGTERM)
            r = c.response()
            assert (r.status, r.body) == (200, b"slept")
        # The one SIGTERM must end the worker by itself (stop() would signal it again).
        s.proc.wait(10)
    finally:
        code, _ = s.stop()
    assert code == 0
