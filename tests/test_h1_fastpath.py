"""The inlined fast paths of H1Protocol agree with the sans-I/O H1State they shortcut.

`H1Protocol._parse` decides the commonest heads itself (no Connection/Expect/TE field, an
origin-form target without a query, at most a Content-Length body) and `H1Cycle.respond`
frames a whole-body response without the carrier hop. Both are copies of general code for
speed, so every valid corpus head goes through both routes here and must come out the same:
the same request attributes as `H1State.next_head()` gives, the same body, the same bytes on
the wire as the core `Cycle.respond()` over `H1Carrier.send_response()`.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeTransport  # noqa: E402  (tests/ is on sys.path: conftest)

from granian.http1.connection import H1State
from granian.server.context import ServerContext
from granian.server.cycle import Cycle
from granian.server.h1 import H1Protocol
from granian.server.h1.carrier import H1Cycle

CORPUS = Path(__file__).parent / "corpus" / "valid"
CASES = sorted(p.stem for p in CORPUS.glob("*.http"))
BIG = 1 << 20


def _state_view(raw: bytes) -> tuple[Any, ...]:
    loop = asyncio.new_event_loop()
    try:
        limits = ServerContext(loop, lambda c: None, buffer_size=BIG).limits
    finally:
        loop.close()
    state = H1State(limits, BIG)
    state.receive(raw)
    res = state.next_head()
    assert res is not None
    method, path, query, minor, headers, keep, body_eof = res
    if not body_eof:
        # the connection feeds the body bytes that came with the head before the app runs
        _, body_eof = state.feed_body()
    return method, path, query, "1.1" if minor else "1.0", headers, keep, body_eof


def _serve(raw: bytes, generic_respond: bool) -> tuple[tuple[Any, ...], bytes, bytes]:
    seen: list[Any] = []

    async def handler(cycle: H1Cycle) -> None:
        view = (
            cycle.method,
            cycle.raw_path,
            cycle.query,
            cycle.http_version,
            list(cycle.headers),
            cycle.keep_alive,
            cycle._body_eof,
        )
        # what came with the head (a body may be announced longer than what was sent)
        body = b"".join(cycle._body or ())
        seen.append((view, body))
        headers = [(b"content-type", b"text/plain"), (b"date", b"x")]
        if generic_respond:
            Cycle.respond(cycle, 200, headers, b"ok " + body)
        else:
            cycle.respond(200, headers, b"ok " + body)

    async def main() -> bytes:
        ctx = ServerContext(asyncio.get_running_loop(), handler, buffer_size=BIG)
        proto = H1Protocol(ctx)
        transport = FakeTransport()
        proto.connection_made(transport)  # type: ignore[arg-type]
        proto.data_received(raw)
        for _ in range(20):
            await asyncio.sleep(0)
        return transport.data

    wire = asyncio.run(main())
    assert len(seen) >= 1, raw
    return seen[0][0], seen[0][1], wire


@pytest.mark.parametrize("case", CASES)
def test_parse_fast_path_matches_h1state(case: str) -> None:
    raw = (CORPUS / f"{case}.http").read_bytes()
    expect = json.loads((CORPUS / f"{case}.json").read_text())
    view, body, _ = _serve(raw, generic_respond=False)
    assert view == _state_view(raw)
    if expect.get("body") is not None and not expect.get("flags"):
        assert body == expect["body"].encode("latin-1")


@pytest.mark.parametrize("case", CASES)
def test_h1cycle_respond_matches_core_respond(case: str) -> None:
    raw = (CORPUS / f"{case}.http").read_bytes()
    _, _, fast = _serve(raw, generic_respond=False)
    _, _, generic = _serve(raw, generic_respond=True)
    assert fast == generic
    assert fast.startswith(b"HTTP/1.")


def test_fast_path_is_taken_for_the_common_head() -> None:
    """The shortcut really runs for a plain GET and a Content-Length POST (it is not the
    general route under another name): start_request is not called for them."""
    calls: list[bytes] = []
    original = H1State.start_request

    def spy(self: H1State, res: Any) -> Any:
        calls.append(res[2])
        return original(self, res)

    H1State.start_request = spy  # type: ignore[method-assign]
    try:
        _serve(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n", False)
        _serve(b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", False)
        assert calls == []
        _serve(b"GET /c?q=1 HTTP/1.1\r\nHost: x\r\n\r\n", False)
        _serve(b"GET /d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", False)
        assert calls == [b"/c?q=1", b"/d"]
    finally:
        H1State.start_request = original  # type: ignore[method-assign]
