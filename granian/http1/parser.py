"""C-backed HTTP/1 request-head parser and chunked decoder (contract: docs/internals.md section 1).

The sole importer of `granian._native`'s parser. One cffi call per request head and no
callbacks: C writes the span offsets and framing facts (Content-Length, chunked, Connection,
Expect, Upgrade) into a preallocated uint32 array, read back with one `struct.unpack_from`, and
the header fields (names lower-cased) into a scratch copy "name\\0value\\0...", turned into all the
names and values by one `bytes.split`; method and target are sliced from the caller's buffer.
Nothing here scans or lower-cases headers in Python.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from granian._native import ffi, lib
from granian.errors import ProtocolError
from granian.http1 import limits as _L
from granian.http1.limits import (
    F_CHUNKED,
    F_CONN_CLOSE,
    F_CONN_KEEPALIVE,
    F_EXPECT_CONTINUE,
    F_UPGRADE,
)

__all__ = [
    "F_CHUNKED",
    "F_CONN_CLOSE",
    "F_CONN_KEEPALIVE",
    "F_EXPECT_CONTINUE",
    "F_UPGRADE",
    "ChunkedDecoder",
    "H1Limits",
    "Head",
    "parse_head",
]

Head = tuple[int, bytes, bytes, int, list[tuple[bytes, bytes]], int, int]

_OUT_HEADERS: Final[int] = lib.H1_OUT_HEADERS


def _check_abi() -> None:
    """The C enums and limits.py must agree: a stale build or a one-sided edit fails here, once."""
    for name in dir(_L):
        if name.startswith(("F_", "E_")):
            c_value = getattr(lib, "H1_" + name)
            if c_value != getattr(_L, name):
                raise ImportError(f"granian._native H1_{name}={c_value} != limits.{name}")


_check_abi()

_nozero = ffi.new_allocator(should_clear_after_alloc=False)


class _Scratch(threading.local):
    """Per-thread output space: cffi releases the GIL during the call, so event-loop threads
    (`--threads`) must not share it. `bufs` = (out words, a buffer view of them, the name/value
    copy); the copy is allocated without clearing, so its pages cost nothing until used."""

    def __init__(self, words: int, copy_bytes: int) -> None:
        out = ffi.new("uint32_t[]", words)
        self.bufs: tuple[Any, Any, Any] = (out, ffi.buffer(out), _nozero("char[]", copy_bytes))


@dataclass(frozen=True)
class H1Limits(_L.Limits):
    """Head limits (built once per worker) plus the C struct and scratch space they need."""

    _c: Any = field(init=False, repr=False, compare=False)
    _scratch: _Scratch = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        c = ffi.new("h1_limits *")
        c.max_head = self.max_head
        c.max_headers = self.max_headers
        c.max_target = self.max_target
        object.__setattr__(self, "_c", c)
        object.__setattr__(
            self, "_scratch", _Scratch(_OUT_HEADERS + 4 * self.max_headers, max(self.max_head, 1))
        )


def _error(code: int) -> Exception:
    """The one place a C error code becomes a Python exception."""
    reason = _L.REASONS.get(code)
    if reason is None:
        return ValueError(f"granian._native parser: bad arguments (code {code})")
    return ProtocolError(reason[0], reason[1])


_unpack = ffi.unpack
#: the fixed words of the C output (everything before the per-header offsets)
_HEAD_WORDS = struct.Struct(f"={_OUT_HEADERS}I")


def _parser(c_parse: Any) -> Callable[[bytes, int, H1Limits], Head | None]:
    def parse_head(buf: bytes, start: int, limits: H1Limits) -> Head | None:
        """Parse the request head at `buf[start:]`; None while incomplete, ProtocolError if bad.

        Returns `(end, method, target, minor, headers, content_length, flags)` (the contract).
        """
        out, words, copy = limits._scratch.bufs
        n = c_parse(buf, len(buf), start, limits._c, out, copy)
        if n <= 0:
            if n == 0:
                return None
            raise _error(-n)
        end, ms, me, ts, te, minor, cl_hi, cl_lo, flags, nh, copy_len = _HEAD_WORDS.unpack_from(words)
        if nh == 1:  # the common minimal request (wrk, health checks): skip the zip
            name, value = _unpack(copy, copy_len).split(b"\0")
            headers = [(name, value)]
        elif nh:
            # one split builds every (lower-cased) name and value: no per-header slicing
            it = iter(_unpack(copy, copy_len).split(b"\0"))
            headers = list(zip(it, it, strict=True))
        else:
            headers = []
        return (
            end,
            buf[ms:me],
            buf[ts:te],
            minor,
            headers,
            -1 if cl_hi == 0xFFFFFFFF else (cl_hi << 32) | cl_lo,
            flags,
        )

    return parse_head


parse_head = _parser(lib.h1_parse_head)
#: the same through the C parser's scalar path (no SIMD): for tests only
parse_head_scalar = _parser(lib.h1_parse_head_scalar)

_decode = lib.h1_chunked_decode


class ChunkedDecoder:
    """Resumable chunked-body decoder: `feed(buf, start) -> (data, end, done)`.

    `end` is the absolute index consumed in `buf`; the caller keeps `buf[end:]` and feeds it
    again with more bytes. Raises ProtocolError on a malformed body (sticky).
    """

    __slots__ = ("_st", "_dst", "_cap")

    def __init__(self) -> None:
        st = ffi.new("h1_chunked *")
        st.max_line = _L.CHUNK_LINE_MAX
        st.max_trailer = _L.CHUNK_TRAILER_MAX
        self._st: Any = st
        self._dst: Any = None
        self._cap = 0

    def feed(self, buf: bytes, start: int) -> tuple[bytes, int, bool]:
        size = len(buf)
        if size - start > self._cap:
            self._cap = max(size - start, 2 * self._cap, 4096)
            self._dst = ffi.new("char[]", self._cap)
        rc = _decode(self._st, buf, size, start, self._dst)
        if rc < 0:
            raise _error(-rc)
        st = self._st
        produced = st.produced
        return (_unpack(self._dst, produced) if produced else b"", st.end, rc == 1)
