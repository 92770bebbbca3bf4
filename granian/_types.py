"""The contracts between the layers, as types (the bottom layer: imports only the stdlib).

- `RequestCycle`: what an interface adapter (granian/apps/*) sees of one HTTP request, on any
  protocol. The server's cycle core (granian.server.cycle.Cycle) implements it; HTTP/1 and
  HTTP/2 differ only in the `Carrier` underneath.
- `Carrier`: the protocol framing a cycle core writes through (HTTP/1: Content-Length or
  chunked, `100 Continue`, trailers after the last chunk; HTTP/2: HEADERS, DATA, END_STREAM,
  interim `:status 100`, trailing HEADERS).
- `Connection`: what the per-loop ServerContext needs of any connection (timeouts, graceful
  shutdown, backpressure unparking), whatever its protocol.
- `Adapter` / `Handler`: the interface adapters the worker builds (ASGI, RSGI, WSGI).
- `WebSocketSession`: the object a WebSocket request gets next to its cycle (accept, messages,
  close); it never uses the cycle's HTTP response methods.
- ASGI message TypedDicts for the adapters and their tests.

The semantics of each member are in granian.server.cycle's docstring (the contract text).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import IO, Any, Literal, Protocol, TypedDict

__all__ = [
    "ASGIHTTPScope",
    "Adapter",
    "Carrier",
    "ClientDisconnected",
    "Connection",
    "HTTPDisconnectEvent",
    "HTTPRequestEvent",
    "HTTPResponseBodyEvent",
    "HTTPResponseStartEvent",
    "HTTPResponseTrailersEvent",
    "Handler",
    "Headers",
    "RequestCycle",
    "WebSocketSession",
]

Headers = Iterable[tuple[bytes | str, bytes | str]]
Address = tuple[str, int]


class ClientDisconnected(ConnectionResetError):
    """Raised by `RequestCycle.write`/`sendfile` once the client connection is gone."""


class RequestCycle(Protocol):
    """One HTTP request as the interface adapters see it (granian.server.cycle: "Contract")."""

    # request (read-only)
    method: str
    raw_path: bytes
    query: bytes
    http_version: str
    authority: str | None  # HTTP/2's `:authority`, None on HTTP/1
    headers: list[tuple[bytes, bytes]]
    scheme: str
    client: Address | None
    server: Address | None
    root_path: str
    keep_alive: bool
    # state
    disconnected: bool
    body_complete: bool
    response_started: bool
    response_done: bool
    status: int
    bytes_sent: int
    t0: float

    async def read(self) -> bytes | None: ...
    def read_buffered(self) -> bytes | None: ...
    async def wait_disconnect(self, until_done: bool = False) -> None: ...
    def respond(self, status: int, headers: Headers, body: bytes = b"") -> None: ...
    def start(self, status: int, headers: Headers, flush: bool = False) -> None: ...
    def start_trailers(self, status: int, headers: Headers, flush: bool = False) -> None: ...
    async def write(self, data: bytes) -> None: ...
    async def sendfile(self, file: IO[bytes], offset: int, count: int) -> None: ...
    def finish(self) -> None: ...
    def finish_trailers(self, headers: Headers) -> None: ...
    def fail(self, exc: BaseException | None = None) -> None: ...
    def abort(self) -> None: ...


Handler = Callable[[RequestCycle], Coroutine[Any, Any, None] | None]


class Adapter(Protocol):
    """An interface adapter: `handler(cycle)` serves one request and never raises."""

    handler: Handler

    async def startup(self) -> bool: ...
    async def shutdown(self) -> None: ...


class Carrier(Protocol):
    """The framing under a cycle core. Each call gets the cycle it is for; a carrier serves one
    cycle at a time per stream (HTTP/1: per connection, in order).

    Send results: `send_data` returns 0 when the bytes are queued, 1 when the transport's write
    buffer is over its high-water mark (the cycle then awaits `drain()`), 2 when the transport
    is already closing (the client is gone). `file_mode` says how a file body goes out: 0 as
    data pieces (`send_data`), 1 raw through `send_file` (zero-copy where the transport allows),
    2 not at all (a response without a body: HEAD, 204, 304). `send_head_trailers` is
    `send_head` for a response that ends with `send_trailers(fields)` (fields already checked
    and normalised by the cycle: lower-case bytes names, none forbidden in trailers) rather
    than `end()`; a carrier that cannot carry them there ends the response as `end()` does."""

    body_paused: bool
    scheme: str
    root_path: str
    client: Address | None
    server: Address | None

    @property
    def write_paused(self) -> bool: ...  # the transport's buffer is over its high-water mark

    def send_response(self, cycle: Any, status: int, headers: Headers, body: bytes) -> None: ...
    def send_head(self, cycle: Any, status: int, headers: Headers, flush: bool) -> None: ...
    def send_head_trailers(self, cycle: Any, status: int, headers: Headers, flush: bool) -> None: ...
    def send_data(self, cycle: Any, data: bytes) -> int: ...
    def end(self, cycle: Any) -> None: ...
    def send_trailers(self, cycle: Any, fields: list[tuple[bytes, bytes]]) -> None: ...
    def send_error(self, cycle: Any, status: int, body: bytes) -> None: ...
    def abort(self, cycle: Any) -> None: ...
    async def drain(self) -> None: ...
    def want_body(self, cycle: Any) -> None: ...
    def resume_body(self) -> None: ...
    def file_mode(self, cycle: Any) -> int: ...
    async def send_file(self, cycle: Any, file: IO[bytes], offset: int, count: int) -> None: ...
    def lost_future(self) -> Awaitable[None]: ...


class Connection(Protocol):
    """What ServerContext tracks of every connection (granian.server.context)."""

    # loop time since the connection waits for a request head; math.inf while it does not
    waiting_since: float

    def head_timeout(self) -> None: ...
    def shutdown(self) -> None: ...
    def unpark(self) -> None: ...


class WebSocketSession(Protocol):
    """A WebSocket request's session (RFC 6455), next to its cycle (the handshake request)."""

    subprotocols: list[str]

    async def accept(self, subprotocol: str | None = None, headers: Headers = ()) -> None: ...
    async def receive(self) -> bytes | str | None: ...
    async def send(self, data: bytes | str) -> None: ...
    async def close(self, code: int = 1000, reason: str = "") -> None: ...


# ---- ASGI messages (ASGI.md; the shapes uvicorn's _types.py also spells out)


class ASGIHTTPScope(TypedDict):
    type: Literal["http"]
    asgi: dict[str, str]
    http_version: str
    server: Address | None
    client: Address | None
    scheme: str
    method: str
    root_path: str
    path: str
    raw_path: bytes
    query_string: bytes
    headers: list[tuple[bytes, bytes]]
    state: dict[str, Any]
    extensions: dict[str, Any]


class HTTPRequestEvent(TypedDict):
    type: Literal["http.request"]
    body: bytes
    more_body: bool


class HTTPResponseStartEvent(TypedDict, total=False):
    type: Literal["http.response.start"]
    status: int
    headers: Iterable[tuple[bytes, bytes]]
    trailers: bool


class HTTPResponseBodyEvent(TypedDict, total=False):
    type: Literal["http.response.body"]
    body: bytes
    more_body: bool


class HTTPResponseTrailersEvent(TypedDict, total=False):
    type: Literal["http.response.trailers"]
    headers: Iterable[tuple[bytes, bytes]]
    more_trailers: bool


class HTTPDisconnectEvent(TypedDict):
    type: Literal["http.disconnect"]
