"""The events a session's `feed()` returns: plain tuples, the first item says which.

No event objects on the hot path (docs/ARCHITECTURE.md): the carrier dispatches on `ev[0]`.

- `(REQUEST, stream_id, method, path, scheme, authority, headers, end_stream)`: a request's
  header block. Pseudo-headers are split out (an absent one is `b""`); `headers` is
  `list[tuple[bytes, bytes]]`, names lower-case, in the order received, duplicates kept
  (cookies are not joined). `end_stream`: no body follows.
- `(DATA, stream_id, data, end_stream, flow)`: request-body bytes (`data` may be `b""` with
  `end_stream` set). Call `consume(stream_id, flow)` once the application has read them: that
  is what reopens the peer's window (the request-body backpressure).
- `(TRAILERS, stream_id, headers)`: request trailers; the body has ended.
- `(RESET, stream_id, error_code)`: the stream ended before its response did (RST_STREAM from
  the peer, or a stream error): the application sees a disconnect. May name a stream whose
  response the application already finished: ignore unknown ids.
- `(GOAWAY, last_stream_id, error_code)`: the peer is going away.
- `(SETTINGS_ACK,)`: the peer acknowledged our SETTINGS.
- `(PING_ACK, opaque)`: the peer answered `ping(opaque)`.
- `(CLOSE, error_code)`: always the last event of its batch: the session reads no more. Write
  `data_to_send()` (it holds the GOAWAY, if any) and close the connection.
"""

from __future__ import annotations

from typing import Any, Final

REQUEST: Final = 1
DATA: Final = 2
TRAILERS: Final = 3
RESET: Final = 4
GOAWAY: Final = 5
SETTINGS_ACK: Final = 6
PING_ACK: Final = 7
CLOSE: Final = 8

Event = tuple[Any, ...]
Headers = list[tuple[bytes, bytes]]

# RFC 9113 section 7 error codes.
NO_ERROR: Final = 0x0
PROTOCOL_ERROR: Final = 0x1
INTERNAL_ERROR: Final = 0x2
FLOW_CONTROL_ERROR: Final = 0x3
SETTINGS_TIMEOUT: Final = 0x4
STREAM_CLOSED: Final = 0x5
FRAME_SIZE_ERROR: Final = 0x6
REFUSED_STREAM: Final = 0x7
CANCEL: Final = 0x8
COMPRESSION_ERROR: Final = 0x9
CONNECT_ERROR: Final = 0xA
ENHANCE_YOUR_CALM: Final = 0xB
INADEQUATE_SECURITY: Final = 0xC
HTTP_1_1_REQUIRED: Final = 0xD


class H2Error(RuntimeError):
    """A session call the engine refused (a programming error in the caller, or out of memory)."""

    def __init__(self, msg: str, code: int = 0) -> None:
        super().__init__(msg)
        self.code = code


class H2HeaderError(H2Error, ValueError):
    """A response header name or value HTTP/2 cannot carry (RFC 9113 section 8.2)."""
