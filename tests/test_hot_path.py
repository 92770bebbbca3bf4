"""The per-request shortcuts answer exactly as the long way would: memoised response heads,
handlers that finish synchronously (no Task), bodies taken with `Cycle.read_buffered()`."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import pytest
from test_h1_protocol_unit import FakeTransport, run, settle

from granian.http1 import response
from granian.http1.response import FRAME_CHUNKED, FRAME_LENGTH, FRAME_NONE, build_head
from granian.server.cycle import Cycle
from granian.server.h1 import H1Protocol

CASES: list[tuple[int, list[tuple[Any, Any]], int, int, bool, bool]] = [
    (200, [(b"content-type", b"text/plain")], 5, 1, True, False),
    (200, [(b"content-type", b"text/plain"), (b"content-length", b"5")], 5, 1, True, False),
    (200, [(b"content-length", b"4")], 5, 1, True, False),  # mismatch: connection closes
    (200, [(b"connection", b"Close")], 5, 1, True, False),
    (200, [(b"date", b"yesterday")], 5, 1, True, False),
    (200, [(b"server", b"other")], 5, 1, True, False),
    (200, [("X-Str", "v")], 0, 1, True, False),
    (200, [(b"content-type", b"text/plain")], 5, 0, True, False),  # HTTP/1.0 keep-alive
    (200, [(b"content-type", b"text/plain")], 5, 1, True, True),  # HEAD
    (204, [(b"content-type", b"text/plain")], 0, 1, True, False),
    (200, [(b"content-type", b"text/plain")], -1, 1, True, False),  # stream: chunked
    (200, [(b"content-type", b"text/plain")], 5, 1, False, False),
    (599, [(b"x", b"y")], 1, 1, True, False),  # unregistered status
]


def _uncached(*args: Any) -> tuple[bytes, int, bool]:
    response._HEADS.clear()
    return build_head(*args)


@pytest.mark.parametrize("case", CASES)
def test_memoised_head_equals_first_serialisation(case: tuple[Any, ...]) -> None:
    first = _uncached(*case)
    again = build_head(*case)
    # a fresh but equal list must hit the memo and serialise identically
    status, headers, *rest = case
    copy = build_head(status, [tuple(h) for h in headers], *rest)
    assert first == again == copy
    assert tuple(headers) in response._HEADS


def test_memoised_head_framing_and_close() -> None:
    for _ in range(2):
        head, framing, keep = build_head(200, [(b"content-length", b"4")], 5, 1, True, False)
        assert (framing, keep) == (FRAME_LENGTH, False) and b"connection: close\r\n" in head
        head, framing, keep = build_head(200, [(b"connection", b"close")], 3, 1, True, False)
        assert (framing, keep) == (FRAME_LENGTH, False) and head.count(b"connection") == 1
        head, framing, keep = build_head(200, [(b"a", b"b")], -1, 1, True, False)
        assert framing == FRAME_CHUNKED and b"transfer-encoding: chunked\r\n" in head
        _, framing, _ = build_head(304, [(b"a", b"b")], 0, 1, True, False)
        assert framing == FRAME_NONE


def test_memo_never_skips_validation() -> None:
    for _ in range(2):
        with pytest.raises(ValueError):
            build_head(200, [(b"x", b"a\r\nb: c")], 0, 1, True, False)
        with pytest.raises(ValueError):
            build_head(200, [(b"bad name", b"v")], 0, 1, True, False)
        with pytest.raises(ValueError):
            build_head(True, [(b"a", b"b")], 0, 1, True, False)  # type: ignore[arg-type]
    # unhashable values take the long way and are still checked
    head, _, _ = build_head(200, [(b"x", bytearray(b"v"))], 0, 1, True, False)
    assert b"\r\nx: v\r\n" in head
    with pytest.raises(ValueError):
        build_head(200, [(b"x", bytearray(b"a\nb"))], 0, 1, True, False)


def test_memoised_head_follows_the_date() -> None:
    build_head(200, [(b"a", b"b")], 0, 1, True, False)
    try:
        response.refresh_date(784111777.0)  # Sun, 06 Nov 1994 08:49:37 GMT (RFC 9110 §5.6.7)
        head, _, _ = build_head(200, [(b"a", b"b")], 0, 1, True, False)
        assert b"\r\ndate: Sun, 06 Nov 1994 08:49:37 GMT\r\n" in head
    finally:
        response.refresh_date()


def _sync_handler(seen: list[bytes | None]) -> Any:
    async def slow(cycle: Cycle) -> None:
        body = b""
        while not cycle.body_complete:
            piece = await cycle.read()
            assert piece is not None
            body += piece
        seen.append(body)
        cycle.respond(200, [], b"slow:" + body)

    def handler(cycle: Cycle) -> Coroutine[Any, Any, None] | None:
        body = cycle.read_buffered()
        if body is None:
            return slow(cycle)
        seen.append(body)
        cycle.respond(200, [], b"sync:" + body)
        return None

    return handler


@pytest.mark.parametrize("eager", [False, True])
def test_handler_finishing_synchronously(eager: bool) -> None:
    seen: list[bytes | None] = []

    async def script(p: H1Protocol, t: FakeTransport) -> None:
        tasks = len(asyncio.all_tasks())
        p.data_received(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc")
        # the first answer was written inside data_received: no Task was needed
        assert t.data.endswith(b"\r\n\r\nsync:") and len(asyncio.all_tasks()) == tasks
        await settle()
        assert t.data.endswith(b"\r\n\r\nsync:abc")
        p.data_received(b"POST /c HTTP/1.1\r\nContent-Length: 4\r\n\r\nde")
        await settle()
        assert not t.data.endswith(b"de")  # the rest of the body is awaited
        p.data_received(b"fg")
        await settle()
        assert t.data.endswith(b"\r\n\r\nslow:defg")
        assert not t.closed

    run(_sync_handler(seen), script, eager=eager)
    assert seen == [b"", b"abc", b"defg"]


def test_event_stream_detection_memo() -> None:
    from granian.apps.asgi import _is_event_stream

    sse = [(b"Content-Type", b"Text/Event-Stream; charset=utf-8")]
    plain = [(b"content-type", b"text/plain"), (b"x-e", b"eeeee")]
    other = [(b"x-type", b"text/event-stream")]
    for _ in range(2):  # the second round answers from the memo
        assert _is_event_stream(sse) and _is_event_stream(list(sse))
        assert not _is_event_stream(plain) and not _is_event_stream(other)
        assert _is_event_stream([(b"content-type", bytearray(b"text/event-stream"))])
        assert _is_event_stream(iter(sse))  # any iterable, not only lists
