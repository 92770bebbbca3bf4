"""Property tests of the HTTP/1 head parser: the C parser (SIMD and scalar paths) against the
pure-Python reference parser, on generated valid heads and on arbitrary bytes."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from granian.errors import ProtocolError
from granian.http1 import limits as L
from granian.http1 import parser, refparser

LIMITS = parser.H1Limits()
SMALL = parser.H1Limits(max_head=256, max_headers=6, max_target=40)

TCHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
token = st.text(alphabet=TCHARS, min_size=1, max_size=20).map(lambda s: s.encode())
target = st.binary(min_size=1, max_size=60).map(
    lambda b: bytes(c for c in b if c > 0x20 and c != 0x7F) or b"/"
)
# a field value without surrounding whitespace: VCHAR / obs-text, with SP/HTAB only inside
value_core = st.binary(max_size=40).map(lambda b: bytes(c for c in b if c > 0x20 and c != 0x7F))
value = st.tuples(value_core, st.sampled_from([b"", b" ", b"\t", b" x "]), value_core).map(
    lambda t: (t[0] + t[1] + t[2]).strip(b" \t")
)
ows = st.sampled_from([b"", b" ", b"\t", b"  \t"])
# names that carry framing meaning are kept out so any generated head is valid
plain_name = token.filter(
    lambda n: (
        n.lower()
        not in (b"content-length", b"transfer-encoding", b"host", b"connection", b"expect", b"upgrade")
    )
)


@st.composite
def valid_heads(draw: st.DrawFn) -> tuple[bytes, dict[str, Any]]:
    method = draw(token)
    tgt = draw(target)
    minor = draw(st.sampled_from([0, 1]))
    fields = draw(st.lists(st.tuples(plain_name, ows, value, ows), max_size=12))
    pre = draw(st.sampled_from([b"", b"\r\n"]))
    head = pre + method + b" " + tgt + b" HTTP/1." + str(minor).encode() + b"\r\n"
    head += b"".join(n + b":" + o1 + v + o2 + b"\r\n" for n, o1, v, o2 in fields)
    head += b"\r\n"
    expected = {
        "method": method,
        "target": tgt,
        "minor": minor,
        "headers": [(n.lower(), v) for n, _, v, _ in fields],
    }
    return head, expected


def outcome(parse: Any, buf: bytes, start: int, limits: Any) -> Any:
    try:
        return ("ok", parse(buf, start, limits))
    except ProtocolError as exc:
        return ("error", str(exc), exc.status_hint)


def all_agree(buf: bytes, start: int = 0, limits: Any = LIMITS) -> Any:
    c = outcome(parser.parse_head, buf, start, limits)
    scalar = outcome(parser.parse_head_scalar, buf, start, limits)
    ref = outcome(refparser.parse_head, buf, start, limits)
    assert c == scalar == ref
    return c


@settings(max_examples=300, deadline=None)
@given(
    valid_heads(), st.lists(st.integers(min_value=0, max_value=10_000), max_size=6), st.binary(max_size=20)
)
def test_any_split_of_a_valid_head_parses_the_same(
    case: tuple[bytes, dict[str, Any]], cuts: list[int], tail: bytes
) -> None:
    head, expected = case
    data = head + tail  # pipelined bytes after the head never change the result
    bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    for parse in (parser.parse_head, parser.parse_head_scalar, refparser.parse_head):
        res = None
        for end in bounds[1:]:
            res = parse(data[:end], 0, LIMITS)
            if res is not None:
                break
        assert res is not None
        assert res[0] == len(head)
        assert (res[1], res[2], res[3], res[4]) == (
            expected["method"],
            expected["target"],
            expected["minor"],
            expected["headers"],
        )
        assert res[5] == -1 and res[6] == 0
        # one byte short of the head is always incomplete
        assert parse(head[:-1], 0, LIMITS) is None


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_both_parsers_agree(data: bytes) -> None:
    all_agree(data)
    all_agree(data, limits=SMALL)
    all_agree(b"GET / HTTP/1.1\r\n" + data)


# bytes that steer random input towards the interesting corners of the grammar
NASTY = [
    b"\r\n",
    b"\r",
    b"\n",
    b" ",
    b"\t",
    b":",
    b",",
    b"\x00",
    b"\x7f",
    b"\xff",
    b"GET",
    b"/",
    b"HTTP/1.1",
    b"HTTP/1.0",
    b"HTTP/2.0",
    b"Content-Length:",
    b"Transfer-Encoding:",
    b"chunked",
    b"identity",
    b"Host:",
    b"Connection:",
    b"close",
    b"upgrade",
    b"Upgrade:",
    b"Expect:",
    b"100-continue",
    b"0",
    b"5",
    b"99999999999999999999",
    b"a",
]


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(NASTY), max_size=40), st.integers(min_value=0, max_value=3))
def test_grammar_soup_both_parsers_agree(parts: list[bytes], start: int) -> None:
    data = b"".join(parts)
    start = min(start, len(data))
    all_agree(data, start)
    all_agree(b"POST / HTTP/1.1\r\n" + data + b"\r\n\r\n")
    all_agree(b"POST / HTTP/1.1\r\n" + data + b"\r\n\r\n", limits=SMALL)


@settings(max_examples=200, deadline=None)
@given(valid_heads(), st.integers(min_value=0), st.binary(min_size=1, max_size=3))
def test_one_mutation_both_parsers_agree(case: tuple[bytes, dict[str, Any]], at: int, junk: bytes) -> None:
    head, _ = case
    i = at % len(head)
    all_agree(head[:i] + junk + head[i + 1 :])
    all_agree(head[:i] + head[i + 1 :])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from([b"chunked", b"gzip", b"identity", b"Chunked", b"", b" ", b"x;y"]), max_size=4),
    st.lists(st.sampled_from([b"5", b"05", b"6", b"", b"-1", b"1,1"]), max_size=3),
    st.sampled_from([b"1.1", b"1.0"]),
)
def test_framing_rules_agree(codings: list[bytes], lengths: list[bytes], version: bytes) -> None:
    head = b"POST / HTTP/" + version + b"\r\nHost: a\r\n"
    if codings:
        head += b"Transfer-Encoding: " + b",".join(codings) + b"\r\n"
    head += b"".join(b"Content-Length: " + v + b"\r\n" for v in lengths)
    res = all_agree(head + b"\r\n")
    if res[0] == "ok":
        flags, cl = res[1][6], res[1][5]
        assert not (flags & L.F_CHUNKED and cl != -1)  # never both framings


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError):
        parser.H1Limits(max_headers=-1)
    with pytest.raises(ValueError):
        parser.H1Limits(max_head=2**32)
    assert parser.H1Limits() == parser.H1Limits(L.MAX_HEAD, L.MAX_HEADERS, L.MAX_TARGET)


def test_start_beyond_the_buffer_is_a_caller_bug() -> None:
    for parse in (parser.parse_head, refparser.parse_head):
        with pytest.raises(ValueError):
            parse(b"GET / HTTP/1.1\r\n\r\n", 100, LIMITS)


def test_parse_from_threads_does_not_mix_results() -> None:
    # cffi drops the GIL during the C call: each thread must get its own output space
    heads = [b"GET /t%d HTTP/1.1\r\nX-N: %d\r\n\r\n" % (i, i) for i in range(4)]
    errors: list[str] = []

    def work(i: int) -> None:
        for _ in range(3000):
            res = parser.parse_head(heads[i], 0, LIMITS)
            if res is None or res[2] != b"/t%d" % i or res[4] != [(b"x-n", b"%d" % i)]:
                errors.append(f"thread {i}: {res!r}")
                return

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
