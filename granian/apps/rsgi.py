"""`--interface rsgi`: the RSGI 1.6 HTTP protocol (RSGI.md) over the request cycle.

Hot path: one `Scope` (slots, raw headers decoded lazily) and one `HTTPProtocol` per request;
`response_str`/`response_bytes` are one `Cycle.respond`, i.e. one transport write.
File and stream responses are driven after the app returns (the `response_*` methods are
synchronous by the spec): a stream's end is the app's return, a file is sent from disk then.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .._headers import decode_path
from .._types import ClientDisconnected
from ..constants import SERVER_LOGGER
from ..errors import RSGIProtocolClosed, RSGIProtocolError
from .rsgi_types import Headers, Scope
from .static import send_path

if TYPE_CHECKING:
    from .._types import RequestCycle as Cycle

__all__ = ["HTTPProtocol", "HTTPStreamTransport", "RSGIAdapter"]

logger = logging.getLogger(SERVER_LOGGER)

RSGIApp = Callable[[Scope, Any], Awaitable[None]]
StrHeaders = list[tuple[str, str]]

# HTTPProtocol._body states
_BODY_IDLE = 0
_BODY_WHOLE = 1  # `await protocol()` was used
_BODY_ITER = 2  # `async for` was used

# HTTPProtocol._kind: what the app answered with
_NONE = 0
_DONE = 1  # response_empty/str/bytes, already written
_FILE = 2
_STREAM = 3


class HTTPStreamTransport:
    """What `response_stream` returns: `send_bytes`/`send_str`, RSGIProtocolClosed once the
    client is gone."""

    __slots__ = ("_cycle",)

    def __init__(self, cycle: Cycle) -> None:
        self._cycle = cycle

    async def send_bytes(self, data: bytes) -> None:

        try:
            await self._cycle.write(data)
        except ClientDisconnected:
            raise RSGIProtocolClosed("Transport closed") from None
        except RuntimeError as exc:
            # writing after the response finished (the app kept the transport past its return)
            raise RSGIProtocolClosed(str(exc)) from None

    async def send_str(self, data: str) -> None:
        await self.send_bytes(data.encode("utf-8"))


class HTTPProtocol:
    """The RSGI HTTP protocol object handed to the app with the scope."""

    __slots__ = ("_cycle", "_body", "_kind", "_file")

    def __init__(self, cycle: Cycle) -> None:
        self._cycle = cycle
        self._body = _BODY_IDLE
        self._kind = _NONE
        self._file: tuple[str, int, StrHeaders, int, int | None] | None = None

    # ---------------------------------------------------------------- body

    async def __call__(self) -> bytes:
        if self._body != _BODY_IDLE:
            raise RSGIProtocolError("Request body already consumed")
        self._body = _BODY_WHOLE
        cycle = self._cycle
        first = await cycle.read()
        if first is None:
            raise RSGIProtocolClosed("Client disconnected")
        if cycle.body_complete:
            return first
        parts = [first]
        while not cycle.body_complete:
            chunk = await cycle.read()
            if chunk is None:
                raise RSGIProtocolClosed("Client disconnected")
            parts.append(chunk)
        return b"".join(parts)

    def __aiter__(self) -> HTTPProtocol:
        if self._body == _BODY_WHOLE:
            raise RSGIProtocolError("Request body already consumed")
        self._body = _BODY_ITER
        return self

    async def __anext__(self) -> bytes:
        cycle = self._cycle
        if cycle.body_complete:
            raise StopAsyncIteration
        chunk = await cycle.read()
        if chunk is None:
            raise RSGIProtocolClosed("Client disconnected")
        return chunk

    async def client_disconnect(self) -> None:
        # follows the connection, not the request (RSGI.md): the app cancels its own watcher
        await self._cycle.wait_disconnect()

    # ---------------------------------------------------------------- responses

    def response_empty(self, status: int = 200, headers: StrHeaders | None = None) -> None:
        if self._kind:
            return
        self._cycle.respond(status, headers or (), b"")
        self._kind = _DONE

    def response_str(self, status: int = 200, headers: StrHeaders | None = None, body: str = "") -> None:
        if self._kind:
            return
        self._cycle.respond(status, headers or (), body.encode("utf-8"))
        self._kind = _DONE

    def response_bytes(self, status: int = 200, headers: StrHeaders | None = None, body: bytes = b"") -> None:
        if self._kind:
            return
        self._cycle.respond(status, headers or (), bytes(body))
        self._kind = _DONE

    def response_file(self, status: int, headers: StrHeaders, file: str) -> None:
        if self._kind:
            return
        self._file = (file, status, list(headers), 0, None)
        self._kind = _FILE

    def response_file_range(self, status: int, headers: StrHeaders, file: str, start: int, end: int) -> None:
        if start >= end:
            raise ValueError("Invalid range")
        if self._kind:
            return
        self._file = (file, status, list(headers), start, end)
        self._kind = _FILE

    def response_stream(self, status: int = 200, headers: StrHeaders | None = None) -> HTTPStreamTransport:
        if self._kind:
            raise RSGIProtocolError("Response already started")
        self._cycle.start(status, headers or ())
        self._kind = _STREAM
        return HTTPStreamTransport(self._cycle)


class RSGIAdapter:
    """`--interface rsgi` (docs: granian.server.cycle "Interface adapters")."""

    def __init__(self, app: Any, settings: Any = None, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.target = app
        # `__rsgi__` wins over calling the object (RSGI.md "Application")
        self.app: RSGIApp = app.__rsgi__ if hasattr(app, "__rsgi__") else app
        if loop is None:
            # The worker passes its loop (set but not running, so `__rsgi_init__` may use
            # loop.run_until_complete). Built inside a running loop (embedding: embed.Server),
            # that loop is the one: the policy's "current" loop may be unset or another loop.
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = asyncio.get_event_loop_policy().get_event_loop()
        self.loop = loop
        init = getattr(app, "__rsgi_init__", None)
        self._init_error: BaseException | None = None
        if init is not None:
            try:
                init(loop)
            except Exception as exc:  # noqa: BLE001 - reported by startup() as a failed start
                self._init_error = exc
        self.handler = self._make_handler()

    async def startup(self) -> bool:
        if self._init_error is not None:
            logger.error("RSGI __rsgi_init__ failed", exc_info=self._init_error)
            return False
        return True

    async def shutdown(self) -> None:
        hook = getattr(self.target, "__rsgi_del__", None)
        if hook is not None:
            try:
                hook(self.loop)
            except Exception:  # noqa: BLE001 - shutdown goes on; the hook's failure is logged
                logger.exception("RSGI __rsgi_del__ failed")

    def ws_handler(self, cycle: Cycle, session: Any) -> Any:
        """A WebSocket upgrade request (granian.apps.rsgi_ws): the server calls this instead of
        `handler`, so plain HTTP requests pay nothing for WebSockets."""
        from .rsgi_ws import websocket

        return websocket(self, cycle, session)

    def _make_handler(self) -> Callable[[Cycle], Awaitable[None]]:
        app = self.app

        async def handler(cycle: Cycle) -> None:
            raw_path = cycle.raw_path
            version = cycle.http_version
            scope = Scope(
                "http",
                "1" if version == "1.0" else version,
                cycle.server,
                cycle.client,
                cycle.scheme,
                cycle.method,
                raw_path.decode("utf-8", "replace") if b"%" not in raw_path else decode_path(raw_path),
                cycle.query.decode("latin-1"),
                Headers(cycle.headers),
                cycle.authority,  # HTTP/2's `:authority`; None on HTTP/1 (RSGI.md)
            )
            proto = HTTPProtocol(cycle)
            try:
                await app(scope, proto)
            except BaseException as exc:  # noqa: BLE001 - the app's error is the server's to report
                logger.error("Application callable raised an exception", exc_info=exc)
                if not cycle.response_done:
                    if cycle.response_started:
                        cycle.abort()  # a truncated stream, never a clean response of another status
                    else:
                        cycle.respond(500, (), b"")
                if not isinstance(exc, Exception):
                    raise
                return
            kind = proto._kind
            if kind == _DONE:
                return
            if kind == _STREAM:
                if not cycle.response_done:
                    cycle.finish()
                return
            if kind == _FILE:
                assert proto._file is not None
                path, status, headers, start, end = proto._file
                try:
                    await send_path(cycle, path, status, headers, start, end)
                except BaseException as exc:  # noqa: BLE001
                    cycle.fail(exc)
                    if not isinstance(exc, Exception):
                        raise
                return
            logger.error("RSGI application returned without a response")
            cycle.respond(500, (), b"")

        return handler
