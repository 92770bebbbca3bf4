"""--http2-adaptive-window (issue 14), on both engines, seen on the wire: while a request body
arrives the server PINGs (an opaque of its own, not a keep-alive one) and grows its receive
windows (WINDOW_UPDATE beyond the initial sizes) when the bytes that arrived before the ack
fill most of the window; with the option off, no such PING and no growth.

Loopback round trips are too short to fill a window, so the client emulates a long one: it
holds the ack of a PING until it has sent `HOLD` more body bytes (the server keeps returning
credit meanwhile, as its app reads). The sample is then at least HOLD, whatever the timing."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from apps.h2_client import H2Client, ev
from h2_serve import APPS, ENGINES, NG_OK, NG_WHY, serve_fixture
from h2_serve import engine as _engine
from hyperframe.frame import PingFrame

from granian.server.h2.window import BDP_PING
from granian.settings import NOT_IMPLEMENTED

MiB = 1 << 20
INITIAL = 1 * MiB  # CLI.md's default stream and connection windows
HOLD = 4 * MiB

engine = _engine  # the shared fixture (h2_serve), under its name
serve = serve_fixture(APPS["asgi"])


class SlowAckClient(H2Client):
    """Holds each PING ack until `HOLD` body bytes went out after it."""

    def __init__(self, port: int) -> None:
        self.held: list[bytes] = []
        self.sent_since = 0
        self.pings: list[bytes] = []  # the opaque data of every PING received
        super().__init__(port)

    def flush(self) -> None:
        data = self.c.data_to_send()
        if not data or self.closed:
            return
        out = bytearray()
        pos = 0
        while pos < len(data):
            length = int.from_bytes(data[pos : pos + 3], "big")
            kind, flags = data[pos + 3], data[pos + 4]
            frame = data[pos : pos + 9 + length]
            pos += 9 + length
            if kind == PingFrame.type and flags & 0x1:
                self.pings.append(frame[9:])
                self.held.append(frame)
                continue
            if kind == 0x0 and self.held:
                self.sent_since += length
            out += frame
        if self.held and self.sent_since >= HOLD:
            out += b"".join(self.held)
            self.held.clear()
            self.sent_since = 0
        self.send_raw(bytes(out))

    def release(self) -> None:
        if self.held:
            self.send_raw(b"".join(self.held))
            self.held.clear()


def _quiet(c: H2Client) -> None:
    """Read until the server sends nothing for half a second (its credit is all back)."""
    while c.read(0.5):
        pass


def _upload(c: SlowAckClient) -> tuple[int, int]:
    """8 MiB to /echo: the stream and connection windows the server has granted once it has
    read the first 6 MiB (from its WINDOW_UPDATEs: initial + increments - bytes sent); the
    body must come back whole."""
    body = bytes(range(256)) * (8 * MiB // 256)
    sid = c.request("/echo", method="POST", body=b"", end=False)
    c.send_body(sid, body[: 6 * MiB], end=False)
    _quiet(c)
    granted = (c.c.local_flow_control_window(sid), c.c.outbound_flow_control_window)
    c.release()
    c.send_body(sid, body[6 * MiB :])
    status, _, echoed = c.response(sid)
    assert status == 200 and echoed == body
    return granted


def test_the_option_is_no_longer_refused() -> None:
    assert "http2_adaptive_window" not in NOT_IMPLEMENTED


def test_windows_grow_with_the_measured_bdp(serve: Any, engine: str) -> None:
    srv = serve(http2_adaptive_window=True)
    c = SlowAckClient(srv.port)
    try:
        stream_win, conn_win = _upload(c)
        assert BDP_PING in c.pings
        # a sample of >= HOLD bytes grows the windows to about twice that; nghttp2 returns
        # credit once half the window is consumed, so at least half of it shows here
        assert stream_win >= HOLD > INITIAL and conn_win >= HOLD
        # WINDOW_UPDATE frames on the stream: at least one grows it by more than the credit
        # any 1 MiB window could return
        assert max(e.delta for e in c.of(ev.WindowUpdated) if e.stream_id) > INITIAL
        # the keep-alive PINGs are off: every PING was the BDP one, and few of them
        assert set(c.pings) == {BDP_PING} and len(c.pings) < 20
        assert c.get("/")[2] == b"hello"  # the connection goes on
    finally:
        c.close()


def test_new_streams_get_the_grown_window(serve: Any, engine: str) -> None:
    srv = serve(http2_adaptive_window=True)
    c = SlowAckClient(srv.port)
    try:
        _upload(c)
        # a later upload on the same connection: its window grows at its first DATA frame
        sid = c.request("/echo", method="POST", body=b"", end=False)
        c.send_body(sid, b"z" * 1000, end=False)
        _quiet(c)
        assert c.c.local_flow_control_window(sid) > INITIAL
        c.send_body(sid, b"")
        assert c.response(sid)[2] == b"z" * 1000
    finally:
        c.close()


def test_off_no_bdp_pings_and_no_growth(serve: Any, engine: str) -> None:
    srv = serve()
    c = SlowAckClient(srv.port)
    try:
        stream_win, conn_win = _upload(c)
        assert c.pings == []
        assert stream_win <= INITIAL and conn_win <= INITIAL
        assert all(e.delta <= INITIAL for e in c.of(ev.WindowUpdated) if e.stream_id)
    finally:
        c.close()


def test_the_bdp_opaque_differs_from_keep_alive_pings() -> None:
    # protocol._ping counts from 1 in 64 bits: the top bit marks the BDP PING
    assert struct.unpack(">Q", BDP_PING)[0] >> 63 == 1


@pytest.mark.parametrize("name", ENGINES)
def test_set_local_window_grows_and_leaves_gone_streams_alone(name: str) -> None:
    # The estimator grows every open stream at once; one that ended meanwhile is skipped by
    # the engine, not an error (sans-I/O, against an h2 client state machine).
    if name == "nghttp2" and not NG_OK:
        pytest.skip(f"libnghttp2 is not loadable here: {NG_WHY}")
    from h2.config import H2Configuration
    from h2.connection import H2Connection

    from granian.http2 import H2Config, new_session

    s = new_session(H2Config(), engine=name)
    c = H2Connection(H2Configuration(client_side=True, header_encoding=None))
    c.initiate_connection()
    c.receive_data(s.data_to_send())
    hdrs = [(b":method", b"POST"), (b":path", b"/"), (b":scheme", b"http"), (b":authority", b"x")]
    c.send_headers(1, hdrs)
    c.send_data(1, b"a" * 1000)
    s.feed(c.data_to_send())
    c.receive_data(s.data_to_send())
    s.set_local_window(1, 4 * MiB)
    s.set_local_window(0, 8 * MiB)
    s.set_local_window(99, 4 * MiB)  # never opened
    c.receive_data(s.data_to_send())
    assert c.local_flow_control_window(1) >= 4 * MiB - 1000
    assert c.outbound_flow_control_window >= 8 * MiB - 1000
