"""Header helpers shared by the server's carriers and the interface adapters (bottom layer:
stdlib only, no protocol knowledge beyond RFC 9110's field semantics)."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["FRAMING_NAMES", "declared_length", "without_framing"]

# Message framing is the server's (RFC 9112 §6): an app's own values are dropped or replaced.
FRAMING_NAMES = frozenset({b"content-length", b"transfer-encoding", "content-length", "transfer-encoding"})


def declared_length(headers: Iterable[tuple[bytes | str, bytes | str]]) -> int:
    """The first `content-length` value (bytes or str names, any case), -1 when absent.
    Raises ValueError for a value that is not a non-negative integer (RFC 9110 §8.6)."""
    for name, value in headers:
        if name.lower() in (b"content-length", "content-length"):
            n = int(value)
            if n < 0:
                raise ValueError(f"invalid content-length {value!r}")
            return n
    return -1


def without_framing(
    headers: Iterable[tuple[bytes | str, bytes | str]],
) -> list[tuple[bytes | str, bytes | str]]:
    """`headers` minus content-length and transfer-encoding (the server sets the framing)."""
    return [(n, v) for n, v in headers if n.lower() not in FRAMING_NAMES]
