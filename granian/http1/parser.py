"""C-backed HTTP/1 request-head parser and chunked decoder (contract: docs/internals.md section 1).

The sole importer of `granian._native`'s parser. One cffi call per request head and no
callbacks: C writes the span offsets and framing facts (Content-Length, chunked, Connection,
Expect, Upgrade) into a preallocated uint32 array, read back with one `struct.unpack_from`, and
method, target and header fields (names lower-cased) into a scratch copy
"method\\0target\\0name\\0value...", turned into all those bytes objects by one `bytes.split`.
Nothing here scans or lower-cases headers in Python.
"""

from __future__ import annotations

import struct
import threading
from dataclasses import dataclass, field
from itertools import islice
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
    if (lib.H1_OUT_END, lib.H1_OUT_MINOR, lib.H1_OUT_COPY_LEN) != (0, 5, 10):
        raise ImportError("granian._native: output word layout changed, update _WORDS")


_check_abi()

_nozero = ffi.new_allocator(should_clear_after_alloc=False)


class _Scratch(threading.local):
    """Per-thread output space: cffi releases the GIL during the call, so event-loop threads
    (`--threads`) must not share it. `fast` and `scalar` are (h1_ctx, a buffer view of the
    output words, a buffer view of the copy); the copy is allocated without clearing, so its
    pages cost nothing until used."""

    def __init__(self, limits: _L.Limits) -> None:
        out = ffi.new("uint32_t[]", _OUT_HEADERS + 4 * limits.max_headers)
        copy = _nozero("char[]", max(limits.max_head, 1))
        words = ffi.buffer(out)
        ctxs = []
        for simd in (1, 0):
            ctx = ffi.new("h1_ctx *")
            ctx.lim.max_head = limits.max_head
            ctx.lim.max_headers = limits.max_headers
            ctx.lim.max_target = limits.max_target
            ctx.simd = simd
            ctx.out = out
            ctx.copy = copy
            ctxs.append(ctx)
        self._keep = (out, copy)  # ctx holds raw pointers: keep the arrays alive
        # The copy is read back by slicing a buffer view of it: `view[:n]` is one bytes object,
        # without ffi.unpack()'s keyword-argument parsing.
        view = ffi.buffer(copy)
        self.fast: tuple[Any, Any, Any] = (ctxs[0], words, view)
        self.scalar: tuple[Any, Any, Any] = (ctxs[1], words, view)


@dataclass(frozen=True)
class H1Limits(_L.Limits):
    """Head limits (built once per worker) plus the C struct and scratch space they need."""

    _scratch: _Scratch = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "_scratch", _Scratch(self))


def _error(code: int) -> Exception:
    """The one place a C error code becomes a Python exception."""
    reason = _L.REASONS.get(code)
    if reason is None:
        return ValueError(f"granian._native parser: bad arguments (code {code})")
    return ProtocolError(reason[0], reason[1])


_unpack = ffi.unpack
_parse = lib.h1_parse_head_ctx
#: END, then (skipping the four method/target offsets) MINOR, CL_HI, CL_LO, FLAGS, NHEADERS, COPY_LEN
_WORDS: Final = struct.Struct("=I16x6I")


def parse_head(buf: bytes, start: int, limits: H1Limits) -> Head | None:
    """Parse the request head at `buf[start:]`; None while incomplete, ProtocolError if bad.

    Returns `(end, method, target, minor, headers, content_length, flags)` (the contract).
    """
    ctx, words, copy = limits._scratch.fast
    n = _parse(buf, len(buf), start, ctx)
    if n <= 0:
        if n == 0:
            return None
        raise _error(-n)
    end, minor, cl_hi, cl_lo, flags, nh, copy_len = _WORDS.unpack_from(words)
    # one split builds method, target and every (lower-cased) name and value
    parts = copy[:copy_len].split(b"\0")
    if nh == 1:  # the common minimal request (wrk, health checks, proxies' probes)
        method, target, name, value = parts
        headers = [(name, value)]
    else:
        method = parts[0]
        target = parts[1]
        it = islice(parts, 2, None)
        headers = list(zip(it, it, strict=False))  # strict=True costs ~10 ns per header
    return (
        end,
        method,
        target,
        minor,
        headers,
        -1 if cl_hi == 0xFFFFFFFF else (cl_hi << 32) | cl_lo,
        flags,
    )


def parse_head_scalar(buf: bytes, start: int, limits: H1Limits) -> Head | None:
    """`parse_head` through the C parser's scalar path (no SIMD): for tests only."""
    ctx, words, copy = limits._scratch.scalar
    n = _parse(buf, len(buf), start, ctx)
    if n <= 0:
        if n == 0:
            return None
        raise _error(-n)
    end, minor, cl_hi, cl_lo, flags, nh, copy_len = _WORDS.unpack_from(words)
    parts = copy[:copy_len].split(b"\0")
    it = islice(parts, 2, None)
    headers = list(zip(it, it, strict=True))
    assert len(headers) == nh
    cl = -1 if cl_hi == 0xFFFFFFFF else (cl_hi << 32) | cl_lo
    return (end, parts[0], parts[1], minor, headers, cl, flags)


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
