"""The opening handshake (RFC 6455 4.2): check the upgrade request, build the 101 or the refusal.

Headers are the HTTP/1 parser's: a list of (lower-cased name, value) bytes pairs, values
without surrounding whitespace, order and duplicates kept.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from granian.errors import ProtocolError

__all__ = [
    "GUID",
    "HandshakeError",
    "Upgrade",
    "accept_key",
    "check_request",
    "reject_head",
    "response_head",
    "wants_websocket",
]

#: The GUID appended to the client's key (4.2.2 step 5.4).
GUID: Final[bytes] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: The only version of the protocol (4.4, 11.6); a 426 names it.
VERSION: Final[bytes] = b"13"

_TOKEN: Final = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# field-value bytes (RFC 9110 5.5): VCHAR, obs-text, SP and HTAB inside
_FIELD_VALUE: Final = re.compile(rb"[\x21-\x7e\x80-\xff]([\t \x21-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?|")
_REASONS: Final[dict[int, bytes]] = {400: b"Bad Request", 426: b"Upgrade Required"}


class HandshakeError(ProtocolError):
    """The upgrade request is not a valid WebSocket handshake. `status_hint` is 400 (bad
    request, 4.2.1) or 426 (wrong `Sec-WebSocket-Version`, 4.4); `headers` go with the
    answer (`sec-websocket-version: 13` with a 426)."""

    def __init__(self, msg: str, status_hint: int = 400, headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
        super().__init__(msg, status_hint)
        self.headers: list[tuple[bytes, bytes]] = list(headers)


@dataclass(frozen=True, slots=True)
class Upgrade:
    """A valid upgrade request: what the server and the app need to answer it."""

    #: the Sec-WebSocket-Accept value
    accept: bytes
    #: Sec-WebSocket-Protocol split on commas and trimmed, in order (ASGI's `subprotocols`)
    subprotocols: list[str]
    #: the Sec-WebSocket-Extensions header values, for deflate.negotiate()
    extensions: list[bytes]


def accept_key(key: bytes) -> bytes:
    """base64(SHA-1(key + GUID)) (4.2.2 step 5.4)."""
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


def _tokens(values: list[bytes]) -> list[bytes]:
    """The comma-separated elements of header values, trimmed, empty ones dropped."""
    out = []
    for value in values:
        for item in value.split(b","):
            item = item.strip(b" \t")
            if item:
                out.append(item)
    return out


def wants_websocket(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """The request asks for `Upgrade: websocket` (the dispatch's test; check_request then
    decides whether the handshake is valid)."""
    for name, value in headers:
        if name == b"upgrade" and b"websocket" in (t.lower() for t in _tokens([value])):
            return True
    return False


def check_request(method: bytes, headers: Iterable[tuple[bytes, bytes]], http_minor: int = 1) -> Upgrade:
    """Check an upgrade request against 4.2.1; raises HandshakeError (400, or 426 with
    `Sec-WebSocket-Version: 13` for another version)."""
    if method != b"GET":
        raise HandshakeError("WebSocket handshake: the method must be GET")
    if http_minor < 1:
        raise HandshakeError("WebSocket handshake: HTTP/1.1 or later is required")
    host = False
    upgrade: list[bytes] = []
    connection: list[bytes] = []
    keys: list[bytes] = []
    versions: list[bytes] = []
    protocols: list[bytes] = []
    extensions: list[bytes] = []
    for name, value in headers:
        if not name.startswith(b"sec-websocket-"):
            if name == b"host":
                host = True
            elif name == b"upgrade":
                upgrade.append(value)
            elif name == b"connection":
                connection.append(value)
            continue
        if name == b"sec-websocket-key":
            keys.append(value)
        elif name == b"sec-websocket-version":
            versions.append(value)
        elif name == b"sec-websocket-protocol":
            protocols.append(value)
        elif name == b"sec-websocket-extensions":
            extensions.append(value)
    if not host:
        raise HandshakeError("WebSocket handshake: missing Host")
    if b"websocket" not in (t.lower() for t in _tokens(upgrade)):
        raise HandshakeError("WebSocket handshake: missing Upgrade: websocket")
    if b"upgrade" not in (t.lower() for t in _tokens(connection)):
        raise HandshakeError("WebSocket handshake: missing Connection: upgrade")
    if not versions:
        raise HandshakeError("WebSocket handshake: missing Sec-WebSocket-Version")
    if VERSION not in _tokens(versions):
        raise HandshakeError(
            "WebSocket handshake: unsupported Sec-WebSocket-Version",
            426,
            [(b"sec-websocket-version", VERSION)],
        )
    if len(keys) != 1:
        raise HandshakeError("WebSocket handshake: exactly one Sec-WebSocket-Key is required")
    try:
        raw = base64.b64decode(keys[0], validate=True)
    except binascii.Error:
        raw = b""
    if len(raw) != 16:  # 4.1: a base64-encoded 16-byte nonce
        raise HandshakeError("WebSocket handshake: invalid Sec-WebSocket-Key")
    return Upgrade(
        accept=accept_key(keys[0]),
        subprotocols=[t.decode("latin-1") for t in _tokens(protocols)],
        extensions=extensions,
    )


def _check_field(name: bytes, value: bytes) -> None:
    # header injection guard: a name is a token, a value holds no CR, LF or NUL (RFC 9110 5)
    if _TOKEN.fullmatch(name) is None or _FIELD_VALUE.fullmatch(value) is None:
        raise ValueError(f"invalid response header {name!r}: {value!r}")


def response_head(
    accept: bytes,
    subprotocol: str | None = None,
    headers: Iterable[tuple[bytes, bytes]] = (),
    extension: bytes | None = None,
) -> bytes:
    """The 101 response head (4.2.2 step 5), ending with the blank line. `subprotocol` is the
    app's choice (a token, 4.1), `extension` the negotiated Sec-WebSocket-Extensions value
    (deflate.negotiate), `headers` the app's and the server's extra headers. Raises ValueError
    on a subprotocol or header that is not a valid field."""
    parts = [
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
        b"sec-websocket-accept: " + accept + b"\r\n"
    ]
    if subprotocol is not None:
        proto = subprotocol.encode("latin-1", "replace")
        if _TOKEN.fullmatch(proto) is None:
            raise ValueError(f"invalid subprotocol {subprotocol!r}")
        parts.append(b"sec-websocket-protocol: " + proto + b"\r\n")
    if extension:
        _check_field(b"sec-websocket-extensions", extension)
        parts.append(b"sec-websocket-extensions: " + extension + b"\r\n")
    for name, value in headers:
        _check_field(name, value)
        parts.append(name + b": " + value + b"\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


def reject_head(err: HandshakeError, headers: Iterable[tuple[bytes, bytes]] = ()) -> bytes:
    """A complete refusal (head and a short text body) for a failed handshake, with
    `connection: close`; `headers` are the server's extra headers (server, date)."""
    status = err.status_hint
    body = str(err).encode("utf-8", "replace")
    reason = _REASONS.get(status, b"Error")
    parts = [
        b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n"
        b"connection: close\r\n" % (status, reason, len(body))
    ]
    for name, value in (*err.headers, *headers):
        _check_field(name, value)
        parts.append(name + b": " + value + b"\r\n")
    parts.append(b"\r\n")
    parts.append(body)
    return b"".join(parts)
