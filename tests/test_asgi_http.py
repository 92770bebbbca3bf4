"""ASGI HTTP over a real worker (serve_worker in a subprocess), through httpx."""

from __future__ import annotations

import json
import socket

import httpx
import pytest
from helpers import ServerProc, read_response, recv_all, start_server


@pytest.fixture(scope="module")
def client(asgi_server: ServerProc):
    with httpx.Client(base_url=asgi_server.url, timeout=10) as c:
        yield c


def test_hello_world_headers(client: httpx.Client) -> None:
    r = client.get("/")
    assert r.status_code == 200
    assert r.text == "Hello, world!"
    assert r.headers["content-length"] == "13"
    assert r.headers["server"] == "granian"
    assert r.headers["date"].endswith("GMT")
    assert "transfer-encoding" not in r.headers


def test_scope(client: httpx.Client, asgi_server: ServerProc) -> None:
    r = client.get("/scope", params={"a": "1 2"}, headers={"X-Custom": "Va lue", "x-dup": "1"})
    scope = r.json()
    assert scope["type"] == "http"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.3"}
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "GET"
    assert scope["scheme"] == "http"
    assert scope["path"] == "/scope"
    assert scope["raw_path"] == "/scope"
    assert scope["query_string"] == "a=1+2"
    assert scope["root_path"] == ""
    assert ["x-custom", "Va lue"] in scope["headers"]
    assert scope["client"][0] == "127.0.0.1" and isinstance(scope["client"][1], int)
    assert scope["server"] == ["127.0.0.1", asgi_server.port]
    assert scope["state"] == {"counter": "from-lifespan"}
    assert scope["extensions"] == {"http.response.pathsend": {}, "http.response.trailers": {}}


def test_path_decoding(asgi_server: ServerProc) -> None:
    with asgi_server.connect() as s:
        s.sendall(b"GET /sc%6Fpe%c0?q=%20 HTTP/1.1\r\nHost: x\r\n\r\n")
        _, _, body, _ = read_response(s)
    # /sc%6Fpe%c0 is not /scope, so the hello route answered; ask the scope route instead.
    assert body == b"Hello, world!"
    with asgi_server.connect() as s:
        s.sendall(b"GET /%73cope?q=%20 HTTP/1.1\r\nHost: x\r\n\r\n")
        _, _, body, _ = read_response(s)
    scope = json.loads(body)
    assert scope["path"] == "/scope"
    assert scope["raw_path"] == "/%73cope"
    assert scope["query_string"] == "q=%20"


def test_echo_content_length(client: httpx.Client) -> None:
    payload = bytes(range(256)) * 64  # 16 KiB
    r = client.post("/echo", content=payload)
    assert r.content == payload
    assert r.headers["content-length"] == str(len(payload))


def test_echo_chunked_request(client: httpx.Client) -> None:
    def gen():
        for i in range(5):
            yield b"chunk%d-" % i

    r = client.post("/echo", content=gen())
    assert r.content == b"chunk0-chunk1-chunk2-chunk3-chunk4-"


def test_large_body_streams_in_pieces(client: httpx.Client) -> None:
    payload = b"a" * (3 * 1024 * 1024)
    r = client.post("/echo", content=payload)
    assert r.content == payload


def test_streaming_response_is_chunked(client: httpx.Client) -> None:
    r = client.get("/stream")
    assert r.text == "part0;part1;part2;"
    assert r.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in r.headers


def test_big_response(client: httpx.Client) -> None:
    r = client.get("/big", params=None, headers=None)
    assert len(r.content) == 65536


def test_head_has_no_body(asgi_server: ServerProc) -> None:
    with asgi_server.connect() as s:
        s.sendall(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = recv_all(s)
    first, _, rest = data.partition(b"\r\n\r\n")
    assert b"content-length: 13" in first
    # The next bytes are the second response, not a body.
    assert rest.startswith(b"HTTP/1.1 200 OK")
    assert rest.endswith(b"Hello, world!")


@pytest.mark.parametrize("code", [204, 304])
def test_no_body_statuses(asgi_server: ServerProc, code: int) -> None:
    with asgi_server.connect() as s:
        s.sendall(
            b"GET /status?%d HTTP/1.1\r\nHost: x\r\n\r\n" % code
            + b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        data = recv_all(s)
    assert data.startswith(b"HTTP/1.1 %d " % code)
    assert b"should-not-appear" not in data
    assert b"content-length: 17" not in data
    assert data.count(b"HTTP/1.1 ") == 2 and data.endswith(b"Hello, world!")


def test_exception_before_start_gives_500(client: httpx.Client, asgi_server: ServerProc) -> None:
    r = client.get("/raise-before")
    assert r.status_code == 500
    # The worker keeps serving.
    assert client.get("/").status_code == 200


def test_return_without_response_gives_500(client: httpx.Client) -> None:
    assert client.get("/return-early").status_code == 500


def test_exception_after_start_truncates(asgi_server: ServerProc) -> None:
    with asgi_server.connect() as s:
        s.sendall(b"GET /raise-after HTTP/1.1\r\nHost: x\r\n\r\n")
        data = recv_all(s)
    assert data.startswith(b"HTTP/1.1 200 OK")
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"content-length: 100" in head
    assert len(body) < 100  # never a clean, complete response


def test_flow_errors(client: httpx.Client) -> None:
    r = client.get("/misuse")
    assert r.json() == [
        "ASGI flow error: Response not started",
        "Unsupported ASGI message",
        "Unsupported ASGI message",
        "ASGI flow error: Response already started",
    ]


def test_bad_header_value_rejected(client: httpx.Client) -> None:
    r = client.get("/bad-header")
    assert r.text == "rejected: Unsupported ASGI message"
    assert "set-cookie" not in r.headers


def test_disconnect_after_response(client: httpx.Client) -> None:
    # The app calls receive() twice after responding: both must return, not hang.
    r = client.get("/after-response")
    assert r.text == "done"
    assert client.get("/").status_code == 200


def test_client_disconnect_is_reported(tmp_path) -> None:
    marker = tmp_path / "disc.txt"
    import os

    os.environ["DISCONNECT_FILE"] = str(marker)
    server = start_server("asgi_app:app", interface="asginl")
    try:
        with server.connect() as s:
            s.sendall(b"GET /wait-disconnect HTTP/1.1\r\nHost: x\r\n\r\n")
            s.recv(1000)
        import time

        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not marker.exists():
            time.sleep(0.05)
        assert marker.read_text().split() == ["http.disconnect"]
    finally:
        os.environ.pop("DISCONNECT_FILE", None)
        server.stop()


def test_pathsend(client: httpx.Client, tmp_path) -> None:
    f = tmp_path / "file.txt"
    f.write_bytes(b"file-content" * 1000)
    with httpx.Client(base_url=str(client.base_url)) as c:
        r = c.get("/pathsend?" + str(f))
        assert r.status_code == 200
        assert r.content == b"file-content" * 1000
        assert r.headers["content-length"] == "12000"
        assert c.get("/pathsend?" + str(tmp_path / "missing")).status_code == 404


def test_sse_head_is_flushed_early(asgi_server: ServerProc) -> None:
    with asgi_server.connect() as s:
        s.sendall(b"GET /sse HTTP/1.1\r\nHost: x\r\n\r\n")
        s.settimeout(0.25)
        first = s.recv(4096)  # arrives before the app's 0.3 s sleep ends
        assert first.startswith(b"HTTP/1.1 200 OK")
        assert b"transfer-encoding: chunked" in first
        s.settimeout(5)
        rest = b""
        while not rest.endswith(b"0\r\n\r\n"):
            rest += s.recv(4096)
        assert b"data: 1" in rest


def test_keep_alive_reuses_connection(asgi_server: ServerProc) -> None:
    with asgi_server.connect() as s:
        for _ in range(3):
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            status, headers, body, rest = read_response(s)
            assert status == b"HTTP/1.1 200 OK" and body == b"Hello, world!" and not rest
            assert b"connection" not in headers


def test_unread_body_is_discarded(asgi_server: ServerProc) -> None:
    with asgi_server.connect() as s:
        s.sendall(b"POST /no-read HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        _, _, body1, rest = read_response(s)
        assert body1 == b"ignored body"
        if not rest:
            _, _, body2, _ = read_response(s)
        else:
            body2 = rest.partition(b"\r\n\r\n")[2]
        assert body2 == b"Hello, world!"


def test_upgrade_request_is_plain_http(client: httpx.Client) -> None:
    # An Upgrade token no protocol serves (RFC 9110 §7.8: the server may ignore it): the app's
    # answer as is.
    r = client.get("/", headers={"Connection": "Upgrade", "Upgrade": "foo/1"})
    assert r.status_code == 200 and r.text == "Hello, world!"


def test_websocket_upgrade_without_a_handshake_is_400(client: httpx.Client) -> None:
    # WebSockets are on by default: `Upgrade: websocket` without a key and version is a bad
    # handshake (RFC 6455 §4.2.1), answered 400 rather than passed to the app as plain HTTP
    # (tests/test_ws_server.py covers --no-ws, where it is plain HTTP).
    r = client.get("/", headers={"Connection": "Upgrade", "Upgrade": "websocket"})
    assert r.status_code == 400


def test_lifespan_shutdown_runs_on_sigterm() -> None:
    server = start_server("asgi_app:app")
    try:
        with httpx.Client(base_url=server.url) as c:
            assert c.get("/").status_code == 200
    finally:
        code, _ = server.stop()
    assert code == 0
    assert b"LIFESPAN SHUTDOWN" in server.stdout


def _socket_unused() -> socket.socket:  # keeps the import used for type checkers
    return socket.socket()
