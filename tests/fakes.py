"""Test doubles shared by the protocol tests (no sockets): one fake transport for every
connection-level unit test, as uvicorn's tests/protocols use one mock transport, and one fake
request cycle for the interface adapters (ASGI/RSGI/WSGI message-order rules in-process)."""

from __future__ import annotations

import asyncio
import logging
import os
from collections import deque
from collections.abc import Callable, Iterable
from typing import IO, Any

from granian._types import ClientDisconnected, Headers

__all__ = ["DISCONNECT", "EOF", "FakeCycle", "FakeTransport", "Final"]


class FakeTransport:
    def __init__(self) -> None:
        self.protocol: Any = None  # set_protocol() target (the dispatch seam's hand-off)
        self.out: list[bytes] = []
        self.writes = 0
        self.reading = True
        self.closed = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.writes += 1
        self.out.append(bytes(data))

    def writelines(self, data: Any) -> None:
        self.writes += 1
        self.out.append(b"".join(data))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("10.0.0.1", 4321), "sockname": ("10.0.0.2", 80)}.get(name, default)

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def get_protocol(self) -> Any:
        return self.protocol

    @property
    def data(self) -> bytes:
        return b"".join(self.out)


# ---------------------------------------------------------------- FakeCycle
#
# A pure in-memory `granian._types.RequestCycle` (the contract text is granian.server.cycle's
# docstring). It follows the contract's rules where the contract states them and the real
# `Cycle` (granian.server.cycle over the HTTP/1 carrier) where the contract is silent;
# tests/test_fake_cycle.py runs the same scripts against both so the two cannot drift apart.
# Carrier framing (content-length vs chunked, `connection: close`, HTTP/1.0 close-delimiting)
# is not modelled: the fake records what the adapter hands to the cycle.

_LOG = logging.getLogger("_granian")  # granian.constants.SERVER_LOGGER, where fail() logs
_500_BODY = b"Internal Server Error"
# RFC 9110 §5.6.2: the bytes a field name may hold.
_TCHAR = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


class _Marker:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


# Script elements (FakeCycle(script=...)): each one is something the client does, played one
# per turn of the loop while the app waits on the client (read(), wait_disconnect()).
EOF = _Marker("EOF")  # the request body ends (alone, as a chunked terminator arriving late)
DISCONNECT = _Marker("DISCONNECT")  # the client connection goes away


class Final:
    """Script element: the last piece of the body, arriving together with its end."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


def _header_bytes(what: str, item: object) -> bytes:
    if isinstance(item, str):
        return item.encode("latin-1")
    if isinstance(item, (bytes, bytearray, memoryview)):
        return bytes(item)
    raise TypeError(f"header {what} must be bytes or str, not {type(item).__name__}")


def _check_response(status: object, headers: Headers) -> list[tuple[bytes, bytes]]:
    """The contract's validation: bad status, names or values raise before anything is sent."""
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 999:
        raise ValueError(f"invalid status code {status!r}")
    out = []
    for name, value in headers:
        n = _header_bytes("name", name)
        v = _header_bytes("value", value)
        if not n or not _TCHAR.issuperset(n):
            raise ValueError(f"invalid header name {n!r}")
        if 13 in v or 10 in v or 0 in v:  # CR, LF, NUL: response splitting (RFC 9110 §5.5)
            raise ValueError(f"invalid header value {v!r}")
        if n.lower() == b"content-length" and not v.isdigit():
            raise ValueError(f"invalid content-length {v!r}")
        out.append((n, v))
    return out


class FakeCycle:
    """An in-memory request cycle: a scripted request, a recorded response.

    Request: `FakeCycle("POST", b"/path?query", headers=[...], body=b"...", script=[...])`.
    `body` is already buffered when the app starts; `script` is what the client does next,
    one element per loop turn while the app waits on it: bytes (a body piece), `Final(b)` (the
    last piece with its end), `EOF` (the end alone), `DISCONNECT` (the client leaves). The body
    is complete at the start (`eof`) unless the script still sends body. The test may also act
    as the client at any time: `feed(data, eof)`, `disconnect()`, `pause_writing()` /
    `resume_writing()`; `disconnect_after_writes=N` lets the client leave right after the N-th
    body piece went out.

    Response, as the adapter handed it over: `events` (in order) holds `("respond", status,
    headers, body)`, `("start", status, headers, flush)`, `("data", bytes)`, `("file", bytes)`,
    `("finish",)`, `("error", 500, body)` (fail() before the start), `("abort",)` and
    `("continue",)` (the `100 Continue` of `Expect: 100-continue`); `failures` holds every
    `fail()` argument. Shortcuts: `response_headers`, `response_body`, `pieces`, `finished`,
    `aborted`, `errored`.
    """

    t0 = 0.0

    def __init__(
        self,
        method: str = "GET",
        target: bytes = b"/",
        *,
        headers: Iterable[tuple[bytes, bytes]] = (),
        body: bytes = b"",
        script: Iterable[object] = (),
        eof: bool | None = None,
        http_version: str = "1.1",
        scheme: str = "http",
        client: tuple[str, int] | None = ("127.0.0.1", 40000),
        server: tuple[str, int] | None = ("127.0.0.1", 8000),
        root_path: str = "",
        keep_alive: bool = True,
        authority: str | None = None,
        disconnect_after_writes: int | None = None,
        on_complete: Callable[[FakeCycle], None] | None = None,
    ) -> None:
        # request (read-only for the app)
        self.method = method
        raw_path, _, query = target.partition(b"?")
        self.raw_path = raw_path
        self.query = query
        self.http_version = http_version
        self.headers = [(n.lower(), v) for n, v in headers]
        self.scheme = scheme
        self.client = client
        self.server = server
        self.root_path = root_path
        self.keep_alive = keep_alive
        self.authority = authority  # HTTP/2's `:authority`; None on HTTP/1
        # state (the contract's names)
        self.disconnected = False
        self.body_complete = False
        self.response_started = False
        self.response_done = False
        self.status = 0
        self.bytes_sent = 0
        # recording
        self.events: list[tuple[Any, ...]] = []
        self.failures: list[BaseException | None] = []
        self.completions = 0  # times the completion hook ran (must end up exactly 1)
        self.on_complete = on_complete
        # scripted client
        script = list(script)
        self._script: deque[object] = deque(script)
        if eof is None:
            eof = not any(el is not DISCONNECT for el in script)
        self._body: list[bytes] = [body] if body else []
        self._eof = eof
        self._expect_continue = any(n == b"expect" and v.lower() == b"100-continue" for n, v in self.headers)
        self._attached = True  # the response is not complete and the client is still here
        self._held_head = False  # start() without flush: the head waits for the first piece
        self.head_sent = False  # the response head reached the client (a held one may never)
        self._writes = 0
        self._disconnect_after = disconnect_after_writes
        self.write_paused = False
        self._turn: asyncio.Handle | None = None
        self._read_waiter: asyncio.Future[None] | None = None
        self._done_waiter: asyncio.Future[None] | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        self._lost_fut: asyncio.Future[None] | None = None
        self._connection_open = True

    # ---------------------------------------------------------------- recorded response

    @property
    def response_headers(self) -> list[tuple[bytes, bytes]] | None:
        for ev in self.events:
            if ev[0] in ("respond", "start"):
                return list(ev[2])
        return None

    @property
    def pieces(self) -> list[bytes]:
        return [ev[1] for ev in self.events if ev[0] in ("data", "file")]

    @property
    def response_body(self) -> bytes:
        for ev in self.events:
            if ev[0] == "respond":
                return bytes(ev[3])
            if ev[0] == "error":
                return bytes(ev[2])
        return b"".join(self.pieces)

    @property
    def finished(self) -> bool:
        return ("finish",) in self.events

    @property
    def aborted(self) -> bool:
        return ("abort",) in self.events

    @property
    def errored(self) -> bool:
        return any(ev[0] == "error" for ev in self.events)

    def kinds(self) -> list[str]:
        """The event names in order, e.g. ['start', 'data', 'finish']."""
        return [ev[0] for ev in self.events]

    # ---------------------------------------------------------------- the client side

    def feed(self, data: bytes, eof: bool = False) -> None:
        """Body bytes arrive (what the carrier's `_push` does)."""
        if self.disconnected:
            return
        if data:
            self._body.append(bytes(data))
        if eof:
            self._eof = True
        _wake(self._read_waiter)

    def disconnect(self) -> None:
        """The client connection goes away (what the connection's `connection_lost` does): a
        cycle still in flight is detached, its response counts as done (never completed)."""
        if self._connection_open:
            self._connection_open = False
            _wake(self._lost_fut)
            _wake(self._drain_waiter)
        if not self._attached:
            return  # the response was complete: this cycle is no longer the connection's
        self.disconnected = True
        self.keep_alive = False
        self._detach()
        if not self.response_done:
            self.response_done = True
            self._completed()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        _wake(self._drain_waiter)

    def _client_turn(self) -> None:
        """The app waits on the client: let the script's next element happen soon."""
        if self._script and self._turn is None:
            self._turn = asyncio.get_running_loop().call_soon(self._play)

    def _play(self) -> None:
        self._turn = None
        el = self._script.popleft()
        if el is EOF:
            self.feed(b"", eof=True)
        elif el is DISCONNECT:
            self.disconnect()
        elif isinstance(el, Final):
            self.feed(el.data, eof=True)
        elif isinstance(el, (bytes, bytearray, memoryview)):
            self.feed(bytes(el))
        else:
            raise TypeError(f"unknown script element {el!r}")
        # Someone still waiting for the client (not for body, which just arrived): go on.
        if _pending(self._done_waiter) or _pending(self._lost_fut):
            self._client_turn()

    # ---------------------------------------------------------------- body

    async def read(self) -> bytes | None:
        while True:
            body = self._body
            if body:
                data = body[0] if len(body) == 1 else b"".join(body)
                self._body = []
                if self._eof:
                    self.body_complete = True
                return data
            if self._eof:
                self.body_complete = True
                return b""
            if not self._attached:
                return None
            if self._expect_continue:
                # RFC 9110 §10.1.1: on the first wait for body, unless a response started
                self._expect_continue = False
                if not self.response_started:
                    self.events.append(("continue",))
            waiter = self._read_waiter = asyncio.get_running_loop().create_future()
            self._client_turn()
            try:
                await waiter
            finally:
                self._read_waiter = None

    def read_buffered(self) -> bytes | None:
        if not self._eof:
            return None
        self.body_complete = True
        body = self._body
        if not body:
            return b""
        self._body = []
        return body[0] if len(body) == 1 else b"".join(body)

    # ---------------------------------------------------------------- disconnect

    async def wait_disconnect(self, until_done: bool = False) -> None:
        loop = asyncio.get_running_loop()
        if until_done:
            if not self._attached:
                return
            if self._done_waiter is None:
                self._done_waiter = loop.create_future()
            waiter = self._done_waiter
        else:
            if self.disconnected:
                return
            if self._lost_fut is None:
                self._lost_fut = loop.create_future()
                if not self._connection_open:
                    self._lost_fut.set_result(None)
            waiter = self._lost_fut
        self._client_turn()
        # shielded: one waiter cancelling its wait must not cancel the shared future
        await asyncio.shield(waiter)

    # ---------------------------------------------------------------- response

    def _bodyless(self, status: int) -> bool:
        # RFC 9110 §6.4.1: no content after HEAD, 1xx, 204, 304 (not counted in bytes_sent)
        return self.method == "HEAD" or status < 200 or status in (204, 304)

    def _unread_body(self) -> None:
        # A client still waiting for `100 Continue` when the answer starts may never send its
        # body, or send it anyway (RFC 9110 §10.1.1): the connection cannot be kept.
        if self._expect_continue and not self._eof:
            self.keep_alive = False

    def respond(self, status: int, headers: Headers, body: bytes = b"") -> None:
        if self.response_started:
            raise RuntimeError("response already started")
        if not self._attached:
            self.response_started = self.response_done = True
            self.status = status
            return
        fields = _check_response(status, headers)
        self._unread_body()
        self.response_started = True
        self.status = status
        if not self._bodyless(status):
            self.bytes_sent = len(body)
        self.head_sent = True
        self.events.append(("respond", status, fields, bytes(body)))
        self._complete()

    def start(self, status: int, headers: Headers, flush: bool = False) -> None:
        if self.response_started:
            raise RuntimeError("response already started")
        if not self._attached:
            self.response_started = True
            self.status = status
            return
        fields = _check_response(status, headers)
        self._unread_body()
        self.response_started = True
        self.status = status
        self._held_head = not flush
        self.head_sent = flush
        self.events.append(("start", status, fields, flush))

    async def write(self, data: bytes) -> None:
        await self._send("data", data)

    async def _send(self, kind: str, data: bytes) -> None:
        if not self._attached:
            if self.disconnected:
                raise ClientDisconnected("client disconnected")
            raise RuntimeError("response already finished")
        if not self.response_started:
            raise RuntimeError("response not started")
        wrote = self._held_head or bool(data)
        self._held_head = False
        self.head_sent = True
        if data:
            self.bytes_sent += len(data)
            self.events.append((kind, bytes(data)))
            self._writes += 1
            if self._writes == self._disconnect_after:
                self.disconnect()
                return
        if wrote and self.write_paused:
            waiter = self._drain_waiter
            if waiter is None or waiter.done():
                waiter = self._drain_waiter = asyncio.get_running_loop().create_future()
            await waiter
            if self.disconnected:
                raise ClientDisconnected("client disconnected")

    async def sendfile(self, file: IO[bytes], offset: int, count: int) -> None:
        if not self._attached:
            raise ClientDisconnected("client disconnected")
        if not self.response_started:
            raise RuntimeError("response not started")
        if self._bodyless(self.status) or count <= 0:
            return
        data = os.pread(file.fileno(), count, offset)
        if data:
            await self._send("file", data)
        if len(data) < count:
            raise EOFError("file shorter than the requested range")

    def finish(self) -> None:
        if self.response_done:
            if self.disconnected:
                return  # as the real Cycle: ending a response the client left is a no-op
            raise RuntimeError("response already finished")
        if not self.response_started:
            raise RuntimeError("response not started")
        if not self._attached:
            self.response_done = True
            return
        self.events.append(("finish",))
        self._held_head = False
        self.head_sent = True
        self._complete()

    def fail(self, exc: BaseException | None = None) -> None:
        if exc is not None:
            _LOG.error("Application callable raised an exception", exc_info=exc)
        self.failures.append(exc)
        if self.response_done:
            return
        if not self.response_started and self._attached:
            self.response_started = True
            self.status = 500
            if not self.body_complete:
                self.keep_alive = False  # the unread rest of the body cannot be skipped safely
            self.bytes_sent = len(_500_BODY)
            self.head_sent = True
            self.events.append(("error", 500, _500_BODY))
            self._complete()
            return
        self.abort()

    def abort(self) -> None:
        if self.response_done:
            return
        self.keep_alive = False
        if not self._attached:
            self.response_done = True
            return
        self.events.append(("abort",))
        self.response_done = True
        self.disconnected = True  # we closed the connection: the client is gone
        self._detach()
        self._completed()
        self._close_connection()

    # ---------------------------------------------------------------- completion

    def _complete(self) -> None:
        self.response_done = True
        self._detach()
        self._completed()
        if not self.keep_alive:
            self._close_connection()

    def _detach(self) -> None:
        self._attached = False
        _wake(self._read_waiter)
        _wake(self._done_waiter)

    def _completed(self) -> None:
        self.completions += 1
        if self.on_complete is not None:
            self.on_complete(self)

    def _close_connection(self) -> None:
        # The server closes the connection after this response: RSGI's client_disconnect()
        # (which follows the connection) resolves.
        if self._connection_open:
            self._connection_open = False
            _wake(self._lost_fut)
            _wake(self._drain_waiter)


def _pending(fut: asyncio.Future[None] | None) -> bool:
    return fut is not None and not fut.done()


def _wake(fut: asyncio.Future[None] | None) -> None:
    if fut is not None and not fut.done():
        fut.set_result(None)
