"""The C WebSocket frame codec (csrc/ws.c) through cffi: every frame shape, every split, every
frame rule, both unmasking paths, the output-space refill, and agreement with an independent
pure-Python encoder and with the `websockets` library's frames."""

from __future__ import annotations

import os
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from granian.websocket import codec
from granian.websocket.codec import FrameDecoder, FrameError, Record

KEY = b"\x37\xfa\x21\x3d"


def ref_mask(data: bytes, key: bytes, phase: int = 0) -> bytes:
    return bytes(b ^ key[(phase + i) % 4] for i, b in enumerate(data))


def ref_frame(b0: int, payload: bytes, key: bytes | None = KEY, length_size: int | None = None) -> bytes:
    """RFC 6455 5.2 written out independently of the C code; `length_size` forces a
    (non-minimal) 7/16/64-bit length encoding."""
    n = len(payload)
    m = 0x80 if key is not None else 0
    size = length_size or (7 if n < 126 else 16 if n < 65536 else 64)
    if size == 7:
        head = bytes((b0, m | n))
    elif size == 16:
        head = bytes((b0, m | 126)) + struct.pack("!H", n)
    else:
        head = bytes((b0, m | 127)) + struct.pack("!Q", n)
    if key is None:
        return head + payload
    return head + key + ref_mask(payload, key)


def joined(records: list[Record]) -> list[tuple[int, bytes]]:
    """Records merged back into (b0, payload) per frame, checking START/END bracketing."""
    frames: list[tuple[int, bytes]] = []
    open_frame: list[bytes] | None = None
    b0 = 0
    for r in records:
        if r.start:
            assert open_frame is None, "a frame started inside another"
            open_frame, b0 = [], r.b0
        assert open_frame is not None, "a record outside a frame"
        assert r.b0 == b0
        open_frame.append(r.payload)
        if r.end:
            frames.append((b0, b"".join(open_frame)))
            open_frame = None
    assert open_frame is None, "the last frame did not end"
    return frames


LENGTHS = [0, 1, 2, 3, 4, 5, 7, 8, 15, 16, 17, 63, 64, 65, 125, 126, 127, 1000, 65535, 65536, 70001]


@pytest.mark.parametrize("simd", [True, False])
@pytest.mark.parametrize("masked", [True, False])
@pytest.mark.parametrize("n", LENGTHS)
@pytest.mark.parametrize("opcode", [0x1, 0x2])
def test_data_frame_shapes(opcode: int, n: int, masked: bool, simd: bool) -> None:
    payload = os.urandom(n)
    dec = FrameDecoder(require_mask=masked, simd=simd)
    frame = ref_frame(0x80 | opcode, payload, KEY if masked else None)
    assert joined(dec.feed(frame)) == [(0x80 | opcode, payload)]


@pytest.mark.parametrize("n", [0, 1, 125])
@pytest.mark.parametrize("opcode", [0x8, 0x9, 0xA])
def test_control_frame_shapes(opcode: int, n: int) -> None:
    payload = os.urandom(n)
    dec = FrameDecoder()
    assert dec.feed(ref_frame(0x80 | opcode, payload)) == [Record(0x80 | opcode, True, True, payload)]


@pytest.mark.parametrize("size", [7, 16, 64])
def test_every_length_encoding_is_read_even_when_not_minimal(size: int) -> None:
    # 5.2 tells senders to be minimal; receivers (websockets, tungstenite) accept the others
    payload = b"abc"
    dec = FrameDecoder()
    assert joined(dec.feed(ref_frame(0x82, payload, length_size=size))) == [(0x82, payload)]


def test_continuation_frames_carry_their_own_first_byte() -> None:
    dec = FrameDecoder()
    data = ref_frame(0x01, b"ab") + ref_frame(0x00, b"cd") + ref_frame(0x80, b"ef")
    assert joined(dec.feed(data)) == [(0x01, b"ab"), (0x00, b"cd"), (0x80, b"ef")]


@pytest.mark.parametrize("n", [0, 5, 125, 126, 65535, 65536, 2**32, 2**63 - 1])
@pytest.mark.parametrize("key", [None, KEY])
def test_frame_header_is_the_minimal_encoding(n: int, key: bytes | None) -> None:
    m = 0x80 if key else 0
    if n < 126:
        expect = bytes((0x82, m | n))
    elif n < 65536:
        expect = bytes((0x82, m | 126)) + struct.pack("!H", n)
    else:
        expect = bytes((0x82, m | 127)) + struct.pack("!Q", n)
    assert codec.frame_header(0x82, n, key) == expect + (key or b"")


def test_frame_header_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError):
        codec.frame_header(0x81, 2**63)
    with pytest.raises(ValueError):
        codec.frame_header(0x81, -1)
    with pytest.raises(ValueError):
        codec.frame_header(0x81, 1, b"abc")


def test_header_table_matches_frame_header() -> None:
    table = codec.header_table(0x89)
    assert len(table) == 126
    assert all(table[n] == bytes((0x89, n)) for n in range(126))


def test_built_frames_decode_back() -> None:
    for n in LENGTHS:
        payload = os.urandom(n)
        frame = codec.frame_header(0x82, n, KEY) + codec.mask(payload, KEY)
        assert frame == ref_frame(0x82, payload)
        assert joined(FrameDecoder().feed(frame)) == [(0x82, payload)]


@pytest.mark.parametrize("phase", [0, 1, 2, 3])
def test_mask_matches_the_byte_rule_at_every_length_and_phase(phase: int) -> None:
    for n in range(0, 200):
        data = os.urandom(n)
        assert codec.mask(data, KEY, phase) == ref_mask(data, KEY, phase)
    with pytest.raises(ValueError):
        codec.mask(b"x", b"12345")


# -- splits ---------------------------------------------------------------------------------


def _stream() -> tuple[bytes, list[tuple[int, bytes]]]:
    frames = [
        (0x01, "κόσμε".encode()),  # text, fragmented
        (0x89, b"ping!"),  # a ping inside the fragmented message
        (0x80, b" more text"),
        (0x82, os.urandom(300)),  # 16-bit length
        (0x8A, b""),
        (0x82, os.urandom(70000)),  # 64-bit length
        (0x81, b""),
        (0x88, b"\x03\xe8bye"),
    ]
    return b"".join(ref_frame(b0, p) for b0, p in frames), frames


@pytest.mark.parametrize("simd", [True, False])
def test_split_at_every_byte_in_two(simd: bool) -> None:
    data, frames = _stream()
    # every split point in the head of the stream (all header shapes) and around the big frame
    points = list(range(len(data) - 70000 - 20)) + list(range(len(data) - 30, len(data) + 1))
    for cut in points:
        dec = FrameDecoder(simd=simd)
        records = dec.feed(data[:cut]) + dec.feed(data[cut:])
        assert joined(records) == frames, cut


def test_byte_by_byte() -> None:
    data, frames = _stream()
    dec = FrameDecoder()
    records: list[Record] = []
    for i in range(len(data)):
        records += dec.feed(data[i : i + 1])
    assert joined(records) == frames
    # a frame's header arriving before its payload gives a START record of 0 bytes first
    assert records[0] == Record(0x01, True, False, b"")


def test_header_split_across_three_calls() -> None:
    payload = os.urandom(300)
    frame = ref_frame(0x82, payload)  # 2 + 2 + 4 header bytes
    dec = FrameDecoder()
    assert dec.feed(frame[:1]) == []
    assert dec.feed(frame[1:3]) == []
    records = dec.feed(frame[3:7]) + dec.feed(frame[7:])
    assert joined(records) == [(0x82, payload)]


@pytest.mark.parametrize("rec_cap,dst_cap", [(1, 1 << 20), (2, 1 << 20), (1024, 1), (1024, 7), (3, 5)])
def test_small_output_space_takes_more_calls_with_the_same_result(rec_cap: int, dst_cap: int) -> None:
    data, frames = _stream()
    dec = FrameDecoder(rec_cap=rec_cap, dst_cap=dst_cap)
    assert joined(dec.feed(data)) == frames
    assert dec.calls > 1


def test_one_call_per_chunk_of_many_frames() -> None:
    data = b"".join(ref_frame(0x81, b"x" * 16) for _ in range(500))
    dec = FrameDecoder()
    records = dec.feed(data)
    assert dec.calls == 1
    assert len(records) == 500


# -- frame rules ----------------------------------------------------------------------------

# (name, frames before, the offending frame, error)
RULES = [
    ("unmasked", b"", ref_frame(0x81, b"x", None), codec.E_UNMASKED),
    ("rsv1 without extension", b"", ref_frame(0xC1, b"x"), codec.E_RSV),
    ("rsv2", b"", ref_frame(0xA1, b"x"), codec.E_RSV),
    ("rsv3", b"", ref_frame(0x91, b"x"), codec.E_RSV),
    ("fragmented ping", b"", ref_frame(0x09, b"x"), codec.E_CONTROL_FRAGMENTED),
    ("fragmented close", b"", ref_frame(0x08, b""), codec.E_CONTROL_FRAGMENTED),
    ("ping of 126", b"", ref_frame(0x89, b"x" * 126), codec.E_CONTROL_TOO_LONG),
    ("close of 126 in 64 bits", b"", ref_frame(0x88, b"x" * 126, length_size=64), codec.E_CONTROL_TOO_LONG),
    ("continuation first", b"", ref_frame(0x80, b"x"), codec.E_NO_MESSAGE),
    ("continuation after a whole message", ref_frame(0x81, b"a"), ref_frame(0x80, b"b"), codec.E_NO_MESSAGE),
    ("text inside text", ref_frame(0x01, b"a"), ref_frame(0x81, b"b"), codec.E_IN_MESSAGE),
    ("binary inside text", ref_frame(0x01, b"a"), ref_frame(0x02, b"b"), codec.E_IN_MESSAGE),
    ("64-bit length with msb", b"", bytes((0x82, 0xFF)) + b"\x80" + b"\0" * 7 + KEY, codec.E_LENGTH),
] + [
    (f"opcode {op:#x}", b"", ref_frame(0x80 | op, b""), codec.E_OPCODE)
    for op in [3, 4, 5, 6, 7, 11, 12, 13, 14, 15]
]


@pytest.mark.parametrize("name,before,bad,error", RULES, ids=[r[0] for r in RULES])
def test_frame_rules(name: str, before: bytes, bad: bytes, error: int) -> None:
    with pytest.raises(FrameError) as info:
        FrameDecoder().feed(before + bad)
    assert info.value.error == error
    assert info.value.close_code == 1002
    assert len(joined(info.value.records)) == (1 if before else 0)


@pytest.mark.parametrize("name,before,bad,error", RULES, ids=[r[0] for r in RULES])
def test_frame_rules_fail_as_soon_as_the_header_shows_it(
    name: str, before: bytes, bad: bytes, error: int
) -> None:
    """Fed byte by byte, the error comes with the bad header's second byte (its length's last
    byte for a bad 64-bit length: its whole 14-byte header), before the rest of the frame arrives."""
    data = before + bad
    dec = FrameDecoder()
    for i in range(len(data)):
        try:
            dec.feed(data[i : i + 1])
        except FrameError as exc:
            assert exc.error == error
            break
    else:
        pytest.fail("no error")
    assert i == len(before) + (13 if error == codec.E_LENGTH else 1)


def test_errors_are_sticky_and_keep_the_earlier_records() -> None:
    dec = FrameDecoder()
    data = ref_frame(0x81, b"ok") + ref_frame(0x89, b"p") + ref_frame(0x83, b"")
    with pytest.raises(FrameError) as info:
        dec.feed(data)
    assert joined(info.value.records) == [(0x81, b"ok"), (0x89, b"p")]
    with pytest.raises(FrameError) as again:
        dec.feed(ref_frame(0x81, b"fine"))
    assert again.value.error == codec.E_OPCODE
    assert again.value.records == []


def test_rsv1_with_deflate_is_allowed_on_a_first_frame_only() -> None:
    dec = FrameDecoder(rsv_allowed=0x40)
    assert joined(dec.feed(ref_frame(0x41, b"a") + ref_frame(0x80, b"b"))) == [(0x41, b"a"), (0x80, b"b")]
    for bad in (ref_frame(0x41, b"a") + ref_frame(0xC0, b"b"), ref_frame(0xC9, b""), ref_frame(0xA2, b"")):
        with pytest.raises(FrameError) as info:
            FrameDecoder(rsv_allowed=0x40).feed(bad)
        assert info.value.error == codec.E_RSV


def test_message_size_bounds_the_message_not_the_frame_count() -> None:
    # 4 MB in 64-byte fragments goes through with a 4 MB bound (Autobahn 9.3/9.4)
    size = 4 * 1024 * 1024
    piece = b"x" * 64
    count = size // 64
    data = ref_frame(0x01, piece) + ref_frame(0x00, piece) * (count - 2) + ref_frame(0x80, piece)
    dec = FrameDecoder(max_message=size)
    records = dec.feed(data)
    assert sum(len(r.payload) for r in records) == size
    # one byte more, announced by the last header: refused before its payload is read
    dec = FrameDecoder(max_message=size - 1)
    with pytest.raises(FrameError) as info:
        dec.feed(data)
    assert info.value.error == codec.E_TOO_BIG
    assert info.value.close_code == 1009
    assert len(info.value.records) == count - 1


def test_size_bound_is_checked_at_header_time() -> None:
    dec = FrameDecoder(max_message=1000)
    header_only = ref_frame(0x82, b"x" * 1001)[:8]
    with pytest.raises(FrameError) as info:
        dec.feed(header_only)
    assert info.value.error == codec.E_TOO_BIG
    # exactly the bound is fine, and the count restarts with each message
    dec = FrameDecoder(max_message=1000)
    assert len(joined(dec.feed(ref_frame(0x82, b"x" * 1000) * 3))) == 3


def test_compressed_messages_are_not_counted_in_c() -> None:
    dec = FrameDecoder(max_message=10, rsv_allowed=0x40)
    assert joined(dec.feed(ref_frame(0xC2, b"x" * 100))) == [(0xC2, b"x" * 100)]


def test_control_frames_do_not_count_or_break_a_message() -> None:
    dec = FrameDecoder(max_message=4)
    data = ref_frame(0x01, b"ab") + ref_frame(0x89, b"p" * 100) + ref_frame(0x80, b"cd")
    assert joined(dec.feed(data)) == [(0x01, b"ab"), (0x89, b"p" * 100), (0x80, b"cd")]


def test_unmasked_frames_are_fine_when_masks_are_not_required() -> None:
    dec = FrameDecoder(require_mask=False)
    data = ref_frame(0x81, b"hi", None) + ref_frame(0x82, b"yo", KEY)
    assert joined(dec.feed(data)) == [(0x81, b"hi"), (0x82, b"yo")]


# -- properties -----------------------------------------------------------------------------

frame_st = st.one_of(
    st.tuples(st.sampled_from([0x81, 0x82]), st.binary(max_size=300)),
    st.tuples(st.sampled_from([0x88, 0x89, 0x8A]), st.binary(max_size=125)),
)


@settings(max_examples=200, deadline=None)
@given(
    frames=st.lists(frame_st, max_size=8),
    keys=st.lists(st.binary(min_size=4, max_size=4), min_size=8, max_size=8),
    cuts=st.lists(st.integers(min_value=0, max_value=3000), max_size=6),
    simd=st.booleans(),
)
def test_any_frames_in_any_pieces(
    frames: list[tuple[int, bytes]], keys: list[bytes], cuts: list[int], simd: bool
) -> None:
    data = b"".join(ref_frame(b0, p, keys[i]) for i, (b0, p) in enumerate(frames))
    points = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    dec = FrameDecoder(simd=simd, dst_cap=97)
    records: list[Record] = []
    for a, b in zip(points, points[1:], strict=False):
        records += dec.feed(data[a:b])
    assert joined(records) == frames


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_garbage_never_crashes_and_errors_are_known(data: bytes) -> None:
    dec = FrameDecoder(max_message=1000, rsv_allowed=0x40)
    try:
        dec.feed(data)
    except FrameError as exc:
        assert exc.error in codec.ERROR_CLOSE


def test_websockets_library_frames_decode_the_same() -> None:
    frames = pytest.importorskip("websockets.frames")
    Frame, Opcode = frames.Frame, frames.Opcode
    cases = [
        Frame(Opcode.TEXT, "héllo".encode()),
        Frame(Opcode.BINARY, os.urandom(126)),
        Frame(Opcode.BINARY, os.urandom(65536), fin=False),
        Frame(Opcode.PING, b"x" * 125),
        Frame(Opcode.CONT, b"tail"),
        Frame(Opcode.CLOSE, b"\x03\xe8"),
    ]
    data = b"".join(f.serialize(mask=True) for f in cases)
    got = joined(FrameDecoder().feed(data))
    assert got == [((0x80 if f.fin else 0) | f.opcode.value, bytes(f.data)) for f in cases]
    # and the other way: a server frame header the library parses
    head = codec.frame_header(0x82, 70000)
    reader = frames.Frame.parse
    assert reader is not None  # the parse API is a generator over a StreamReader
    streams = pytest.importorskip("websockets.streams")
    sr = streams.StreamReader()
    sr.feed_data(head + b"z" * 70000)
    gen = reader(sr.read_exact, mask=False)
    try:
        next(gen)
    except StopIteration as stop:
        frame = stop.value
    assert frame.opcode == Opcode.BINARY and frame.data == b"z" * 70000


def test_summary_word() -> None:
    """The summary a successful call returns: payload bytes << 32 | records << 12 | last info."""
    dec = FrameDecoder()
    dec.feed(ref_frame(0x81, b"x" * 16))
    assert dec.summary == (16 << 32) | (1 << 12) | (0x81 | codec.REC_START | codec.REC_END)
    third = ref_frame(0x02, b"abc")
    dec.feed(ref_frame(0x82, b"ab") + ref_frame(0x89, b"ping") + third[:7])
    # three records, the last an open START piece with 1 byte: 2 + 4 + 1 payload bytes
    assert dec.summary == (7 << 32) | (3 << 12) | (0x02 | codec.REC_START)
    dec.feed(third[7:])
    assert dec.summary == (2 << 32) | (1 << 12) | (0x02 | codec.REC_END)
    dec.feed(b"")
    assert dec.summary == 0
