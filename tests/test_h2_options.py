"""The --http2-* options, each observed on the wire of a real worker (issue 14), on both
engines: the SETTINGS frame, the connection WINDOW_UPDATE, keep-alive PINGs and the close of a
peer that misses the ack, the send-buffer bound on a streamed response, and a stream held at a
zero window, which is reset while the connection goes on."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from apps.h2_client import H2Client, SettingCodes, ev
from h2_serve import engine as _engine
from h2_serve import serve_fixture

from granian.settings import NOT_IMPLEMENTED

engine = _engine  # the shared fixture (h2_serve), under its name
serve = serve_fixture()


def test_the_options_are_no_longer_refused() -> None:
    for name in (
        "http2_max_concurrent_streams",
        "http2_initial_stream_window_size",
        "http2_initial_connection_window_size",
        "http2_max_frame_size",
        "http2_max_headers_size",
        "http2_max_send_buffer_size",
        "http2_keep_alive_interval",
        "http2_keep_alive_timeout",
        "http2_adaptive_window",  # built: tests/test_h2_window.py
        "http",
    ):
        assert name not in NOT_IMPLEMENTED


def test_settings_frame_and_connection_window(serve: Any, engine: str) -> None:
    srv = serve(
        http2_max_concurrent_streams=7,
        http2_initial_stream_window_size=100000,
        http2_max_frame_size=32768,
        http2_max_headers_size=12345,
        http2_initial_connection_window_size=4 << 20,
    )
    c = H2Client(srv.port)
    try:
        c.until(lambda c: bool(c.of(ev.RemoteSettingsChanged)) and bool(c.of(ev.WindowUpdated, 0)))
        changed = {
            k: v.new_value for e in c.of(ev.RemoteSettingsChanged) for k, v in e.changed_settings.items()
        }
        assert changed[SettingCodes.MAX_CONCURRENT_STREAMS] == 7
        assert changed[SettingCodes.INITIAL_WINDOW_SIZE] == 100000
        assert changed[SettingCodes.MAX_FRAME_SIZE] == 32768
        assert changed[SettingCodes.MAX_HEADER_LIST_SIZE] == 12345
        # RFC 9113 §6.9.2: the connection window starts at 65535; WINDOW_UPDATE grows it
        assert sum(e.delta for e in c.of(ev.WindowUpdated, 0)) == (4 << 20) - 65535
        assert c.get("/")[2] == b"hello"
    finally:
        c.close()


def test_max_frame_size_bounds_data_frames(serve: Any, engine: str) -> None:
    # The server sends DATA frames up to the peer's SETTINGS_MAX_FRAME_SIZE; our own option
    # is what we accept. A client allowing 64 KiB frames still gets a correct body.
    srv = serve(http2_max_frame_size=65536)
    c = H2Client(srv.port, settings={SettingCodes.MAX_FRAME_SIZE: 65536})
    try:
        # The server may use the larger frames as soon as it has read our SETTINGS (RFC 9113
        # §6.5.3); the h2 client applies its own limit only at the ACK, and rejects a 64 KiB
        # frame parsed from the same read as the ACK. Wait for the ACK first.
        assert c.until(lambda c: c.c.max_inbound_frame_size == 65536)
        status, _, body = c.get("/big?n=200000")
        assert status == 200 and body == b"x" * 200000
        # a request body in frames above 16 KiB is taken, as SETTINGS_MAX_FRAME_SIZE allows
        c.c.max_outbound_frame_size = 65536
        status, _, body = c.get("/echo", method="POST", body=b"y" * 60000)
        assert (status, body) == (200, b"y" * 60000)
    finally:
        c.close()


def test_keep_alive_pings_and_a_missed_ack_closes(serve: Any, engine: str) -> None:
    srv = serve(http2_keep_alive_interval=200, http2_keep_alive_timeout=1)
    good = H2Client(srv.port)
    bad = H2Client(srv.port)
    try:
        assert good.get("/")[0] == 200
        # the good client acks (h2 queues the ack; H2Client sends it): several PINGs come
        assert good.until(lambda c: len(c.of(ev.PingReceived)) >= 3, timeout=10)
        assert good.goaway() is None and not good.closed
        # the bad client reads but never answers: GOAWAY, then the close
        bad.auto_ack = False
        assert bad.until(lambda c: c.closed, timeout=10)
        assert bad.of(ev.PingReceived)
        assert any(f.type == 0x7 for f in bad.frames())  # GOAWAY
        assert good.get("/")[2] == b"hello"
    finally:
        good.close()
        bad.close()


def test_no_pings_without_the_option(serve: Any, engine: str) -> None:
    srv = serve()
    c = H2Client(srv.port)
    try:
        assert c.get("/")[0] == 200
        c.until(lambda c: False, timeout=1.0)
        assert not c.of(ev.PingReceived)
    finally:
        c.close()


def test_max_send_buffer_bounds_a_stream_the_peer_does_not_read(
    serve: Any, engine: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The client opens no window beyond 64 KiB: the app's writes wait once the stream holds
    # more than --http2-max-send-buffer-size bytes not yet framed.
    events = tmp_path / "events"
    monkeypatch.setenv("H2_EVENTS", str(events))
    srv = serve(http2_max_send_buffer_size=65536)
    c = H2Client(srv.port)
    try:
        sid = c.request("/push")
        # H2Client acks DATA as it reads: after the first piece it stops reading
        c.until(lambda c: bool(c.of(ev.DataReceived, sid)))
        time.sleep(1.0)  # the app runs as far as the bound lets it
        pushed = max(int(line.split()[1]) for line in events.read_text().splitlines())
        # what the client's window let through (its first 64 KiB, and what it acked of them
        # while reading) + the buffer bound + the piece in flight: nowhere near the 64 MiB
        # the app would write unbounded
        assert pushed <= 2 * 65535 + 65536 + 2 * 16384
        c.c.reset_stream(sid)
        c.flush()
        assert c.get("/")[2] == b"hello"
    finally:
        c.close()


def test_zero_window_stream_times_out(serve: Any, engine: str) -> None:
    # The client never opens its stream window (SETTINGS_INITIAL_WINDOW_SIZE 0): the stream
    # is reset after the header-read timeout (here 1 s); the connection serves on.
    srv = serve(http1_header_read_timeout=1000)
    c = H2Client(srv.port, settings={SettingCodes.INITIAL_WINDOW_SIZE: 0})
    try:
        c.until(lambda c: bool(c.of(ev.SettingsAcknowledged)))
        stuck = c.request("/big?n=100000")
        assert c.until(lambda c: bool(c.of(ev.StreamReset, stuck)), timeout=10)
        reset = c.of(ev.StreamReset, stuck)[0]
        assert reset.error_code == 0x8  # CANCEL
        # a whole-body response stuck the same way is reset too
        stuck2 = c.request("/echo", method="POST", body=b"z" * 1000)
        assert c.until(lambda c: bool(c.of(ev.StreamReset, stuck2)), timeout=10)
        assert not c.closed
        c.c.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: 65535})
        c.flush()
        assert c.get("/")[2] == b"hello"
    finally:
        c.close()


def test_idle_connection_is_closed_with_goaway(serve: Any, engine: str) -> None:
    srv = serve(http1_header_read_timeout=1000)
    c = H2Client(srv.port)
    try:
        assert c.get("/")[0] == 200
        assert c.until(lambda c: c.closed, timeout=10)
        assert any(f.type == 0x7 for f in c.frames())
    finally:
        c.close()
