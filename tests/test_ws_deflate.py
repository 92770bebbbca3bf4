"""permessage-deflate (RFC 7692): offer parsing and negotiation, the RFC's own examples, round
trips against stdlib zlib, the 8-bit window, the zip-bomb bound, and interop with the
`websockets` library's implementation."""

from __future__ import annotations

import os
import tracemalloc
import zlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wsframes import KEY, client_frame, server_frames
from wsinterop import Pair

from granian.websocket import WSConnection, negotiate
from granian.websocket.connection import Failure
from granian.websocket.deflate import TAIL, DeflateConfig, PerMessageDeflate, parse_extensions

# -- parsing --------------------------------------------------------------------------------


def test_parse_extensions() -> None:
    assert parse_extensions(b"permessage-deflate") == [("permessage-deflate", [])]
    assert parse_extensions(
        b'permessage-deflate; client_max_window_bits; server_max_window_bits="10" , , x-foo;a=b;c'
    ) == [
        ("permessage-deflate", [("client_max_window_bits", None), ("server_max_window_bits", "10")]),
        ("x-foo", [("a", "b"), ("c", None)]),
    ]
    assert parse_extensions(b"") == []
    assert parse_extensions(b" ,\t, ") == []
    assert parse_extensions(b'a; p="\\1\\0"') == [("a", [("p", "10")])]


@pytest.mark.parametrize(
    "value",
    [b"a;", b"a; =1", b"a; p=", b'a; p="x y"', b'a; p="10', b"a b", b"a; p=1 2", b"@", b'a; p="10, b"'],
)
def test_parse_extensions_refuses_bad_syntax(value: bytes) -> None:
    with pytest.raises(ValueError):
        parse_extensions(value)


# -- negotiation ----------------------------------------------------------------------------


def neg(*values: bytes, config: DeflateConfig | None = None) -> tuple[bytes, PerMessageDeflate] | None:
    return negotiate(list(values), config or DeflateConfig())


@pytest.mark.parametrize(
    "offer,response,params",
    [
        (b"permessage-deflate", b"permessage-deflate", (False, False, 15, 15)),
        (b"permessage-deflate; client_max_window_bits", b"permessage-deflate", (False, False, 15, 15)),
        (
            b"permessage-deflate; server_no_context_takeover",
            b"permessage-deflate; server_no_context_takeover",
            (True, False, 15, 15),
        ),
        (
            b"permessage-deflate; client_no_context_takeover",
            b"permessage-deflate; client_no_context_takeover",
            (False, True, 15, 15),
        ),
        (
            b"permessage-deflate; server_max_window_bits=10",
            b"permessage-deflate; server_max_window_bits=10",
            (False, False, 10, 15),
        ),
        (
            b"permessage-deflate; server_max_window_bits=8; server_no_context_takeover",
            b"permessage-deflate; server_no_context_takeover; server_max_window_bits=8",
            (True, False, 8, 15),
        ),
        (
            b'permessage-deflate; server_max_window_bits="12"; client_max_window_bits=9',
            b"permessage-deflate; server_max_window_bits=12",
            (False, False, 12, 15),
        ),
        (
            b"Permessage-Deflate; Server_No_Context_Takeover",
            b"permessage-deflate; server_no_context_takeover",
            (True, False, 15, 15),
        ),
    ],
)
def test_negotiation(offer: bytes, response: bytes, params: tuple[bool, bool, int, int]) -> None:
    result = neg(offer)
    assert result is not None
    got, pmd = result
    assert got == response == pmd.response
    assert (
        pmd.server_no_context_takeover,
        pmd.client_no_context_takeover,
        pmd.server_max_window_bits,
        pmd.client_max_window_bits,
    ) == params


@pytest.mark.parametrize(
    "offer",
    [
        b"permessage-deflate; server_max_window_bits",
        b"permessage-deflate; server_max_window_bits=16",
        b"permessage-deflate; server_max_window_bits=7",
        b"permessage-deflate; server_max_window_bits=08",
        b"permessage-deflate; client_max_window_bits=1x",
        b"permessage-deflate; server_no_context_takeover=1",
        b"permessage-deflate; client_no_context_takeover=yes",
        b"permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        b"permessage-deflate; x-unknown",
        b"x-webkit-deflate-frame",
        b"permessage-deflate; server_max_window_bits=10; ,,bad;;",  # syntax error: the header is ignored
    ],
)
def test_invalid_offers_are_declined(offer: bytes) -> None:
    assert neg(offer) is None


def test_the_first_acceptable_offer_wins() -> None:
    result = neg(
        b"x-webkit-deflate-frame, permessage-deflate; server_max_window_bits=99",
        b"permessage-deflate; client_no_context_takeover, permessage-deflate",
    )
    assert result is not None and result[0] == b"permessage-deflate; client_no_context_takeover"
    assert neg() is None
    assert neg(b"") is None


def test_server_side_configuration() -> None:
    cfg = DeflateConfig(server_max_window_bits=12, client_max_window_bits=10, client_no_context_takeover=True)
    r = neg(b"permessage-deflate", config=cfg)
    assert r is not None
    assert r[0] == b"permessage-deflate; client_no_context_takeover; server_max_window_bits=12"
    r = neg(b"permessage-deflate; client_max_window_bits", config=cfg)
    assert (
        r is not None and r[0].endswith(b"; client_max_window_bits=10") and r[1].client_max_window_bits == 10
    )
    r = neg(b"permessage-deflate; client_max_window_bits=9; server_max_window_bits=14", config=cfg)
    assert r is not None
    assert r[0] == (
        b"permessage-deflate; client_no_context_takeover; server_max_window_bits=12; client_max_window_bits=9"
    )
    with pytest.raises(ValueError):
        DeflateConfig(server_max_window_bits=16)
    with pytest.raises(ValueError):
        DeflateConfig(client_max_window_bits=7)


# -- the RFC's examples (7.2.3) -------------------------------------------------------------


def masked(b0: int, payload: bytes) -> bytes:
    return client_frame(b0, payload, KEY)


def deflate_conn(**kw: Any) -> WSConnection:
    return WSConnection(1 << 20, PerMessageDeflate(**kw))


def test_rfc7692_examples_decode() -> None:
    conn = deflate_conn()
    hello = bytes.fromhex("f248cdc9c90700")  # 7.2.3.1
    again = bytes.fromhex("f200110000")  # 7.2.3.2: refers back into the previous message
    stored = bytes.fromhex("000500faff48656c6c6f00")  # 7.2.3.3
    bfinal = bytes.fromhex("f348cdc9c9070000")  # 7.2.3.4
    two_blocks = bytes.fromhex("f24805000000ffffcac9c90700")  # 7.2.3.5
    data = masked(0xC1, hello) + masked(0xC1, again)
    assert conn.feed(data) == (["Hello", "Hello"], b"")
    for payload in (stored, bfinal, two_blocks, hello):
        assert conn.feed(masked(0xC1, payload)) == (["Hello"], b"")
    # fragmented: RSV1 on the first frame only (7.2.3.1's fragmented form)
    assert deflate_conn().feed(masked(0x41, hello[:3]) + masked(0x80, hello[3:])) == (["Hello"], b"")


def test_rfc7692_example_encodes() -> None:
    conn = deflate_conn()
    assert conn.send_text("Hello") == bytes.fromhex("c107f248cdc9c90700")
    assert conn.send_text("Hello") == bytes.fromhex("c105f200110000")


def test_uncompressed_messages_are_still_accepted() -> None:
    conn = deflate_conn()
    assert conn.feed(masked(0x81, b"plain") + masked(0x82, b"\x00")) == (["plain", b"\x00"], b"")


# -- round trips against stdlib zlib ------------------------------------------------------


def client_compress(c: Any, data: bytes) -> bytes:
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(TAIL)
    return out[:-4]


MESSAGES = [b"", b"a", b"hello " * 1000, os.urandom(3000), ("κόσμε " * 300).encode(), b"hello " * 1000]


@pytest.mark.parametrize("nct", [False, True])
def test_server_messages_inflate_with_stdlib_zlib(nct: bool) -> None:
    conn = deflate_conn(server_no_context_takeover=nct)
    d = zlib.decompressobj(-15)
    for msg in MESSAGES:
        ((b0, payload),) = server_frames(conn.send_bytes(msg))
        assert b0 == 0xC2
        if nct:
            d = zlib.decompressobj(-15)  # a fresh window: no back-reference may cross messages
        assert d.decompress(payload + TAIL) == msg
    # with context takeover, a repeated message refers back and gets much smaller
    conn = deflate_conn()
    first = server_frames(conn.send_bytes(os.urandom(500)))[0][1]
    conn = deflate_conn()
    block = os.urandom(500)
    conn.send_bytes(block)
    assert len(server_frames(conn.send_bytes(block))[0][1]) < len(first) // 10


@pytest.mark.parametrize("nct", [False, True])
def test_client_messages_deflated_by_stdlib_zlib(nct: bool) -> None:
    conn = deflate_conn(client_no_context_takeover=nct)
    c = zlib.compressobj(-1, zlib.DEFLATED, -15)
    for msg in MESSAGES:
        if nct:
            c = zlib.compressobj(-1, zlib.DEFLATED, -15)
        payload = client_compress(c, msg)
        events, out = conn.feed(masked(0xC2, payload))
        assert (events, out) == ([msg], b"")
    # fragmented and split anywhere
    if nct:
        c = zlib.compressobj(-1, zlib.DEFLATED, -15)
    payload = client_compress(c, b"fragmented " * 500)
    data = masked(0x42, payload[:10]) + masked(0x00, payload[10:20]) + masked(0x80, payload[20:])
    events: list[Any] = []
    for i in range(0, len(data), 7):
        events += conn.feed(data[i : i + 7])[0]
    assert events == [b"fragmented " * 500]


def inflate_through_the_window(d: Any, data: bytes) -> bytes:
    """Inflate 16 bytes per call: zlib checks a distance against the bytes it still has, the
    output of the current call plus its window, so tiny calls make every back-reference go
    through the window and one too far back fails."""
    out = []
    tail = data
    while True:
        chunk = d.decompress(tail, 16)
        tail = d.unconsumed_tail
        out.append(chunk)
        if not chunk and not tail:
            return b"".join(out)


def test_an_8_bit_window_is_honoured_with_zlibs_9() -> None:
    # zlib cannot deflate raw with 8 bits; its 9-bit compressor never reaches back more than
    # 250 bytes, so an inflater with a 256-byte window must read everything it writes
    block = os.urandom(300)
    data = block * 40 + os.urandom(100) + block[:200] * 3
    pmd = PerMessageDeflate(server_max_window_bits=8)
    d = zlib.decompressobj(-8)
    for _ in range(5):
        assert inflate_through_the_window(d, pmd.compress(data) + TAIL) == data
    # the check has teeth: a 15-bit compressor's output breaks that inflater
    big = zlib.compressobj(9, zlib.DEFLATED, -15)
    with pytest.raises(zlib.error, match="too far back"):
        inflate_through_the_window(zlib.decompressobj(-8), client_compress(big, data) + TAIL)


# -- bounds and errors ----------------------------------------------------------------------


def test_zip_bomb_fails_with_1009_without_memory() -> None:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = b"\0" * (1 << 20)
    bomb = b"".join(c.compress(zeros) for _ in range(64)) + c.flush(zlib.Z_SYNC_FLUSH)[:-4]
    assert len(bomb) < 1 << 17  # 64 MiB inflated
    frame = masked(0xC2, bomb)
    conn = WSConnection(1 << 20, PerMessageDeflate())
    tracemalloc.start()
    try:
        events, out = conn.feed(frame)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert events == [Failure(1009, "message too big")]
    assert out == b""
    assert peak < 8 << 20  # the input frame and one bounded output, not 64 MiB


def test_decompressed_size_is_the_bound() -> None:
    c = zlib.compressobj(-1, zlib.DEFLATED, -15)
    conn = WSConnection(1000, PerMessageDeflate())
    assert conn.feed(masked(0xC2, client_compress(c, b"a" * 1000))) == ([b"a" * 1000], b"")
    events, _ = conn.feed(masked(0xC2, client_compress(c, b"a" * 1001)))
    assert events == [Failure(1009, "message too big")]
    # over several fragments, too
    conn = WSConnection(1000, PerMessageDeflate())
    c = zlib.compressobj(-1, zlib.DEFLATED, -15)
    p = client_compress(c, b"b" * 1200)
    events, _ = conn.feed(masked(0x42, p[:5]) + masked(0x80, p[5:]))
    assert events == [Failure(1009, "message too big")]


def test_corrupt_deflate_data_fails() -> None:
    events, out = deflate_conn().feed(masked(0xC2, b"\xff\xff\xff\xff"))
    assert events == [Failure(1007, "invalid compressed data")]


def test_compressed_text_is_utf8_checked() -> None:
    c = zlib.compressobj(-1, zlib.DEFLATED, -15)
    events, _ = deflate_conn().feed(masked(0xC1, client_compress(c, b"ok \xff")))
    assert events == [Failure(1007, "invalid UTF-8 in a text message")]


def test_rsv1_is_a_protocol_error_without_deflate_or_on_continuations() -> None:
    events, _ = WSConnection().feed(masked(0xC1, b"x"))
    assert events == [Failure(1002, "reserved bit set")]
    events, _ = deflate_conn().feed(masked(0x41, b"x") + masked(0xC0, b"y"))
    assert events == [Failure(1002, "reserved bit set")]
    events, _ = deflate_conn().feed(masked(0xC9, b""))
    assert events == [Failure(1002, "reserved bit set")]


def test_control_frames_are_never_compressed() -> None:
    conn = deflate_conn()
    assert server_frames(conn.ping(b"p")) == [(0x89, b"p")]
    _, out = conn.feed(masked(0x89, b"q"))
    assert server_frames(out) == [(0x8A, b"q")]
    assert server_frames(conn.close(1000)) == [(0x88, b"\x03\xe8")]


def test_zlib_state_is_created_on_first_use() -> None:
    pmd = PerMessageDeflate()
    assert pmd._deflater is None and pmd._inflater is None
    conn = WSConnection(1 << 20, pmd)
    conn.feed(masked(0x81, b"uncompressed"))
    assert pmd._inflater is None
    pmd_nct = PerMessageDeflate(client_no_context_takeover=True)
    conn = WSConnection(1 << 20, pmd_nct)
    conn.feed(masked(0xC1, bytes.fromhex("f248cdc9c90700")))
    assert pmd_nct._inflater is None  # dropped after the message: nothing kept between messages


# -- the websockets library's permessage-deflate --------------------------------------------

COMBOS = [
    ({}, DeflateConfig()),
    ({"server_no_context_takeover": True}, DeflateConfig()),
    ({"client_no_context_takeover": True}, DeflateConfig()),
    ({"server_max_window_bits": 10}, DeflateConfig()),
    ({"server_max_window_bits": 8}, DeflateConfig()),
    ({"client_max_window_bits": True}, DeflateConfig(client_max_window_bits=9)),
    ({}, DeflateConfig(server_max_window_bits=11, client_no_context_takeover=True)),
]


@pytest.mark.parametrize("client_params,config", COMBOS)
def test_websockets_permessage_deflate_interop(client_params: dict[str, Any], config: DeflateConfig) -> None:
    pmd_mod = pytest.importorskip("websockets.extensions.permessage_deflate")
    factory = pmd_mod.ClientPerMessageDeflateFactory(**client_params)
    pair = Pair(extensions=[factory], deflate=config)
    assert pair.negotiated is not None
    (ext,) = pair.client.extensions
    assert ext.name == "permessage-deflate"
    msgs: list[Any] = [
        "hello " * 200,
        b"\x00" * 5000,
        os.urandom(2000),
        "ünï" * 1000,
        "",
        b"",
        "hello " * 200,
    ]
    for m in msgs:
        if isinstance(m, str):
            pair.client.send_text(m.encode())
        else:
            pair.client.send_binary(m)
    # a fragmented compressed message from the library
    pair.client.send_text(b"part one, ", fin=False)
    pair.client.send_continuation(b"part two", fin=True)
    assert pair.client_to_server() == msgs + ["part one, part two"]
    out = b"".join(pair.server.send_message(m) for m in msgs)
    frames = pair.server_to_client(out)
    assert [bytes(f.data) if f.opcode.name == "BINARY" else bytes(f.data).decode() for f in frames] == msgs


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.one_of(st.text(max_size=300), st.binary(max_size=300)), max_size=8),
    st.booleans(),
    st.booleans(),
)
def test_any_messages_round_trip_with_the_library(msgs: list[Any], snct: bool, cnct: bool) -> None:
    pmd_mod = pytest.importorskip("websockets.extensions.permessage_deflate")
    factory = pmd_mod.ClientPerMessageDeflateFactory(
        server_no_context_takeover=snct, client_no_context_takeover=cnct
    )
    pair = Pair(extensions=[factory], deflate=DeflateConfig())
    for m in msgs:
        if isinstance(m, str):
            pair.client.send_text(m.encode())
        else:
            pair.client.send_binary(m)
    assert pair.client_to_server() == msgs
    frames = pair.server_to_client(b"".join(pair.server.send_message(m) for m in msgs))
    assert [bytes(f.data) if f.opcode.name == "BINARY" else bytes(f.data).decode() for f in frames] == msgs


def test_a_huge_size_bound_is_fine_for_zlib() -> None:
    # zlib's max_length is a Py_ssize_t: a bound past it is clamped, not an OverflowError
    conn = WSConnection(2**62, PerMessageDeflate())
    assert conn.feed(masked(0xC1, bytes.fromhex("f248cdc9c90700"))) == (["Hello"], b"")
