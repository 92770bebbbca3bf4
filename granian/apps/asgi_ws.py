"""ASGI WebSocket (shared/docs/ASGI.md "WebSocket messages") over a `WebSocketSession`.

The server routes a valid WebSocket handshake here (`ASGIAdapter.ws_handler(cycle, session)`);
before `websocket.accept` the request is still an HTTP request on its cycle, so every refusal
goes out, and is access-logged, as an HTTP response:
- `websocket.close` before accept, or an app that returns without accepting: 403;
- the `websocket.http.response.start/body` denial extension: the app's own response;
- an exception before accept: 500 (after it: close 1011).
After accept, messages are the session's: `websocket.receive` with `text` or `bytes`,
`websocket.disconnect` with the peer's code (1005 when it sent none; 1006 when the connection
was lost) and reason. Misuse raises RuntimeError naming it (send before accept, accept twice,
send after close); a send after the peer has gone raises `ClientDisconnected` (an OSError, as
the ASGI spec 2.4 asks and uvicorn does).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import TYPE_CHECKING, Any, Protocol

from .._headers import decode_path
from .._types import ClientDisconnected, WebSocketSession
from ..constants import SERVER_LOGGER
from ..websocket import valid_close_code

if TYPE_CHECKING:
    from .._types import RequestCycle as Cycle
    from .asgi import ASGIAdapter

__all__ = ["Session", "websocket"]

logger = logging.getLogger(SERVER_LOGGER)

Message = MutableMapping[str, Any]

_UNSUPPORTED = "Unsupported ASGI message"
_NOT_ACCEPTED = "ASGI flow error: WebSocket not accepted, cannot send (send websocket.accept first)"
_ACCEPTED_TWICE = "ASGI flow error: WebSocket already accepted"
_AFTER_CLOSE = "ASGI flow error: WebSocket already closed, cannot send"
_DENIAL_AFTER_ACCEPT = "ASGI flow error: websocket.http.response after websocket.accept"
_DENIAL_STARTED = "ASGI flow error: denial response already started"
_DENIAL_NOT_STARTED = "ASGI flow error: denial response not started"

# States of the app's side of one WebSocket
_CONNECTING = 0  # nothing sent yet
_DENYING = 1  # websocket.http.response.start received
_DENIAL_STREAMING = 2  # a denial body with more_body, head written
_ACCEPTED = 3
_CLOSED = 4  # the app closed (or was refused: 403, the denial's end)

_CONNECT = {"type": "websocket.connect"}


class Session(WebSocketSession, Protocol):
    """What the server's session (granian.server.ws) gives besides `_types.WebSocketSession`."""

    accepted: bool
    close_code: int
    close_reason: str

    @property
    def closed(self) -> bool: ...
    @property
    def receiving(self) -> bool: ...
    def start_close(self, code: int = 1000, reason: str = "") -> None: ...
    def push(self, data: bytes | str) -> bool: ...
    async def drain(self) -> None: ...


def _headers(value: Any) -> Iterable[tuple[bytes, bytes]]:
    if value is None:
        return ()
    try:
        pairs = [(bytes(n), bytes(v)) for n, v in value]
    except (TypeError, ValueError):
        raise RuntimeError(_UNSUPPORTED) from None
    return pairs


class _WS:
    __slots__ = ("cycle", "session", "state", "connected", "status", "headers")

    def __init__(self, cycle: Cycle, session: Session) -> None:
        self.cycle = cycle
        self.session = session
        self.state = _CONNECTING
        self.connected = False  # websocket.connect was delivered
        self.status = 0
        self.headers: Any = ()

    async def receive(self) -> Message:
        if not self.connected:
            self.connected = True
            return dict(_CONNECT)
        session = self.session
        if self.state == _ACCEPTED or (self.state == _CLOSED and session.accepted):
            data = await session.receive()
            if data is None:
                return {
                    "type": "websocket.disconnect",
                    "code": session.close_code,
                    "reason": session.close_reason,
                }
            if data.__class__ is str:
                return {"type": "websocket.receive", "text": data}
            return {"type": "websocket.receive", "bytes": data}
        if self.state == _CONNECTING or self.state == _DENYING or self.state == _DENIAL_STREAMING:
            # not accepted yet: nothing comes but the client going away
            await self.cycle.wait_disconnect(until_done=True)
        return {"type": "websocket.disconnect", "code": 1006, "reason": ""}

    async def send(self, message: Message) -> None:
        try:
            kind = message["type"]
        except (KeyError, TypeError):
            raise RuntimeError(_UNSUPPORTED) from None
        state = self.state
        session = self.session
        if kind == "websocket.send":
            if state == _ACCEPTED:
                data = message.get("bytes")
                if data is None:
                    data = message.get("text")
                    if data.__class__ is not str:
                        raise RuntimeError(_UNSUPPORTED)
                elif data.__class__ is not bytes:
                    if not isinstance(data, (bytearray, memoryview)):
                        raise RuntimeError(_UNSUPPORTED)
                    data = bytes(data)
                if session.push(data):
                    await session.drain()
                return
            raise RuntimeError(_AFTER_CLOSE if state == _CLOSED else _NOT_ACCEPTED)
        if kind == "websocket.accept":
            if state != _CONNECTING:
                if session.accepted:
                    raise RuntimeError(_ACCEPTED_TWICE)
                raise RuntimeError(_AFTER_CLOSE if state == _CLOSED else _DENIAL_STARTED)
            subprotocol = message.get("subprotocol")
            if subprotocol is not None and subprotocol.__class__ is not str:
                raise RuntimeError(_UNSUPPORTED)
            headers = _headers(message.get("headers"))
            try:
                await session.accept(subprotocol, headers)
            except ValueError:
                raise RuntimeError(_UNSUPPORTED) from None
            self.state = _ACCEPTED
            return
        if kind == "websocket.close":
            if state == _ACCEPTED:
                code = message.get("code")
                if code is None:
                    code = 1000
                reason = message.get("reason") or ""
                if code.__class__ is not int or not valid_close_code(code) or reason.__class__ is not str:
                    raise RuntimeError(_UNSUPPORTED)
                self.state = _CLOSED
                session.start_close(code, reason)
                return
            if state == _CONNECTING:
                # RFC 6455 §4.2.2 leaves a refusal to the server: ASGI says 403
                self.state = _CLOSED
                self.cycle.respond(403, (), b"")
                return
            if state == _CLOSED:
                raise RuntimeError(_AFTER_CLOSE)
            raise RuntimeError(_DENIAL_STARTED)
        if kind == "websocket.http.response.start":
            if state == _CONNECTING:
                status = message.get("status")
                if status.__class__ is not int or not 100 <= status <= 999:
                    raise RuntimeError(_UNSUPPORTED)
                self.status = status
                self.headers = _headers(message.get("headers"))
                self.state = _DENYING
                return
            if state == _ACCEPTED or (state == _CLOSED and session.accepted):
                raise RuntimeError(_DENIAL_AFTER_ACCEPT)
            raise RuntimeError(_DENIAL_STARTED)
        if kind == "websocket.http.response.body":
            if state == _DENYING or state == _DENIAL_STREAMING:
                body = message.get("body", b"")
                if not isinstance(body, (bytes, bytearray, memoryview)):
                    raise RuntimeError(_UNSUPPORTED)
                body = bytes(body)
                more = bool(message.get("more_body", False))
                cycle = self.cycle
                try:
                    if state == _DENYING:
                        if not more:
                            self.state = _CLOSED
                            cycle.respond(self.status, self.headers, body)
                            return
                        self.state = _DENIAL_STREAMING
                        cycle.start(self.status, self.headers)
                except (TypeError, ValueError):
                    self.state = _DENYING
                    raise RuntimeError(_UNSUPPORTED) from None
                try:
                    if body:
                        await cycle.write(body)
                except ClientDisconnected:
                    return
                if not more:
                    self.state = _CLOSED
                    cycle.finish()
                return
            if state == _ACCEPTED or (state == _CLOSED and session.accepted):
                raise RuntimeError(_DENIAL_AFTER_ACCEPT)
            raise RuntimeError(_DENIAL_NOT_STARTED)
        raise RuntimeError(_UNSUPPORTED)


async def websocket(adapter: ASGIAdapter, cycle: Cycle, session: Session) -> None:
    """Serve one WebSocket request with the adapter's app (its handler for upgrades)."""
    from .asgi import ASGI_VERSION, _extensions_tls

    raw_path = cycle.raw_path
    extensions: dict[str, Any] = {"websocket.http.response": {}}
    scheme = cycle.scheme
    if scheme == "https":
        tls = _extensions_tls(cycle).get("tls")
        if tls is not None:
            extensions["tls"] = tls
    scope: dict[str, Any] = {
        "type": "websocket",
        "asgi": ASGI_VERSION,
        "http_version": cycle.http_version,
        "scheme": "wss" if scheme == "https" else "ws",
        "server": cycle.server,
        "client": cycle.client,
        "root_path": adapter.root_path,
        "path": decode_path(raw_path) if b"%" in raw_path else raw_path.decode("utf-8", "replace"),
        "raw_path": raw_path,
        "query_string": cycle.query,
        "headers": cycle.headers,
        "subprotocols": list(session.subprotocols),
        "state": adapter.state.copy(),
        "extensions": extensions,
    }
    io = _WS(cycle, session)
    app: Callable[..., Awaitable[None]] = adapter.app
    try:
        await app(scope, io.receive, io.send)
    except BaseException as exc:  # noqa: BLE001 - the app's error is the server's to report
        if not session.accepted:
            if io.state == _CONNECTING or io.state == _DENYING:
                cycle.fail(exc)  # 500 (logs the traceback)
            else:
                logger.error("Application callable raised an exception", exc_info=exc)
                cycle.abort()
        else:
            logger.error("Application callable raised an exception", exc_info=exc)
            session.start_close(1011, "")  # internal error (RFC 6455 §7.4.1)
        if not isinstance(exc, Exception):
            raise
        return
    if session.accepted:
        if not session.closed:
            session.start_close(1000, "")
    elif not cycle.response_done:
        if io.state == _DENIAL_STREAMING:
            logger.error("ASGI callable returned without completing the denial response")
            cycle.abort()
        else:
            # returned before accepting: refused (ASGI: 403)
            cycle.respond(403, (), b"")
