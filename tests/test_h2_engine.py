"""granian.http2 sessions without sockets, on both engines (the C shim over libnghttp2, and the
h2 library fallback), driven by an h2 client in memory: requests, bodies, flow control,
streamed and deferred responses, trailers, resets, GOAWAY, SETTINGS, PING, h2c Upgrade."""

from __future__ import annotations

import contextlib
import logging
import subprocess
import sys
import textwrap
from typing import Any

import h2.events as ev
import pytest
from h2.settings import SettingCodes
from h2_peer import (
    ENGINES,
    NG_OK,
    Peer,
    engine_param,
    feed,
    goaways,
    parse_frames,
    request_headers,
    server,
)

from granian import http2
from granian.http2 import (
    CLOSE,
    DATA,
    PING_ACK,
    REQUEST,
    RESET,
    SETTINGS_ACK,
    TRAILERS,
    H2Config,
    H2Error,
    H2HeaderError,
)
from granian.http2 import engine as engine_mod


@pytest.fixture(params=ENGINES)
def engine(request: Any) -> str:
    return engine_param(request)


def requests_of(events: list[Any]) -> list[Any]:
    return [e for e in events if e[0] == REQUEST]


# -- connection set-up --------------------------------------------------------------------------


def test_settings_are_queued_before_reading_and_carry_the_configured_values(engine: str) -> None:
    s = server(
        engine,
        max_concurrent_streams=7,
        initial_stream_window_size=123456,
        initial_connection_window_size=3 * 65535,
        max_frame_size=32768,
        max_headers_size=54321,
    )
    first = s.data_to_send()
    frames = parse_frames(first)
    # RFC 9113 section 3.4: the server preface is a SETTINGS frame, sent without waiting
    assert type(frames[0]).__name__ == "SettingsFrame" and "ACK" not in frames[0].flags
    assert frames[0].settings[SettingCodes.MAX_CONCURRENT_STREAMS] == 7
    assert frames[0].settings[SettingCodes.INITIAL_WINDOW_SIZE] == 123456
    assert frames[0].settings[SettingCodes.MAX_FRAME_SIZE] == 32768
    assert frames[0].settings[SettingCodes.MAX_HEADER_LIST_SIZE] == 54321
    # the connection window is not a setting: one WINDOW_UPDATE on stream 0
    wu = [f for f in frames if type(f).__name__ == "WindowUpdateFrame"]
    assert [(f.stream_id, f.window_increment) for f in wu] == [(0, 2 * 65535)]

    peer = Peer(s)
    peer.c.receive_data(first)
    assert peer.c.remote_settings.max_concurrent_streams == 7
    assert peer.c.outbound_flow_control_window == 3 * 65535
    events = peer.to_server()
    assert (SETTINGS_ACK,) in events
    peer.to_client()
    assert peer.of(ev.SettingsAcknowledged)  # the server acknowledged the client's SETTINGS


def test_default_config_mirrors_the_cli_defaults() -> None:
    cfg = H2Config()
    assert (cfg.max_concurrent_streams, cfg.initial_stream_window_size) == (200, 1048576)
    assert (cfg.initial_connection_window_size, cfg.max_frame_size) == (1048576, 16384)
    assert (cfg.max_headers_size, cfg.max_send_buffer_size) == (16777216, 409600)


@pytest.mark.parametrize(
    "field,value",
    [
        ("max_frame_size", 16383),
        ("max_frame_size", 2**24),
        ("initial_stream_window_size", 2**31),
        ("initial_connection_window_size", 65534),
        ("max_concurrent_streams", 0),
    ],
)
def test_config_refuses_values_outside_rfc_9113(field: str, value: int) -> None:
    with pytest.raises(ValueError, match=field):
        H2Config(**{field: value})


def test_config_from_settings_reads_the_http2_options() -> None:
    from types import SimpleNamespace

    from granian.settings import load

    assert H2Config.from_settings(load({"app": "m:app"}, env={})) == H2Config()
    values = load({"app": "m:app"}, env={}).model_dump()
    snapshot = SimpleNamespace(**{**values, "http2_max_concurrent_streams": 9, "http2_max_frame_size": 20000})
    cfg = H2Config.from_settings(snapshot)
    assert (cfg.max_concurrent_streams, cfg.max_frame_size) == (9, 20000)


# -- requests -----------------------------------------------------------------------------------


def test_many_streams_with_five_headers_fed_in_odd_pieces(engine: str) -> None:
    s = server(engine)
    peer = Peer(s)
    peer.handshake()
    sent = {}
    for i in range(60):
        sid = peer.c.get_next_available_stream_id()
        extra = [(b"x-h%d" % j, b"v%d-%d" % (i, j)) for j in range(4)] + [(b"cookie", b"a=%d" % i)]
        peer.c.send_headers(sid, request_headers(b"/p/%d?q=1" % i, extra=extra), end_stream=True)
        sent[sid] = extra
    events = peer.to_server(piece=7)  # 7-byte pieces split frame headers and HPACK strings
    reqs = requests_of(events)
    assert [r[1] for r in reqs] == list(sent)
    for _, sid, method, path, scheme, authority, headers, end in reqs:
        assert (method, scheme, authority, end) == (b"GET", b"http", b"example.org", True)
        assert path == b"/p/%d?q=1" % ((sid - 1) // 2)
        assert headers == sent[sid]
        assert s.send_response(sid, 200, [(b"content-type", b"text/plain")], b"r%d" % sid) >= 0
    peer.to_client()
    bodies = {e.stream_id: e.data for e in peer.of(ev.DataReceived)}
    assert bodies == {sid: b"r%d" % sid for sid in sent}
    assert len(peer.of(ev.StreamEnded)) == len(sent)


def test_a_header_block_in_continuation_frames_across_feeds(engine: str) -> None:
    s = server(engine)
    peer = Peer(s)
    peer.handshake()
    big = b"v" * 40000  # > 2 frames of 16384: HEADERS + CONTINUATION + CONTINUATION
    peer.c.send_headers(1, request_headers(extra=[(b"x-big", big), (b"x-after", b"1")]), end_stream=True)
    data = peer.c.data_to_send()
    frames = parse_frames(data)
    assert [type(f).__name__ for f in frames].count("ContinuationFrame") >= 2
    events = feed(s, data, 5000)
    (req,) = requests_of(events)
    assert req[6] == [(b"x-big", big), (b"x-after", b"1")]


def test_request_body_split_across_frames_and_chunks(engine: str) -> None:
    s = server(engine)
    peer = Peer(s)
    peer.handshake()
    body = bytes(range(256)) * 200  # 51200 bytes
    peer.c.send_headers(1, request_headers(method=b"POST"))
    for i in range(0, len(body), 5000):
        peer.c.send_data(1, body[i : i + 5000], pad_length=7 if i % 10000 else None)
    peer.c.end_stream(1)
    events = peer.to_server(piece=3001)
    (req,) = requests_of(events)
    assert req[7] is False  # a body follows
    data = [e for e in events if e[0] == DATA]
    assert b"".join(e[2] for e in data) == body
    assert [e[3] for e in data].count(True) == 1 and data[-1][3] is True
    # the flow-controlled length to consume is the data's (padding went back by itself)
    assert sum(e[4] for e in data) == len(body)


def test_request_trailers(engine: str) -> None:
    s = server(engine)
    peer = Peer(s)
    peer.handshake()
    peer.c.send_headers(1, request_headers(method=b"POST", extra=[(b"te", b"trailers")]))
    peer.c.send_data(1, b"abc")
    peer.c.send_headers(1, [(b"x-sum", b"42")], end_stream=True)
    events = peer.to_server()
    assert [e[0] for e in events if e[0] != SETTINGS_ACK] == [REQUEST, DATA, TRAILERS]
    assert events[-1] == (TRAILERS, 1, [(b"x-sum", b"42")])


def test_request_without_authority_and_with_a_matching_host(engine: str) -> None:
    s = server(engine)
    peer = Peer(s, validate=False)
    peer.handshake()
    hdrs = [(b":method", b"GET"), (b":path", b"/"), (b":scheme", b"http"), (b"host", b"example.org")]
    peer.c.send_headers(1, hdrs, end_stream=True)
    peer.c.send_headers(3, request_headers(extra=[(b"host", b"example.org")]), end_stream=True)
    if engine == "nghttp2":  # host names are case-insensitive; h2 compares them exactly
        peer.c.send_headers(5, request_headers(extra=[(b"host", b"Example.ORG")]), end_stream=True)
    reqs = requests_of(peer.to_server())
    assert reqs[0][5] == b"" and reqs[0][6] == [(b"host", b"example.org")]
    assert [r[5] for r in reqs[1:]] == [b"example.org"] * (len(reqs) - 1)
    assert len(reqs) == (3 if engine == "nghttp2" else 2)


@pytest.mark.parametrize("path", [b"foo", b"*", b"http://example.org/"])
def test_path_that_is_not_origin_form_resets_the_stream(engine: str, path: bytes) -> None:
    # RFC 9113 section 8.3.1: "/..." for http(s), "*" only for OPTIONS
    s = server(engine)
    peer = Peer(s, validate=False)
    peer.handshake()
    peer.c.send_headers(1, request_headers(path), end_stream=True)
    peer.c.send_headers(3, request_headers(b"*", method=b"OPTIONS"), end_stream=True)
    events = peer.to_server()
    assert [r[1] for r in requests_of(events)] == [3]
    peer.to_client()
    assert [(e.stream_id, e.error_code) for e in peer.of(ev.StreamReset)] == [(1, http2.PROTOCOL_ERROR)]


def test_host_differing_from_authority_is_refused(engine: str) -> None:
    s = server(engine)
    peer = Peer(s, validate=False)
    peer.handshake()
    peer.c.send_headers(1, request_headers(extra=[(b"host", b"other.org")]), end_stream=True)
    events = peer.to_server()
    assert requests_of(events) == []
    peer.to_client()
    if engine == "nghttp2":  # a stream error (RFC 9113 section 8.3.1)
        assert [(e.stream_id, e.error_code) for e in peer.of(ev.StreamReset)] == [(1, http2.PROTOCOL_ERROR)]
    else:  # h2 makes it a connection error
        assert events == [(CLOSE, http2.PROTOCOL_ERROR)]


# -- flow control -------------------------------------------------------------------------------


def test_request_body_advances_only_as_the_application_consumes(engine: str) -> None:
    window = 16384
    s = server(engine, initial_stream_window_size=window, initial_connection_window_size=65535)
    peer = Peer(s)
    peer.handshake()
    body = b"0123456789abcdef" * 65536  # 1 MiB
    peer.c.send_headers(1, request_headers(method=b"POST"))
    peer.to_server()
    got = bytearray()
    unconsumed = 0
    sent = 0
    rounds = 0
    while sent < len(body):
        rounds += 1
        assert rounds < 1000
        n = min(peer.c.local_flow_control_window(1), len(body) - sent)
        while n:
            k = min(n, peer.c.max_outbound_frame_size)
            peer.c.send_data(1, body[sent : sent + k], end_stream=sent + k == len(body))
            sent += k
            n -= k
        for e in peer.to_server():
            if e[0] == DATA:
                got += e[2]
                unconsumed += e[4]
        # the client never has more in flight than the stream window allows
        assert unconsumed <= window
        if sent < len(body):
            # nothing consumed: no WINDOW_UPDATE, the client is stuck
            peer.to_client()
            assert peer.c.local_flow_control_window(1) == 0
        s.consume(1, unconsumed)
        unconsumed = 0
        peer.to_client()
    assert bytes(got) == body


def test_bytes_of_a_reset_stream_go_back_to_the_connection_window(engine: str) -> None:
    # 60000 unconsumed bytes on a stream the server resets would otherwise hold the 65535-byte
    # connection window shut for good (nghttp2 only sends WINDOW_UPDATE past half a window)
    s = server(engine, initial_stream_window_size=65535, initial_connection_window_size=65535)
    peer = Peer(s)
    peer.handshake()
    peer.c.send_headers(1, request_headers(method=b"POST"))
    peer.c.send_data(1, b"a" * 16384)
    peer.c.send_data(1, b"a" * 16384)
    peer.c.send_data(1, b"a" * 16384)
    peer.c.send_data(1, b"a" * 10848)
    assert sum(len(e[2]) for e in peer.to_server() if e[0] == DATA) == 60000
    s.reset(1, http2.CANCEL)
    peer.to_client()
    peer.c.send_headers(3, request_headers(method=b"POST"))
    total = 0
    for _ in range(100):
        n = min(peer.c.local_flow_control_window(3), peer.c.max_outbound_frame_size, 100000 - total)
        if n:
            peer.c.send_data(3, b"b" * n)
            total += n
        for e in peer.to_server():
            if e[0] == DATA:
                s.consume(3, e[4])
        peer.to_client()
        if total == 100000:
            break
    assert total == 100000


# -- responses ----------------------------------------------------------------------------------


def test_streamed_response_defers_then_resumes_within_the_peer_window(engine: str) -> None:
    s = server(engine, max_send_buffer_size=32768)
    peer = Peer(s, client_settings={SettingCodes.INITIAL_WINDOW_SIZE: 16384})
    peer.handshake()
    peer.c.send_headers(1, request_headers(), end_stream=True)
    peer.to_server()
    # headers only: the body is not there yet, the DATA provider waits (deferred)
    assert s.send_response(1, 200, [(b"content-type", b"application/octet-stream")], end=False) == 0
    peer.to_client()
    assert len(peer.of(ev.ResponseReceived)) == 1 and not peer.of(ev.DataReceived)
    chunks = [bytes([65 + i]) * 50000 for i in range(6)]  # 300000 bytes
    received = bytearray()
    pending = list(chunks)
    drained_seen = 0
    for _ in range(500):
        if pending and s.buffered(1) <= 32768:
            buffered = s.send_data(1, pending.pop(0), end=not pending)
            assert buffered > 0
        for e in peer.to_client():
            if isinstance(e, ev.DataReceived):
                received += e.data
                peer.c.acknowledge_received_data(e.flow_controlled_length, 1)
        drained_seen += s.drained().count(1)
        peer.to_server()
        if peer.of(ev.StreamEnded):
            break
    assert bytes(received) == b"".join(chunks)
    assert drained_seen >= 1  # the buffer went over 32768 and was reported back under it
    assert s.buffered(1) in (0, -1)


def test_whole_response_larger_than_the_windows(engine: str) -> None:
    s = server(engine)
    peer = Peer(s)  # the client's windows stay at 65535
    peer.handshake()
    peer.c.send_headers(1, request_headers(), end_stream=True)
    peer.to_server()
    body = bytes(range(256)) * 4096  # 1 MiB
    s.send_response(1, 200, [(b"content-length", b"%d" % len(body))], body)
    got = bytearray()
    for _ in range(200):
        for e in peer.to_client():
            if isinstance(e, ev.DataReceived):
                got += e.data
                peer.c.acknowledge_received_data(e.flow_controlled_length, 1)
        peer.to_server()
        if peer.of(ev.StreamEnded):
            break
    assert bytes(got) == body


def test_response_trailers_after_a_deferred_body(engine: str) -> None:
    s = server(engine)
    peer = Peer(s)
    peer.handshake()
    peer.c.send_headers(1, request_headers(extra=[(b"te", b"trailers")]), end_stream=True)
    peer.to_server()
    s.send_response(1, 200, [(b"trailer", b"x-checksum")], b"part1", end=False)
    peer.to_client()
    s.send_data(1, b"part2")
    assert s.send_trailers(1, [(b"X-Checksum", b"abc"), (b"X-Other", b" 2 ")]) is True
    peer.to_client()
    assert b"".join(e.data for e in peer.of(ev.DataReceived)) == b"part1part2"
    (tr,) = peer.of(ev.TrailersReceived)
    assert tr.headers == [(b"x-checksum", b"abc"), (b"x-other", b"2")]
    assert peer.of(ev.StreamEnded)


def test_response_headers_are_normalized_for_http2(engine: str) -> None:
    s = server(engine)
    peer = Peer(s)
    peer.handshake()
    peer.c.send_headers(1, request_headers(), end_stream=True)
    peer.to_server()
    s.send_response(
        1,
        204,
        [
            (b"Content-Type", b"text/plain"),
            (b"Connection", b"keep-alive"),  # RFC 9113 section 8.2.2: connection-specific
            (b"Keep-Alive", b"timeout=5"),
            (b"Transfer-Encoding", b"chunked"),
            (b"Upgrade", b"h2c"),
            (b"TE", b"gzip"),
            (b"X-Spaces", b"  v  "),
        ],
    )
    peer.to_client()
    (resp,) = peer.of(ev.ResponseReceived)
    assert resp.headers == [(b":status", b"204"), (b"content-type", b"text/plain"), (b"x-spaces", b"v")]


@pytest.mark.parametrize(
    "header",
    [(b"bad name", b"v"), (b"", b"v"), (b"x", b"a\r\nb"), (b"x", b"1\x00:status\x00500"), (b":status", b"1")],
)
def test_headers_http2_cannot_carry_are_refused(engine: str, header: tuple[bytes, bytes]) -> None:
    s = server(engine)
    peer = Peer(s)
    peer.handshake()
    peer.c.send_headers(1, request_headers(), end_stream=True)
    peer.to_server()
    with pytest.raises(H2HeaderError):
        s.send_response(1, 200, [(b"ok", b"1"), header])
    assert s.send_response(1, 200, [(b"ok", b"1")]) == 0  # nothing was sent for the bad one
    peer.to_client()
    assert [e.headers for e in peer.of(ev.ResponseReceived)] == [[(b":status", b"200"), (b"ok", b"1")]]


def test_informational_response_before_the_final_one(engine: str) -> None:
    s = server(engine)
    peer = Peer(s)
    peer.handshake()
    peer.c.send_headers(1, request_headers(method=b"POST", extra=[(b"expect", b"100-continue")]))
    peer.to_server()
    assert s.send_informational(1, 100, []) is True
    s.send_response(1, 200, [], b"ok")
    peer.to_client()
    assert [e.headers[0] for e in peer.of(ev.InformationalResponseReceived)] == [(b":status", b"100")]
    assert [e.headers[0] for e in peer.of(ev.ResponseReceived)] == [(b":status", b"200")]


def test_misuse_raises_and_a_gone_stream_returns_minus_one(engine: str) -> None:
    s = server(engine)
    peer = Peer(s)
    peer.handshake()
    peer.c.send_headers(1, request_headers(), end_stream=True)
    peer.to_server()
    with pytest.raises(H2Error):
        s.send_data(1, b"x")  # no response head yet
    s.send_response(1, 200, [], b"x", end=False)
    with pytest.raises(H2Error):
        s.send_response(1, 200, [])
    s.send_data(1, b"y", end=True)
    # after the end: refused, or the stream is already gone (h2 drops it once the end is framed)
    with contextlib.suppress(H2Error):
        assert s.send_data(1, b"z") == -1
    peer.to_client()
    assert b"".join(e.data for e in peer.of(ev.DataReceived)) == b"xy"
    assert s.send_response(99, 200, []) == -1
    assert s.send_data(99, b"x") == -1
    assert s.send_trailers(99, []) is False


# -- resets, GOAWAY, PING -----------------------------------------------------------------------


def test_rst_stream_from_the_client_ends_that_stream_only(engine: str) -> None:
    s = server(engine)
    peer = Peer(s)
    peer.handshake()
    peer.c.send_headers(1, request_headers(method=b"POST"))
    peer.c.send_headers(3, request_headers(), end_stream=True)
    assert [r[1] for r in requests_of(peer.to_server())] == [1, 3]
    s.send_response(1, 200, [], b"partial", end=False)
    peer.to_client()
    peer.c.reset_stream(1, http2.CANCEL)
    assert peer.to_server() == [(RESET, 1, http2.CANCEL)]
    assert s.send_data(1, b"more") == -1
    assert s.send_response(3, 200, [], b"three") >= 0
    peer.to_client()
    assert [(e.stream_id, e.data) for e in peer.of(ev.DataReceived)] == [(1, b"partial"), (3, b"three")]


def test_a_reset_by_the_server_yields_no_event_and_stops_the_stream(engine: str) -> None:
    s = server(engine)
    peer = Peer(s)
    peer.handshake()
    peer.c.send_headers(1, request_headers(method=b"POST"))
    peer.to_server()
    s.reset(1, http2.INTERNAL_ERROR)
    peer.to_client()
    assert [(e.stream_id, e.error_code) for e in peer.of(ev.StreamReset)] == [(1, http2.INTERNAL_ERROR)]
    assert s.send_response(1, 200, []) == -1


def test_graceful_goaway_lets_open_streams_finish_and_refuses_new_ones(engine: str) -> None:
    s = server(engine)
    peer = Peer(s)
    peer.handshake()
    peer.c.send_headers(1, request_headers(), end_stream=True)
    peer.to_server()
    s.goaway()
    assert goaways(s.data_to_send()) == [(http2.NO_ERROR, 1)]
    assert not s.finished
    # a stream the client opened before it saw the GOAWAY: above the last id, never processed
    peer.c.send_headers(3, request_headers(b"/late"), end_stream=True)
    assert requests_of(peer.to_server()) == []
    s.send_response(1, 200, [], b"done")
    frames = parse_frames(s.data_to_send())
    data = [f for f in frames if type(f).__name__ == "DataFrame" and f.stream_id == 1]
    assert data and data[-1].data == b"done" and "END_STREAM" in data[-1].flags
    s.data_to_send()
    assert s.finished


def test_terminate_sends_goaway_and_finishes(engine: str) -> None:
    s = server(engine)
    peer = Peer(s)
    peer.handshake()
    s.terminate(http2.ENHANCE_YOUR_CALM)
    assert goaways(s.data_to_send()) == [(http2.ENHANCE_YOUR_CALM, 0)]
    assert s.finished


def test_goaway_from_the_client_is_reported(engine: str) -> None:
    s = server(engine)
    peer = Peer(s)
    peer.handshake()
    peer.c.close_connection(error_code=0)
    events = peer.to_server()
    # no stream is open: the session is over (nghttp2 and h2 alike)
    assert events[-1][0] == CLOSE
    s.data_to_send()
    assert s.finished


def test_ping_round_trip(engine: str) -> None:
    s = server(engine)
    peer = Peer(s)
    peer.handshake()
    s.ping(b"12345678")
    peer.to_client()
    assert [e.ping_data for e in peer.of(ev.PingReceived)] == [b"12345678"]
    assert peer.to_server() == [(PING_ACK, b"12345678")]
    with pytest.raises(ValueError):
        s.ping(b"short")


def test_malformed_frame_is_a_goaway_with_protocol_error(engine: str) -> None:
    s = server(engine)
    peer = Peer(s)
    peer.handshake()
    peer.c.send_headers(1, request_headers(), end_stream=True)
    # RFC 9113 section 6.1: DATA on stream 0 is a connection error of type PROTOCOL_ERROR
    bad = b"\x00\x00\x04\x00\x00\x00\x00\x00\x00abcd"
    events = s.feed(peer.c.data_to_send() + bad)
    assert events == [(CLOSE, http2.PROTOCOL_ERROR)]  # the request before it is dropped too
    out = s.data_to_send()
    assert [code for code, _ in goaways(out)] == [http2.PROTOCOL_ERROR]
    assert s.finished
    assert s.feed(b"more") == []


def test_bad_connection_preface_closes(engine: str) -> None:
    s = server(engine)
    s.data_to_send()
    events = s.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert events == [(CLOSE, http2.PROTOCOL_ERROR)]
    s.data_to_send()
    assert s.finished
    if engine == "nghttp2":
        assert s.lib_error == -903  # NGHTTP2_ERR_BAD_CLIENT_MAGIC: fatal (<= -900)


# -- h2c Upgrade ----------------------------------------------------------------------------------


def test_h2c_upgrade_answers_the_http1_request_on_stream_1(engine: str) -> None:
    peer_settings = {SettingCodes.INITIAL_WINDOW_SIZE: 1000}
    probe = Peer(server(engine), client_settings=peer_settings, preface=False)
    header = probe.c.initiate_upgrade_connection()  # the client's HTTP2-Settings value
    assert header is not None
    s = http2.new_session(H2Config(), engine=engine, upgrade_settings=header.rstrip(b"="))
    probe.s = s
    # RFC 7540 section 3.2: the client's settings apply at once, stream 1 is half-closed
    assert 0 < s.remote_window(1) <= 1000
    probe.to_server()  # the client's preface
    assert s.send_response(1, 200, [(b"content-type", b"text/plain")], b"upgraded") >= 0
    probe.to_client()
    assert [e.stream_id for e in probe.of(ev.ResponseReceived)] == [1]
    assert [e.data for e in probe.of(ev.DataReceived)] == [b"upgraded"]


# -- engines ---------------------------------------------------------------------------------------


def test_select_engine_logs_once(monkeypatch: pytest.MonkeyPatch) -> None:
    log = logging.getLogger("_granian")
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    monkeypatch.setattr(engine_mod, "_logged", False)
    monkeypatch.setattr(log, "propagate", False)
    log.addHandler(handler)
    level = log.level
    log.setLevel(logging.INFO)
    try:
        first = http2.select_engine()
        second = http2.select_engine()
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
    assert first == second == ("nghttp2" if NG_OK else "h2")
    lines = [r.getMessage() for r in records]
    assert len(lines) == 1 and lines[0].startswith("HTTP/2 engine: ")
    assert http2.select_engine("h2") == "h2"
    with pytest.raises(ValueError):
        http2.select_engine("spdy")


def test_a_missing_libnghttp2_falls_back_to_h2_with_a_warning() -> None:
    code = textwrap.dedent(
        """
        import logging, sys
        logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(levelname)s %(message)s")
        from granian._native import ffi, lib
        missing = b"/nonexistent/libnghttp2.so.14"
        assert lib.h2_load(missing) != 0
        print("ERR", ffi.string(lib.h2_load_error()).decode())
        assert lib.h2_session_new(ffi.new("h2_params *")) == ffi.NULL
        from granian import http2
        from granian.http2 import ngsession
        ngsession.DEFAULT_LIBRARY = missing.decode()
        print("STATUS", http2.engine_status()[0])
        print("ENGINE", http2.select_engine(), http2.select_engine())
        s = http2.new_session()
        print("SESSION", s.engine, len(s.data_to_send()) > 0)
        try:
            http2.select_engine("nghttp2")
        except RuntimeError as e:
            print("FORCED", e)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert any(line.startswith("ERR /nonexistent/libnghttp2.so.14") for line in lines), lines
    assert "STATUS False" in lines and "ENGINE h2 h2" in lines and "SESSION h2 True" in lines
    warnings = [line for line in lines if line.startswith("WARNING HTTP/2 engine")]
    assert len(warnings) == 1 and "30x slower" in warnings[0]
    assert any(line.startswith("FORCED the nghttp2 HTTP/2 engine cannot run") for line in lines)
