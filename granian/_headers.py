"""HTTP field and path helpers shared by the server's carriers and the interface adapters
(bottom layer: stdlib only, RFC 9110 field semantics, no protocol framing)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar
from urllib.parse import unquote_to_bytes

__all__ = ["FRAMING_NAMES", "decode_path", "declared_length", "without_framing"]

# Message framing is the server's (RFC 9112 §6): an app's own values are dropped or replaced.
FRAMING_NAMES = frozenset({b"content-length", b"transfer-encoding", "content-length", "transfer-encoding"})

_N = TypeVar("_N", bytes, str)
_V = TypeVar("_V", bytes, str)

_PERCENT = 0x25  # "%": an int operand makes `in` a memchr (a bytes operand first fails an int conversion)


def decode_path(raw: bytes) -> str:
    """ASGI and RSGI `path`: percent-decoded, then UTF-8 with invalid sequences replaced
    (`/%c0` -> `'/\\ufffd'`; ASGI.md, RSGI.md). The common undecorated path skips unquoting."""
    if _PERCENT in raw:
        raw = unquote_to_bytes(raw)
    return raw.decode("utf-8", "replace")


def declared_length(headers: Iterable[tuple[bytes | str, bytes | str]]) -> int:
    """The first `content-length` value (bytes or str names, any case), -1 when absent.
    Raises ValueError for a value that is not a non-negative integer (RFC 9110 §8.6)."""
    for name, value in headers:
        if name.lower() in (b"content-length", "content-length"):
            try:
                n = int(value)
            except ValueError:
                raise ValueError(f"invalid content-length {value!r}") from None
            if n < 0:
                raise ValueError(f"invalid content-length {value!r}")
            return n
    return -1


def without_framing(headers: Iterable[tuple[_N, _V]]) -> list[tuple[_N, _V]]:
    """`headers` minus content-length and transfer-encoding (the server sets the framing)."""
    return [(n, v) for n, v in headers if n.lower() not in FRAMING_NAMES]
