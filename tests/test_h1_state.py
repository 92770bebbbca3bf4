"""granian.http1.connection.H1State on its own: bytes in, heads and decisions out, no sockets."""

from __future__ import annotations

import pytest

from granian.errors import ProtocolError
from granian.http1 import connection as c
from granian.http1.connection import H1State
from granian.http1.parser import H1Limits

LIMITS = H1Limits(max_head=8192, max_headers=100, max_target=8190)
GET = b"GET /a?x=1 HTTP/1.1\r\nHost: h\r\n\r\n"


def state(buffer_size: int = 8192) -> H1State:
    return H1State(LIMITS, buffer_size)


def test_a_head_in_one_read() -> None:
    s = state()
    assert s.receive(GET) == c.HEAD
    method, path, query, minor, headers, keep, body_eof = s.next_head() or ()
    assert (method, path, query, minor, keep, body_eof) == ("GET", b"/a", b"x=1", 1, True, True)
    assert headers == [(b"host", b"h")] and s.state == c.REQUEST
    assert s.response_done(True) == c.WAIT and s.state == c.IDLE


@pytest.mark.parametrize("step", [1, 3, 7])
def test_a_head_in_pieces(step: int) -> None:
    s = state()
    results = []
    for i in range(0, len(GET), step):
        action = s.receive(GET[i : i + step])
        results.append(action)
        if action == c.HEAD:
            head = s.next_head()
            if head is not None:
                assert head[1] == b"/a"
                return
    raise AssertionError(f"no head from {results}")


def test_pipelined_requests_come_out_in_order_after_each_response() -> None:
    s = state()
    assert s.receive(GET + GET.replace(b"/a", b"/b") + b"GET /c HT") == c.HEAD
    assert (s.next_head() or ())[1] == b"/a"
    assert s.receive(b"TP/1.1\r\n\r\n") == c.NEED_DATA  # waits: a request is in flight
    assert s.response_done(True) == c.NEXT
    assert (s.next_head() or ())[1] == b"/b"
    assert s.response_done(True) == c.NEXT
    assert (s.next_head() or ())[1] == b"/c"
    assert s.response_done(True) == c.WAIT


def test_body_framing_and_reading() -> None:
    s = state()
    s.receive(b"POST /u HTTP/1.1\r\nContent-Length: 10\r\n\r\n01234")
    head = s.next_head()
    assert head is not None and head[6] is False  # body_eof
    assert s.feed_body() == (b"01234", False)
    assert s.receive(b"56789GET") == c.BODY
    assert s.feed_body() == (b"56789", True)
    assert s.response_done(True) == c.NEXT  # "GET" is the start of the next head


def test_chunked_body_error_is_a_protocol_error() -> None:
    s = state()
    s.receive(b"POST /u HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
    assert s.next_head() is not None
    with pytest.raises(ProtocolError):
        s.feed_body()


def test_unread_small_body_is_dropped_then_the_next_request_comes() -> None:
    s = state()
    s.receive(b"POST /u HTTP/1.1\r\nContent-Length: 6\r\n\r\nab")
    s.next_head()
    s.feed_body()
    assert s.response_done(True) == c.DROP_BODY and s.state == c.DISCARD
    assert s.receive(b"cdef" + GET) == c.BODY
    assert s.feed_body() == (b"cdef", True)
    assert s.state == c.IDLE and not s.discard_overflow()
    assert (s.next_head() or ())[1] == b"/a"


@pytest.mark.parametrize(
    "head",
    [
        b"POST /u HTTP/1.1\r\nContent-Length: 999999999\r\n\r\n",  # too much left to drop
        b"POST /u HTTP/1.1\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",  # waits for 100
    ],
)
def test_unread_body_that_rules_out_keep_alive(head: bytes) -> None:
    s = state()
    s.receive(head)
    s.next_head()
    assert s.unread_too_large()
    assert s.response_done(True) == c.CLOSE and s.state == c.CLOSED


@pytest.mark.parametrize(
    ("head", "keep"),
    [
        (b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", False),
        (b"GET / HTTP/1.0\r\n\r\n", False),
        (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", True),
    ],
)
def test_keep_alive_decision(head: bytes, keep: bool) -> None:
    s = state()
    s.receive(head)
    assert (s.next_head() or ())[5] is keep
    assert s.response_done(keep) == (c.WAIT if keep else c.CLOSE)


def test_limits_overflow_and_pause() -> None:
    s = state(buffer_size=64)
    assert s.receive(b"GET /" + b"a" * 100) == c.HEAD
    with pytest.raises(ProtocolError) as err:
        s.next_head()
    assert err.value.status_hint in (414, 431)
    s = state(buffer_size=64)
    s.receive(b"GET / HTTP/1.1\r\nX: " + b"y" * 30)
    assert s.next_head() is None
    assert s.receive(b"z" * 40) == c.OVERFLOW  # a partial head line past the buffer
    s = state(buffer_size=64)
    s.receive(GET)
    s.next_head()
    assert s.receive(b"x" * 40) == c.NEED_DATA
    assert s.receive(b"x" * 40) == c.PAUSE  # pipelined bytes past the buffer while in flight


def test_take_unconsumed_hands_over_every_byte_once() -> None:
    s = state()
    s.receive(GET + b"\x81\x05hello")
    s.next_head()
    assert s.take_unconsumed() == b"\x81\x05hello"
    assert s.state == c.CLOSED and s.take_unconsumed() == b""
    assert s.receive(b"more") == c.NEED_DATA  # CLOSED takes nothing
