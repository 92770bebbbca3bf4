"""HTTP/1.1 serving over raw sockets: keep-alive, pipelining, errors, timeouts, options."""

from __future__ import annotations

import json
import signal
import socket
import threading
import time

import httpx
import pytest
from helpers import ServerProc, read_response, recv_all, start_server

GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def test_pipelined_requests_answered_in_order(asgi_server: ServerProc) -> None:
    # The first request is slow: the later ones must still come back after it, in order.
    reqs = (
        b"GET /slow?0.2 HTTP/1.1\r\nHost: x\r\n\r\n"
        + b"GET /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
        + GET
    )
    with asgi_server.connect() as s:
        s.sendall(reqs)
        bodies = []
        rest = b""
        for _ in range(3):
            if rest:
                # Put leftover bytes back by parsing from them first.
                head, _, tail = rest.partition(b"\r\n\r\n")
                n = int(
                    [ln for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length")][0].split(
                        b":"
                    )[1]
                )
                while len(tail) < n:
                    tail += s.recv(65536)
                bodies.append(tail[:n])
                rest = tail[n:]
            else:
                _, _, body, rest = read_response(s)
                bodies.append(body)
    assert bodies == [b"slow", b"abc", b"Hello, world!"]


@pytest.mark.parametrize("flush", [False, True])
def test_pipeline_flush_option(flush: bool) -> None:
    server = start_server("asgi_app:app", interface="asginl", http1_pipeline_flush=flush)
    try:
        with server.connect() as s:
            s.sendall(GET * 9 + b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = recv_all(s)
        assert data.count(b"HTTP/1.1 200 OK") == 10
        assert data.count(b"Hello, world!") == 10
        assert data.endswith(b"Hello, world!")
    finally:
        server.stop()


def test_connection_close_is_honoured(asgi_server: ServerProc) -> None:
    with asgi_server.connect() as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" + GET)
        data = recv_all(s)
    assert data.count(b"HTTP/1.1 200") == 1
    assert b"connection: close" in data


def test_http10_closes_unless_keep_alive(asgi_server: ServerProc) -> None:
    with asgi_server.connect() as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        data = recv_all(s)
    assert data.startswith(b"HTTP/1.1 200 OK") and data.endswith(b"Hello, world!")
    assert b"connection: close" in data
    with asgi_server.connect() as s:
        s.sendall(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        _, headers, body, _ = read_response(s)
        assert headers[b"connection"] == b"keep-alive" and body == b"Hello, world!"
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        assert recv_all(s).endswith(b"Hello, world!")


def test_http10_streaming_is_close_delimited(asgi_server: ServerProc) -> None:
    with asgi_server.connect() as s:
        s.sendall(b"GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        data = recv_all(s)
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"transfer-encoding" not in head and b"connection: close" in head
    assert body == b"part0;part1;part2;"


def test_no_keep_alive_option() -> None:
    server = start_server("asgi_app:app", interface="asginl", http1_keep_alive=False)
    try:
        with server.connect() as s:
            s.sendall(GET + GET)
            data = recv_all(s)
        assert data.count(b"HTTP/1.1 200") == 1 and b"connection: close" in data
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n", 400),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"x-h%d: v\r\n" % i for i in range(150)) + b"\r\n", 431),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: foo, chunked\r\n\r\n", 501),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    ],
)
def test_malformed_requests(asgi_server: ServerProc, request_bytes: bytes, status: int) -> None:
    with asgi_server.connect() as s:
        s.sendall(request_bytes)
        data = recv_all(s)
    assert data.startswith(b"HTTP/1.1 %d " % status)
    assert b"connection: close" in data.lower()
    # ... and the worker keeps serving everyone else.
    with httpx.Client(base_url=asgi_server.url) as c:
        assert c.get("/").text == "Hello, world!"


def test_head_larger_than_buffer_is_431() -> None:
    server = start_server("asgi_app:app", interface="asginl", http1_buffer_size=8192)
    try:
        with server.connect() as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nx-big: " + b"v" * 9000 + b"\r\n\r\n")
            data = recv_all(s)
        assert data.startswith(b"HTTP/1.1 431 ")
    finally:
        server.stop()


def test_header_read_timeout_closes_slow_heads() -> None:
    server = start_server("asgi_app:app", interface="asginl", http1_header_read_timeout=300)
    try:
        with server.connect() as s:
            s.sendall(b"GET / HTTP/1.1\r\nHo")
            data = recv_all(s, timeout=5)  # returns when the server closes
        assert data.startswith(b"HTTP/1.1 408 ")
        with server.connect() as s:
            # An idle keep-alive connection is closed too.
            s.sendall(GET)
            _, _, body, _ = read_response(s)
            assert body == b"Hello, world!"
            assert recv_all(s, timeout=5) == b""
    finally:
        server.stop()


def test_expect_continue_sent_only_when_body_is_read(asgi_server: ServerProc) -> None:
    with asgi_server.connect() as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        s.settimeout(5)
        interim = s.recv(4096)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(b"hello")
        _, _, body, _ = read_response(s)
        assert body == b"hello"
    with asgi_server.connect() as s:
        # This route never reads its body: no 100 Continue, and the connection is closed.
        s.sendall(b"POST /no-read HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        data = recv_all(s)
        assert data.startswith(b"HTTP/1.1 200 OK") and b"100 Continue" not in data
        assert b"connection: close" in data


def test_url_path_prefix_sets_root_path() -> None:
    server = start_server("asgi_app:app", interface="asginl", url_path_prefix="/mount")
    try:
        r = httpx.get(server.url + "/scope")
        assert r.json()["root_path"] == "/mount"
    finally:
        server.stop()


def test_opt_mode_serves_everything() -> None:
    server = start_server("asgi_app:app", opt=True)
    try:
        with httpx.Client(base_url=server.url) as c:
            assert c.get("/").text == "Hello, world!"
            assert c.get("/slow?0.05").text == "slow"
            assert c.post("/echo", content=b"z" * 100000).content == b"z" * 100000
            assert c.get("/stream").text == "part0;part1;part2;"
            assert c.get("/raise-before").status_code == 500
            assert c.get("/scope").json()["state"] == {"counter": "from-lifespan"}
        with server.connect() as s:
            s.sendall(
                b"GET /slow?0.1 HTTP/1.1\r\nHost: x\r\n\r\n"
                + GET
                + b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            data = recv_all(s)
            assert data.count(b"HTTP/1.1 200") == 3 and data.index(b"slow") < data.index(b"Hello")
    finally:
        server.stop()


def test_backpressure_limits_concurrency() -> None:
    server = start_server("asgi_app:app", interface="asginl", backpressure=1)
    try:
        results: list[float] = []

        def call() -> None:
            t0 = time.monotonic()
            httpx.get(server.url + "/slow?0.3", timeout=10)
            results.append(time.monotonic() - t0)

        threads = [threading.Thread(target=call) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # One at a time: the three requests cannot all finish in the time of one.
        assert len(results) == 3 and max(results) >= 0.6
    finally:
        server.stop()


def test_graceful_shutdown_finishes_in_flight_request() -> None:
    server = start_server("asgi_app:app")
    try:
        idle = server.connect()
        idle.sendall(GET)
        read_response(idle)  # now an idle keep-alive connection
        busy = server.connect()
        busy.sendall(b"GET /slow?0.5 HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.1)
        server.proc.send_signal(signal.SIGTERM)
        _, headers, body, _ = read_response(busy)
        assert body == b"slow" and headers[b"connection"] == b"close"
        assert recv_all(idle) == b""
        assert server.proc.wait(10) == 0
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
        busy.close()
        idle.close()
    finally:
        server.stop()


def test_lifespan_failure_exits_non_zero() -> None:
    for target in ("asgi_lifespan_apps:failing", "asgi_lifespan_apps:raising_after"):
        server = start_server(target)
        code = server.proc.wait(10)
        server.stop()
        assert code != 0


def test_lifespan_unsupported_serves_without_it() -> None:
    server = start_server("asgi_lifespan_apps:unsupported")
    try:
        assert httpx.get(server.url + "/").text == "no-lifespan"
    finally:
        code, err = server.stop()
    assert code == 0
    assert "lifespan" in (err + server.stdout.decode()).lower()


def test_asginl_skips_lifespan() -> None:
    server = start_server("asgi_app:app", interface="asginl")
    try:
        assert httpx.get(server.url + "/scope").json()["state"] == {}
    finally:
        server.stop()


def _unused() -> str:
    return json.dumps({})


def test_asyncio_loop_serves_and_sends_files(tmp_path) -> None:
    f = tmp_path / "blob.bin"
    f.write_bytes(bytes(range(256)) * 4096)  # 1 MiB through loop.sendfile
    server = start_server("asgi_app:app", interface="asginl", loop="asyncio")
    try:
        with httpx.Client(base_url=server.url) as c:
            assert c.get("/").text == "Hello, world!"
            r = c.get("/pathsend?" + str(f))
            assert r.content == f.read_bytes()
            assert c.post("/echo", content=b"q" * 70000).content == b"q" * 70000
    finally:
        server.stop()


def test_head_of_a_streamed_response_has_no_body(asgi_server: ServerProc) -> None:
    with asgi_server.connect() as s:
        s.sendall(
            b"HEAD /stream HTTP/1.1\r\nHost: x\r\n\r\n"
            + b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        data = recv_all(s)
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and b"transfer-encoding" not in head
    assert rest.startswith(b"HTTP/1.1 200 OK") and rest.endswith(b"Hello, world!")
