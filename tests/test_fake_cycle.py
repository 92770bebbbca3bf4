"""The fake request cycle (tests/fakes.py FakeCycle) against the real one.

Each scenario is one script: what the client does (body pieces, its end, leaving, a full
write buffer) and what the app calls on its cycle, step by step. It runs twice, once on the
real `Cycle` (created by an `H1Protocol` over the shared FakeTransport, the client's actions
turned into HTTP/1.1 bytes) and once on a `FakeCycle`; after every step the outcome of each
call that finished (its value, or its exception) and the cycle's state must be the same, and
so must what reached the client in the end. The fake thus cannot drift from the real cycle
that the in-process adapter tests (tests/test_app_rules_inprocess.py) stand in for.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest
from fakes import DISCONNECT, EOF, FakeCycle, FakeTransport, Final  # (tests/ is on sys.path: conftest)

from granian._types import ClientDisconnected
from granian.server.context import ServerContext
from granian.server.h1 import H1Protocol

_CLIENT = ("10.0.0.1", 4321)  # FakeTransport's peername / sockname
_SERVER = ("10.0.0.2", 80)

# Request kinds: how the real side's request head looks, and the same request for the fake.
_HEADS = {
    "none": (b"GET /p?q=1 HTTP/1.1\r\nhost: x\r\n\r\n", "GET", [(b"host", b"x")]),
    "buffered": (
        b"POST /p?q=1 HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhello",
        "POST",
        [(b"host", b"x"), (b"content-length", b"5")],
    ),
    "chunked": (
        b"POST /p?q=1 HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n",
        "POST",
        [(b"host", b"x"), (b"transfer-encoding", b"chunked")],
    ),
    "continue": (
        b"POST /p?q=1 HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nexpect: 100-continue\r\n\r\n",
        "POST",
        [(b"host", b"x"), (b"transfer-encoding", b"chunked"), (b"expect", b"100-continue")],
    ),
    "head": (b"HEAD /p?q=1 HTTP/1.1\r\nhost: x\r\n\r\n", "HEAD", [(b"host", b"x")]),
    "http10": (b"GET /p?q=1 HTTP/1.0\r\nhost: x\r\n\r\n", "GET", [(b"host", b"x")]),
}


class RealSide:
    """The real cycle: an H1Protocol parses the request and creates it."""

    def __init__(self, kind: str, loop: asyncio.AbstractEventLoop) -> None:
        seen = []

        def handler(cycle: Any) -> None:
            seen.append(cycle)  # the contract allows a synchronous handler

        self.proto = H1Protocol(ServerContext(loop, handler))
        self.transport = FakeTransport()
        self.proto.connection_made(self.transport)  # type: ignore[arg-type]
        self.proto.data_received(_HEADS[kind][0])
        (self.cycle,) = seen

    def client(self, action: str, data: bytes = b"") -> None:
        p = self.proto
        if action == "feed":
            p.data_received(b"%x\r\n%b\r\n" % (len(data), data))
        elif action == "final":
            p.data_received(b"%x\r\n%b\r\n0\r\n\r\n" % (len(data), data))
        elif action == "eof":
            p.data_received(b"0\r\n\r\n")
        elif action == "lose":
            p.connection_lost(None)
        elif action == "pause":
            p.pause_writing()
        elif action == "resume":
            p.resume_writing()
        else:
            raise AssertionError(action)

    def after_step(self) -> None:
        # asyncio calls connection_lost soon after a transport is closed or aborted
        if self.transport.closed and not self.proto._lost:
            self.proto.connection_lost(None)

    def wire(self) -> dict[str, Any]:
        data = self.transport.data
        out: dict[str, Any] = {"continue": False, "aborted": self.transport.aborted}
        if data.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"):
            out["continue"] = True
            data = data[len(b"HTTP/1.1 100 Continue\r\n\r\n") :]
        if not data:
            out.update(status=None, body=b"", complete=False, headers=[])
            return out
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ")[1])
        headers = [tuple(line.split(b": ", 1)) for line in lines[1:]]
        names = {n.lower(): v for n, v in headers}
        body, complete = b"", True
        if self.cycle.method == "HEAD" or status in (204, 304):
            pass
        elif names.get(b"transfer-encoding") == b"chunked":
            complete = False
            parts = []
            while rest:
                size_line, _, rest = rest.partition(b"\r\n")
                size = int(size_line, 16)
                if size == 0:
                    complete = rest == b"\r\n"
                    break
                parts.append(rest[:size])
                rest = rest[size + 2 :]
            body = b"".join(parts)
        elif b"content-length" in names:
            length = int(names[b"content-length"])
            body, complete = rest[:length], len(rest) >= length
        else:
            body = rest  # close-delimited (HTTP/1.0)
            complete = self.transport.closed and not self.transport.aborted
        out.update(status=status, body=body, complete=complete, headers=headers)
        return out


class FakeSide:
    """The same request as a FakeCycle; the client's actions go to its client side."""

    def __init__(self, kind: str, loop: asyncio.AbstractEventLoop) -> None:
        _, method, headers = _HEADS[kind]
        self.cycle = FakeCycle(
            method,
            b"/p?q=1",
            headers=headers,
            body=b"hello" if kind == "buffered" else b"",
            eof=kind not in ("chunked", "continue"),
            http_version="1.0" if kind == "http10" else "1.1",
            keep_alive=kind != "http10",
            client=_CLIENT,
            server=_SERVER,
        )

    def client(self, action: str, data: bytes = b"") -> None:
        c = self.cycle
        if action == "feed":
            c.feed(data)
        elif action == "final":
            c.feed(data, eof=True)
        elif action == "eof":
            c.feed(b"", eof=True)
        elif action == "lose":
            c.disconnect()
        elif action == "pause":
            c.pause_writing()
        elif action == "resume":
            c.resume_writing()
        else:
            raise AssertionError(action)

    def after_step(self) -> None:
        pass

    def wire(self) -> dict[str, Any]:
        c = self.cycle
        status = None
        for ev in c.events:
            if ev[0] in ("respond", "start", "error") and c.head_sent:
                status = ev[1]
                break
        bodyless = c.method == "HEAD" or status in (204, 304)
        return {
            "continue": ("continue",) in c.events,
            "aborted": c.aborted,
            "status": status,
            "body": b"" if bodyless else c.response_body,
            "complete": any(ev[0] in ("respond", "finish", "error") for ev in c.events),
            "headers": c.response_headers or [],
        }


_CLIENT_ACTIONS = {"feed", "final", "eof", "lose", "pause", "resume"}
_STATE = ("disconnected", "body_complete", "response_started", "response_done", "status", "bytes_sent")


def _outcome(fn: Any) -> tuple[Any, ...]:
    try:
        return ("ok", fn())
    except Exception as exc:  # noqa: BLE001 - the outcome is what is compared
        return _exc(exc)


def _exc(exc: BaseException) -> tuple[Any, ...]:
    # The contract fixes the RuntimeError messages and ClientDisconnected; ValueError/TypeError
    # texts of header validation are the implementation's own.
    if isinstance(exc, (RuntimeError, ClientDisconnected)):
        return ("raise", type(exc).__name__, str(exc))
    return ("raise", type(exc).__name__)


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def play(
    side_cls: type[RealSide] | type[FakeSide], kind: str, steps: list[tuple[Any, ...]], tmp: Path
) -> Any:
    """Run the script; returns (request attributes, per-step trace, wire summary)."""

    async def main() -> Any:
        side = side_cls(kind, asyncio.get_running_loop())
        cycle = side.cycle
        request = tuple(
            getattr(cycle, a)
            for a in ("method", "raw_path", "query", "http_version", "headers", "scheme", "client", "server")
        )
        tasks: dict[int, asyncio.Task[Any]] = {}
        files = []
        trace = []
        for i, (op, *args) in enumerate(steps):
            done: list[tuple[Any, ...]] = []
            if op in _CLIENT_ACTIONS:
                side.client(op, *args)
            elif op in ("read", "wait_disconnect", "wait_done", "write", "sendfile"):
                coro: Coroutine[Any, Any, Any]
                if op == "read":
                    coro = cycle.read()
                elif op == "wait_disconnect":
                    coro = cycle.wait_disconnect()
                elif op == "wait_done":
                    coro = cycle.wait_disconnect(until_done=True)
                elif op == "write":
                    coro = cycle.write(args[0])
                else:
                    data, offset, count = args
                    path = tmp / f"file{i}"
                    path.write_bytes(data)
                    f = open(path, "rb")  # noqa: SIM115 - closed at the end
                    files.append(f)
                    coro = cycle.sendfile(f, offset, count)
                tasks[i] = asyncio.ensure_future(coro)
            else:
                done.append((i, _outcome(lambda op=op, args=args: getattr(cycle, op)(*args))))
            await _settle()
            side.after_step()
            await _settle()
            for j, task in list(tasks.items()):
                if task.done():
                    del tasks[j]
                    exc = task.exception()
                    done.append((j, ("ok", task.result()) if exc is None else _exc(exc)))
            state = tuple(getattr(cycle, a) for a in _STATE) + (cycle.keep_alive,)
            trace.append((i, op, sorted(done), sorted(tasks), state))
        for task in tasks.values():
            task.cancel()
        await _settle()
        for f in files:
            f.close()
        return request, trace, side.wire()

    return asyncio.run(main())


def boom() -> ValueError:
    return ValueError("boom")


SCENARIOS: dict[str, tuple[str, list[tuple[Any, ...]]]] = {
    "buffered body, respond, then reads and no-ops": (
        "buffered",
        [
            ("read_buffered",),
            ("read",),
            ("read",),
            ("respond", 200, [(b"x-a", b"1")], b"ok"),
            ("read",),
            ("wait_done",),
            ("fail", None),
            ("abort",),
        ],
    ),
    "no body: one b'' read, then body_complete": (
        "none",
        [("read",), ("read_buffered",), ("respond", 201, [], b"x")],
    ),
    "streamed body in pieces": (
        "chunked",
        [
            ("read_buffered",),
            ("read",),
            ("feed", b"ab"),
            ("read",),
            ("feed", b"cd"),
            ("feed", b"ef"),
            ("read",),
            ("eof",),
            ("read",),
            ("read_buffered",),
            ("respond", 200, [], b"done"),
        ],
    ),
    "last piece arrives with its end": (
        "chunked",
        [("read",), ("final", b"xy"), ("read",), ("respond", 200, [], b"")],
    ),
    "misuse of the response calls": (
        "none",
        [
            ("write", b"x"),
            ("finish",),
            ("sendfile", b"abc", 0, 3),
            ("start", 200, [(b"content-type", b"text/plain")], False),
            ("start", 200, [], False),
            ("respond", 200, [], b""),
            ("write", b"a"),
            ("write", b""),
            ("finish",),
            ("finish",),
            ("write", b"late"),
            ("sendfile", b"abc", 0, 3),
            ("respond", 200, [], b""),
            ("fail", boom()),
            ("abort",),
        ],
    ),
    "bad status and headers raise before anything is sent": (
        "none",
        [
            ("respond", 200, [(b"x", b"a\r\nb")], b""),
            ("start", 200, [(b"bad name", b"v")], False),
            ("respond", 200, [(b"x", 5)], b""),
            ("respond", 200, [(b"content-length", b"abc")], b""),
            ("respond", 1000, [], b""),
            ("respond", 200, [("x-str", "v")], b"fine"),
        ],
    ),
    "client leaves while the app waits": (
        "chunked",
        [
            ("read",),
            ("wait_disconnect",),
            ("wait_done",),
            ("lose",),
            ("read",),
            ("respond", 200, [], b"late"),
            ("start", 200, [], False),
            ("fail", boom()),
            ("wait_disconnect",),
            ("wait_done",),
        ],
    ),
    "body buffered before the client left is still read": (
        "chunked",
        [("feed", b"ab"), ("lose",), ("read",), ("read",)],
    ),
    "fail before the start with unread body: 500 and close": (
        "chunked",
        [("wait_disconnect",), ("fail", boom()), ("read",), ("respond", 200, [], b"")],
    ),
    "fail before the start with the body read: 500, connection kept": (
        "buffered",
        [("read",), ("fail", None), ("wait_disconnect",), ("lose",)],
    ),
    "fail after the start aborts": (
        "none",
        [
            ("start", 200, [], False),
            ("write", b"partial"),
            ("fail", boom()),
            ("wait_disconnect",),
            ("wait_done",),
            ("finish",),
        ],
    ),
    "abort before the start": (
        "none",
        [("wait_done",), ("abort",), ("respond", 200, [], b"x"), ("abort",), ("fail", None)],
    ),
    "wait_disconnect follows the connection past the response": (
        "none",
        [("wait_done",), ("wait_disconnect",), ("respond", 200, [], b"ok"), ("wait_done",), ("lose",)],
    ),
    "backpressure: write waits for resume, client loss raises": (
        "none",
        [
            ("start", 200, [], True),
            ("pause",),
            ("write", b"a"),
            ("resume",),
            ("pause",),
            ("write", b"b"),
            ("lose",),
        ],
    ),
    "held head goes out with an empty write under backpressure": (
        "none",
        [("start", 200, [], False), ("pause",), ("write", b""), ("resume",), ("write", b"z"), ("finish",)],
    ),
    "sendfile as body pieces": (
        "none",
        [
            ("start", 200, [], False),
            ("sendfile", b"0123456789" * 100, 10, 500),
            ("sendfile", b"abc", 0, 0),
            ("sendfile", b"abc", 1, 5),
            ("finish",),
        ],
    ),
    "HEAD: the body is not counted": ("head", [("respond", 200, [], b"body")]),
    "HEAD stream: a file is skipped": (
        "head",
        [("start", 200, [], False), ("sendfile", b"abc", 0, 3), ("finish",)],
    ),
    "204: the body is not counted": ("none", [("respond", 204, [], b"")]),
    "100 Continue on the first wait for body": (
        "continue",
        [("read",), ("feed", b"abc"), ("read",), ("eof",), ("read",), ("respond", 200, [], b"")],
    ),
    "no 100 Continue once a response started": (
        "continue",
        [("respond", 200, [], b"early"), ("read",)],
    ),
    "unread body after the response: read() gives None": (
        "chunked",
        [("feed", b"ab"), ("respond", 200, [], b""), ("read",), ("read",)],
    ),
    "HTTP/1.0 response closes the connection": (
        "http10",
        [("wait_disconnect",), ("respond", 200, [], b"x")],
    ),
    "flushed head, pieces, finish": (
        "none",
        [("start", 200, [(b"content-type", b"text/event-stream")], True), ("write", b"e1"), ("finish",)],
    ),
}

# Found by this file: Cycle.write() after the client left raised RuntimeError("response
# already finished") instead of ClientDisconnected (fixed in granian.server.cycle, 2d1dfa0).
SCENARIOS.update(
    {
        "write after the client left mid-stream": (
            "none",
            [("start", 200, [], False), ("write", b"a"), ("lose",), ("write", b"b")],
        ),
        "write before the start after the client left": ("none", [("lose",), ("write", b"b")]),
        # the held-back head never went out: the client saw nothing, not a 200
        "write after an abort of a held head": (
            "none",
            [("start", 200, [], False), ("abort",), ("write", b"b")],
        ),
        "abort after a flushed head": ("none", [("start", 200, [], True), ("abort",), ("finish",)]),
    }
)


def _compare(kind: str, steps: list[tuple[Any, ...]], tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "fake").mkdir()
    real_req, real_trace, real_wire = play(RealSide, kind, steps, tmp_path / "real")
    fake_req, fake_trace, fake_wire = play(FakeSide, kind, steps, tmp_path / "fake")
    assert fake_req == real_req
    for real_step, fake_step in zip(real_trace, fake_trace, strict=True):
        assert fake_step == real_step
    real_headers = {(bytes(n).lower(), bytes(v)) for n, v in real_wire.pop("headers")}
    fake_headers = {(n.lower(), v) for n, v in fake_wire.pop("headers")}
    assert fake_headers <= real_headers  # the app's fields reached the client unchanged
    assert fake_wire == real_wire


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_fake_cycle_agrees_with_the_real_cycle(name: str, tmp_path: Path, caplog: Any) -> None:
    caplog.set_level(logging.CRITICAL, logger="_granian")  # fail(exc) logs tracebacks
    kind, steps = SCENARIOS[name]
    _compare(kind, steps, tmp_path)


def test_scenarios_exercise_every_outcome_kind(tmp_path: Path, caplog: Any) -> None:
    """The scripts above must really reach the rules they are named after (not agree by both
    doing nothing): spot-check the fake's trace of a few of them."""
    caplog.set_level(logging.CRITICAL, logger="_granian")
    _, trace, wire = play(FakeSide, *SCENARIOS["misuse of the response calls"], tmp_path)
    outcomes = [o for _, _, done, _, _ in trace for _, o in done]
    assert ("raise", "RuntimeError", "response not started") in outcomes
    assert ("raise", "RuntimeError", "response already started") in outcomes
    assert ("raise", "RuntimeError", "response already finished") in outcomes
    assert ("raise", "ClientDisconnected", "client disconnected") in outcomes
    assert wire["body"] == b"a" and wire["complete"]
    _, trace, _ = play(FakeSide, *SCENARIOS["streamed body in pieces"], tmp_path)
    reads = [o for _, op, done, _, _ in trace for _, o in done if o[0] == "ok" and o[1] is not None]
    assert [o[1] for o in reads] == [b"ab", b"cd", b"ef", b"", b""]


# ---------------------------------------------------------------- the fake's own script API


def test_script_plays_while_the_app_waits() -> None:
    async def main() -> None:
        c = FakeCycle("POST", b"/u", script=[b"a", b"b", EOF])
        assert c.read_buffered() is None  # the body is still on its way
        got = []
        while not c.body_complete:
            got.append(await c.read())
        assert got == [b"a", b"b", b""]
        c2 = FakeCycle("POST", b"/u", script=[b"a", Final(b"b")])
        assert [await c2.read(), await c2.read()] == [b"a", b"b"] and c2.body_complete
        c3 = FakeCycle("POST", b"/u", script=[b"a", DISCONNECT])
        assert [await c3.read(), await c3.read()] == [b"a", None]
        assert c3.disconnected and c3.response_done and c3.completions == 1
        # a GET whose client leaves later: the body is complete, the script waits for a wait
        c4 = FakeCycle(script=[DISCONNECT])
        assert await c4.read() == b"" and c4.body_complete and not c4.disconnected
        await c4.wait_disconnect(until_done=True)
        assert c4.disconnected

    asyncio.run(main())


def test_disconnect_after_writes_and_recording() -> None:
    async def main() -> None:
        done: list[FakeCycle] = []
        c = FakeCycle(disconnect_after_writes=2, on_complete=done.append)
        c.start(200, [("x-a", "1")])
        await c.write(b"1")
        await c.write(b"2")
        with pytest.raises(ClientDisconnected):
            await c.write(b"3")
        assert c.kinds() == ["start", "data", "data"] and c.pieces == [b"1", b"2"]
        assert c.response_headers == [(b"x-a", b"1")] and c.bytes_sent == 2
        assert not c.finished and not c.aborted and done == [c]

    asyncio.run(main())
