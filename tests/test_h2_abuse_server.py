"""HTTP/2 abuse against a real worker (issue 14), both engines: each attack is bounded with a
RST_STREAM or a GOAWAY (or the close that follows it), and the worker keeps serving a second
connection. Frames are built by hand (hyperframe + hpack): a real client library refuses to
send most of them.

- too many concurrent streams (SETTINGS_MAX_CONCURRENT_STREAMS, RFC 9113 §5.1.2);
- SETTINGS flood (CVE-2019-9515), PING flood (CVE-2019-9512), empty DATA frames (CVE-2019-9518);
- rapid reset (CVE-2023-44487); CONTINUATION flood (CVE-2024-27316);
- HPACK bombs: one oversized field, and a small dynamic-table entry referenced many times.
"""

from __future__ import annotations

import socket
import time
from typing import Any

from apps.h2_client import H2Client
from h2_serve import APPS, PREFACE, serve_fixture
from h2_serve import engine as _engine
from helpers import ServerProc
from hpack import Encoder
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

REFUSED_STREAM = 0x7
PROTOCOL_ERROR = 0x1

engine = _engine  # the shared fixture (h2_serve), under its name
serve = serve_fixture(APPS["asgi"], no_traceback=True)


class Raw:
    """A socket speaking hand-built frames; `frames()` parses what the server sent."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.enc = Encoder()
        self.buf = b""
        self.closed = False
        self.send(PREFACE + SettingsFrame(0).serialize())

    def send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError:
            self.closed = True

    def block(self, path: str = "/", method: str = "GET", extra: Any = ()) -> bytes:
        data: bytes = self.enc.encode(
            [(":method", method), (":path", path), (":scheme", "http"), (":authority", "x"), *extra]
        )
        return data

    def headers(self, sid: int, block: bytes, end_stream: bool = True, end_headers: bool = True) -> bytes:
        f = HeadersFrame(sid, block)
        if end_stream:
            f.flags.add("END_STREAM")
        if end_headers:
            f.flags.add("END_HEADERS")
        data: bytes = f.serialize()
        return data

    def read(self, timeout: float = 5.0, until_closed: bool = True) -> list[Any]:
        deadline = time.monotonic() + timeout
        while not self.closed and time.monotonic() < deadline:
            self.sock.settimeout(max(0.05, min(0.5, deadline - time.monotonic())))
            try:
                data = self.sock.recv(1 << 20)
            except TimeoutError:
                if not until_closed:
                    break
                continue
            except OSError:
                self.closed = True
                break
            if not data:
                self.closed = True
                break
            self.buf += data
        return self.frames()

    def frames(self) -> list[Any]:
        out = []
        view = memoryview(self.buf)
        pos = 0
        while pos + 9 <= len(view):
            frame, length = Frame.parse_frame_header(view[pos : pos + 9])
            if pos + 9 + length > len(view):
                break
            frame.parse_body(view[pos + 9 : pos + 9 + length])
            out.append(frame)
            pos += 9 + length
        return out

    def goaways(self) -> list[Any]:
        return [f for f in self.frames() if isinstance(f, GoAwayFrame)]

    def close(self) -> None:
        self.sock.close()


def still_serves(srv: ServerProc) -> None:
    c = H2Client(srv.port)
    try:
        assert c.get("/")[2] == b"hello"
    finally:
        c.close()


def assert_bounded(raw: Raw) -> None:
    """The attacker got a GOAWAY and the connection was closed."""
    raw.read(10)
    assert raw.closed, "the server kept the flooding connection open"
    assert raw.goaways(), "no GOAWAY before the close"


def test_too_many_streams_are_refused(serve: Any, engine: str) -> None:
    srv = serve(http2_max_concurrent_streams=2)
    raw = Raw(srv.port)
    try:
        raw.read(1, until_closed=False)  # SETTINGS first: the limit is known
        raw.send(SettingsFrame(0, flags=["ACK"]).serialize())
        for sid in (1, 3, 5):
            raw.send(raw.headers(sid, raw.block("/slow?s=0.5")))
        frames = raw.read(3)  # the whole time: the answers come after the app's sleep
        rst = [(f.stream_id, f.error_code) for f in frames if isinstance(f, RstStreamFrame)]
        done = {f.stream_id for f in frames if isinstance(f, DataFrame) and "END_STREAM" in f.flags}
        goaways = raw.goaways()
        if goaways:
            # nghttp2: a connection error once the limit was acknowledged (stricter than
            # RFC 9113 §5.1.2's stream error), naming stream 3 as the last one taken
            assert (goaways[0].last_stream_id, goaways[0].error_code) == (3, PROTOCOL_ERROR)
            assert 5 not in done
        else:
            assert rst in ([(5, REFUSED_STREAM)], [(5, PROTOCOL_ERROR)]), frames
            assert done == {1, 3}
    finally:
        raw.close()
    still_serves(srv)


def test_settings_flood(serve: Any, engine: str) -> None:
    srv = serve()
    raw = Raw(srv.port)
    try:
        raw.send(SettingsFrame(0).serialize() * 20000)
        assert_bounded(raw)
    finally:
        raw.close()
    still_serves(srv)


def test_ping_flood(serve: Any, engine: str) -> None:
    srv = serve()
    raw = Raw(srv.port)
    try:
        raw.send(PingFrame(0, b"12345678").serialize() * 20000)
        assert_bounded(raw)
    finally:
        raw.close()
    still_serves(srv)


def test_empty_data_frame_flood(serve: Any, engine: str) -> None:
    srv = serve()
    raw = Raw(srv.port)
    try:
        raw.send(raw.headers(1, raw.block("/echo", "POST"), end_stream=False))
        raw.send(DataFrame(1, b"").serialize() * 5000)
        assert_bounded(raw)
    finally:
        raw.close()
    still_serves(srv)


def test_rapid_reset(serve: Any, engine: str) -> None:
    srv = serve()
    raw = Raw(srv.port)
    try:
        out = bytearray()
        block = raw.block("/slow?s=1")
        for i in range(3000):
            sid = 2 * i + 1
            out += raw.headers(sid, block)
            out += RstStreamFrame(sid, 0x8).serialize()
        raw.send(bytes(out))
        assert_bounded(raw)
    finally:
        raw.close()
    still_serves(srv)


def test_continuation_flood(serve: Any, engine: str) -> None:
    srv = serve()
    raw = Raw(srv.port)
    try:
        block = raw.block("/")
        out = bytearray(raw.headers(1, block, end_headers=False))
        for _ in range(200):
            out += ContinuationFrame(1, raw.enc.encode([("x-pad", "a" * 10)])).serialize()
        raw.send(bytes(out))
        assert_bounded(raw)
    finally:
        raw.close()
    still_serves(srv)


def test_oversized_header_list(serve: Any, engine: str) -> None:
    srv = serve(http2_max_headers_size=4096)
    raw = Raw(srv.port)
    try:
        raw.read(1, until_closed=False)
        raw.send(raw.headers(1, raw.block("/", extra=[("x-big", "b" * 8000)])))
        frames = raw.read(4, until_closed=False)
        refused = [f for f in frames if isinstance(f, RstStreamFrame) and f.stream_id == 1]
        answered = [f for f in frames if isinstance(f, HeadersFrame) and f.stream_id == 1]
        # nghttp2 answers 431 (RFC 6585 §5) on the stream; h2 ends the connection
        assert answered or refused or raw.goaways(), frames
        assert not [f for f in frames if isinstance(f, DataFrame) and f.data == b"hello"]
    finally:
        raw.close()
    still_serves(srv)


def test_hpack_bomb_through_the_dynamic_table(serve: Any, engine: str) -> None:
    # One 4000-byte entry in the dynamic table, then referenced 1000 times at one byte each:
    # a 4 MB header list from a few KB of input (RFC 7541 §7.3).
    srv = serve(http2_max_headers_size=65536)
    raw = Raw(srv.port)
    try:
        raw.read(1, until_closed=False)
        first = raw.block("/", extra=[("x-bomb", "c" * 4000)])
        raw.send(raw.headers(1, first))
        raw.read(1, until_closed=False)
        # the entry is at dynamic index 62 (the first after the static table): 0x80|62 = 0xBE
        bomb = raw.block("/") + bytes([0xBE]) * 1000
        raw.send(raw.headers(3, bomb))
        raw.read(4, until_closed=False)
        frames = raw.frames()
        ok3 = [f for f in frames if isinstance(f, DataFrame) and f.stream_id == 3 and f.data == b"hello"]
        assert not ok3, "the bomb reached the app"
        assert [f for f in frames if f.stream_id == 3] or raw.goaways() or raw.closed
    finally:
        raw.close()
    still_serves(srv)


def test_window_update_overflow_is_a_connection_error(serve: Any, engine: str) -> None:
    # RFC 9113 §6.9.1: a window above 2^31-1 is a FLOW_CONTROL_ERROR for the connection.
    srv = serve()
    raw = Raw(srv.port)
    try:
        raw.send(WindowUpdateFrame(0, 2**31 - 1).serialize())
        assert_bounded(raw)
        assert raw.goaways()[0].error_code == 0x3
    finally:
        raw.close()
    still_serves(srv)


def test_garbage_after_the_preface(serve: Any, engine: str) -> None:
    srv = serve()
    raw = Raw(srv.port)
    try:
        raw.send(b"\xff" * 100)
        assert_bounded(raw)
    finally:
        raw.close()
    still_serves(srv)
