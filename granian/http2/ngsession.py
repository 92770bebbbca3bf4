"""The nghttp2 engine: `granian._native`'s C shim (csrc/h2.c) over the system libnghttp2.

Per received chunk: one C call (`h2_recv`), then one `struct.iter_unpack` over the flat event
records and one `bytes.split` per header block. Per response: one C call with the header fields
joined as "name\\0value\\0..." (C lower-cases, validates and drops connection-specific fields)
and the body, and one C call per `data_to_send()` gathering every frame nghttp2 has queued.
"""

from __future__ import annotations

import base64
import struct
import threading
from itertools import chain
from typing import Final

from granian._native import ffi, lib
from granian.http2.config import H2Config
from granian.http2.events import (
    CANCEL,
    CLOSE,
    DATA,
    GOAWAY,
    NO_ERROR,
    PING_ACK,
    REQUEST,
    RESET,
    SETTINGS_ACK,
    TRAILERS,
    Event,
    H2Error,
    H2HeaderError,
    Headers,
)

__all__ = ["DEFAULT_LIBRARY", "NgSession", "load"]

# The SONAME of libnghttp2's stable ABI (the v1 API, present from 1.0 through today's 1.6x).
DEFAULT_LIBRARY: Final = "libnghttp2.so.14"

_EV: Final = struct.Struct("<iiIIII")  # h2_event: type, stream_id, flags, off, len, code
_EVF_END: Final = lib.H2_EVF_END_STREAM
_EVF_INPUT: Final = lib.H2_EVF_IN_INPUT
_GONE: Final = lib.H2_GONE
_END: Final = lib.H2_END
_END_EXT: Final = lib.H2_END | lib.H2_EXTERNAL
_SEG: Final = struct.Struct("<QiIQ")  # h2_seg: out_off, stream_id, len, off
# Whole bodies from this size up are not copied into the shim: their DATA payloads are written
# from the app's own bytes object (a gathered write). Below it one copy costs less than the
# extra pieces of the write.
EXT_MIN: Final = 8192


def _check_abi() -> None:
    """The C enums and events.py must agree: a stale build or a one-sided edit fails here."""
    pairs = {
        lib.H2_EV_REQUEST: REQUEST,
        lib.H2_EV_DATA: DATA,
        lib.H2_EV_TRAILERS: TRAILERS,
        lib.H2_EV_RESET: RESET,
        lib.H2_EV_GOAWAY: GOAWAY,
        lib.H2_EV_SETTINGS_ACK: SETTINGS_ACK,
        lib.H2_EV_PING_ACK: PING_ACK,
        lib.H2_EV_CLOSE: CLOSE,
    }
    if any(c != py for c, py in pairs.items()) or ffi.sizeof("h2_event") != _EV.size:
        raise ImportError("granian._native: h2 event layout differs from granian.http2.events")


_check_abi()

_load_lock = threading.Lock()
_load_result: tuple[bool, str] | None = None


def load(path: str | None = None) -> tuple[bool, str]:
    """dlopen libnghttp2 (`path`, default DEFAULT_LIBRARY) once per process: `(True, version)`
    or `(False, reason)`. A failure is retried on the next call; a success is final."""
    global _load_result
    with _load_lock:
        if _load_result is None or not _load_result[0]:
            if lib.h2_load((path or DEFAULT_LIBRARY).encode()) == 0:
                _load_result = (True, ffi.string(lib.h2_version()).decode())
            else:
                _load_result = (False, ffi.string(lib.h2_load_error()).decode(errors="replace"))
        return _load_result


def guards() -> dict[str, bool]:
    """Which optional flood guards the loaded libnghttp2 has."""
    return {
        "stream_reset_rate_limit": bool(lib.h2_has_reset_rate_limit()),
        "max_continuations": bool(lib.h2_has_max_continuations()),
    }


def _error(code: int) -> H2Error:
    msg = ffi.string(lib.h2_strerror(code)).decode(errors="replace")
    if code == lib.H2_EHEADER:
        return H2HeaderError(msg, code)
    return H2Error(f"nghttp2: {msg} ({code})", code)


def _block(headers: Headers) -> bytes:
    return b"\0".join(chain.from_iterable(headers)) if headers else b""


def _params(cfg: H2Config) -> object:
    p = ffi.new("h2_params *")
    p.max_concurrent_streams = cfg.max_concurrent_streams
    p.initial_stream_window_size = cfg.initial_stream_window_size
    p.initial_connection_window_size = cfg.initial_connection_window_size
    p.max_frame_size = cfg.max_frame_size
    p.max_header_list_size = cfg.max_headers_size
    p.header_table_size = cfg.header_table_size
    p.max_send_buffer = cfg.max_send_buffer_size
    p.max_empty_frames = cfg.max_empty_frames
    p.max_continuations = cfg.max_continuations
    p.max_settings = cfg.max_settings
    p.max_outbound_ack = cfg.max_outbound_ack
    p.reset_burst = cfg.reset_burst
    p.reset_rate = cfg.reset_rate
    return p


_recv = lib.h2_recv
_send = lib.h2_send
_respond = lib.h2_respond
_send_data = lib.h2_send_data
_buffer = ffi.buffer
_unpack = ffi.unpack
_iter_ev = _EV.iter_unpack
_iter_seg = _SEG.iter_unpack
_from_buffer = ffi.from_buffer


class NgSession:
    """A server-side HTTP/2 connection, sans I/O (the interface: granian.http2.Session)."""

    __slots__ = ("_s", "_v", "_drained", "_ext", "config")

    engine: Final = "nghttp2"

    def __init__(
        self,
        config: H2Config | None = None,
        *,
        upgrade_settings: bytes | None = None,
        upgrade_head: bool = False,
    ) -> None:
        ok, why = load()
        if not ok:
            raise H2Error(f"libnghttp2 is not loadable: {why}")
        self.config = config or H2Config()
        raw = lib.h2_session_new(_params(self.config))
        if raw == ffi.NULL:
            raise H2Error("nghttp2: could not create a session")
        self._s = ffi.gc(raw, lib.h2_session_free)
        self._v = lib.h2_session_view(self._s)
        self._drained: list[int] = []
        # stream id -> the whole body the shim frames from without a copy (H2_EXTERNAL):
        # kept alive here until the shim lists the stream in `released`
        self._ext: dict[int, bytes] = {}
        if upgrade_settings is not None:
            # RFC 7540 section 3.2.1: HTTP2-Settings is base64url without its '=' padding
            payload = base64.urlsafe_b64decode(upgrade_settings + b"=" * (-len(upgrade_settings) % 4))
            rv = lib.h2_upgrade(self._s, payload, len(payload), int(upgrade_head))
            if rv < 0:
                raise _error(rv)

    # -- input --------------------------------------------------------------------------------

    def feed(self, data: bytes) -> list[Event]:
        """Process one received chunk; returns its events (events.py lists them)."""
        if type(data) is not bytes:
            data = bytes(data)
        n = _recv(self._s, data, len(data))
        if not n:
            return []
        v = self._v
        alen = v.arena_len
        arena = _buffer(v.arena, alen)[:] if alen else b""
        events: list[Event] = []
        append = events.append
        for typ, sid, fl, off, ln, code in _iter_ev(_buffer(v.ev, n * 24)):
            if typ == 1:  # REQUEST
                # "method\0path\0scheme\0authority" then name/value pairs (csrc/h2.h)
                f = arena[off : off + ln].split(b"\0")
                it = iter(f[4:])
                append((1, sid, f[0], f[1], f[2], f[3], list(zip(it, it, strict=True)), fl & 1 == 1))
            elif typ == 2:  # DATA
                src = data if fl & 2 else arena
                append((2, sid, src[off : off + ln], fl & 1 == 1, code))
            elif typ == 3:  # TRAILERS
                it = iter(arena[off : off + ln].split(b"\0") if ln else ())
                append((3, sid, list(zip(it, it, strict=True))))
            elif typ == 4:  # RESET
                append((4, sid, code))
            elif typ == 5:  # GOAWAY
                append((5, sid, code))
            elif typ == 6:
                append((6,))
            elif typ == 7:
                append((7, arena[off : off + ln]))
            else:  # CLOSE
                append((8, code))
        return events

    # -- output -------------------------------------------------------------------------------

    def data_to_send(self) -> bytes:
        """Every byte nghttp2 has ready (frames, acks, window updates); b"" when none."""
        out = self.data_to_write()
        return out if isinstance(out, bytes) else b"".join(out)

    def data_to_write(self) -> bytes | list[bytes | memoryview]:
        """`data_to_send()`, but when external bodies are framed, the pieces to write in order
        (`transport.writelines`): frame bytes, and slices of the bodies themselves."""
        n = _send(self._s)
        v = self._v
        if v.ndrained:
            self._drained.extend(_unpack(v.drained, v.ndrained))
        if self._ext:
            return self._pieces(n)
        return _buffer(v.out, n)[:] if n else b""

    def _pieces(self, n: int) -> bytes | list[bytes | memoryview]:
        v = self._v
        ext = self._ext
        out = _buffer(v.out, n)
        pieces: list[bytes | memoryview] | bytes
        if v.nsegs:
            pieces = []
            append = pieces.append
            pos = 0
            for at, sid, ln, off in _iter_seg(_buffer(v.segs, v.nsegs * 24)):
                if at > pos:
                    append(out[pos:at])
                    pos = at
                append(memoryview(ext[sid])[off : off + ln])
            if pos < n:
                append(out[pos:n])
        else:
            pieces = out[:] if n else b""
        # The shim no longer reads these bodies (the slices above hold their own references).
        nrel = v.nreleased
        if nrel:
            for sid in _unpack(v.released, nrel):
                ext.pop(sid, None)
            v.nreleased = 0
        return pieces

    def drained(self) -> list[int]:
        """Streams whose buffered body went back to `max_send_buffer_size` or below during the
        last `data_to_send()` calls (only those that had gone above it). Clears the list."""
        d = self._drained
        if d:
            self._drained = []
        return d

    @property
    def finished(self) -> bool:
        """True once the session wants neither to read nor to write: close the connection."""
        return bool(self._v.done)

    @property
    def lib_error(self) -> int:
        """The nghttp2 error that ended the session (<= -900 fatal), 0 if none."""
        return int(self._v.lib_error)

    @property
    def open_streams(self) -> int:
        return int(self._v.nstreams)

    # -- responses ------------------------------------------------------------------------------

    def send_response(
        self, stream_id: int, status: int, headers: Headers, body: bytes = b"", end: bool = True
    ) -> int:
        """Submit the response head and a first part of the body (all of it with `end`).
        Returns the bytes buffered for the stream, or -1 if the stream is gone."""
        blk = b"\0".join(chain.from_iterable(headers)) if headers else b""
        return self.send_response_block(stream_id, status, blk, len(headers), body, end)

    def send_response_block(
        self, stream_id: int, status: int, block: bytes, nfields: int, body: bytes = b"", end: bool = True
    ) -> int:
        """`send_response` with the fields already joined (`engine.field_block`)."""
        if type(body) is not bytes:
            body = bytes(body)
        size = len(body)
        if end and size >= EXT_MIN:
            # framed from `body` itself (from_buffer: its own bytes, no copy), kept alive in
            # _ext until the shim releases it
            rv = _respond(
                self._s, stream_id, status, block, len(block), nfields, _from_buffer(body), size, _END_EXT
            )
            if rv >= 0:
                self._ext[stream_id] = body
                return int(rv)
        else:
            rv = _respond(
                self._s, stream_id, status, block, len(block), nfields, body, size, _END if end else 0
            )
        if rv >= 0 or rv == _GONE:
            return int(rv)
        raise _error(rv)

    def send_informational(self, stream_id: int, status: int, headers: Headers) -> bool:
        """A 1xx response head (100 Continue, 103 Early Hints) before the final one."""
        blk = _block(headers)
        rv = lib.h2_informational(self._s, stream_id, status, blk, len(blk), len(headers))
        if rv >= 0 or rv == _GONE:
            return bool(rv >= 0)
        raise _error(rv)

    def send_data(self, stream_id: int, data: bytes, end: bool = False) -> int:
        """Append body bytes (after `send_response(..., end=False)`). Returns the bytes now
        buffered for the stream (above `max_send_buffer_size`: wait for `drained()`), -1 if
        the stream is gone."""
        if type(data) is not bytes:
            data = bytes(data)
        rv = _send_data(self._s, stream_id, data, len(data), _END if end else 0)
        if rv >= 0 or rv == _GONE:
            return int(rv)
        raise _error(rv)

    def send_trailers(self, stream_id: int, headers: Headers) -> bool:
        """End the response with a trailer section (after `send_response(..., end=False)`)."""
        blk = _block(headers)
        rv = lib.h2_trailers(self._s, stream_id, blk, len(blk), len(headers))
        if rv >= 0 or rv == _GONE:
            return bool(rv >= 0)
        raise _error(rv)

    def buffered(self, stream_id: int) -> int:
        """Body bytes the stream holds that are not framed yet, -1 if the stream is gone."""
        return int(lib.h2_buffered(self._s, stream_id))

    def reset(self, stream_id: int, error_code: int = CANCEL) -> None:
        """RST_STREAM: drop the stream (no RESET event follows for it)."""
        rv = lib.h2_reset(self._s, stream_id, error_code)
        if rv < 0 and rv != _GONE:
            raise _error(rv)

    # -- flow control ---------------------------------------------------------------------------

    def consume(self, stream_id: int, n: int) -> None:
        """The application read `n` flow-controlled bytes of the stream's body (`DATA`'s
        `flow`): nghttp2 sends WINDOW_UPDATE once enough is consumed."""
        rv = lib.h2_consume(self._s, stream_id, n)
        if rv < 0 and rv != _GONE:
            raise _error(rv)

    def set_local_window(self, stream_id: int, size: int) -> None:
        """Set our receive window of a stream (0: the connection) to `size` (adaptive window)."""
        rv = lib.h2_set_local_window(self._s, stream_id, size)
        if rv < 0:
            raise _error(rv)

    def remote_window(self, stream_id: int = 0) -> int:
        """The peer's window we may still send into (-1 for an unknown stream)."""
        return int(lib.h2_remote_window(self._s, stream_id))

    # -- connection -----------------------------------------------------------------------------

    def ping(self, opaque: bytes) -> None:
        """Send PING with 8 opaque bytes; the answer is a `PING_ACK` event."""
        if len(opaque) != 8:
            raise ValueError("a PING carries exactly 8 opaque bytes (RFC 9113 section 6.7)")
        rv = lib.h2_ping(self._s, opaque)
        if rv < 0:
            raise _error(rv)

    def goaway(self, error_code: int = NO_ERROR, last_stream_id: int | None = None) -> None:
        """GOAWAY naming the last stream we process (default: the last one received); open
        streams up to it go on, newer ones are refused (RFC 9113 section 6.8)."""
        last = -1 if last_stream_id is None else last_stream_id
        rv = lib.h2_goaway(self._s, error_code, last)
        if rv < 0:
            raise _error(rv)

    def shutdown_notice(self) -> None:
        """The first GOAWAY of a graceful shutdown (last stream id 2^31-1, section 6.8)."""
        rv = lib.h2_shutdown_notice(self._s)
        if rv < 0:
            raise _error(rv)

    def terminate(self, error_code: int = NO_ERROR) -> None:
        """GOAWAY, and the session ends once it is sent (`finished`)."""
        rv = lib.h2_terminate(self._s, error_code)
        if rv < 0 and not self._v.done:
            raise _error(rv)

    @property
    def last_stream_id(self) -> int:
        return int(lib.h2_last_stream_id(self._s))
