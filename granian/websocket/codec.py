"""cffi wrapper over csrc/ws.c, the WebSocket frame codec (contract: csrc/ws.h).

The sole importer of `granian._native`'s `ws_*` functions. The hot path (`connection.py`)
takes the raw pieces from here: `new_decoder()` for a connection's decoder state (it points at
the calling thread's output space, `scratch()`), `decode` (the C function itself, one call
per received chunk, three arguments) whose summary result says how many records it wrote,
what the last one was and how many payload bytes, and `REC` to read a record when needed.
`FrameDecoder` wraps the same calls in a convenient, slower interface for tests and tools.
`frame_header()` and `header_table()` build server frame headers in C.
"""

from __future__ import annotations

import struct
import threading
from typing import Any, Final, NamedTuple

from granian._native import ffi, lib

__all__ = [
    "DST_CAP",
    "ERROR_CLOSE",
    "REC",
    "REC_CAP",
    "REC_END",
    "REC_START",
    "FrameDecoder",
    "FrameError",
    "Scratch",
    "decode",
    "decode_from",
    "frame_header",
    "header_table",
    "mask",
    "new_decoder",
    "scratch",
    "summary_count",
    "unpack_words",
]

REC_START: Final[int] = lib.WS_REC_START
REC_END: Final[int] = lib.WS_REC_END
REC_WORDS: Final[int] = lib.WS_REC_WORDS

E_UNMASKED: Final[int] = lib.WS_E_UNMASKED
E_RSV: Final[int] = lib.WS_E_RSV
E_OPCODE: Final[int] = lib.WS_E_OPCODE
E_CONTROL_FRAGMENTED: Final[int] = lib.WS_E_CONTROL_FRAGMENTED
E_CONTROL_TOO_LONG: Final[int] = lib.WS_E_CONTROL_TOO_LONG
E_NO_MESSAGE: Final[int] = lib.WS_E_NO_MESSAGE
E_IN_MESSAGE: Final[int] = lib.WS_E_IN_MESSAGE
E_LENGTH: Final[int] = lib.WS_E_LENGTH
E_TOO_BIG: Final[int] = lib.WS_E_TOO_BIG
E_FULL: Final[int] = lib.WS_E_FULL
E_ARGS: Final[int] = lib.WS_E_ARGS

#: C error code -> (close code, reason). 1002 protocol error, 1009 message too big (RFC 6455 7.4.1).
ERROR_CLOSE: Final[dict[int, tuple[int, str]]] = {
    E_UNMASKED: (1002, "client frame not masked"),
    E_RSV: (1002, "reserved bit set"),
    E_OPCODE: (1002, "reserved opcode"),
    E_CONTROL_FRAGMENTED: (1002, "fragmented control frame"),
    E_CONTROL_TOO_LONG: (1002, "control frame too long"),
    E_NO_MESSAGE: (1002, "continuation frame without a message"),
    E_IN_MESSAGE: (1002, "new message inside a fragmented message"),
    E_LENGTH: (1002, "invalid frame length"),
    E_TOO_BIG: (1009, "message too big"),
}

#: Records per call. One record per frame (or per piece of a frame): 1024 covers any chunk of
#: ordinary frames; a chunk packed with more tiny frames takes further calls (-WS_E_FULL).
REC_CAP: Final[int] = 1024
#: Payload bytes per call: the largest chunk asyncio and uvloop hand to data_received
#: (256 KiB), so one call unmasks a whole chunk.
DST_CAP: Final[int] = 256 * 1024

#: One record: info (FIN/RSV/opcode byte | START | END), offset in dst, length.
REC: Final = struct.Struct("=3I")

decode: Final = lib.ws_decode
"""`decode(decoder, buf, len) -> int`: the C call itself (see csrc/ws.h): a summary >= 0, or
-E_* (-E_FULL: call `decode_from(decoder, buf, len, out.consumed)` after reading the records)."""
decode_from: Final = lib.ws_decode_from

#: The summary's fields: the last record's info, the record count, the payload bytes.
SUMMARY_INFO: Final[int] = 0xFFF
SUMMARY_COUNT_SHIFT: Final[int] = 12
SUMMARY_COUNT_MASK: Final[int] = 0xFFFFF
SUMMARY_BYTES_SHIFT: Final[int] = 32


def summary_count(result: int) -> int:
    """The number of records a successful decode call wrote."""
    return (result >> SUMMARY_COUNT_SHIFT) & SUMMARY_COUNT_MASK


unpack_words: Final = ffi.unpack
"""`unpack_words(out_rec, n) -> list[int]`: the first n record words, in one call."""

_nozero = ffi.new_allocator(should_clear_after_alloc=False)


class Scratch(threading.local):
    """One thread's output space. cffi releases the GIL during calls, so event-loop threads
    (`--threads`) must not share it; connections of one thread do (every record is read back
    before the next call). The payload buffer is allocated without clearing: its pages cost
    nothing until a big chunk touches them."""

    def __init__(self) -> None:
        self.rebuild(REC_CAP, DST_CAP, True)

    def rebuild(self, rec_cap: int, dst_cap: int, simd: bool) -> None:
        rec = ffi.new("uint32_t[]", REC_WORDS * max(rec_cap, 1))
        dst = _nozero("char[]", max(dst_cap, 1))
        out = ffi.new("ws_out *")
        out.rec = rec
        out.rec_cap = rec_cap
        out.dst = dst
        out.dst_cap = dst_cap
        out.simd = 1 if simd else 0
        self._keep = (rec, dst)  # out holds raw pointers: keep the arrays alive
        self.out: Any = out
        self.rec: Any = rec
        self.words: Any = ffi.buffer(rec)
        # slicing a cffi buffer gives one bytes object, without ffi.unpack's argument parsing
        self.view: Any = ffi.buffer(dst)
        self.hdr: Any = ffi.new("char[16]")
        self.hdr_view: Any = ffi.buffer(self.hdr)


_SCRATCH = Scratch()


def scratch() -> Scratch:
    """The calling thread's output space (a connection keeps it: it never changes thread)."""
    return _SCRATCH


def new_decoder(
    max_message: int, rsv_allowed: int = 0, require_mask: bool = True, space: Scratch | None = None
) -> Any:
    """A fresh decoder state (`ws_decoder *`) writing into `space` (default: the calling
    thread's). `max_message` bounds an uncompressed data message (0: unbounded);
    `rsv_allowed` is 0x40 when permessage-deflate owns RSV1. The caller keeps `space` alive
    as long as the decoder (the thread's own lives as long as the thread)."""
    if max_message < 0 or max_message >= 1 << 64:
        raise ValueError("max_message out of range")
    d = ffi.new("ws_decoder *")
    lib.ws_decoder_init(d, (space or _SCRATCH).out, max_message, rsv_allowed, 1 if require_mask else 0)
    return d


def frame_header(b0: int, length: int, key: bytes | None = None) -> bytes:
    """The header of a frame: `b0` is FIN | RSV | opcode, `key` a 4-byte mask key (client
    frames only; server frames are not masked, RFC 6455 5.1)."""
    if key is not None and len(key) != 4:
        raise ValueError("a masking key is 4 bytes")
    if not 0 <= length < 1 << 63:
        raise ValueError("frame length out of range")
    s = _SCRATCH
    n = lib.ws_frame_header(s.hdr, b0 & 0xFF, length, ffi.NULL if key is None else key)
    result: bytes = s.hdr_view[0:n]
    return result


def header_table(b0: int) -> tuple[bytes, ...]:
    """The headers of unmasked frames of 0..125 bytes with first byte `b0`, built once, so a
    small frame's header is one tuple index on the send path."""
    return tuple(frame_header(b0, n) for n in range(126))


def mask(data: bytes, key: bytes, phase: int = 0) -> bytes:
    """`data` XOR the masking key, starting at key byte `phase` (RFC 6455 5.3); its own inverse."""
    if len(key) != 4:
        raise ValueError("a masking key is 4 bytes")
    buf = ffi.new("char[]", max(len(data), 1))
    lib.ws_mask(buf, data, len(data), key, phase & 3)
    result: bytes = ffi.buffer(buf, len(data))[:]
    return result


class Record(NamedTuple):
    """One decoded record: the frame's first byte, whether it starts and ends the frame, and
    the (unmasked) payload bytes it carries."""

    b0: int
    start: bool
    end: bool
    payload: bytes

    @property
    def opcode(self) -> int:
        return self.b0 & 0x0F

    @property
    def fin(self) -> bool:
        return bool(self.b0 & 0x80)


class FrameError(Exception):
    """The peer broke a frame rule. `error` is the C code (E_*), `close_code` the close code to
    send; `records` are the valid records decoded before the offending frame."""

    def __init__(self, error: int, records: list[Record]) -> None:
        code, reason = ERROR_CLOSE.get(error, (1011, f"codec error {error}"))
        super().__init__(reason)
        self.error = error
        self.close_code = code
        self.records = records


class FrameDecoder:
    """The C decoder behind a plain interface: `feed(data)` returns every record it produced,
    calling C again while the output space is full. For tests and tools; the connection
    uses the raw calls."""

    def __init__(
        self,
        max_message: int = 0,
        rsv_allowed: int = 0,
        require_mask: bool = True,
        *,
        simd: bool = True,
        rec_cap: int = REC_CAP,
        dst_cap: int = DST_CAP,
    ) -> None:
        self._s = Scratch()
        self._s.rebuild(rec_cap, dst_cap, simd)
        self._dec = new_decoder(max_message, rsv_allowed, require_mask, self._s)
        self.calls = 0
        #: the summary of the last successful call
        self.summary = 0

    def feed(self, data: bytes) -> list[Record]:
        s = self._s
        records: list[Record] = []
        start = 0
        while True:
            n = decode_from(self._dec, data, len(data), start)
            self.calls += 1
            count = summary_count(n) if n >= 0 else s.out.nrec
            for i in range(count):
                info, off, ln = REC.unpack_from(s.words, 4 * REC_WORDS * i)
                records.append(
                    Record(info & 0xFF, bool(info & REC_START), bool(info & REC_END), s.view[off : off + ln])
                )
            if n >= 0:
                self.summary = n
                return records
            if n != -E_FULL:
                raise FrameError(-n, records)
            start = s.out.consumed
