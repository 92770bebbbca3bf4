"""RSGI's request-side objects: the headers object and the scope (RSGI.md "Scope").

Both are built once per request on the hot path, so they are `__slots__` classes that keep the
parser's raw header list and decode lazily: an app that reads two headers pays for two.
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import IntEnum
from typing import Any, overload

from .._headers import decode_path

RSGI_VERSION = "1.6"

_MISSING = object()


class Headers:
    """Request headers: lower-case names, case-insensitive lookup, order and duplicates kept
    (RSGI.md "Headers object"). Values are decoded as latin-1, which maps every octet a field
    value may carry (RFC 9110 §5.5 obs-text) to one code point, losslessly."""

    __slots__ = ("_raw",)

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        # names arrive lower-cased from the parser (docs/internals.md §1)
        self._raw = raw

    @overload
    def get(self, key: str) -> str | None: ...
    @overload
    def get(self, key: str, default: str) -> str: ...
    @overload
    def get(self, key: str, default: object) -> object: ...

    def get(self, key: str, default: object = None) -> object:
        k = key.lower().encode("latin-1")
        for name, value in self._raw:
            if name == k:
                return value.decode("latin-1")
        return default

    def get_all(self, key: str) -> list[str]:
        k = key.lower().encode("latin-1")
        return [v.decode("latin-1") for n, v in self._raw if n == k]

    def __getitem__(self, key: str) -> str:
        v = self.get(key, _MISSING)
        if v is _MISSING:
            raise KeyError(key)
        assert isinstance(v, str)
        return v

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        k = key.lower().encode("latin-1")
        return any(n == k for n, _ in self._raw)

    def keys(self) -> list[str]:
        # dict.fromkeys keeps first-seen order while dropping repeats
        return list(dict.fromkeys(n.decode("latin-1") for n, _ in self._raw))

    def values(self) -> list[str]:
        return [v.decode("latin-1") for _, v in self._raw]

    def items(self) -> list[tuple[str, str]]:
        return [(n.decode("latin-1"), v.decode("latin-1")) for n, v in self._raw]

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len({n for n, _ in self._raw})

    def __repr__(self) -> str:
        return f"Headers({self.items()!r})"


def format_addr(addr: tuple[Any, ...] | None) -> str:
    """RSGI `server`/`client`: 'ip:port', IPv6 bracketed like Rust's SocketAddr Display;
    '' for a Unix socket (no address)."""
    if addr is None:
        return ""
    host = addr[0]
    if ":" in host:
        return f"[{host}]:{addr[1]}"
    return f"{host}:{addr[1]}"


class Scope:
    """The RSGI scope: an object with attributes, the same class for HTTP and WebSocket."""

    __slots__ = (
        "proto",
        "http_version",
        "_server",
        "_client",
        "scheme",
        "method",
        "path",
        "query_string",
        "headers",
        "authority",
    )
    rsgi_version = RSGI_VERSION

    def __init__(
        self,
        proto: str,
        http_version: str,
        server: str | tuple[Any, ...] | None,
        client: str | tuple[Any, ...] | None,
        scheme: str,
        method: str,
        path: str,
        query_string: str,
        headers: Headers,
        authority: str | None,
    ) -> None:
        self.proto = proto
        self.http_version = http_version
        # addresses are formatted on first access: most requests never look at them
        self._server = server
        self._client = client
        self.scheme = scheme
        self.method = method
        self.path = path
        self.query_string = query_string
        self.headers = headers
        self.authority = authority

    @property
    def server(self) -> str:
        v = self._server
        if v.__class__ is not str:
            v = self._server = format_addr(v)  # type: ignore[arg-type]
        return v

    @property
    def client(self) -> str:
        v = self._client
        if v.__class__ is not str:
            v = self._client = format_addr(v)  # type: ignore[arg-type]
        return v

    def __repr__(self) -> str:
        return (
            f"Scope(proto={self.proto!r}, http_version={self.http_version!r}, method={self.method!r}, "
            f"path={self.path!r}, query_string={self.query_string!r})"
        )


def split_target(target: bytes) -> tuple[str, str]:
    """(decoded path, raw query text) of an origin-form request target. The query is left
    undecoded (RSGI.md); latin-1 keeps any octet the parser admitted."""
    path, _, query = target.partition(b"?")
    return decode_path(path), query.decode("latin-1")


class WebsocketMessageType(IntEnum):
    """`msg.kind` of a WebSocket receive (RSGI.md)."""

    close = 0
    bytes = 1
    string = 2


class WebsocketMessage:
    """One received WebSocket message: `kind` and `data` (bytes, str, or None on close)."""

    __slots__ = ("kind", "data")

    def __init__(self, kind: int, data: bytes | str | None = None) -> None:
        self.kind = kind
        self.data = data

    def __repr__(self) -> str:
        return f"WebsocketMessage(kind={self.kind!r}, data={self.data!r})"


class WebsocketProtocol:
    """The RSGI WebSocket protocol type, for annotations and `isinstance`; the WebSocket
    implementation subclasses it (`accept()`, `close(status)`)."""

    __slots__ = ()
