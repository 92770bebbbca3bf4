"""Sans-I/O HTTP/1.1 connection rules: persistence, request targets, body readers.

The asyncio protocol (granian.server.protocol) owns the socket and the buffers; this module owns
the decisions it makes about bytes, so they can be tested without a transport.
"""

from __future__ import annotations

from typing import Protocol

from .parser import F_CHUNKED, F_CONN_CLOSE, F_CONN_KEEPALIVE, ChunkedDecoder

__all__ = [
    "CONTINUE_RESPONSE",
    "DISCARD_LIMIT",
    "BodyReader",
    "ChunkedBody",
    "LengthBody",
    "body_reader",
    "split_target",
    "wants_keep_alive",
]

# RFC 9110 §10.1.1: the interim answer to `Expect: 100-continue`, sent only once the app
# actually asks for the body, so a server that answers early (e.g. 401) spares the upload.
CONTINUE_RESPONSE = b"HTTP/1.1 100 Continue\r\n\r\n"

# When the app answered without reading the whole body, the rest must be consumed before the
# next request on the connection can be parsed (RFC 9112 §9.3). Reading and dropping up to this
# many bytes keeps the connection; a larger remainder is cheaper to cut by closing (the same
# trade-off as gunicorn/uvicorn make, which close rather than drain big uploads).
DISCARD_LIMIT = 256 * 1024


def wants_keep_alive(minor: int, flags: int) -> bool:
    """Whether the client asked for a persistent connection (RFC 9112 §9.3): HTTP/1.1 persists
    unless it sent `Connection: close`; HTTP/1.0 only when it sent `Connection: keep-alive`."""
    if minor:
        return not flags & F_CONN_CLOSE
    return bool(flags & F_CONN_KEEPALIVE) and not flags & F_CONN_CLOSE


def split_target(target: bytes) -> tuple[bytes, bytes]:
    """(path, query) of a request-target (RFC 9112 §3.2). Origin-form is the common case;
    absolute-form (`http://host/p?q`, which servers must accept, §3.2.2) is reduced to its
    path; asterisk-form (`*`) is kept as is."""
    if target[:1] != b"/" and target != b"*":
        scheme_end = target.find(b"://")
        if scheme_end > 0:
            slash = target.find(b"/", scheme_end + 3)
            query_mark = target.find(b"?", scheme_end + 3)
            if slash < 0 or 0 <= query_mark < slash:
                target = b"/" + (target[query_mark:] if query_mark >= 0 else b"")
            else:
                target = target[slash:]
    q = target.find(b"?")
    if q < 0:
        return target, b""
    return target[:q], target[q + 1 :]


class BodyReader(Protocol):
    """Consumes body bytes from `buf[start:]`: returns (data, end, done) like ChunkedDecoder."""

    remaining: int

    def feed(self, buf: bytes, start: int) -> tuple[bytes, int, bool]: ...


class LengthBody:
    """A Content-Length delimited body (RFC 9112 §6.2)."""

    __slots__ = ("remaining",)

    def __init__(self, length: int) -> None:
        self.remaining = length

    def feed(self, buf: bytes, start: int) -> tuple[bytes, int, bool]:
        n = self.remaining
        avail = len(buf) - start
        if avail >= n:
            self.remaining = 0
            end = start + n
            return (buf if start == 0 and avail == n else buf[start:end]), end, True
        self.remaining = n - avail
        return (buf if start == 0 else buf[start:]), len(buf), False


class ChunkedBody:
    """A chunked body (RFC 9112 §7.1) over the C decoder; `remaining` is unknown (-1)."""

    __slots__ = ("_dec", "remaining")

    def __init__(self) -> None:
        self._dec = ChunkedDecoder()
        self.remaining = -1

    def feed(self, buf: bytes, start: int) -> tuple[bytes, int, bool]:
        return self._dec.feed(buf, start)


def body_reader(content_length: int, flags: int) -> BodyReader | None:
    """The reader for a request's body, or None when it has none (RFC 9112 §6.3: chunked wins;
    the parser already rejected chunked together with Content-Length)."""
    if flags & F_CHUNKED:
        return ChunkedBody()
    if content_length > 0:
        return LengthBody(content_length)
    return None
