"""The RSGI names apps import (RSGI.md "`granian.rsgi` names")."""

from __future__ import annotations

from ._granian import RSGIProtocolClosed as ProtocolClosed
from ._granian import RSGIProtocolError as ProtocolError
from .apps.rsgi import HTTPProtocol, HTTPStreamTransport
from .apps.rsgi_types import Headers, Scope, WebsocketMessage, WebsocketMessageType, WebsocketProtocol

__all__ = [
    "HTTPProtocol",
    "HTTPStreamTransport",
    "Headers",
    "ProtocolClosed",
    "ProtocolError",
    "Scope",
    "WebsocketMessage",
    "WebsocketMessageType",
    "WebsocketProtocol",
]
