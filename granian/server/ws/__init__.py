"""WebSocket sessions (RFC 6455) over an HTTP/1.1 upgrade: granian.server.ws.session."""

from __future__ import annotations

from .session import WSSession, register

__all__ = ["WSSession", "register"]
