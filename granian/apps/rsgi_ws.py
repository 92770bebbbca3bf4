"""RSGI WebSocket (shared/docs/RSGI.md "WebSocket protocol object") over a `WebSocketSession`.

`scope.proto == 'ws'`; `transport = await protocol.accept()` completes the upgrade (101);
`protocol.close(status)` before accept answers the upgrade request with a plain HTTP response
of that status (403 the usual refusal), after accept sends a close frame. Receives give
`WebsocketMessage(kind, data)`: 0 closed, 1 bytes, 2 str. The first receive after the session
ended gives kind 0; receiving again raises `RSGIProtocolClosed`, as does a send once the peer
has gone; a send after the app's own close raises `RSGIProtocolError`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .._headers import decode_path
from .._types import ClientDisconnected
from ..constants import SERVER_LOGGER
from ..errors import RSGIProtocolClosed, RSGIProtocolError
from ..websocket import valid_close_code
from .rsgi_types import Headers, Scope, WebsocketMessage
from .rsgi_types import WebsocketProtocol as _WebsocketProtocolType

if TYPE_CHECKING:
    from .._types import RequestCycle as Cycle
    from .asgi_ws import Session
    from .rsgi import RSGIAdapter

__all__ = ["WebsocketProtocol", "WebsocketTransport", "websocket"]

logger = logging.getLogger(SERVER_LOGGER)

_CLOSE = WebsocketMessage(0, None)


class WebsocketTransport:
    """What `accept()` returns: receive(), send_bytes(), send_str()."""

    __slots__ = ("_session", "_protocol", "_ended")

    def __init__(self, session: Session, protocol: WebsocketProtocol) -> None:
        self._session = session
        self._protocol = protocol
        self._ended = False

    async def receive(self) -> WebsocketMessage:
        session = self._session
        if self._ended:
            raise RSGIProtocolClosed("WebSocket closed")
        if session.receiving:
            raise RSGIProtocolError("WebSocket receive already in progress")
        data = await session.receive()
        if data is None:
            self._ended = True
            return _CLOSE
        if data.__class__ is str:
            return WebsocketMessage(2, data)
        return WebsocketMessage(1, data)

    async def send_bytes(self, data: bytes) -> None:
        if self._protocol._closed:
            raise RSGIProtocolError("WebSocket closed")
        session = self._session
        try:
            if session.push(bytes(data) if data.__class__ is not bytes else data):
                await session.drain()
        except ClientDisconnected:
            raise RSGIProtocolClosed("WebSocket closed") from None

    async def send_str(self, data: str) -> None:
        if self._protocol._closed:
            raise RSGIProtocolError("WebSocket closed")
        session = self._session
        try:
            if session.push(data):
                await session.drain()
        except ClientDisconnected:
            raise RSGIProtocolClosed("WebSocket closed") from None


class WebsocketProtocol(_WebsocketProtocolType):
    """The RSGI WebSocket protocol object handed to the app with a `ws` scope."""

    __slots__ = ("_cycle", "_session", "_transport", "_closed")

    def __init__(self, cycle: Cycle, session: Session) -> None:
        self._cycle = cycle
        self._session = session
        self._transport: WebsocketTransport | None = None
        self._closed = False

    async def accept(self) -> WebsocketTransport:
        if self._transport is not None:
            return self._transport
        if self._closed:
            raise RSGIProtocolError("WebSocket already closed")
        try:
            await self._session.accept()
        except ClientDisconnected:
            raise RSGIProtocolClosed("Client disconnected") from None
        self._transport = WebsocketTransport(self._session, self)
        return self._transport

    def close(self, status: int | None = None) -> None:
        if self._closed:
            return
        self._closed = True
        session = self._session
        if not session.accepted:
            cycle = self._cycle
            if not cycle.response_done:
                cycle.respond(status if status is not None and 100 <= status <= 999 else 403, (), b"")
            return
        # After accept `status` is a close code when it is one; frameworks pass their HTTP
        # status here (Emmett: 200), which is a normal closure.
        code = status if status is not None and valid_close_code(status) else 1000
        session.start_close(code, "")


async def websocket(adapter: RSGIAdapter, cycle: Cycle, session: Session) -> None:
    """Serve one WebSocket request with the adapter's app (its handler for upgrades)."""
    raw_path = cycle.raw_path
    version = cycle.http_version
    scope = Scope(
        "ws",
        "1" if version == "1.0" else version,
        cycle.server,
        cycle.client,
        cycle.scheme,  # RSGI.md: http/https for WebSockets too
        cycle.method,
        raw_path.decode("utf-8", "replace") if b"%" not in raw_path else decode_path(raw_path),
        cycle.query.decode("latin-1"),
        Headers(cycle.headers),
        None,
    )
    proto = WebsocketProtocol(cycle, session)
    try:
        await adapter.app(scope, proto)
    except BaseException as exc:  # noqa: BLE001 - the app's error is the server's to report
        if session.accepted:
            logger.error("Application callable raised an exception", exc_info=exc)
            session.start_close(1011, "")  # internal error (RFC 6455 §7.4.1)
        elif not cycle.response_done:
            cycle.fail(exc)  # 500 (logs the traceback)
        else:
            logger.error("Application callable raised an exception", exc_info=exc)
        if not isinstance(exc, Exception):
            raise
        return
    if session.accepted:
        if not session.closed:
            session.start_close(1000, "")
    elif not cycle.response_done:
        cycle.respond(403, (), b"")  # returned without accepting: refused
