"""The sans-I/O WebSocket connection (granian.websocket.connection) through the real C codec:
message assembly, control frames, every close rule, incremental UTF-8, size bounds, the close
handshake, and the frames it sends (read back with an independent Python parser)."""

from __future__ import annotations

import codecs
import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wsframes import binary, client_frame, close, close_of, cont, ping, pong, server_frames, text

from granian.websocket import codec, connection
from granian.websocket.connection import (
    CLOSED,
    CLOSING,
    OPEN,
    Close,
    Failure,
    Ping,
    Pong,
    WebSocketClosedError,
    WSConnection,
    valid_close_code,
)


def server_close_after(conn: WSConnection, events: list[Any], out: bytes) -> int | None:
    """A Failure ends the events and nothing is written for it (the server closes when it is
    ready, 7.1.7): its close() then carries the failure's code, and reading is over."""
    failure = events[-1]
    assert isinstance(failure, Failure)
    assert all(b0 != 0x88 for b0, _ in server_frames(out))
    assert conn.feed(text("after")) == ([], b"")
    code, reason = close_of(conn.close(failure.code, failure.reason))
    assert reason == failure.reason.encode()
    return code


def feed_bytewise(conn: WSConnection, data: bytes) -> tuple[list[Any], bytes]:
    events: list[Any] = []
    out = b""
    for i in range(len(data)):
        ev, o = conn.feed(data[i : i + 1])
        events += ev
        out += o
    return events, out


# -- messages -------------------------------------------------------------------------------


def test_whole_messages_are_plain_str_and_bytes() -> None:
    conn = WSConnection()
    events, out = conn.feed(text("hello, κόσμε") + binary(b"\x00\xff"))
    assert events == ["hello, κόσμε", b"\x00\xff"]
    assert [type(e) for e in events] == [str, bytes]
    assert out == b""
    assert conn.feed(text("")) == ([""], b"")
    assert conn.feed(binary(b"")) == ([b""], b"")


def test_one_message_is_one_c_call(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = connection._decode

    def counting(*args: Any) -> int:
        calls.append(1)
        return int(real(*args))

    monkeypatch.setattr(connection, "_decode", counting)
    conn = WSConnection()
    assert conn.feed(text("x" * 16)) == (["x" * 16], b"")
    assert len(calls) == 1
    # a chunk of many frames is still one call
    events, _ = conn.feed(b"".join(text(str(i)) for i in range(300)))
    assert events == [str(i) for i in range(300)]
    assert len(calls) == 2


def test_fragmented_message_with_control_frames_inside() -> None:
    conn = WSConnection()
    data = text("frag", fin=False) + ping(b"p1") + cont(b"ment", fin=False) + pong(b"x") + cont(b"ed")
    events, out = conn.feed(data)
    assert events == [Ping(b"p1"), Pong(b"x"), "fragmented"]
    assert server_frames(out) == [(0x8A, b"p1")]


def test_fragmented_binary_in_many_frames_and_bytewise() -> None:
    parts = [os.urandom(n) for n in (0, 1, 125, 126, 300, 0, 7)]
    data = binary(parts[0], fin=False) + b"".join(cont(p, fin=False) for p in parts[1:-1]) + cont(parts[-1])
    assert WSConnection().feed(data) == ([b"".join(parts)], b"")
    events, out = feed_bytewise(WSConnection(), data)
    assert (events, out) == ([b"".join(parts)], b"")


def test_a_chunk_larger_than_the_output_space() -> None:
    big = os.urandom(codec.DST_CAP * 2 + 123)
    small = [text(str(i)) for i in range(codec.REC_CAP + 50)]
    conn = WSConnection()
    events, _ = conn.feed(binary(big) + b"".join(small))
    assert events == [big] + [str(i) for i in range(codec.REC_CAP + 50)]


def test_each_ping_gets_its_own_pong_with_the_same_payload() -> None:
    conn = WSConnection()
    events, out = conn.feed(ping(b"a") + ping(b"") + ping(b"x" * 125))
    assert events == [Ping(b"a"), Ping(b""), Ping(b"x" * 125)]
    assert server_frames(out) == [(0x8A, b"a"), (0x8A, b""), (0x8A, b"x" * 125)]


def test_ping_split_across_chunks() -> None:
    conn = WSConnection()
    data = ping(b"0123456789")
    assert conn.feed(data[:9]) == ([], b"")
    events, out = conn.feed(data[9:])
    assert events == [Ping(b"0123456789")]
    assert server_frames(out) == [(0x8A, b"0123456789")]


# -- UTF-8 ----------------------------------------------------------------------------------

INVALID_UTF8 = [
    b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited",  # a surrogate (Autobahn 6.4.1)
    b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80\x65\x64",  # > U+10FFFF (6.4.2)
    b"ab\xc0\xafcd",  # overlong
    b"ab\xe0\x80\xafcd",  # overlong, 3 bytes
    b"ab\x80cd",  # lone continuation byte
    b"ab\xffcd",
    b"ab\xf8\x88\x80\x80\x80",  # 5-byte form
]


def first_bad_index(data: bytes) -> int:
    """Where a strict decoder knows the bytes are not UTF-8: the shortest prefix that is not
    the start of any valid text (checked by trying every completion of the last sequence)."""
    for i in range(1, len(data) + 1):
        prefix = data[:i]
        try:
            prefix.decode()
            continue
        except UnicodeDecodeError as exc:
            if exc.reason != "unexpected end of data":
                return i - 1
    raise AssertionError("valid")


@pytest.mark.parametrize("bad", INVALID_UTF8)
def test_invalid_utf8_fails_at_the_bad_byte_within_one_frame(bad: bytes) -> None:
    stop = first_bad_index(bad)
    frame = text(bad)
    header = len(frame) - len(bad)
    conn = WSConnection()
    for i in range(len(frame)):
        events, out = conn.feed(frame[i : i + 1])
        if events:
            assert events == [Failure(1007, "invalid UTF-8 in a text message")]
            assert server_close_after(conn, events, out) == 1007
            assert i - header == stop
            break
    else:
        pytest.fail("no failure")
    assert conn.state == CLOSING


@pytest.mark.parametrize("bad", INVALID_UTF8)
def test_invalid_utf8_fails_at_the_fragment_that_brings_it(bad: bytes) -> None:
    stop = first_bad_index(bad)
    conn = WSConnection()
    assert conn.feed(text(bad[:stop], fin=False)) == ([], b"")
    events, out = conn.feed(cont(bad[stop : stop + 1], fin=False))
    assert events == [Failure(1007, "invalid UTF-8 in a text message")]
    # what follows is not read
    assert conn.feed(cont(bad[stop + 1 :])) == ([], b"")
    assert server_close_after(conn, events, out) == 1007


def test_a_character_split_across_fragments_is_fine() -> None:
    raw = "κόσμε€𝄞".encode()
    for cut in range(len(raw) + 1):
        data = text(raw[:cut], fin=False) + cont(raw[cut:])
        assert WSConnection().feed(data) == (["κόσμε€𝄞"], b""), cut


def test_a_truncated_character_at_the_end_of_the_message_fails() -> None:
    events, out = WSConnection().feed(text(b"ab\xe2\x82", fin=False) + cont(b""))
    assert events == [Failure(1007, "invalid UTF-8 in a text message")]
    events, out = WSConnection().feed(text(b"ab\xe2\x82"))
    assert events == [Failure(1007, "invalid UTF-8 in a text message")]


def test_binary_messages_are_not_utf8_checked() -> None:
    assert WSConnection().feed(binary(b"\xff\xfe", fin=False) + cont(b"\xc0")) == ([b"\xff\xfe\xc0"], b"")


# -- sizes ----------------------------------------------------------------------------------


def test_message_size_bounds_a_message_over_its_fragments() -> None:
    conn = WSConnection(max_message_size=10)
    assert conn.feed(text("x" * 10)) == (["x" * 10], b"")
    assert conn.feed(text("x" * 5, fin=False) + cont(b"y" * 5)) == (["x" * 5 + "y" * 5], b"")
    events, out = conn.feed(text("x" * 5, fin=False) + cont(b"y" * 6))
    assert events == [Failure(1009, "message too big")]
    assert server_close_after(conn, events, out) == 1009


def test_four_megabytes_in_64_byte_fragments_pass() -> None:
    size = 4 * 1024 * 1024
    piece = b"abcdefgh" * 8
    data = text(piece, fin=False) + cont(piece, fin=False) * (size // 64 - 2) + cont(piece)
    events, out = WSConnection(max_message_size=size).feed(data)
    assert out == b""
    assert events == [(piece * (size // 64)).decode()]


def test_an_oversized_frame_fails_at_its_header() -> None:
    conn = WSConnection(max_message_size=1000)
    events, out = conn.feed(binary(b"z" * 5000)[:8])  # header only
    assert events == [Failure(1009, "message too big")]
    assert server_close_after(conn, events, out) == 1009


def test_control_frames_do_not_count_toward_the_message() -> None:
    conn = WSConnection(max_message_size=4)
    events, _ = conn.feed(text("ab", fin=False) + ping(b"p" * 125) + cont(b"cd"))
    assert events == [Ping(b"p" * 125), "abcd"]


# -- protocol rules through the connection --------------------------------------------------

RULES = [
    ("unmasked", client_frame(0x81, b"x", None)),
    ("rsv1", client_frame(0xC1, b"x")),
    ("rsv2", client_frame(0xA1, b"x")),
    ("rsv3", client_frame(0x91, b"x")),
    ("opcode 3", client_frame(0x83, b"")),
    ("opcode 7", client_frame(0x87, b"")),
    ("opcode 0xb", client_frame(0x8B, b"")),
    ("opcode 0xf", client_frame(0x8F, b"")),
    ("fragmented ping", client_frame(0x09, b"")),
    ("ping of 126", client_frame(0x89, b"x" * 126)),
    ("continuation without start", cont(b"x")),
    ("new message inside another", text("a", fin=False) + text("b")),
    ("binary inside text", text("a", fin=False) + binary(b"b", fin=False)),
    ("close of one byte", client_frame(0x88, b"\x03")),
]


@pytest.mark.parametrize("name,data", RULES, ids=[r[0] for r in RULES])
def test_protocol_errors_close_with_1002(name: str, data: bytes) -> None:
    conn = WSConnection()
    events, out = conn.feed(data)
    assert len(events) == 1 and isinstance(events[0], Failure) and events[0].code == 1002
    assert conn.state == OPEN and not conn.close_sent  # the server's close() is still to come
    assert server_close_after(conn, events, out) == 1002
    assert conn.state == CLOSING and conn.close_sent
    assert conn.connection_lost() == (1002, events[0].reason)


def test_messages_before_the_bad_frame_are_delivered() -> None:
    conn = WSConnection()
    events, out = conn.feed(text("ok") + ping(b"p") + client_frame(0x83, b""))
    assert events[:2] == ["ok", Ping(b"p")]
    assert events[2] == Failure(1002, "reserved opcode")
    assert server_frames(out) == [(0x8A, b"p")]
    # the earlier message can still be answered before the server's close
    echo = conn.send_text(events[0])
    assert server_frames(echo + conn.close(1002, "reserved opcode")) == [
        (0x81, b"ok"),
        (0x88, b"\x03\xeareserved opcode"),
    ]


VALID_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999]
INVALID_CODES = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]


@pytest.mark.parametrize("code", VALID_CODES)
def test_valid_close_codes_are_echoed(code: int) -> None:
    conn = WSConnection()
    events, out = conn.feed(close(code, "bye ✓".encode()))
    assert events == [Close(code, "bye ✓")]
    assert close_of(out) == (code, b"")
    assert conn.state == CLOSED
    assert (conn.close_code, conn.close_reason) == (code, "bye ✓")
    assert conn.connection_lost() == (code, "bye ✓")


@pytest.mark.parametrize("code", INVALID_CODES)
def test_invalid_close_codes_fail_with_1002(code: int) -> None:
    conn = WSConnection()
    events, out = conn.feed(close(code))
    assert events == [Failure(1002, "invalid close code")]
    assert server_close_after(conn, events, out) == 1002


def test_valid_close_code_rule() -> None:
    valid = [c for c in range(70000) if valid_close_code(c)]
    assert valid == [1000, 1001, 1002, 1003, *range(1007, 1015), *range(3000, 5000)]


def test_close_without_code_is_1005_and_is_answered_without_code() -> None:
    conn = WSConnection()
    events, out = conn.feed(close())
    assert events == [Close(1005, "")]
    assert close_of(out) == (None, b"")
    assert conn.connection_lost() == (1005, "")


def test_close_reason_must_be_utf8() -> None:
    conn = WSConnection()
    events, out = conn.feed(close(1000, b"\xff"))
    assert events == [Failure(1007, "invalid UTF-8 in a close reason")]
    assert server_close_after(conn, events, out) == 1007


def test_close_inside_a_fragmented_message_ends_it() -> None:
    conn = WSConnection()
    events, out = conn.feed(text("half", fin=False) + close(1000) + cont(b"never"))
    assert events == [Close(1000, "")]
    assert close_of(out) == (1000, b"")


def test_nothing_is_read_after_the_peers_close() -> None:
    conn = WSConnection()
    events, _ = conn.feed(close(1001) + text("late"))
    assert events == [Close(1001, "")]
    assert conn.feed(text("later")) == ([], b"")
    with pytest.raises(WebSocketClosedError):
        conn.send_text("x")
    with pytest.raises(WebSocketClosedError):
        conn.send_bytes(b"x")
    assert conn.close() == b""
    assert conn.ping() == b""


# -- server-initiated close -----------------------------------------------------------------


def test_server_close_then_the_peers_reply() -> None:
    conn = WSConnection()
    frame = conn.close(1001, "going away")
    assert close_of(frame) == (1001, b"going away")
    assert conn.state == CLOSING and conn.close_sent
    with pytest.raises(WebSocketClosedError):
        conn.send_text("x")
    assert conn.close(1000) == b""  # idempotent
    assert conn.ping(b"x") == b""
    # a ping while closing is reported but not answered; data still arrives
    events, out = conn.feed(ping(b"p") + text("late"))
    assert (events, out) == ([Ping(b"p"), "late"], b"")
    events, out = conn.feed(close(1001))
    assert (events, out) == ([Close(1001, "")], b"")
    assert conn.state == CLOSED


def test_server_close_and_then_the_connection_is_lost() -> None:
    conn = WSConnection()
    conn.close(1000)
    assert conn.connection_lost() == (1006, "")
    assert conn.state == CLOSED


def test_connection_lost_while_open_is_1006() -> None:
    conn = WSConnection()
    conn.feed(text("x"))
    assert conn.connection_lost() == (1006, "")
    assert conn.feed(text("y")) == ([], b"")


def test_protocol_error_while_closing_sends_no_second_close() -> None:
    conn = WSConnection()
    conn.close(1000)
    events, out = conn.feed(client_frame(0x83, b""))
    assert events == [Failure(1002, "reserved opcode")]
    assert out == b""


def test_close_arguments() -> None:
    for code in INVALID_CODES:
        with pytest.raises(ValueError):
            WSConnection().close(code)
    assert close_of(WSConnection().close(None)) == (None, b"")
    long_reason = "é" * 100  # 200 bytes: cut to 123 bytes at a character boundary
    code, reason = close_of(WSConnection().close(4000, long_reason))
    assert code == 4000 and reason == ("é" * 61).encode()


# -- sending --------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 125, 126, 65535, 65536, 100000])
def test_sent_frames(n: int) -> None:
    conn = WSConnection()
    s = "y" * n
    assert server_frames(conn.send_text(s)) == [(0x81, s.encode())]
    b = os.urandom(n)
    assert server_frames(conn.send_bytes(b)) == [(0x82, b)]
    assert server_frames(conn.send_message(s)) == [(0x81, s.encode())]
    assert server_frames(conn.send_message(b)) == [(0x82, b)]


def test_ping_and_pong_frames() -> None:
    conn = WSConnection()
    assert server_frames(conn.ping(b"hb")) == [(0x89, b"hb")]
    assert server_frames(conn.pong(b"u")) == [(0x8A, b"u")]
    with pytest.raises(ValueError):
        conn.ping(b"x" * 126)
    with pytest.raises(ValueError):
        conn.pong(b"x" * 126)


def test_max_message_size_must_be_positive() -> None:
    with pytest.raises(ValueError):
        WSConnection(max_message_size=0)


# -- properties -----------------------------------------------------------------------------

message_st = st.one_of(st.text(max_size=40), st.binary(max_size=200))


@settings(max_examples=150, deadline=None)
@given(
    messages=st.lists(
        st.tuples(message_st, st.lists(st.integers(0, 300), max_size=4), st.booleans()), max_size=6
    ),
    cuts=st.lists(st.integers(0, 3000), max_size=8),
)
def test_any_messages_fragmented_and_split_anyhow(
    messages: list[tuple[str | bytes, list[int], bool]], cuts: list[int]
) -> None:
    data = b""
    expect: list[Any] = []
    pongs: list[tuple[int, bytes]] = []
    for i, (msg, frag_cuts, with_ping) in enumerate(messages):
        raw = msg.encode() if isinstance(msg, str) else msg
        points = sorted({min(c, len(raw)) for c in frag_cuts} | {0, len(raw)})
        pieces = [raw[a:b] for a, b in zip(points, points[1:], strict=False)] or [b""]
        op = 0x1 if isinstance(msg, str) else 0x2
        for j, piece in enumerate(pieces):
            fin = 0x80 if j == len(pieces) - 1 else 0
            data += client_frame(fin | (op if j == 0 else 0), piece)
            if with_ping and j == 0 and not fin:  # a ping between the message's fragments
                data += ping(str(i).encode())
                expect.append(Ping(str(i).encode()))
                pongs.append((0x8A, str(i).encode()))
        expect.append(msg)
    conn = WSConnection()
    points = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    events: list[Any] = []
    out = b""
    for a, b in zip(points, points[1:], strict=False):
        ev, o = conn.feed(data[a:b])
        events += ev
        out += o
    assert events == expect
    assert server_frames(out) == pongs


@settings(max_examples=150, deadline=None)
@given(st.binary(min_size=1, max_size=40))
def test_any_text_payload_is_accepted_iff_it_is_utf8(raw: bytes) -> None:
    try:
        expected: Any = raw.decode()
    except UnicodeDecodeError:
        expected = None
    for data in (text(raw), text(raw[:1], fin=False) + cont(raw[1:])):
        events, _ = WSConnection().feed(data)
        if expected is None:
            assert events == [Failure(1007, "invalid UTF-8 in a text message")]
        else:
            assert events == [expected]


def test_incremental_decoder_is_the_stdlib_one() -> None:
    # the fail-fast guarantee rests on CPython's UTF-8 decoder refusing a bad byte at once
    dec = codecs.getincrementaldecoder("utf-8")()
    assert dec.decode(b"\xf4", False) == ""
    with pytest.raises(UnicodeDecodeError):
        dec.decode(b"\x90", False)


def rfc3629_prefix_ok(p: bytes) -> bool:
    """Whether a lead byte and its continuation bytes so far can still be valid (RFC 3629 4)."""
    lead = p[0]
    if 0xC2 <= lead <= 0xDF:
        n, lo, hi = 2, 0x80, 0xBF
    elif lead == 0xE0:
        n, lo, hi = 3, 0xA0, 0xBF
    elif lead == 0xED:
        n, lo, hi = 3, 0x80, 0x9F
    elif 0xE1 <= lead <= 0xEF:
        n, lo, hi = 3, 0x80, 0xBF
    elif lead == 0xF0:
        n, lo, hi = 4, 0x90, 0xBF
    elif 0xF1 <= lead <= 0xF3:
        n, lo, hi = 4, 0x80, 0xBF
    elif lead == 0xF4:
        n, lo, hi = 4, 0x80, 0x8F
    else:
        return False
    assert len(p) <= n
    return (len(p) < 2 or lo <= p[1] <= hi) and all(0x80 <= b <= 0xBF for b in p[2:])


def test_every_two_byte_prefix_fails_exactly_when_it_cannot_be_utf8() -> None:
    for lead in range(0xC2, 0xF5):
        for second in range(256):
            conn = WSConnection()
            assert conn.feed(text(bytes((lead,)), fin=False)) == ([], b"")
            events, _ = conn.feed(cont(bytes((second,)), fin=False))
            failed = events == [Failure(1007, "invalid UTF-8 in a text message")]
            assert failed == (not rfc3629_prefix_ok(bytes((lead, second)))), (lead, second)
            assert failed or events == []


def test_three_byte_prefixes_fail_exactly_when_they_cannot_be_utf8() -> None:
    for lead in range(0xE0, 0xF5):
        for second in range(0x80, 0xC0):
            if not rfc3629_prefix_ok(bytes((lead, second))):
                continue
            for third in (0x00, 0x41, 0x7F, 0x80, 0x9F, 0xA0, 0xBF, 0xC0, 0xED, 0xFF):
                conn = WSConnection()
                conn.feed(text(bytes((lead,)), fin=False) + cont(bytes((second,)), fin=False))
                events, _ = conn.feed(cont(bytes((third,)), fin=False))
                failed = events == [Failure(1007, "invalid UTF-8 in a text message")]
                if lead < 0xF0:  # the character is complete (or broken) with its third byte
                    assert failed == (not 0x80 <= third <= 0xBF), (lead, second, third)
                else:
                    assert failed == (not rfc3629_prefix_ok(bytes((lead, second, third)))), (
                        lead,
                        second,
                        third,
                    )


def test_state_constants() -> None:
    conn = WSConnection()
    assert conn.state == OPEN
    assert (conn.close_code, conn.close_sent, conn.close_received) == (None, False, False)


def test_send_before_reply_answers_messages_before_a_held_close_reply() -> None:
    # RFC 6455 §5.5.1: an endpoint may delay its Close until its current message is sent. The
    # peer's Close makes feed() hand out our reply; a server holding that reply back may still
    # frame its answers (send_before_reply), which send_message refuses once CLOSED.
    conn = WSConnection()
    events, out = conn.feed(text("hi") + close(1000, b"bye"))
    assert events == ["hi", Close(1000, "bye")] and conn.state == CLOSED
    assert server_frames(out) == [(0x88, b"\x03\xe8")]
    with pytest.raises(WebSocketClosedError):
        conn.send_message("hi")
    assert server_frames(conn.send_before_reply("hi")) == [(0x81, b"hi")]
    assert server_frames(conn.send_before_reply(b"\x00")) == [(0x82, b"\x00")]
    assert conn.state == CLOSED  # unchanged by it


def test_send_before_reply_refused_without_a_peer_close_or_after_our_own() -> None:
    conn = WSConnection()
    with pytest.raises(WebSocketClosedError):
        conn.send_before_reply("x")  # open: nothing is held
    conn.close(1000)
    conn.feed(close(1000))
    assert conn.state == CLOSED
    with pytest.raises(WebSocketClosedError):
        conn.send_before_reply("x")  # our Close went first: no data frame may follow it
