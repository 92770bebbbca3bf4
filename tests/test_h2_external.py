"""Whole response bodies the nghttp2 shim frames without copying them (H2_EXTERNAL, csrc/h2.h):
`data_to_write()` gives frame bytes and slices of the application's own bytes object, the
session keeps the body alive exactly until the shim releases it (all framed, or the stream is
gone), and what goes on the wire is byte for byte what the h2 client parses as the body.
Without sockets: an `h2` client in memory (tests/h2_peer.py)."""

from __future__ import annotations

import gc
import os
import time
from typing import Any

import h2.events as ev
import httpx
import pytest
from h2.settings import SettingCodes
from h2_peer import NG_OK, NG_WHY, Peer, parse_frames, request_headers, server
from helpers import start_server

pytestmark = pytest.mark.skipif(not NG_OK, reason=f"libnghttp2 is not loadable here: {NG_WHY}")

FIELDS = [(b"content-type", b"application/octet-stream")]


def to_client(peer: Peer) -> tuple[Any, list[Any]]:
    """What `data_to_write()` gave, and the client's events for its bytes joined."""
    out = peer.s.data_to_write()  # type: ignore[attr-defined]
    data = out if type(out) is bytes else b"".join(out)
    events = peer.c.receive_data(data) if data else []
    peer.client_events.extend(events)
    return out, events


def body_of(peer: Peer, sid: int = 1) -> bytes:
    return b"".join(e.data for e in peer.of(ev.DataReceived) if e.stream_id == sid)


def open_stream(peer: Peer, sid: int = 1) -> None:
    peer.c.send_headers(sid, request_headers(), end_stream=True)
    peer.to_server()


def test_a_large_whole_body_is_written_from_the_app_object() -> None:
    s = server("nghttp2")
    peer = Peer(s)
    peer.handshake()
    open_stream(peer)
    body = bytes(range(256)) * 160  # 40 KiB: three DATA frames of 16 KiB at most
    s.send_response(1, 200, FIELDS, body)
    assert s._ext == {1: body}  # type: ignore[attr-defined]
    out, _ = to_client(peer)
    assert type(out) is list
    slices = [p for p in out if type(p) is memoryview]
    # every payload byte is a slice of the very object the app gave, in order
    assert all(p.obj is body for p in slices)
    assert b"".join(bytes(p) for p in slices) == body
    assert [len(p) for p in slices] == [16384, 16384, 40960 - 32768]
    assert body_of(peer) == body and peer.of(ev.StreamEnded)
    # all framed: the session no longer holds it
    assert s._ext == {}  # type: ignore[attr-defined]
    # the frames themselves are well formed (length fields match the slices)
    frames = parse_frames(b"".join(out))
    assert [len(f.data) for f in frames if type(f).__name__ == "DataFrame"] == [16384, 16384, 8192]


def test_a_small_body_is_still_one_bytes_object() -> None:
    s = server("nghttp2")
    peer = Peer(s)
    peer.handshake()
    open_stream(peer)
    s.send_response(1, 200, FIELDS, b"x" * 100)
    out, _ = to_client(peer)
    assert type(out) is bytes
    assert body_of(peer) == b"x" * 100
    assert s._ext == {}  # type: ignore[attr-defined]


def test_the_body_is_held_while_the_peer_window_is_closed_then_released() -> None:
    s = server("nghttp2")
    peer = Peer(s, client_settings={SettingCodes.INITIAL_WINDOW_SIZE: 10000})
    peer.handshake()
    open_stream(peer)
    body = b"".join(bytes([i]) * 1000 for i in range(100))  # 100000 bytes, > the window
    s.send_response(1, 200, FIELDS, body)
    to_client(peer)
    assert len(body_of(peer)) == 10000
    assert s.buffered(1) == 90000
    assert 1 in s._ext  # type: ignore[attr-defined]
    for _ in range(50):
        for e in peer.of(ev.DataReceived):
            if not getattr(e, "acked", False):
                peer.c.acknowledge_received_data(e.flow_controlled_length, 1)
                e.acked = True
        peer.to_server()
        to_client(peer)
        if peer.of(ev.StreamEnded):
            break
    assert body_of(peer) == body
    assert s._ext == {}  # type: ignore[attr-defined]


def test_a_client_reset_mid_body_releases_it_and_other_streams_go_on() -> None:
    s = server("nghttp2")
    peer = Peer(s, client_settings={SettingCodes.INITIAL_WINDOW_SIZE: 16384})
    peer.handshake()
    open_stream(peer, 1)
    open_stream(peer, 3)
    big1 = b"a" * 50000
    big3 = b"b" * 20000
    s.send_response(1, 200, FIELDS, big1)
    s.send_response(3, 200, FIELDS, big3)
    to_client(peer)
    assert set(s._ext) == {1, 3}  # type: ignore[attr-defined]
    peer.c.reset_stream(1)
    peer.to_server()
    to_client(peer)
    assert 1 not in s._ext  # type: ignore[attr-defined]
    # stream 3 still completes once the client opens its window
    for _ in range(20):
        for e in peer.of(ev.DataReceived):
            if e.stream_id == 3 and not getattr(e, "acked", False):
                peer.c.acknowledge_received_data(e.flow_controlled_length, 3)
                e.acked = True
        peer.to_server()
        to_client(peer)
        if any(e.stream_id == 3 for e in peer.of(ev.StreamEnded)):
            break
    assert body_of(peer, 3) == big3
    assert s._ext == {}  # type: ignore[attr-defined]


def test_a_server_reset_mid_body_releases_it() -> None:
    s = server("nghttp2")
    peer = Peer(s, client_settings={SettingCodes.INITIAL_WINDOW_SIZE: 16384})
    peer.handshake()
    open_stream(peer)
    s.send_response(1, 200, FIELDS, b"z" * 60000)
    to_client(peer)
    s.reset(1)
    to_client(peer)
    assert [e.stream_id for e in peer.of(ev.StreamReset)] == [1]
    assert s._ext == {}  # type: ignore[attr-defined]


def test_a_session_dropped_with_a_body_pending_frees_cleanly() -> None:
    s = server("nghttp2")
    peer = Peer(s, client_settings={SettingCodes.INITIAL_WINDOW_SIZE: 16384})
    peer.handshake()
    open_stream(peer)
    s.send_response(1, 200, FIELDS, b"q" * 100000)
    to_client(peer)
    del s, peer
    gc.collect()  # h2_session_free with an external body still referenced: no read of it


def test_data_to_send_joins_the_pieces() -> None:
    s = server("nghttp2")
    peer = Peer(s)
    peer.handshake()
    open_stream(peer)
    body = b"0123456789abcdef" * 2048  # 32 KiB
    s.send_response(1, 200, FIELDS, body)
    data = s.data_to_send()
    assert type(data) is bytes
    events = peer.c.receive_data(data)
    assert b"".join(e.data for e in events if isinstance(e, ev.DataReceived)) == body


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_served_bodies_arrive_whole_on_both_loops(loop: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Over a real socket: uvloop's writelines keeps the slices (no copy) until the socket takes
    # them, asyncio's joins them; either way the client gets every byte, in order, on several
    # streams at once.
    monkeypatch.setenv("GRANIAN_HTTP2_ENGINE", "nghttp2")
    srv = start_server("h2_apps:app", interface="asgi", http="2", loop=loop)
    try:
        bodies = [os.urandom(n) for n in (8192, 100_000, 1 << 20)]
        with httpx.Client(http1=False, http2=True, timeout=20) as c:
            for _ in range(50):
                try:
                    c.get(srv.url + "/")
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            for body in bodies:
                r = c.post(srv.url + "/echo", content=body)
                assert r.status_code == 200 and r.content == body
    finally:
        srv.stop()
