"""granian.http2's bounds under abuse, on both engines, without sockets: each flood ends in
GOAWAY (or a refused stream) while the same traffic just under the bound goes through.

CONTINUATION flood (CVE-2024-27316), rapid reset (CVE-2023-44487), empty DATA frames
(CVE-2019-9518), PING and SETTINGS floods (CVE-2019-9512/9515), too many streams, an oversized
header list and an HPACK bomb, a zero window held forever."""

from __future__ import annotations

from typing import Any

import h2.events as ev
import pytest
from h2.settings import SettingCodes
from h2_peer import (
    ENGINES,
    PREFACE,
    Peer,
    RawClient,
    engine_param,
    goaways,
    parse_frames,
    request_headers,
    server,
)
from hpack import Decoder
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
)

from granian import http2
from granian.http2 import CLOSE, REQUEST, RESET, ngsession


@pytest.fixture(params=ENGINES)
def engine(request: Any) -> str:
    return engine_param(request)


def closed_with(events: list[Any], session: Any) -> tuple[int, list[int]]:
    """The CLOSE event's code and the codes of the GOAWAYs written."""
    assert events and events[-1][0] == CLOSE, events
    assert len(events) == 1, events  # nothing else of the closing batch is reported
    codes = [code for code, _ in goaways(session.data_to_send())]
    assert session.finished
    return events[-1][1], codes


def continuation_frames(raw: RawClient, sid: int, pieces: int) -> bytes:
    """One request's header block as HEADERS plus `pieces` CONTINUATION frames."""
    block = raw.block(request_headers(extra=[(b"x-long", b"y" * (3 * pieces))]))
    step = len(block) // (pieces + 1)
    cuts = [block[i * step : (i + 1) * step] for i in range(pieces)] + [block[pieces * step :]]
    frames = [HeadersFrame(sid, cuts[0], flags=["END_STREAM"]).serialize()]
    for i, cut in enumerate(cuts[1:], 1):
        frames.append(ContinuationFrame(sid, cut, flags=["END_HEADERS"] if i == pieces else []).serialize())
    return b"".join(frames)


def test_continuation_flood(engine: str) -> None:
    if engine == "nghttp2" and not ngsession.guards()["max_continuations"]:
        pytest.skip("this libnghttp2 has no nghttp2_option_set_max_continuations")
    s = server(engine, max_continuations=8)
    raw = RawClient(s)
    # a few CONTINUATION frames are fine
    events = s.feed(continuation_frames(raw, 1, 5))
    assert [e[0] for e in events] == [REQUEST] and events[0][6][0][0] == b"x-long"
    s.send_response(1, 200, [])
    s.data_to_send()
    # 120 of them (nghttp2's bound is max_continuations, h2's its backlog of 64)
    code, goaway = closed_with(s.feed(continuation_frames(raw, 3, 120)), s)
    if engine == "nghttp2":
        assert code == http2.ENHANCE_YOUR_CALM and goaway == [http2.ENHANCE_YOUR_CALM]
        assert s.lib_error == -905  # NGHTTP2_ERR_TOO_MANY_CONTINUATIONS, fatal
    else:
        assert code == http2.PROTOCOL_ERROR and goaway == [http2.PROTOCOL_ERROR]


def test_rapid_reset(engine: str) -> None:
    if engine == "nghttp2" and not ngsession.guards()["stream_reset_rate_limit"]:
        pytest.skip("this libnghttp2 has no nghttp2_option_set_stream_reset_rate_limit")
    # 10 tokens, one more per second: 40 resets in one go cannot be served in time
    s = server(engine, reset_burst=10, reset_rate=1)
    raw = RawClient(s)

    def opened_and_reset(first: int, n: int) -> bytes:
        out = []
        for sid in range(first, first + 2 * n, 2):
            out.append(HeadersFrame(sid, raw.block(request_headers()), flags=["END_HEADERS"]).serialize())
            out.append(RstStreamFrame(sid, error_code=http2.CANCEL).serialize())
        return b"".join(out)

    events = s.feed(opened_and_reset(1, 5))
    assert [e[0] for e in events] == [REQUEST, RESET] * 5
    s.data_to_send()
    code, goaway = closed_with(s.feed(opened_and_reset(11, 40)), s)
    # nghttp2 answers INTERNAL_ERROR, the h2 fallback ENHANCE_YOUR_CALM
    assert code in (http2.INTERNAL_ERROR, http2.ENHANCE_YOUR_CALM) and goaway == [code]


def test_empty_data_frame_flood(engine: str) -> None:
    s = server(engine, max_empty_frames=5)
    raw = RawClient(s)
    s.feed(HeadersFrame(1, raw.block(request_headers(method=b"POST")), flags=["END_HEADERS"]).serialize())
    empty = DataFrame(1, b"").serialize()
    # five in a row, then real data: fine, the run starts over
    events = s.feed(empty * 5 + DataFrame(1, b"x").serialize() + empty * 5)
    assert b"".join(e[2] for e in events if e[0] == http2.DATA) == b"x"
    code, goaway = closed_with(s.feed(empty), s)
    assert code == http2.ENHANCE_YOUR_CALM and goaway == [http2.ENHANCE_YOUR_CALM]


def test_ping_flood_from_a_peer_that_does_not_read(engine: str) -> None:
    s = server(engine, max_outbound_ack=10)
    RawClient(s)
    pings = [PingFrame(0, opaque_data=b"%08d" % i).serialize() for i in range(50)]
    # read between bursts: every PING is answered
    acks = 0
    for i in range(0, 50, 5):
        assert s.feed(b"".join(pings[i : i + 5])) == []
        acks += s.data_to_send().count(b"\x00\x00\x08\x06\x01")  # PING frame header with ACK
    assert acks == 50
    # 50 acks queued at once: the peer is not reading them
    code, goaway = closed_with(s.feed(b"".join(pings)), s)
    assert code == http2.ENHANCE_YOUR_CALM and goaway == [http2.ENHANCE_YOUR_CALM]
    if engine == "nghttp2":
        assert s.lib_error == -904  # NGHTTP2_ERR_FLOODED, fatal


def settings_frame(entries: int) -> bytes:
    # ids 0x10.. are unknown, which RFC 9113 section 6.5.2 says to ignore: only the count matters
    payload = b"".join((0x10 + i).to_bytes(2, "big") + (1).to_bytes(4, "big") for i in range(entries))
    return len(payload).to_bytes(3, "big") + b"\x04\x00\x00\x00\x00\x00" + payload


def test_settings_frame_with_too_many_entries(engine: str) -> None:
    s = server(engine, max_settings=32)
    s.data_to_send()
    assert s.feed(PREFACE + settings_frame(10)) == []
    s.data_to_send()
    code, goaway = closed_with(s.feed(settings_frame(40)), s)
    assert code == http2.ENHANCE_YOUR_CALM and goaway == [http2.ENHANCE_YOUR_CALM]


def test_streams_over_max_concurrent_streams(engine: str) -> None:
    s = server(engine, max_concurrent_streams=3)
    raw = RawClient(s)
    frames = [
        HeadersFrame(sid, raw.block(request_headers()), flags=["END_HEADERS", "END_STREAM"]).serialize()
        for sid in (1, 3, 5, 7, 9)
    ]
    events = s.feed(b"".join(frames))
    if engine == "nghttp2":
        # the extra streams are refused, the connection and the first three go on
        assert [e[1] for e in events if e[0] == REQUEST] == [1, 3, 5]
        resets = [f for f in parse_frames(s.data_to_send()) if isinstance(f, RstStreamFrame)]
        assert {f.stream_id: f.error_code for f in resets} == {
            7: http2.REFUSED_STREAM,
            9: http2.REFUSED_STREAM,
        }
        assert s.send_response(1, 200, [], b"ok") >= 0
        assert not s.finished
    else:  # h2 makes it a connection error
        code, goaway = closed_with(events, s)
        assert code == http2.PROTOCOL_ERROR and goaway == [http2.PROTOCOL_ERROR]


def test_header_list_over_the_limit(engine: str) -> None:
    s = server(engine, max_headers_size=4096)
    peer = Peer(s)
    peer.handshake()
    peer.c.send_headers(1, request_headers(extra=[(b"x-big", b"v" * 8000)]), end_stream=True)
    events = peer.to_server()
    if engine == "nghttp2":
        assert events == []  # answered in C: 431 (RFC 6585), never reaches the application
        peer.to_client()
        assert [e.headers for e in peer.of(ev.ResponseReceived)] == [[(b":status", b"431")]]
        peer.c.send_headers(3, request_headers(), end_stream=True)
        assert [e[1] for e in peer.to_server() if e[0] == REQUEST] == [3]
    else:
        code, goaway = closed_with(events, s)
        assert code == http2.ENHANCE_YOUR_CALM and goaway == [http2.ENHANCE_YOUR_CALM]


def test_hpack_bomb(engine: str) -> None:
    # one 3000-byte field in the dynamic table, then a tiny block referencing it 20 times
    s = server(engine, max_headers_size=8192)
    raw = RawClient(s)
    bomb = (b"x-bomb", b"A" * 3000)
    first = raw.block([*request_headers(), bomb])
    events = s.feed(HeadersFrame(1, first, flags=["END_HEADERS", "END_STREAM"]).serialize())
    assert [e[0] for e in events] == [REQUEST]
    s.send_response(1, 204, [])
    s.data_to_send()
    block = raw.block([*request_headers(), *[bomb] * 20])
    assert len(block) < 64  # 60000 decoded bytes from a few dozen
    events = s.feed(HeadersFrame(3, block, flags=["END_HEADERS", "END_STREAM"]).serialize())
    assert not [e for e in events if e[0] == REQUEST]
    out = s.data_to_send()
    if engine == "nghttp2":
        assert events == [] and not s.finished  # 431 on stream 3, the connection goes on
        heads = [f for f in parse_frames(out) if isinstance(f, HeadersFrame)]
        assert [(f.stream_id, Decoder().decode(f.data, raw=True)) for f in heads] == [
            (3, [(b":status", b"431")])
        ]
    else:
        assert events == [(CLOSE, http2.ENHANCE_YOUR_CALM)]
        assert [code for code, _ in goaways(out)] == [http2.ENHANCE_YOUR_CALM]


def test_a_zero_window_holds_the_body_until_the_stream_is_reset(engine: str) -> None:
    # the engine never sends past the window; ending such a stream is the carrier's timer
    s = server(engine)
    peer = Peer(s, client_settings={SettingCodes.INITIAL_WINDOW_SIZE: 0})
    peer.handshake()
    peer.c.send_headers(1, request_headers(), end_stream=True)
    peer.to_server()
    s.send_response(1, 200, [], b"z" * 5000)
    for _ in range(3):
        peer.to_client()
        peer.to_server()
    assert not peer.of(ev.DataReceived) and peer.of(ev.ResponseReceived)
    assert s.buffered(1) == 5000 and s.remote_window(1) == 0
    s.reset(1, http2.CANCEL)
    peer.to_client()
    assert s.buffered(1) == -1
    assert [(e.stream_id, e.error_code) for e in peer.of(ev.StreamReset)] == [(1, http2.CANCEL)]
