"""Sans-I/O WebSocket (RFC 6455, RFC 7692): handshake, frame codec, connection state, deflate.

Never imports asyncio or socket; the server (granian/server) owns the transport. The public API
is written down in docs/internals.md ("WebSocket (sans-I/O)").
"""

from __future__ import annotations

from granian.websocket.connection import (
    CLOSED,
    CLOSING,
    DEFAULT_MAX_MESSAGE_SIZE,
    OPEN,
    Close,
    Event,
    Failure,
    Ping,
    Pong,
    WebSocketClosedError,
    WSConnection,
    valid_close_code,
)
from granian.websocket.deflate import DeflateConfig, PerMessageDeflate, negotiate
from granian.websocket.handshake import (
    HandshakeError,
    Upgrade,
    accept_key,
    check_request,
    reject_head,
    response_head,
    wants_websocket,
)

__all__ = [
    "CLOSED",
    "CLOSING",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "OPEN",
    "Close",
    "DeflateConfig",
    "Event",
    "Failure",
    "HandshakeError",
    "PerMessageDeflate",
    "Ping",
    "Pong",
    "Upgrade",
    "WSConnection",
    "WebSocketClosedError",
    "accept_key",
    "check_request",
    "negotiate",
    "reject_head",
    "response_head",
    "valid_close_code",
    "wants_websocket",
]
