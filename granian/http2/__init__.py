"""Sans-I/O HTTP/2 server sessions (RFC 9113): no sockets, no asyncio (contract:
docs/internals.md, "granian.http2").

    from granian import http2
    session = http2.new_session(http2.H2Config.from_settings(settings))
    events = session.feed(data)          # tuples, see granian.http2.events
    transport.write(session.data_to_send())

Two engines behind one interface (`Session`): the C shim over the system libnghttp2
(`"nghttp2"`, csrc/h2.c) and, where that library cannot be loaded, the pure-Python `h2`
library (`"h2"`, about 30x slower per request). `select_engine()` says which one runs and logs
it once per process.
"""

from __future__ import annotations

from granian.http2.config import H2Config
from granian.http2.engine import Session, engine_status, new_session, select_engine
from granian.http2.events import (
    CANCEL,
    CLOSE,
    DATA,
    ENHANCE_YOUR_CALM,
    FLOW_CONTROL_ERROR,
    GOAWAY,
    INTERNAL_ERROR,
    NO_ERROR,
    PING_ACK,
    PROTOCOL_ERROR,
    REFUSED_STREAM,
    REQUEST,
    RESET,
    SETTINGS_ACK,
    TRAILERS,
    Event,
    H2Error,
    H2HeaderError,
    Headers,
)

__all__ = [
    "CANCEL",
    "CLOSE",
    "DATA",
    "ENHANCE_YOUR_CALM",
    "FLOW_CONTROL_ERROR",
    "GOAWAY",
    "INTERNAL_ERROR",
    "NO_ERROR",
    "PING_ACK",
    "PROTOCOL_ERROR",
    "REFUSED_STREAM",
    "REQUEST",
    "RESET",
    "SETTINGS_ACK",
    "TRAILERS",
    "Event",
    "H2Config",
    "H2Error",
    "H2HeaderError",
    "Headers",
    "Session",
    "engine_status",
    "new_session",
    "select_engine",
]
