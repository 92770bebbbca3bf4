"""Limits, flag bits and error reasons of the HTTP/1 request parser.

Shared by the C-backed parser (`parser.py`, whose C enums are checked against these numbers at
import) and the pure-Python reference parser (`refparser.py`), so both speak the same numbers.
Every limit names its precedent and the status it maps to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

# --- limits -------------------------------------------------------------------------------------

#: Largest request head (request-line + header lines + final CRLF), in bytes -> 431 (RFC 6585 5).
#: Precedent: hyper's default max buffer size (8192 + 4096 * 100), which is also the Rust
#: Granian's `--http1-buffer-size` default: a head that fits there fits here.
MAX_HEAD: Final = 417_792

#: Most header field lines in one head -> 431 (RFC 6585 5). Precedent: httparse/hyper's default
#: header array (100) used by the Rust Granian, and gunicorn's `limit_request_fields` (100).
MAX_HEADERS: Final = 100

#: Longest request-target, in bytes -> 414 (RFC 9110 15.5.15). Precedent: Apache's
#: `LimitRequestLine` (8190), the cap of gunicorn's `limit_request_line`; RFC 9112 3 asks for at
#: least 8000 octets of request-line to be supported.
MAX_TARGET: Final = 8190

#: Longest chunk-size line (size + chunk extensions) in a chunked body -> 400. Precedent:
#: node's fix for CVE-2024-22019 caps chunk extensions at 16 KiB; without a cap a peer can stream
#: extension bytes forever without sending any data.
CHUNK_LINE_MAX: Final = 16_384

#: Largest trailer section of a chunked body -> 431 (trailer fields are header fields, RFC 6585 5).
#: Precedent: node's default `--max-http-header-size` (16 KiB), which bounds trailers as well.
CHUNK_TRAILER_MAX: Final = 16_384

# --- flag bits of a parsed head -----------------------------------------------------------------

F_CHUNKED: Final = 1  # Transfer-Encoding ends in chunked (RFC 9112 6.1)
F_CONN_CLOSE: Final = 2  # Connection: close
F_CONN_KEEPALIVE: Final = 4  # Connection: keep-alive
F_EXPECT_CONTINUE: Final = 8  # Expect: 100-continue (RFC 9110 10.1.1)
F_UPGRADE: Final = 16  # Connection: upgrade together with an Upgrade field (RFC 9110 7.8)

# --- error codes (the C parser returns -code) and what each maps to -----------------------------

E_METHOD: Final = 1
E_TARGET: Final = 2
E_TARGET_TOO_LONG: Final = 3
E_VERSION: Final = 4
E_VERSION_UNSUPPORTED: Final = 5
E_EOL: Final = 6
E_HEADER_NAME: Final = 7
E_WS_BEFORE_COLON: Final = 8
E_NO_COLON: Final = 9
E_HEADER_VALUE: Final = 10
E_OBS_FOLD: Final = 11
E_HEAD_TOO_LARGE: Final = 12
E_TOO_MANY_HEADERS: Final = 13
E_CONTENT_LENGTH: Final = 14
E_CONTENT_LENGTH_MISMATCH: Final = 15
E_CL_AND_TE: Final = 16
E_TE_SYNTAX: Final = 17
E_TE_NOT_CHUNKED: Final = 18
E_TE_UNKNOWN: Final = 19
E_TE_HTTP10: Final = 20
E_DUP_HOST: Final = 21
E_ARGS: Final = 22
E_CHUNK_SIZE: Final = 30
E_CHUNK_OVERFLOW: Final = 31
E_CHUNK_EXT: Final = 32
E_CHUNK_EOL: Final = 33
E_TRAILER: Final = 34
E_CHUNK_LINE_TOO_LONG: Final = 35
E_TRAILER_TOO_LARGE: Final = 36

#: code -> (message, status to answer with before closing)
REASONS: Final[dict[int, tuple[str, int]]] = {
    E_METHOD: ("invalid method (not a token, or not followed by one SP)", 400),
    E_TARGET: ("invalid request-target (empty, or holds whitespace/control bytes)", 400),
    E_TARGET_TOO_LONG: ("request-target too long", 414),
    E_VERSION: ("malformed HTTP version", 400),
    E_VERSION_UNSUPPORTED: ("HTTP version not supported", 505),
    E_EOL: ("bare CR or bare LF: lines must end in CRLF", 400),
    E_HEADER_NAME: ("invalid header field name", 400),
    E_WS_BEFORE_COLON: ("whitespace between header field name and colon", 400),
    E_NO_COLON: ("header field line without a colon", 400),
    E_HEADER_VALUE: ("invalid byte in header field value", 400),
    E_OBS_FOLD: ("obsolete line folding or a line starting with whitespace", 400),
    E_HEAD_TOO_LARGE: ("request head too large", 431),
    E_TOO_MANY_HEADERS: ("too many header fields", 431),
    E_CONTENT_LENGTH: ("invalid Content-Length", 400),
    E_CONTENT_LENGTH_MISMATCH: ("conflicting Content-Length values", 400),
    E_CL_AND_TE: ("both Content-Length and Transfer-Encoding", 400),
    E_TE_SYNTAX: ("malformed Transfer-Encoding", 400),
    E_TE_NOT_CHUNKED: ("chunked is not the final (and only once) transfer coding", 400),
    E_TE_UNKNOWN: ("unsupported transfer coding", 501),
    E_TE_HTTP10: ("Transfer-Encoding in an HTTP/1.0 request", 400),
    E_DUP_HOST: ("more than one Host field", 400),
    E_CHUNK_SIZE: ("invalid chunk size", 400),
    E_CHUNK_OVERFLOW: ("chunk size too large", 400),
    E_CHUNK_EXT: ("invalid chunk extension", 400),
    E_CHUNK_EOL: ("missing CRLF in chunked body", 400),
    E_TRAILER: ("invalid trailer field", 400),
    E_CHUNK_LINE_TOO_LONG: ("chunk-size line too long", 400),
    E_TRAILER_TOO_LARGE: ("trailer section too large", 431),
}


@dataclass(frozen=True)
class Limits:
    """The three head limits; `parser.H1Limits` extends it with the C-side scratch space."""

    max_head: int = MAX_HEAD
    max_headers: int = MAX_HEADERS
    max_target: int = MAX_TARGET

    def __post_init__(self) -> None:
        # uint32 offsets in C; the header count bound keeps the output array small.
        if not 0 <= self.max_head < 2**32:
            raise ValueError(f"max_head must be in [0, 2**32), got {self.max_head}")
        if not 0 <= self.max_headers <= 65_535:
            raise ValueError(f"max_headers must be in [0, 65535], got {self.max_headers}")
        if not 0 <= self.max_target < 2**32:
            raise ValueError(f"max_target must be in [0, 2**32), got {self.max_target}")
