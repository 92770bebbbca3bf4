"""ASGI's HTTP Trailers extension (`http.response.trailers`) over real sockets (issue 14).

HTTP/2 (h2c prior knowledge, both engines): the body's DATA frames carry no END_STREAM and a
trailing HEADERS frame with END_STREAM holds the fields (RFC 9113 §8.1). HTTP/1.1: the response
is chunked, the fields follow the last chunk (RFC 9112 §7.1.2). HTTP/1.0, HEAD, 204, 304: the
trailers are dropped. Fields that must not be trailers (RFC 9110 §6.5.1) are dropped; misuse of
the extension is an app error (abort after the start, traceback logged).

Apps: tests/apps/trailers_apps.py. One worker per engine (module-scoped: every test here only
reads), stopped by PID.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from apps.h2_client import H2Client, ev
from h2_serve import NG_OK, NG_WHY, wait_h2
from helpers import APPS_DIR, ServerProc, recv_all, start_server
from hyperframe.frame import DataFrame, HeadersFrame, RstStreamFrame

TRAILERS = {b"x-checksum": b"abc123", b"x-count": b"3"}
ERROR_LOG = "Application callable raised an exception"


@pytest.fixture(scope="module", params=["nghttp2", "h2"])
def server(request: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProc, Path]]:
    """A worker serving tests/apps/trailers_apps.py with the given HTTP/2 engine (HTTP/1.1 is
    the same on both), and the file the app writes its caught errors to."""
    engine: str = request.param
    if engine == "nghttp2" and not NG_OK:
        pytest.skip(f"libnghttp2 is not loadable here: {NG_WHY}")
    events = tmp_path_factory.mktemp("trailers") / "events"
    mp = pytest.MonkeyPatch()
    mp.setenv("GRANIAN_HTTP2_ENGINE", engine)  # read by granian.server.h2 in the worker
    mp.setenv("TRAILERS_EVENTS", str(events))
    try:
        srv = start_server("trailers_apps:app", interface="asgi")
    finally:
        mp.undo()
    try:
        wait_h2(srv)
        yield srv, events
    finally:
        srv.stop()


# ---------------------------------------------------------------- helpers


def h1(srv: ServerProc, path: str, version: str = "1.1", method: str = "GET") -> bytes:
    """One request on its own connection; everything the server sent until it closed."""
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
        s.sendall(f"{method} {path} HTTP/{version}\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        return recv_all(s)


def split_chunked(data: bytes) -> tuple[dict[bytes, bytes], bytes, list[bytes]]:
    """A chunked response: (head fields, body, trailer lines). Fails unless it is complete."""
    head, sep, rest = data.partition(b"\r\n\r\n")
    assert sep, data
    fields = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        fields[name.strip().lower()] = value.strip()
    assert fields.get(b"transfer-encoding") == b"chunked", head
    assert b"content-length" not in fields, head
    body = b""
    while True:
        size_line, sep, rest = rest.partition(b"\r\n")
        assert sep, data
        size = int(size_line, 16)
        if size == 0:
            break
        body += rest[:size]
        assert rest[size : size + 2] == b"\r\n"
        rest = rest[size + 2 :]
    # after the last chunk: the trailer section, then the empty line that ends the message
    section, sep, after = rest.partition(b"\r\n\r\n")
    if not sep:
        assert rest == b"\r\n", rest  # no trailer fields: only the final CRLF
        return fields, body, []
    assert after == b"", after
    return fields, body, section.split(b"\r\n")


def h2_stream(srv: ServerProc, path: str, method: str = "GET") -> tuple[H2Client, int]:
    c = H2Client(srv.port)
    sid = c.request(path, method=method)
    c.until(lambda c: c.ended(sid))
    return c, sid


def stream_frames(c: H2Client, sid: int) -> list[Any]:
    return [f for f in c.frames() if getattr(f, "stream_id", 0) == sid]


def trailers_of(c: H2Client, sid: int) -> dict[bytes, bytes] | None:
    got = c.of(ev.TrailersReceived, sid)
    if not got:
        return None
    assert len(got) == 1
    return dict(got[0].headers)


def assert_h2_trailered(c: H2Client, sid: int) -> None:
    """DATA without END_STREAM, then one HEADERS frame with END_STREAM: the trailer section."""
    frames = stream_frames(c, sid)
    kinds = [type(f) for f in frames]
    assert kinds[0] is HeadersFrame and "END_STREAM" not in frames[0].flags
    assert kinds[-1] is HeadersFrame and "END_STREAM" in frames[-1].flags
    for f in frames[1:-1]:
        assert type(f) is DataFrame and "END_STREAM" not in f.flags


# ---------------------------------------------------------------- the extension is advertised


def test_advertised_on_http1_and_h2(server: tuple[ServerProc, Path]) -> None:
    srv, _ = server
    for version in ("1.1", "1.0"):
        head, _, body = h1(srv, "/scope", version).partition(b"\r\n\r\n")
        seen = json.loads(body)
        assert seen["http_version"] == version
        assert "http.response.trailers" in seen["extensions"]
    c = H2Client(srv.port)
    status, _, body = c.get("/scope")
    c.close()
    seen = json.loads(body)
    assert status == 200 and seen["http_version"] == "2"
    assert "http.response.trailers" in seen["extensions"]
    assert "http.response.pathsend" in seen["extensions"]


# ---------------------------------------------------------------- HTTP/2


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/stream", b"one,two,three"),
        ("/big", b"x" * 200000),
        ("/whole", b"whole"),
        ("/empty", b""),
        ("/sse", b"data: hi\n\n"),
        ("/file", (APPS_DIR / "trailers_apps.py").read_bytes()),
    ],
)
def test_h2_trailers_follow_the_data(server: tuple[ServerProc, Path], path: str, body: bytes) -> None:
    srv, _ = server
    c, sid = h2_stream(srv, path)
    status, headers, got = c.response(sid)
    assert status == 200 and got == body
    assert trailers_of(c, sid) == TRAILERS
    assert_h2_trailered(c, sid)
    if path == "/whole":
        assert headers[b"content-length"] == b"5"  # HTTP/2 carries both (RFC 9113 §8.1)
    # the connection goes on: another stream on it is served
    assert c.get("/scope")[0] == 200
    c.close()


def test_h2_forbidden_trailer_fields_are_dropped(server: tuple[ServerProc, Path]) -> None:
    srv, _ = server
    c, sid = h2_stream(srv, "/forbidden")
    status, _, body = c.response(sid)
    assert status == 200 and body == b"ok"
    assert trailers_of(c, sid) == {b"x-allowed": b"yes", b"server-timing": b"app;dur=1"}
    c.close()


@pytest.mark.parametrize(("path", "method"), [("/status?code=204", "GET"), ("/stream", "HEAD")])
def test_h2_no_trailers_without_a_body(server: tuple[ServerProc, Path], path: str, method: str) -> None:
    srv, _ = server
    c, sid = h2_stream(srv, path, method)
    status, _, body = c.response(sid)
    assert status == (204 if "204" in path else 200) and body == b""
    assert trailers_of(c, sid) is None
    frames = stream_frames(c, sid)
    # the response head only (a streamed HEAD may end with an empty DATA frame)
    assert [type(f) for f in frames if type(f) is HeadersFrame] == [HeadersFrame]
    assert all(f.data == b"" for f in frames if type(f) is DataFrame)
    assert "END_STREAM" in frames[-1].flags
    c.close()


@pytest.mark.parametrize("path", ["/bad", "/no-flag", "/early", "/forgot"])
def test_h2_misuse_resets_the_stream_only(server: tuple[ServerProc, Path], path: str) -> None:
    srv, _ = server
    c, sid = h2_stream(srv, path)
    assert c.of(ev.StreamReset, sid), c.events
    assert any(type(f) is RstStreamFrame for f in stream_frames(c, sid))
    assert trailers_of(c, sid) is None
    assert c.get("/stream")[2] == b"one,two,three"  # the connection is fine
    c.close()


def test_h2_trailers_before_any_start_is_a_500(server: tuple[ServerProc, Path]) -> None:
    srv, _ = server
    c, sid = h2_stream(srv, "/unstarted")
    status, _, body = c.response(sid)
    assert status == 500 and body == b"Internal Server Error"
    c.close()


# ---------------------------------------------------------------- HTTP/1.1


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/stream", b"one,two,three"),
        ("/big", b"x" * 200000),
        ("/whole", b"whole"),  # the app's content-length is dropped: chunked carries the trailers
        ("/empty", b""),
        ("/sse", b"data: hi\n\n"),
        ("/file", (APPS_DIR / "trailers_apps.py").read_bytes()),
    ],
)
def test_h1_trailers_after_the_last_chunk(server: tuple[ServerProc, Path], path: str, body: bytes) -> None:
    srv, _ = server
    fields, got, trailers = split_chunked(h1(srv, path))
    assert got == body
    assert trailers == [b"x-checksum: abc123", b"x-count: 3"]


def test_h1_keep_alive_after_a_trailered_response(server: tuple[ServerProc, Path]) -> None:
    srv, _ = server
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
        s.sendall(
            b"GET /whole HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /scope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        data = recv_all(s)
    first, sep, second = data.partition(b"x-count: 3\r\n\r\n")
    assert sep, data
    _, body, trailers = split_chunked(first + sep)
    assert body == b"whole" and trailers == [b"x-checksum: abc123", b"x-count: 3"]
    assert second.startswith(b"HTTP/1.1 200 ") and b'"http_version": "1.1"' in second


def test_h1_forbidden_trailer_fields_are_dropped(server: tuple[ServerProc, Path]) -> None:
    srv, _ = server
    _, body, trailers = split_chunked(h1(srv, "/forbidden"))
    assert body == b"ok"
    assert trailers == [b"x-allowed: yes", b"server-timing: app;dur=1"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/whole", b"whole"),
        ("/stream", b"one,two,three"),
        ("/file", (APPS_DIR / "trailers_apps.py").read_bytes()),
    ],
)
def test_h1_0_gets_no_trailers(server: tuple[ServerProc, Path], path: str, body: bytes) -> None:
    srv, _ = server
    data = h1(srv, path, "1.0")
    head, _, got = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"transfer-encoding" not in head.lower()
    assert got == body  # length- or close-delimited, nothing after the body
    if path == "/whole":
        assert b"content-length: 5" in head  # the app's length stays where no trailers go


@pytest.mark.parametrize(
    ("path", "method"), [("/status?code=204", "GET"), ("/status?code=304", "GET"), ("/stream", "HEAD")]
)
def test_h1_no_trailers_without_a_body(server: tuple[ServerProc, Path], path: str, method: str) -> None:
    srv, _ = server
    data = h1(srv, path, method=method)
    head, sep, rest = data.partition(b"\r\n\r\n")
    assert sep and rest == b"", data
    assert b"transfer-encoding" not in head.lower() and b"x-checksum" not in data


@pytest.mark.parametrize("path", ["/bad", "/no-flag", "/early", "/forgot"])
def test_h1_misuse_truncates_the_response(server: tuple[ServerProc, Path], path: str) -> None:
    srv, _ = server
    data = h1(srv, path)
    assert data.startswith(b"HTTP/1.1 200 ")
    assert not data.endswith(b"0\r\n\r\n") and b"\r\n0\r\n" not in data, data  # no last chunk
    assert b"x-injected" not in data


def test_h1_trailers_before_any_start_is_a_500(server: tuple[ServerProc, Path]) -> None:
    srv, _ = server
    assert h1(srv, "/unstarted").startswith(b"HTTP/1.1 500 ")


def test_trailers_after_the_last_is_already_finished(server: tuple[ServerProc, Path]) -> None:
    srv, events = server
    _, body, trailers = split_chunked(h1(srv, "/twice"))
    assert body == b"twice" and trailers == [b"x-checksum: abc123", b"x-count: 3"]
    c, sid = h2_stream(srv, "/twice")
    assert c.response(sid)[2] == b"twice" and trailers_of(c, sid) == TRAILERS
    c.close()
    lines = events.read_text().splitlines()
    assert lines.count("twice: ASGI flow error: Response already finished") == 2


def test_trailers_after_the_client_left_are_ignored(server: tuple[ServerProc, Path]) -> None:
    srv, events = server
    before = events.read_text().count("gone: ignored") if events.exists() else 0
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
        s.sendall(b"GET /gone HTTP/1.1\r\nHost: x\r\n\r\n")
        s.settimeout(5)
        assert b"first" in s.recv(65536) or b"first" in s.recv(65536)
    c = H2Client(srv.port)
    sid = c.request("/gone")
    assert c.until(lambda c: bool(c.of(ev.DataReceived, sid)))
    c.c.reset_stream(sid)
    c.flush()
    c.get("/scope")  # the connection goes on; the app's task has had its turns
    c.close()
    lines = []
    for _ in range(50):  # the app writes its line once the disconnect reached it
        lines = events.read_text().splitlines() if events.exists() else []
        if lines.count("gone: ignored") >= before + 2:
            break
        time.sleep(0.1)
    assert lines.count("gone: ignored") == before + 2, lines


# ---------------------------------------------------------------- the worker's log (last)


def test_misuse_is_logged_with_its_reason(server: tuple[ServerProc, Path]) -> None:
    srv, _ = server
    for path in ("/no-flag", "/early", "/bad"):
        h1(srv, path)
    h1(srv, "/forgot")
    srv.stop()
    log = srv.stdout.decode(errors="replace")  # the worker logs to stdout
    assert log.count("RuntimeError: Unsupported ASGI message") >= 3, log
    assert ERROR_LOG in log
    assert "ASGI callable returned without completing response" in log
