"""ASGI, RSGI and WSGI message-order and error rules, in-process: each adapter's
`handler(cycle)` runs against a FakeCycle (tests/fakes.py), so every case is one event loop
run, without a server subprocess, and the test sees exactly what the adapter handed to its
cycle (`respond` vs `start` + pieces + `finish`, `fail`'s 500, `abort`).

The rules are ../shared/docs/ASGI.md, RSGI.md and PEP 3333; the subprocess tests
(tests/test_asgi_http.py, test_rsgi.py, test_wsgi.py with tests/apps/*) keep checking the
same cases end to end over sockets. A few cases also run on the real cycle (an H1Protocol
over the shared FakeTransport) where the adapter's behaviour depends on what the cycle raises.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest
from fakes import DISCONNECT, EOF, FakeCycle, FakeTransport  # (tests/ is on sys.path: conftest)

from granian.apps.asgi import ASGIAdapter, ASGINLAdapter
from granian.apps.config import AppConfig
from granian.apps.rsgi import RSGIAdapter
from granian.apps.wsgi import WSGIAdapter
from granian.errors import RSGIProtocolClosed, RSGIProtocolError
from granian.server.context import ServerContext
from granian.server.h1 import H1Protocol

Message = dict[str, Any]

_UNSUPPORTED = "Unsupported ASGI message"
_STARTED = "ASGI flow error: Response already started"
_FINISHED = "ASGI flow error: Response already finished"
_NOT_STARTED = "ASGI flow error: Response not started"


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self) -> list[str]:
        return [r.getMessage() for r in self.records]

    def exceptions(self) -> list[BaseException | None]:
        return [r.exc_info[1] if r.exc_info else None for r in self.records]


@pytest.fixture
def server_log() -> Iterator[_Records]:
    """What the adapters and the cycle log on `_granian` (attached there, not on the root:
    another test may have configured that logger not to propagate)."""
    logger = logging.getLogger("_granian")
    handler = _Records()
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def serve(adapter: Any, cycle: Any) -> None:
    """One request through `adapter.handler`, in a fresh event loop (`adapter` may be a
    factory, called in the loop: an RSGIAdapter takes the running loop for its hooks). The
    bound turns a hang (a rule broken by never answering) into a failure, not a stuck run."""

    async def main() -> None:
        ad = adapter if hasattr(adapter, "handler") else adapter()
        coro = ad.handler(cycle)
        if coro is not None:
            await asyncio.wait_for(coro, 10)

    asyncio.run(main())


async def _until(predicate: Callable[[], bool], what: str) -> None:
    for _ in range(10000):  # ~10 s at most: a bound, not a timing assertion
        if predicate():
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"never happened: {what}")


def on_real_cycle(
    adapter: Callable[[], Any],
    request: bytes,
    client: Callable[[H1Protocol, FakeTransport], Awaitable[None]],
) -> FakeTransport:
    """Serve `request` with the adapter `adapter()` builds on a real H1Protocol
    (tests/test_h1_protocol_unit.py's set-up) while `client` acts on the connection."""

    async def main() -> FakeTransport:
        ctx = ServerContext(asyncio.get_running_loop(), adapter().handler)
        proto = H1Protocol(ctx)
        transport = FakeTransport()
        proto.connection_made(transport)  # type: ignore[arg-type]
        proto.data_received(request)
        await asyncio.wait_for(client(proto, transport), 10)
        return transport

    return asyncio.run(main())


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def start(status: Any = 200, headers: Any = (), **extra: Any) -> Message:
    return {"type": "http.response.start", "status": status, "headers": list(headers), **extra}


def body(data: Any = b"", more: bool = False) -> Message:
    return {"type": "http.response.body", "body": data, "more_body": more}


# ================================================================= ASGI


def test_asgi_start_and_one_body_is_one_respond(fake_cycle: type[FakeCycle]) -> None:
    async def app(scope: Message, receive: Any, send: Any) -> None:
        await send(start(200, [(b"content-type", b"text/plain")]))
        await send(body(b"Hello, world!"))

    c = fake_cycle()
    serve(ASGINLAdapter(app), c)
    assert c.events == [("respond", 200, [(b"content-type", b"text/plain")], b"Hello, world!")]
    assert c.completions == 1 and c.failures == []


def test_asgi_more_body_streams_pieces_in_order(fake_cycle: type[FakeCycle]) -> None:
    async def app(scope: Message, receive: Any, send: Any) -> None:
        await send(start(200, [(b"content-type", b"text/plain")]))
        for i in range(3):
            await send(body(b"part%d;" % i, more=True))
        await send(body(b"", more=True))  # an empty piece is no piece
        await send(body(bytearray(b"last"), more=False))

    c = fake_cycle()
    serve(ASGINLAdapter(app), c)
    assert c.kinds() == ["start", "data", "data", "data", "data", "finish"]
    assert c.events[0] == ("start", 200, [(b"content-type", b"text/plain")], False)  # head held back
    assert c.pieces == [b"part0;", b"part1;", b"part2;", b"last"]


def test_asgi_first_body_empty_with_more_starts_the_stream(fake_cycle: type[FakeCycle]) -> None:
    async def app(scope: Message, receive: Any, send: Any) -> None:
        await send(start(201))
        await send(body(b"", more=True))
        await send(body(memoryview(b"x")))

    c = fake_cycle()
    serve(ASGINLAdapter(app), c)
    assert c.kinds() == ["start", "data", "finish"] and c.status == 201 and c.pieces == [b"x"]


def test_asgi_event_stream_flushes_the_head_at_start(fake_cycle: type[FakeCycle]) -> None:
    seen: list[list[str]] = []

    async def app(scope: Message, receive: Any, send: Any) -> None:
        await send(start(200, [(b"content-type", b"text/event-stream")]))
        seen.append(c.kinds())  # before any body: the client must already see the head
        await send(body(b"data: 1\n\n"))

    c = fake_cycle()
    serve(ASGINLAdapter(app), c)
    assert seen == [["start"]]
    assert c.events[0] == ("start", 200, [(b"content-type", b"text/event-stream")], True)
    assert c.kinds() == ["start", "data", "finish"]


def test_asgi_status_may_be_an_int_subclass(fake_cycle: type[FakeCycle]) -> None:
    async def app(scope: Message, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": HTTPStatus.CREATED, "headers": None})
        await send({"type": "http.response.body"})

    c = fake_cycle()
    serve(ASGINLAdapter(app), c)
    assert c.events == [("respond", 201, [], b"")]


PATH = object()  # stands for a real file in the pathsend sequences below

# (messages sent in order; the last one must raise RuntimeError with this message; the event
# kinds the cycle saw once the app returned after catching it)
FLOW_ERRORS = {
    "body before start": ([body(b"x")], _NOT_STARTED, ["error"]),
    "unknown type": ([{"type": "nope"}], _UNSUPPORTED, ["error"]),
    "no type": ([{"status": 200}], _UNSUPPORTED, ["error"]),
    "not a mapping": ([None], _UNSUPPORTED, ["error"]),
    "status as str": ([start("200")], _UNSUPPORTED, ["error"]),
    "status as bool": ([start(True)], _UNSUPPORTED, ["error"]),
    "status below 100": ([start(99)], _UNSUPPORTED, ["error"]),
    "status above 999": ([start(1000)], _UNSUPPORTED, ["error"]),
    "start twice": ([start(), start()], _STARTED, ["abort"]),
    "start while streaming": (
        [start(), body(b"a", more=True), start()],
        _STARTED,
        ["start", "data", "abort"],
    ),
    "start after the response": ([start(), body(b"a"), start()], _FINISHED, ["respond"]),
    "body after the response": ([start(), body(b"a"), body(b"b")], _FINISHED, ["respond"]),
    "body after the stream ended": (
        [start(), body(b"a", more=True), body(b"b"), body(b"c")],
        _FINISHED,
        ["start", "data", "data", "finish"],
    ),
    "body of the wrong type": ([start(), body("text")], _UNSUPPORTED, ["abort"]),
    "streamed body of the wrong type": (
        [start(), body(b"a", more=True), body("text")],
        _UNSUPPORTED,
        ["start", "data", "abort"],
    ),
    "bad header value at the first body": (
        [start(200, [(b"x-evil", b"a\r\nset-cookie: x")]), body(b"leaked")],
        _UNSUPPORTED,
        ["error"],
    ),
    "bad header name at the first body": (
        [start(200, [(b"bad name", b"v")]), body(b"")],
        _UNSUPPORTED,
        ["error"],
    ),
    "bad header on an event stream at start": (
        [start(200, [(b"content-type", b"text/event-stream"), (b"x", 5)])],
        _UNSUPPORTED,
        ["error"],
    ),
    "pathsend before start": ([{"type": "http.response.pathsend", "path": PATH}], _NOT_STARTED, ["error"]),
    "pathsend while streaming": (
        [start(), body(b"a", more=True), {"type": "http.response.pathsend", "path": PATH}],
        _STARTED,
        ["start", "data", "abort"],
    ),
    "pathsend after the response": (
        [start(), body(b"a"), {"type": "http.response.pathsend", "path": PATH}],
        _FINISHED,
        ["respond"],
    ),
    "pathsend without a path": (
        [start(), {"type": "http.response.pathsend", "path": 5}],
        _UNSUPPORTED,
        ["abort"],
    ),
}


@pytest.mark.parametrize("name", list(FLOW_ERRORS))
def test_asgi_flow_errors(
    name: str, fake_cycle: type[FakeCycle], tmp_path: Path, server_log: _Records
) -> None:
    messages, error, kinds = FLOW_ERRORS[name]
    path = tmp_path / "f.txt"
    path.write_bytes(b"file")
    raised: list[str] = []

    async def app(scope: Message, receive: Any, send: Any) -> None:
        for i, msg in enumerate(messages):
            if isinstance(msg, dict) and msg.get("path") is PATH:
                msg = {**msg, "path": str(path)}
            try:
                await send(msg)
            except RuntimeError as exc:
                assert i == len(messages) - 1, f"message {i} raised {exc}"
                raised.append(str(exc))

    c = fake_cycle()
    serve(ASGINLAdapter(app), c)
    assert raised == [error]
    assert c.kinds() == kinds
    if kinds == ["error"]:
        # nothing was sent: the app returned without a response, a 500 (ASGI.md)
        assert c.failures == [None] and c.status == 500
        assert "ASGI callable returned without starting response" in server_log.messages()
    elif kinds[-1] == "abort":
        assert "ASGI callable returned without completing response" in server_log.messages()


def test_asgi_rejected_start_can_be_followed_by_a_clean_one(fake_cycle: type[FakeCycle]) -> None:
    """tests/apps/asgi_app.py /bad-header: the invalid head never reaches the wire."""

    async def app(scope: Message, receive: Any, send: Any) -> None:
        try:
            await send(start(200, [(b"x-evil", b"a\r\nset-cookie: x")]))
            await send(body(b"leaked"))
        except RuntimeError as exc:
            await send(start(200, [(b"content-type", b"text/plain")]))
            await send(body(b"rejected: " + str(exc).encode()))

    c = fake_cycle()
    serve(ASGINLAdapter(app), c)
    assert c.events == [
        ("respond", 200, [(b"content-type", b"text/plain")], b"rejected: " + _UNSUPPORTED.encode())
    ]


def test_asgi_error_before_start_is_a_500_with_the_traceback(
    fake_cycle: type[FakeCycle], server_log: _Records
) -> None:
    err = ValueError("boom before start")

    async def app(scope: Message, receive: Any, send: Any) -> None:
        raise err

    c = fake_cycle()
    serve(ASGINLAdapter(app), c)
    assert c.events == [("error", 500, b"Internal Server Error")]
    assert c.failures == [err]
    assert server_log.exceptions() == [err]


def test_asgi_start_without_body_then_error_is_not_a_clean_response(fake_cycle: type[FakeCycle]) -> None:
    # http.response.start was accepted (held back): after it, never a 500 of another status
    async def app(scope: Message, receive: Any, send: Any) -> None:
        await send(start(200))
        raise ValueError("boom")

    c = fake_cycle()
    serve(ASGINLAdapter(app), c)
    assert c.kinds() == ["abort"] and c.failures == []


def test_asgi_error_after_start_truncates(fake_cycle: type[FakeCycle], server_log: _Records) -> None:
    """tests/apps/asgi_app.py /raise-after."""
    err = ValueError("boom after start")

    async def app(scope: Message, receive: Any, send: Any) -> None:
        await send(start(200, [(b"content-length", b"100")]))
        await send(body(b"partial", more=True))
        raise err

    c = fake_cycle()
    serve(ASGINLAdapter(app), c)
    assert c.kinds() == ["start", "data", "abort"]  # no finish, no 500
    assert c.pieces == [b"partial"] and not c.keep_alive
    assert server_log.exceptions() == [err]


def test_asgi_return_without_completing_truncates(fake_cycle: type[FakeCycle], server_log: _Records) -> None:
    async def app(scope: Message, receive: Any, send: Any) -> None:
        await send(start(200))
        await send(body(b"partial", more=True))

    c = fake_cycle()
    serve(ASGINLAdapter(app), c)
    assert c.kinds() == ["start", "data", "abort"]
    assert server_log.messages() == ["ASGI callable returned without completing response"]


class _Stop(BaseException):
    pass


def test_asgi_base_exception_is_answered_then_propagates(fake_cycle: type[FakeCycle]) -> None:
    async def app(scope: Message, receive: Any, send: Any) -> None:
        raise _Stop

    c = fake_cycle()
    with pytest.raises(_Stop):
        serve(ASGINLAdapter(app), c)
    assert c.kinds() == ["error"]  # the client still got its 500


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, [(b"", False)]),  # no body: one empty http.request
        ({"body": b"hello"}, [(b"hello", False)]),  # a body already here: one message
        ({"script": [b"a", b"b", EOF]}, [(b"a", True), (b"b", True), (b"", False)]),
    ],
    ids=["no-body", "buffered", "pieces"],
)
def test_asgi_request_body_messages(fake_cycle: type[FakeCycle], kwargs: Any, expected: Any) -> None:
    got: list[Message] = []

    async def app(scope: Message, receive: Any, send: Any) -> None:
        while True:
            msg = await receive()
            got.append(msg)
            if not msg.get("more_body"):
                break
        await send(start())
        await send(body(b"ok"))

    c = fake_cycle("POST", **kwargs)
    serve(ASGINLAdapter(app), c)
    assert got == [{"type": "http.request", "body": b, "more_body": m} for b, m in expected]


def test_asgi_receive_after_the_body_waits_for_the_response(fake_cycle: type[FakeCycle]) -> None:
    order: list[str] = []

    async def app(scope: Message, receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "http.request"

        async def waiter() -> None:
            msg = await receive()
            order.append(msg["type"])

        task = asyncio.ensure_future(waiter())
        await _settle()
        order.append("still waiting" if not task.done() else "returned early")
        await send(start())
        order.append("started")  # held back: the response is not complete yet
        await _settle()
        await send(body(b"done"))
        await task

    c = fake_cycle()
    serve(ASGINLAdapter(app), c)
    assert order == ["still waiting", "started", "http.disconnect"]


def test_asgi_disconnect_messages_after_the_response(fake_cycle: type[FakeCycle]) -> None:
    """tests/apps/asgi_app.py /after-response: receive() after responding returns at once."""
    got: list[str] = []

    async def app(scope: Message, receive: Any, send: Any) -> None:
        await send(start())
        await send(body(b"done"))
        got.append((await receive())["type"])  # the (empty) request body
        got.append((await receive())["type"])
        got.append((await receive())["type"])

    c = fake_cycle()
    serve(ASGINLAdapter(app), c)
    assert got == ["http.request", "http.disconnect", "http.disconnect"]
    assert c.kinds() == ["respond"]


def test_asgi_client_leaving_mid_body_is_http_disconnect(fake_cycle: type[FakeCycle]) -> None:
    got: list[Message] = []

    async def app(scope: Message, receive: Any, send: Any) -> None:
        got.append(await receive())
        got.append(await receive())
        got.append(await receive())
        # answering anyway is harmless: nobody is there to get it
        await send(start())
        await send(body(b"late"))

    c = fake_cycle("POST", script=[b"a", DISCONNECT])
    serve(ASGINLAdapter(app), c)
    assert got == [
        {"type": "http.request", "body": b"a", "more_body": True},
        {"type": "http.disconnect"},
        {"type": "http.disconnect"},
    ]
    assert c.events == [] and c.disconnected


def test_asgi_disconnect_while_streaming(fake_cycle: type[FakeCycle]) -> None:
    """tests/apps/asgi_app.py /wait-disconnect: after the body, receive() waits for the client."""
    got: list[str] = []

    async def app(scope: Message, receive: Any, send: Any) -> None:
        await send(start())
        await send(body(b"waiting", more=True))
        got.append((await receive())["type"])
        got.append((await receive())["type"])

    c = fake_cycle(script=[DISCONNECT])
    serve(ASGINLAdapter(app), c)
    assert got == ["http.request", "http.disconnect"]
    assert c.kinds() == ["start", "data"]  # no abort: the client left, nothing to cut short


def _asgi_after_the_client_left(
    where: str, last: Message, fake_cycle: type[FakeCycle]
) -> list[BaseException]:
    """Stream one piece, let the client leave, send `last`: what send() raised into the app.
    On the real cycle the client's leaving is the connection's connection_lost."""
    raised: list[BaseException] = []
    gate = asyncio.Event
    lost, done = gate(), gate()

    async def app(scope: Message, receive: Any, send: Any) -> None:
        await send(start())
        await send(body(b"1", more=True))
        if where == "real":
            await lost.wait()
        try:
            await send(last)
        except Exception as exc:  # noqa: BLE001 - recorded for the assertion
            raised.append(exc)
        assert (await receive())["type"] == "http.request"
        assert (await receive())["type"] == "http.disconnect"  # never a hang
        done.set()

    if where == "fake":
        c = fake_cycle(disconnect_after_writes=1)
        serve(ASGINLAdapter(app), c)
        assert c.pieces == [b"1"] and c.disconnected
    else:

        async def client(proto: H1Protocol, transport: FakeTransport) -> None:
            await _settle()
            proto.connection_lost(None)
            lost.set()
            await done.wait()

        transport = on_real_cycle(partial(ASGINLAdapter, app), b"GET / HTTP/1.1\r\nhost: x\r\n\r\n", client)
        assert transport.data.endswith(b"\r\n1\r\n1\r\n")  # the first piece, then nothing
    return raised


@pytest.mark.parametrize("where", ["fake", "real"])
def test_asgi_piece_after_the_client_left_is_ignored(
    where: str, fake_cycle: type[FakeCycle], server_log: _Records
) -> None:
    # ASGI.md: sending after the client has gone raises an OSError subclass or is ignored
    assert _asgi_after_the_client_left(where, body(b"2", more=True), fake_cycle) == []
    assert server_log.records == []


@pytest.mark.parametrize("where", ["fake", "real"])
def test_asgi_final_body_after_the_client_left_is_ignored(where: str, fake_cycle: type[FakeCycle]) -> None:
    raised = _asgi_after_the_client_left(where, body(b"", more=False), fake_cycle)
    assert not any(isinstance(e, RuntimeError) for e in raised), raised


def test_asgi_pathsend(fake_cycle: type[FakeCycle], tmp_path: Path) -> None:
    f = tmp_path / "file.txt"
    f.write_bytes(b"file-content" * 1000)

    async def app(scope: Message, receive: Any, send: Any) -> None:
        await send(
            start(
                200,
                [(b"content-type", b"text/plain"), (b"content-length", b"1"), (b"transfer-encoding", b"x")],
            )
        )
        await send({"type": "http.response.pathsend", "path": f})
        with pytest.raises(RuntimeError, match=_FINISHED):
            await send(body(b"more"))

    c = fake_cycle()
    serve(ASGINLAdapter(app), c)
    # the app's framing fields are replaced by the file's length
    assert c.events == [
        ("start", 200, [(b"content-type", b"text/plain"), (b"content-length", b"12000")], False),
        ("file", b"file-content" * 1000),
        ("finish",),
    ]


def test_asgi_pathsend_of_a_missing_file_is_404(fake_cycle: type[FakeCycle], tmp_path: Path) -> None:
    async def app(scope: Message, receive: Any, send: Any) -> None:
        await send(start(200, [(b"content-type", b"text/plain")]))
        await send({"type": "http.response.pathsend", "path": str(tmp_path / "missing")})

    c = fake_cycle()
    serve(ASGINLAdapter(app), c)
    assert c.events == [("respond", 404, [], b"")]


def test_asgi_scope(fake_cycle: type[FakeCycle]) -> None:
    scopes: list[Message] = []

    async def app(scope: Message, receive: Any, send: Any) -> None:
        scopes.append(scope)
        scope["state"]["mine"] = True  # a per-request copy: must not leak into the next one
        await send(start())
        await send(body())

    adapter = ASGINLAdapter(app, root_path="/root")
    headers = [(b"host", b"x"), (b"x-dup", b"1"), (b"x-dup", b"2")]
    serve(adapter, fake_cycle("GET", b"/%73cope%c0?q=%20", headers=headers, http_version="1.0"))
    serve(adapter, fake_cycle("GET", b"/two", scheme="https", client=None, server=None))
    one, two = scopes
    assert one["type"] == "http" and one["asgi"] == {"version": "3.0", "spec_version": "2.3"}
    assert (one["path"], one["raw_path"], one["query_string"]) == ("/scope\ufffd", b"/%73cope%c0", b"q=%20")
    assert one["headers"] == headers and one["http_version"] == "1.0" and one["method"] == "GET"
    assert one["client"] == ("127.0.0.1", 40000) and one["server"] == ("127.0.0.1", 8000)
    assert one["root_path"] == "/root" and one["scheme"] == "http"
    assert one["extensions"] == {"http.response.pathsend": {}, "http.response.trailers": {}}
    assert two["state"] == {"mine": True} and two["state"] is not one["state"]
    assert (two["scheme"], two["client"], two["server"]) == ("https", None, None)


def test_asgi_extensions_are_not_shared_between_requests(fake_cycle: type[FakeCycle]) -> None:
    scopes: list[Message] = []

    async def app(scope: Message, receive: Any, send: Any) -> None:
        scopes.append(scope)
        ext = scope["extensions"]
        # what a middleware might do to its own request's extensions
        ext["http.response.trailers"]["seen"] = True
        ext["http.response.pathsend"]["seen"] = True
        ext["mine"] = {}
        await send(start())
        await send(body())

    adapter = ASGIAdapter(app)
    serve(adapter, fake_cycle())
    serve(adapter, fake_cycle())
    one, two = scopes
    assert one["extensions"]["http.response.trailers"] == {"seen": True}
    assert two["extensions"]["http.response.trailers"] is not one["extensions"]["http.response.trailers"]
    assert two["extensions"]["http.response.pathsend"] is not one["extensions"]["http.response.pathsend"]
    assert scopes[1]["extensions"] == {
        "http.response.pathsend": {"seen": True},
        "http.response.trailers": {"seen": True},
        "mine": {},
    }  # its own writes only: each started empty


def test_asgi_lifespan_adapter_serves_http_the_same(fake_cycle: type[FakeCycle]) -> None:
    async def app(scope: Message, receive: Any, send: Any) -> None:
        await send(start(200))
        await send(body(b"x"))

    c = fake_cycle()
    serve(ASGIAdapter(app), c)
    assert c.events == [("respond", 200, [], b"x")]


# ================================================================= RSGI


def test_rsgi_simple_responses(fake_cycle: type[FakeCycle]) -> None:
    apps = {
        "/plain": lambda p: p.response_str(200, [("content-type", "text/plain")], "Hello, wörld"),
        "/bytes": lambda p: p.response_bytes(201, [("x-a", "1"), ("x-a", "2")], b"\x00\xff"),
        "/empty": lambda p: p.response_empty(204, [("x-e", "y")]),
        "/defaults": lambda p: p.response_empty(),
    }

    async def app(scope: Any, proto: Any) -> None:
        apps[scope.path](proto)

    adapter = partial(RSGIAdapter, app)
    seen = {}
    for path in apps:
        c = fake_cycle("GET", path.encode())
        serve(adapter, c)
        seen[path] = c.events
    assert seen == {
        "/plain": [("respond", 200, [(b"content-type", b"text/plain")], "Hello, wörld".encode())],
        "/bytes": [("respond", 201, [(b"x-a", b"1"), (b"x-a", b"2")], b"\x00\xff")],
        "/empty": [("respond", 204, [(b"x-e", b"y")], b"")],
        "/defaults": [("respond", 200, [], b"")],
    }


def test_rsgi_first_response_wins_and_stream_after_it_raises(
    fake_cycle: type[FakeCycle], tmp_path: Path
) -> None:
    errors: list[str] = []

    async def app(scope: Any, proto: Any) -> None:
        proto.response_str(200, [], "first")
        proto.response_str(500, [], "ignored")
        proto.response_bytes(500, [], b"ignored")
        proto.response_empty(500)
        proto.response_file(200, [], str(tmp_path / "x"))
        try:
            proto.response_stream(200, [])
        except RSGIProtocolError as exc:
            errors.append(str(exc))

    c = fake_cycle()
    serve(partial(RSGIAdapter, app), c)
    assert c.events == [("respond", 200, [], b"first")]
    assert errors == ["Response already started"]


def test_rsgi_response_stream_twice_raises(fake_cycle: type[FakeCycle]) -> None:
    async def app(scope: Any, proto: Any) -> None:
        tr = proto.response_stream(200, [])
        with pytest.raises(RSGIProtocolError):
            proto.response_stream(200, [])
        proto.response_str(500, [], "ignored")
        await tr.send_bytes(b"only")

    c = fake_cycle()
    serve(partial(RSGIAdapter, app), c)
    assert c.kinds() == ["start", "data", "finish"] and c.pieces == [b"only"]


@pytest.mark.parametrize(
    ("kwargs", "whole", "chunks"),
    [
        ({}, b"", [b""]),  # the last chunk may be b'' (RSGI.md)
        ({"body": b"hello"}, b"hello", [b"hello"]),
        ({"script": [b"ab", b"cd", EOF]}, b"abcd", [b"ab", b"cd", b""]),
    ],
    ids=["no-body", "buffered", "pieces"],
)
def test_rsgi_body_whole_and_iterated(
    fake_cycle: type[FakeCycle], kwargs: Any, whole: bytes, chunks: Any
) -> None:
    got: dict[str, Any] = {}

    async def whole_app(scope: Any, proto: Any) -> None:
        got["whole"] = await proto()
        for again in (proto, lambda: proto.__aiter__()):
            try:
                res = again()
                if asyncio.iscoroutine(res):
                    await res
            except RSGIProtocolError as exc:
                got.setdefault("errors", []).append(str(exc))
        proto.response_empty()

    async def iter_app(scope: Any, proto: Any) -> None:
        got["chunks"] = [chunk async for chunk in proto]
        try:
            await proto()
        except RSGIProtocolError as exc:
            got["after_iter"] = str(exc)
        proto.response_empty()

    serve(partial(RSGIAdapter, whole_app), fake_cycle("POST", **kwargs))
    serve(partial(RSGIAdapter, iter_app), fake_cycle("POST", **kwargs))
    assert got == {
        "whole": whole,
        "errors": ["Request body already consumed"] * 2,
        "chunks": chunks,
        "after_iter": "Request body already consumed",
    }


def test_rsgi_body_read_after_the_client_left_is_protocol_closed(fake_cycle: type[FakeCycle]) -> None:
    got: list[Any] = []

    async def whole_app(scope: Any, proto: Any) -> None:
        try:
            await proto()
        except RSGIProtocolClosed as exc:
            got.append(("whole", str(exc)))

    async def iter_app(scope: Any, proto: Any) -> None:
        try:
            async for chunk in proto:
                got.append(("chunk", chunk))
        except RSGIProtocolClosed as exc:
            got.append(("iter", str(exc)))

    serve(partial(RSGIAdapter, whole_app), fake_cycle("POST", script=[b"a", DISCONNECT]))
    serve(partial(RSGIAdapter, iter_app), fake_cycle("POST", script=[b"a", DISCONNECT]))
    assert got == [("whole", "Client disconnected"), ("chunk", b"a"), ("iter", "Client disconnected")]


def test_rsgi_stream_send_bytes_and_str(fake_cycle: type[FakeCycle]) -> None:
    async def app(scope: Any, proto: Any) -> None:
        tr = proto.response_stream(200, [("content-type", "text/plain")])
        for i in range(3):
            await tr.send_bytes(b"b%d;" % i)
            await tr.send_str(f"s{i}é;")

    c = fake_cycle()
    serve(partial(RSGIAdapter, app), c)
    assert c.events[0] == ("start", 200, [(b"content-type", b"text/plain")], False)
    assert c.pieces == [p for i in range(3) for p in (b"b%d;" % i, f"s{i}é;".encode())]
    assert c.kinds()[-1] == "finish"  # the stream ends when the app returns


def test_rsgi_stream_without_pieces_still_ends(fake_cycle: type[FakeCycle]) -> None:
    async def app(scope: Any, proto: Any) -> None:
        proto.response_stream(200, [])

    c = fake_cycle()
    serve(partial(RSGIAdapter, app), c)
    assert c.kinds() == ["start", "finish"]


@pytest.mark.parametrize("where", ["fake", "real"])
def test_rsgi_send_to_a_gone_client_is_protocol_closed(where: str, fake_cycle: type[FakeCycle]) -> None:
    got: list[Any] = []
    gate = asyncio.Event

    async def app(scope: Any, proto: Any) -> None:
        tr = proto.response_stream(200, [])
        await tr.send_bytes(b"1")
        if where == "real":
            await lost.wait()
        try:
            await tr.send_str("2")
        except RSGIProtocolClosed:
            got.append("closed")
        finally:
            done.set()

    lost, done = gate(), gate()
    adapter = partial(RSGIAdapter, app)
    if where == "fake":
        c = fake_cycle(disconnect_after_writes=1)
        serve(adapter, c)
        assert c.kinds() == ["start", "data"]  # the client left: no finish, nothing more
    else:

        async def client(proto: H1Protocol, transport: FakeTransport) -> None:
            await _settle()
            proto.connection_lost(None)
            lost.set()
            await done.wait()

        transport = on_real_cycle(adapter, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n", client)
        assert transport.data.endswith(b"1\r\n1\r\n")  # the first piece, then nothing
    assert got == ["closed"]


def test_rsgi_send_after_the_app_returned_is_protocol_closed(fake_cycle: type[FakeCycle]) -> None:
    kept: list[Any] = []

    async def app(scope: Any, proto: Any) -> None:
        kept.append(proto.response_stream(200, []))

    async def main() -> None:
        await RSGIAdapter(app).handler(c)
        with pytest.raises(RSGIProtocolClosed):
            await kept[0].send_bytes(b"late")

    c = fake_cycle()
    asyncio.run(main())
    assert c.kinds() == ["start", "finish"]


def test_rsgi_client_disconnect_follows_the_connection(fake_cycle: type[FakeCycle]) -> None:
    """tests/apps/rsgi_app.py /watch: the watcher outlives the response (keep-alive)."""
    resolved: list[str] = []

    async def main() -> None:
        async def app(scope: Any, proto: Any) -> None:
            async def watch() -> None:
                await proto.client_disconnect()
                resolved.append(scope.path)

            watchers.append(asyncio.ensure_future(watch()))
            proto.response_str(200, [], "watching")

        watchers: list[asyncio.Task[None]] = []
        adapter = RSGIAdapter(app)
        kept = fake_cycle("GET", b"/kept")
        closed = fake_cycle("GET", b"/closed", keep_alive=False)
        await adapter.handler(kept)
        await adapter.handler(closed)
        await _settle()
        # the keep-alive connection is still open; the other was closed after its response
        assert resolved == ["/closed"] and kept.response_done
        kept.disconnect()
        await _settle()
        assert resolved == ["/closed", "/kept"]
        assert all(w.done() for w in watchers)

    asyncio.run(main())


def test_rsgi_cancelled_watcher_does_not_break_the_next_one(fake_cycle: type[FakeCycle]) -> None:
    async def main() -> None:
        c = fake_cycle()
        first = asyncio.ensure_future(c.wait_disconnect())
        await _settle()
        first.cancel()
        await _settle()
        second = asyncio.ensure_future(c.wait_disconnect())
        await _settle()
        c.disconnect()
        await _settle()
        assert second.done() and second.exception() is None

    asyncio.run(main())


def test_rsgi_error_before_the_response_is_an_empty_500(
    fake_cycle: type[FakeCycle], server_log: _Records
) -> None:
    err = RuntimeError("boom")

    async def app(scope: Any, proto: Any) -> None:
        raise err

    c = fake_cycle()
    serve(partial(RSGIAdapter, app), c)
    assert c.events == [("respond", 500, [], b"")]
    assert server_log.exceptions() == [err]


def test_rsgi_no_response_is_an_empty_500(fake_cycle: type[FakeCycle], server_log: _Records) -> None:
    async def app(scope: Any, proto: Any) -> None:
        return None

    c = fake_cycle()
    serve(partial(RSGIAdapter, app), c)
    assert c.events == [("respond", 500, [], b"")]
    assert server_log.messages() == ["RSGI application returned without a response"]


def test_rsgi_error_mid_stream_truncates(fake_cycle: type[FakeCycle], server_log: _Records) -> None:
    async def app(scope: Any, proto: Any) -> None:
        tr = proto.response_stream(200, [])
        await tr.send_bytes(b"partial")
        raise RuntimeError("boom mid-stream")

    c = fake_cycle()
    serve(partial(RSGIAdapter, app), c)
    assert c.kinds() == ["start", "data", "abort"]  # never a clean end, never a 500
    assert len(server_log.records) == 1


def test_rsgi_error_after_a_complete_response_is_only_logged(
    fake_cycle: type[FakeCycle], server_log: _Records
) -> None:
    async def app(scope: Any, proto: Any) -> None:
        proto.response_str(200, [], "fine")
        raise RuntimeError("after")

    c = fake_cycle()
    serve(partial(RSGIAdapter, app), c)
    assert c.events == [("respond", 200, [], b"fine")]
    assert [str(e) for e in server_log.exceptions()] == ["after"]


def test_rsgi_base_exception_is_answered_then_propagates(fake_cycle: type[FakeCycle]) -> None:
    async def app(scope: Any, proto: Any) -> None:
        raise _Stop

    c = fake_cycle()
    with pytest.raises(_Stop):
        serve(partial(RSGIAdapter, app), c)
    assert c.events == [("respond", 500, [], b"")]


def test_rsgi_files(fake_cycle: type[FakeCycle], tmp_path: Path) -> None:
    p = tmp_path / "data.bin"
    data = bytes(range(256)) * 64
    p.write_bytes(data)
    errors: list[str] = []

    async def app(scope: Any, proto: Any) -> None:
        q = dict(kv.split("=") for kv in scope.query_string.split("&") if kv)
        if scope.path == "/file":
            proto.response_file(
                200, [("content-type", "application/octet-stream"), ("content-length", "1")], q["p"]
            )
        elif scope.path == "/range":
            proto.response_file_range(206, [("x-r", "1")], q["p"], int(q["s"]), int(q["e"]))
        else:
            try:
                proto.response_file_range(206, [], str(p), 5, 5)
            except ValueError as exc:
                errors.append(str(exc))
                proto.response_str(200, [], str(exc))

    adapter = partial(RSGIAdapter, app)

    def get(target: str, method: str = "GET") -> FakeCycle:
        c = fake_cycle(method, target.encode())
        serve(adapter, c)
        return c

    whole = get(f"/file?p={p}")
    assert whole.events == [
        (
            "start",
            200,
            [(b"content-type", b"application/octet-stream"), (b"content-length", str(len(data)).encode())],
            False,
        ),
        ("file", data),
        ("finish",),
    ]
    part = get(f"/range?p={p}&s=1000&e=7000")
    assert part.status == 206 and part.response_body == data[1000:7000]
    assert get(f"/range?p={p}&s=10&e={len(data) + 500}").response_body == data[10:]  # clamped to the size
    assert get("/file?p=/nonexistent/file").events == [("respond", 404, [], b"")]
    head = get(f"/file?p={p}", "HEAD")
    assert head.kinds() == ["start", "finish"] and head.bytes_sent == 0
    assert get("/badrange").response_body == b"Invalid range" and errors == ["Invalid range"]


def test_rsgi_scope(fake_cycle: type[FakeCycle]) -> None:
    scopes: list[Any] = []

    async def app(scope: Any, proto: Any) -> None:
        scopes.append(scope)
        proto.response_empty()

    adapter = partial(RSGIAdapter, app)
    headers = [(b"x-multi", b"1"), (b"x-multi", b"2"), (b"x-other", b"\xe9")]
    serve(adapter, fake_cycle("GET", b"/sc%6fpe%c0?a=%20b&c", headers=headers, http_version="1.0"))
    serve(adapter, fake_cycle("POST", b"/h2", http_version="2", authority="example.org", client=None))
    one, two = scopes
    assert (one.proto, one.rsgi_version, one.http_version, one.method) == ("http", "1.6", "1", "GET")
    assert (one.path, one.query_string, one.authority) == ("/scope\ufffd", "a=%20b&c", None)
    assert (one.server, one.client, one.scheme) == ("127.0.0.1:8000", "127.0.0.1:40000", "http")
    assert one.headers.get_all("X-Multi") == ["1", "2"] and one.headers["x-other"] == "\xe9"
    assert one.headers.keys() == ["x-multi", "x-other"] and len(one.headers) == 2
    assert (two.http_version, two.authority, two.client) == ("2", "example.org", "")


def test_rsgi_dunder_rsgi_wins_over_call(fake_cycle: type[FakeCycle]) -> None:
    class App:
        async def __rsgi__(self, scope: Any, proto: Any) -> None:
            proto.response_str(200, [], "rsgi")

        async def __call__(self, scope: Any, proto: Any) -> None:
            proto.response_str(200, [], "call")

    c = fake_cycle()
    serve(partial(RSGIAdapter, App()), c)
    assert c.response_body == b"rsgi"


# ================================================================= WSGI


def run_wsgi(app: Any, cycle: FakeCycle, until: Callable[[], bool] | None = None, threads: int = 2) -> Any:
    """Serve one request with a WSGIAdapter inside asyncio.run: the app runs on the adapter's
    thread pool, the cycle is completed on the loop. Returns what `handler` returned."""

    async def main() -> Any:
        adapter = WSGIAdapter(app, AppConfig(blocking_threads=threads))
        try:
            coro = adapter.handler(cycle)
            if coro is not None:
                await asyncio.wait_for(coro, 10)
            await _until(until or (lambda: cycle.response_done), "the response to complete")
            await _settle()  # tasks the completion started (file_wrapper) finish their step
        finally:
            adapter.pool.shutdown()
        return coro

    return asyncio.run(main())


class Closing:
    """An iterable whose close() is recorded (PEP 3333: the server must always call it)."""

    def __init__(self, items: list[bytes], fail_at: int = -1) -> None:
        self.items = items
        self.fail_at = fail_at
        self.closed = 0

    def __iter__(self) -> Iterator[bytes]:
        for i, item in enumerate(self.items):
            if i == self.fail_at:
                raise RuntimeError("iteration failed")
            yield item

    def close(self) -> None:
        self.closed += 1


def test_wsgi_list_body_is_one_respond(fake_cycle: type[FakeCycle]) -> None:
    def app(environ: Message, start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"Hello, ", b"world!"]

    c = fake_cycle()
    assert run_wsgi(app, c) is None  # a request with its body here needs no coroutine
    assert c.events == [("respond", 200, [(b"Content-Type", b"text/plain")], b"Hello, world!")]


def test_wsgi_exc_info_before_anything_was_sent_replaces_the_response(fake_cycle: type[FakeCycle]) -> None:
    """tests/apps/wsgi_app.py /exc_info."""

    def app(environ: Message, start_response: Any) -> list[bytes]:
        try:
            raise ValueError("oops")
        except ValueError:
            start_response("200 OK", [("X-First", "1")])
            start_response("500 Internal Server Error", [("X-Second", "1")], sys.exc_info())
        return [b"recovered"]

    c = fake_cycle()
    run_wsgi(app, c)
    assert c.events == [("respond", 500, [(b"X-Second", b"1")], b"recovered")]


def test_wsgi_exc_info_after_the_head_was_sent_reraises_and_truncates(
    fake_cycle: type[FakeCycle], server_log: _Records
) -> None:
    """tests/apps/wsgi_app.py /exc_info_late."""

    def app(environ: Message, start_response: Any) -> list[bytes]:
        write = start_response("200 OK", [])
        write(b"sent")
        try:
            raise ValueError("too late")
        except ValueError:
            start_response("500 Internal Server Error", [], sys.exc_info())
        return [b"never"]

    c = fake_cycle()
    run_wsgi(app, c)
    assert c.kinds() == ["start", "data", "abort"] and c.pieces == [b"sent"]
    assert [str(e) for e in server_log.exceptions()] == ["too late"]


def test_wsgi_start_response_twice_without_exc_info_is_a_500(fake_cycle: type[FakeCycle]) -> None:
    def app(environ: Message, start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        start_response("201 Created", [])
        return [b"x"]

    c = fake_cycle()
    run_wsgi(app, c)
    assert c.kinds() == ["error"]
    assert isinstance(c.failures[0], AssertionError)


@pytest.mark.parametrize(
    "result",
    [lambda sr: [b"x"], lambda sr: Closing([b"x"]), lambda sr: iter([])],
    ids=["list", "iterable", "empty-iterator"],
)
def test_wsgi_no_start_response_is_a_500(fake_cycle: type[FakeCycle], result: Any) -> None:
    def app(environ: Message, start_response: Any) -> Any:
        return result(start_response)

    c = fake_cycle()
    run_wsgi(app, c)
    assert c.kinds() == ["error"] and isinstance(c.failures[0], AssertionError)


def test_wsgi_bad_status_is_a_500(fake_cycle: type[FakeCycle]) -> None:
    def app(environ: Message, start_response: Any) -> list[bytes]:
        start_response("OK", [])
        return [b"x"]

    c = fake_cycle()
    run_wsgi(app, c)
    assert c.kinds() == ["error"] and isinstance(c.failures[0], ValueError)


def test_wsgi_write_then_returned_pieces_stream_in_order(fake_cycle: type[FakeCycle]) -> None:
    """tests/apps/wsgi_app.py /write."""

    def app(environ: Message, start_response: Any) -> list[bytes]:
        write = start_response("200 OK", [])
        write(b"written;")
        write(bytearray(b"again;"))
        return [b"returned"]

    c = fake_cycle()
    run_wsgi(app, c)
    assert c.kinds() == ["start", "data", "data", "data", "finish"]
    assert c.pieces == [b"written;", b"again;", b"returned"]


def test_wsgi_write_of_a_str_is_a_500(fake_cycle: type[FakeCycle]) -> None:
    def app(environ: Message, start_response: Any) -> list[bytes]:
        start_response("200 OK", [])("text")
        return []

    c = fake_cycle()
    run_wsgi(app, c)
    assert c.kinds() == ["error"] and isinstance(c.failures[0], TypeError)


def test_wsgi_generator_streams_in_order(fake_cycle: type[FakeCycle]) -> None:
    def app(environ: Message, start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        for i in range(5):
            yield b""  # empty pieces are skipped, never sent
            yield b"piece%d;" % i

    c = fake_cycle()
    run_wsgi(app, c)
    assert c.kinds() == ["start"] + ["data"] * 5 + ["finish"]
    assert c.pieces == [b"piece%d;" % i for i in range(5)]


def test_wsgi_start_response_inside_the_generator(fake_cycle: type[FakeCycle]) -> None:
    """tests/apps/wsgi_app.py /lazy_start: the head is only known at the first piece."""

    def app(environ: Message, start_response: Any) -> Iterator[bytes]:
        start_response("202 Accepted", [("X-Lazy", "1")])
        yield b"late"

    c = fake_cycle()
    run_wsgi(app, c)
    assert c.events == [("start", 202, [(b"X-Lazy", b"1")], False), ("data", b"late"), ("finish",)]


def test_wsgi_first_piece_filling_the_content_length_is_one_respond(fake_cycle: type[FakeCycle]) -> None:
    def app(environ: Message, start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Length", "5")])
        yield b"hello"

    c = fake_cycle()
    run_wsgi(app, c)
    assert c.events == [("respond", 200, [(b"Content-Length", b"5")], b"hello")]


def test_wsgi_empty_answer(fake_cycle: type[FakeCycle]) -> None:
    def app(environ: Message, start_response: Any) -> list[bytes]:
        start_response("204 No Content", [])
        return []

    c = fake_cycle()
    run_wsgi(app, c)
    assert c.events == [("respond", 204, [], b"")] and c.bytes_sent == 0


def test_wsgi_error_is_a_500_with_the_traceback(fake_cycle: type[FakeCycle], server_log: _Records) -> None:
    err = RuntimeError("boom")

    def app(environ: Message, start_response: Any) -> list[bytes]:
        raise err

    c = fake_cycle()
    run_wsgi(app, c)
    assert c.kinds() == ["error"] and c.failures == [err] and server_log.exceptions() == [err]


@pytest.mark.parametrize(
    ("items", "fail_at", "kinds"),
    [
        ([b"a", b"b", b"c"], -1, ["start", "data", "data", "data", "finish"]),
        ([b"a", b"b"], 1, ["start", "data", "abort"]),  # failed mid-stream: truncated
        ([b"a"], 0, ["error"]),  # failed before anything went out: a 500
    ],
    ids=["complete", "fails-mid-stream", "fails-first"],
)
def test_wsgi_close_is_always_called(
    fake_cycle: type[FakeCycle], items: list[bytes], fail_at: int, kinds: list[str]
) -> None:
    result = Closing(items, fail_at)

    def app(environ: Message, start_response: Any) -> Closing:
        start_response("200 OK", [])
        return result

    c = fake_cycle()
    run_wsgi(app, c)
    assert c.kinds() == kinds and result.closed == 1


def test_wsgi_close_is_called_when_the_client_leaves_mid_stream(
    fake_cycle: type[FakeCycle], server_log: _Records
) -> None:
    result = Closing([b"x%d" % i for i in range(50)])

    def app(environ: Message, start_response: Any) -> Closing:
        start_response("200 OK", [])
        return result

    c = fake_cycle(disconnect_after_writes=3)
    run_wsgi(app, c, until=lambda: result.closed > 0)
    assert c.kinds() == ["start", "data", "data", "data"] and result.closed == 1
    assert c.failures == [] and server_log.records == []  # the client left: nothing to report


def test_wsgi_generator_close_runs_its_finally(fake_cycle: type[FakeCycle]) -> None:
    cleaned: list[str] = []

    def app(environ: Message, start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Length", "4")])
        try:
            yield b"full"
        finally:
            cleaned.append("finally")

    c = fake_cycle()
    run_wsgi(app, c)
    # the first piece filled the declared length: one respond; the generator was closed
    assert c.events == [("respond", 200, [(b"Content-Length", b"4")], b"full")] and cleaned == ["finally"]


@pytest.mark.parametrize(
    "pieces",
    [[b"full", b"too much"], [b"fu", b"ll", b"too much"]],
    ids=["first-piece-fills", "streamed"],
)
def test_wsgi_no_more_than_the_declared_length(fake_cycle: type[FakeCycle], pieces: list[bytes]) -> None:
    def app(environ: Message, start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Length", "4")])
        yield from pieces

    c = fake_cycle()
    run_wsgi(app, c)
    assert c.response_body == b"full"


def test_wsgi_input_streamed_body(fake_cycle: type[FakeCycle]) -> None:
    def app(environ: Message, start_response: Any) -> list[bytes]:
        data = environ["wsgi.input"].read()
        start_response("200 OK", [])
        return [json.dumps({"len": len(data), "body": data.decode()}).encode()]

    c = fake_cycle("POST", script=[b"ab", b"cd", EOF])
    assert run_wsgi(app, c) is not None  # the body was on its way: read on the loop first
    assert json.loads(c.response_body) == {"len": 4, "body": "abcd"}


def test_wsgi_handler_returns_a_coroutine_only_while_the_body_is_on_its_way(
    fake_cycle: type[FakeCycle],
) -> None:
    def app(environ: Message, start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        return [environ["wsgi.input"].read()]

    async def main() -> list[bool]:
        adapter = WSGIAdapter(app, AppConfig(blocking_threads=1))
        kinds = []
        try:
            for c in (fake_cycle("POST", body=b"here"), fake_cycle("POST", script=[b"late", EOF])):
                coro = adapter.handler(c)
                kinds.append(coro is not None)
                if coro is not None:
                    await coro
                await _until(lambda c=c: c.response_done, "the response")
                assert c.response_body in (b"here", b"late")
        finally:
            adapter.pool.shutdown()
        return kinds

    assert asyncio.run(main()) == [False, True]


def test_wsgi_client_gone_before_the_body_never_runs_the_app(fake_cycle: type[FakeCycle]) -> None:
    ran: list[bool] = []

    def app(environ: Message, start_response: Any) -> list[bytes]:
        ran.append(True)
        start_response("200 OK", [])
        return [b""]

    c = fake_cycle("POST", script=[DISCONNECT], eof=False)
    run_wsgi(app, c)
    assert ran == [] and c.events == [] and c.disconnected


def test_wsgi_client_gone_mid_body_is_an_oserror_in_the_app(fake_cycle: type[FakeCycle]) -> None:
    seen: list[BaseException] = []

    def app(environ: Message, start_response: Any) -> list[bytes]:
        try:
            environ["wsgi.input"].read()
        except OSError as exc:
            seen.append(exc)
        start_response("200 OK", [])
        return [b"nobody listens"]

    c = fake_cycle("POST", script=[b"ab", DISCONNECT])
    run_wsgi(app, c, until=lambda: bool(seen) and c.response_done)
    assert len(seen) == 1 and c.events == []


def test_wsgi_file_wrapper(fake_cycle: type[FakeCycle], tmp_path: Path) -> None:
    p = tmp_path / "f.bin"
    data = bytes(range(256)) * 100
    p.write_bytes(data)
    files: list[Any] = []

    def app(environ: Message, start_response: Any) -> Any:
        f = open(p, "rb")  # noqa: SIM115 - the server closes it
        files.append(f)
        if environ["QUERY_STRING"] == "offset":
            f.seek(100)
        start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", "999999")])
        return environ["wsgi.file_wrapper"](f, 8192)

    whole = fake_cycle("GET", b"/file")
    run_wsgi(app, whole)
    # the app's content-length (larger than the file) gives way to the bytes really sent
    assert whole.events == [
        (
            "start",
            200,
            [(b"Content-Type", b"application/octet-stream"), (b"content-length", str(len(data)).encode())],
            False,
        ),
        ("file", data),
        ("finish",),
    ]
    offset = fake_cycle("GET", b"/file?offset")
    run_wsgi(app, offset)
    assert offset.pieces == [data[100:]]
    assert all(f.closed for f in files)  # the wrapper's close() closed the app's file
