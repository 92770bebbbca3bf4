"""H1Protocol with a fake transport (no sockets): flow control, ordering, framing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from fakes import FakeTransport  # noqa: E402  (tests/ is on sys.path: conftest)

from granian.http1.response import build_head
from granian.server.context import ServerContext
from granian.server.cycle import Cycle
from granian.server.h1 import H1Protocol

Handler = Callable[[Cycle], Coroutine[Any, Any, None]]


def run(
    handler: Handler, script: Callable[[H1Protocol, FakeTransport], Coroutine[Any, Any, None]], **kw: Any
) -> None:
    async def main() -> None:
        ctx = ServerContext(asyncio.get_running_loop(), handler, **kw)
        proto = H1Protocol(ctx)
        transport = FakeTransport()
        proto.connection_made(transport)  # type: ignore[arg-type]
        await script(proto, transport)

    asyncio.run(main())


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def hello(cycle: Cycle) -> None:
    cycle.respond(200, [(b"content-type", b"text/plain")], b"hi " + cycle.raw_path)


@pytest.mark.parametrize("eager", [False, True])
def test_one_write_per_simple_response(eager: bool) -> None:
    async def script(p: H1Protocol, t: FakeTransport) -> None:
        p.data_received(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        await settle()
        assert t.writes == 1
        assert t.data.startswith(b"HTTP/1.1 200 OK\r\n") and t.data.endswith(b"\r\n\r\nhi /a")
        assert not t.closed

    run(hello, script, eager=eager)


def test_request_attributes() -> None:
    seen: list[Cycle] = []

    async def handler(cycle: Cycle) -> None:
        seen.append(cycle)
        cycle.respond(204, [])

    async def script(p: H1Protocol, t: FakeTransport) -> None:
        p.data_received(
            b"OPTIONS http://example.com/p/q?x=1&y HTTP/1.0\r\nHost: x\r\nX-A: 1\r\nx-a: 2\r\n\r\n"
        )
        await settle()

    run(handler, script, root_path="/root")
    c = seen[0]
    assert (c.method, c.raw_path, c.query, c.http_version) == ("OPTIONS", b"/p/q", b"x=1&y", "1.0")
    assert c.headers == [(b"host", b"x"), (b"x-a", b"1"), (b"x-a", b"2")]
    assert c.client == ("10.0.0.1", 4321) and c.server == ("10.0.0.2", 80)
    assert c.root_path == "/root" and c.scheme == "http"
    assert not c.keep_alive  # HTTP/1.0 without keep-alive


def test_pipelined_responses_keep_request_order() -> None:
    gates: dict[bytes, asyncio.Event] = {}

    async def handler(cycle: Cycle) -> None:
        gate = gates.setdefault(cycle.raw_path, asyncio.Event())
        if cycle.raw_path == b"/slow":
            await gate.wait()
        cycle.respond(200, [], cycle.raw_path)

    async def script(p: H1Protocol, t: FakeTransport) -> None:
        p.data_received(b"GET /slow HTTP/1.1\r\n\r\nGET /fast1 HTTP/1.1\r\n\r\nGET /fast2 HTTP/1.1\r\n\r\n")
        await settle()
        assert t.data == b""  # nothing may overtake the slow first response
        gates[b"/slow"].set()
        await settle()
        data = t.data
        assert data.index(b"/slow") < data.index(b"/fast1") < data.index(b"/fast2")

    run(handler, script)


def test_pipeline_flush_aggregates_writes() -> None:
    async def script(p: H1Protocol, t: FakeTransport) -> None:
        p.data_received(b"GET /1 HTTP/1.1\r\n\r\n" * 5)
        await settle()
        assert t.data.count(b"HTTP/1.1 200") == 5
        assert t.writes == 1

    run(hello, script, pipeline_flush=True)


def test_body_flow_control_pauses_and_resumes_reading() -> None:
    got: list[bytes] = []
    release = asyncio.Event

    async def handler(cycle: Cycle) -> None:
        await gate.wait()
        while not cycle.body_complete:
            data = await cycle.read()
            assert data is not None
            got.append(data)
        cycle.respond(200, [], b"%d" % sum(map(len, got)))

    async def script(p: H1Protocol, t: FakeTransport) -> None:
        p.data_received(b"POST / HTTP/1.1\r\nContent-Length: 30000\r\n\r\n" + b"a" * 5000)
        await settle()
        assert t.reading  # 5000 bytes fit in the buffer: no pause
        p.data_received(b"a" * 10000)
        await settle()
        assert not t.reading  # the app is not reading and the buffer is over its size
        gate.set()
        await settle()
        assert t.reading  # the app drained the body: reading resumed
        p.data_received(b"a" * 15000)
        await settle()
        assert t.data.endswith(b"30000")

    gate = release()
    run(handler, script, buffer_size=8192)


def test_small_body_never_pauses() -> None:
    async def handler(cycle: Cycle) -> None:
        data = await cycle.read()
        assert cycle.body_complete
        cycle.respond(200, [], data or b"")

    async def script(p: H1Protocol, t: FakeTransport) -> None:
        reads: list[bool] = []
        orig = t.pause_reading
        t.pause_reading = lambda: (reads.append(True), orig())  # type: ignore[method-assign]
        p.data_received(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello")
        await settle()
        assert reads == [] and t.data.endswith(b"hello")

    run(handler, script)


def test_write_backpressure_waits_for_resume() -> None:
    progress: list[int] = []

    async def handler(cycle: Cycle) -> None:
        cycle.start(200, [])
        for i in range(3):
            await cycle.write(b"x" * 10)
            progress.append(i)
        cycle.finish()

    async def script(p: H1Protocol, t: FakeTransport) -> None:
        p.pause_writing()
        p.data_received(b"GET / HTTP/1.1\r\n\r\n")
        await settle()
        assert progress == []  # the first write is blocked on the paused transport
        p.resume_writing()
        await settle()
        assert progress == [0, 1, 2]
        assert t.data.endswith(b"0\r\n\r\n")
        assert b"transfer-encoding: chunked" in t.data

    run(handler, script)


def test_expect_continue_on_first_read_only() -> None:
    async def handler(cycle: Cycle) -> None:
        data = await cycle.read()
        cycle.respond(200, [], data or b"")

    async def script(p: H1Protocol, t: FakeTransport) -> None:
        p.data_received(b"POST / HTTP/1.1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
        await settle()
        assert t.data == b"HTTP/1.1 100 Continue\r\n\r\n"
        p.data_received(b"abc")
        await settle()
        assert t.data.count(b"100 Continue") == 1 and t.data.endswith(b"abc")

    run(handler, script)


def test_disconnect_wakes_reader_and_waiters() -> None:
    results: list[Any] = []

    async def handler(cycle: Cycle) -> None:
        results.append(await cycle.read())
        await cycle.wait_disconnect(until_done=True)
        results.append(cycle.disconnected)
        cycle.respond(200, [], b"late")  # ignored: nobody to send to

    async def script(p: H1Protocol, t: FakeTransport) -> None:
        p.data_received(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n")
        await settle()
        p.connection_lost(None)
        await settle()
        assert t.data == b""

    run(handler, script)
    assert results == [None, True]


def test_backpressure_parks_connections() -> None:
    gate: list[asyncio.Event] = []

    async def handler(cycle: Cycle) -> None:
        ev = asyncio.Event()
        gate.append(ev)
        await ev.wait()
        cycle.respond(200, [], b"ok")

    async def main() -> None:
        ctx = ServerContext(asyncio.get_running_loop(), handler, backpressure=1)
        a, b = H1Protocol(ctx), H1Protocol(ctx)
        ta, tb = FakeTransport(), FakeTransport()
        a.connection_made(ta)  # type: ignore[arg-type]
        b.connection_made(tb)  # type: ignore[arg-type]
        a.data_received(b"GET / HTTP/1.1\r\n\r\n")
        b.data_received(b"GET / HTTP/1.1\r\n\r\n")
        await settle()
        assert len(gate) == 1 and not tb.reading  # b waits for a slot, reading paused
        gate[0].set()
        await settle()
        assert len(gate) == 2 and tb.reading
        gate[1].set()
        await settle()
        assert ta.data.endswith(b"ok") and tb.data.endswith(b"ok")

    asyncio.run(main())


def test_build_head_framing() -> None:
    head, framing, keep = build_head(200, [(b"Content-Type", b"a")], -1, 1, True, False)
    assert b"transfer-encoding: chunked\r\n" in head and keep
    head, _, keep = build_head(200, [("X-Str", "v")], 3, 1, True, False)
    assert b"X-Str: v\r\n" in head and b"content-length: 3\r\n" in head
    head, _, keep = build_head(200, [(b"connection", b"close")], 0, 1, True, False)
    assert head.count(b"connection") == 1 and not keep
    head, _, keep = build_head(200, [], -1, 0, True, False)
    assert b"transfer-encoding" not in head and not keep  # HTTP/1.0 stream is close-delimited
    head, _, _ = build_head(200, [(b"date", b"d"), (b"server", b"s")], 0, 1, True, False)
    assert head.count(b"date:") == 1 and head.count(b"server:") == 1
    with pytest.raises(ValueError):
        build_head(200, [(b"x", b"a\nb")], 0, 1, True, False)
    with pytest.raises(ValueError):
        build_head(200, [(b"bad name", b"v")], 0, 1, True, False)
    with pytest.raises(TypeError):
        build_head(200, [(b"x", 5)], 0, 1, True, False)  # type: ignore[list-item]


def test_http_date_matches_the_stdlib_formatter() -> None:
    from email.utils import formatdate

    from granian.http1.response import http_date

    for second in (0, 784111777, 951782400, 1764518400, 4102444799):
        assert http_date(second).decode() == formatdate(second, usegmt=True)


def test_unread_small_body_is_discarded_and_connection_kept() -> None:
    async def handler(cycle: Cycle) -> None:
        cycle.respond(200, [], b"r" + cycle.raw_path)

    async def script(p: H1Protocol, t: FakeTransport) -> None:
        p.data_received(b"POST /a HTTP/1.1\r\nContent-Length: 10\r\n\r\n12345")
        await settle()
        p.data_received(b"67890GET /b HTTP/1.1\r\n\r\n")
        await settle()
        assert t.data.endswith(b"r/b") and t.data.count(b"HTTP/1.1 200") == 2
        assert not t.closed

    run(handler, script)


def test_chunked_body_in_random_pieces() -> None:
    got: list[bytes] = []

    async def handler(cycle: Cycle) -> None:
        while not cycle.body_complete:
            data = await cycle.read()
            assert data is not None
            got.append(data)
        cycle.respond(200, [], b"".join(got))

    async def script(p: H1Protocol, t: FakeTransport) -> None:
        raw = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        for i in range(0, len(raw), 3):
            p.data_received(raw[i : i + 3])
            await settle()
        assert t.data.endswith(b"hello world")

    run(handler, script)
