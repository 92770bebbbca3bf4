"""The chunked-body decoders (C-backed and reference): resumability, where they stop, errors,
and agreement on generated and arbitrary input."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from granian.errors import ProtocolError
from granian.http1 import limits as L
from granian.http1 import parser, refparser

DECODERS = [parser.ChunkedDecoder, refparser.ChunkedDecoder]


@pytest.mark.parametrize("make", DECODERS)
def test_stops_at_the_end_of_the_body(make: Any) -> None:
    buf = b"XX" + b"3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n"
    data, end, done = make().feed(buf, 2)
    assert (data, done) == (b"abc", True)
    assert buf[end:] == b"GET / HTTP/1.1\r\n"


@pytest.mark.parametrize("make", DECODERS)
def test_resumes_mid_size_mid_data_and_mid_trailer(make: Any) -> None:
    dec = make()
    assert dec.feed(b"1", 0) == (b"", 1, False)
    assert dec.feed(b"0\r", 0) == (b"", 2, False)  # size 0x10 so far, then CR
    assert dec.feed(b"\n0123456789", 0) == (b"0123456789", 11, False)
    assert dec.feed(b"abcdef\r\n0\r\nTrail", 0) == (b"abcdef", 16, False)
    assert dec.feed(b"er: x\r\n\r", 0) == (b"", 8, False)
    assert dec.feed(b"\nrest", 0) == (b"", 1, True)
    # once done, nothing more is consumed
    assert dec.feed(b"rest", 0) == (b"", 0, True)


@pytest.mark.parametrize("make", DECODERS)
def test_errors_are_sticky(make: Any) -> None:
    dec = make()
    with pytest.raises(ProtocolError) as info:
        dec.feed(b"5\r\nhelloX", 0)
    assert info.value.status_hint == 400
    with pytest.raises(ProtocolError):
        dec.feed(b"\r\n0\r\n\r\n", 0)


@pytest.mark.parametrize("make", DECODERS)
def test_largest_chunk_size_is_accepted_and_one_more_digit_overflows(make: Any) -> None:
    # 2**63 - 1 is the largest size (an off_t); its data simply has not arrived yet
    assert make().feed(b"7fffffffffffffff\r\nabc", 0) == (b"abc", 21, False)
    with pytest.raises(ProtocolError) as info:
        make().feed(b"8000000000000000\r\n", 0)
    assert str(info.value) == L.REASONS[L.E_CHUNK_OVERFLOW][0]


@pytest.mark.parametrize("make", DECODERS)
def test_a_big_body_in_uneven_pieces(make: Any) -> None:
    payload = bytes(range(256)) * 1024  # 256 KiB
    body = b"".join(b"%x\r\n" % len(p) + p + b"\r\n" for p in (payload[:100_000], payload[100_000:]))
    body += b"0\r\n\r\n"
    dec = make()
    out, pending, done = [], b"", False
    for i in range(0, len(body), 7_777):
        pending += body[i : i + 7_777]
        data, end, done = dec.feed(pending, 0)
        out.append(data)
        pending = pending[end:]
    assert done and pending == b""
    assert b"".join(out) == payload


@st.composite
def chunked_bodies(draw: st.DrawFn) -> tuple[bytes, bytes]:
    chunks = draw(st.lists(st.binary(min_size=1, max_size=50), max_size=6))
    ext = st.sampled_from([b"", b";a", b";a=b", b' ;q="x;y"', b"\t;z"])
    size = st.sampled_from(["%x", "%X", "%04x"])
    body = b"".join((draw(size) % len(c)).encode() + draw(ext) + b"\r\n" + c + b"\r\n" for c in chunks)
    body += b"0" + draw(ext) + b"\r\n"
    trailers = draw(st.lists(st.sampled_from([b"X-T: 1\r\n", b"Digest: sha=abc\r\n", b"E:\r\n"]), max_size=3))
    body += b"".join(trailers) + b"\r\n"
    return body, b"".join(chunks)


@settings(max_examples=200, deadline=None)
@given(
    chunked_bodies(), st.lists(st.integers(min_value=1, max_value=400), max_size=8), st.binary(max_size=10)
)
def test_any_split_decodes_the_same(case: tuple[bytes, bytes], cuts: list[int], tail: bytes) -> None:
    body, payload = case
    data = body + tail
    bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    for make in DECODERS:
        dec, pending, out, done = make(), b"", [], False
        for a, b in zip(bounds, bounds[1:], strict=False):
            pending += data[a:b]
            chunk, end, done = dec.feed(pending, 0)
            out.append(chunk)
            pending = pending[end:]
            if done:
                pending += data[b:]
                break
        assert done
        assert b"".join(out) == payload
        assert pending == tail


def _run(make: Any, data: bytes, step: int) -> Any:
    dec, out = make(), []
    try:
        pending = b""
        for i in range(0, len(data), step):
            pending += data[i : i + step]
            chunk, end, done = dec.feed(pending, 0)
            out.append(chunk)
            pending = pending[end:]
            if done:
                return ("done", b"".join(out), pending)
        return ("more", b"".join(out), pending)
    except ProtocolError as exc:
        return ("error", str(exc), exc.status_hint)


SOUP = [
    b"0",
    b"1",
    b"a",
    b"F",
    b"\r\n",
    b"\r",
    b"\n",
    b";",
    b" ",
    b"\t",
    b"=",
    b'"',
    b":",
    b"x",
    b"\x00",
    b"\x7f",
    b"\xff",
    b"g",
    b"-",
]


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(st.binary(max_size=80), st.lists(st.sampled_from(SOUP), max_size=40).map(b"".join)),
    st.integers(min_value=1, max_value=5),
)
def test_arbitrary_bytes_both_decoders_agree(data: bytes, step: int) -> None:
    results = {(_run(make, data, step)) for make in DECODERS}
    assert len(results) == 1, results
