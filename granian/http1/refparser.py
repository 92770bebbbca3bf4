"""Pure-Python reference HTTP/1 parser: the oracle of the differential tests, never used to serve.

Same interface and same answers as `parser.py` (docs/internals.md section 1), written plainly
from RFC 9112 with regular expressions instead of byte tables, so a bug in one is unlikely to be
repeated in the other. The rules (which the C parser follows too):

- only the first `max_head` bytes after `start` are looked at; running out of them is 431 when
  more bytes exist, "incomplete" (None) otherwise;
- errors are reported at the first offending byte, before the head is complete, so the answer
  for a prefix never contradicts the answer for the whole buffer;
- empty lines (CRLF) before the request-line are skipped (RFC 9112 2.2);
- the first error met scanning left to right wins; per-field rules (Content-Length syntax and
  conflicts, Transfer-Encoding syntax and "chunked not last", duplicate Host) fire when their
  line is complete; the cross-field framing rules run once the head is complete, in this order:
  CL with TE (400), TE in HTTP/1.0 (400), TE not ending in chunked (400), unknown coding (501).
"""

from __future__ import annotations

import re
from typing import Final, Protocol

from granian.errors import ProtocolError
from granian.http1 import limits as _L
from granian.http1.limits import (
    F_CHUNKED,
    F_CONN_CLOSE,
    F_CONN_KEEPALIVE,
    F_EXPECT_CONTINUE,
    F_UPGRADE,
)
from granian.http1.limits import Limits as H1Limits

__all__ = [
    "F_CHUNKED",
    "F_CONN_CLOSE",
    "F_CONN_KEEPALIVE",
    "F_EXPECT_CONTINUE",
    "F_UPGRADE",
    "ChunkedDecoder",
    "H1Limits",
    "parse_head",
]

_TOKEN: Final = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]*")
_FULL_TOKEN: Final = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_TARGET_RUN: Final = re.compile(rb"[^\x00-\x20\x7f]*")
_VALUE_RUN: Final = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")
_DIGITS: Final = re.compile(rb"[0-9]+\Z")
_HEXDIG: Final = b"0123456789abcdefABCDEF"
_OWS: Final = b" \t"
_CR, _LF, _SP, _HT = 13, 10, 32, 9
_INT63_MAX: Final = 2**63 - 1


class _LimitsLike(Protocol):
    @property
    def max_head(self) -> int: ...
    @property
    def max_headers(self) -> int: ...
    @property
    def max_target(self) -> int: ...


class _OutOfData(Exception):
    """The scan reached the end of the window."""


class _Bad(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def _protocol_error(code: int) -> ProtocolError:
    msg, status = _L.REASONS[code]
    return ProtocolError(msg, status)


def _elements(value: bytes) -> list[bytes]:
    """A #list field value (RFC 9110 5.6.1): comma-separated, OWS around, empty elements dropped."""
    return [e for e in (part.strip(_OWS) for part in value.split(b",")) if e]


class _Framing:
    def __init__(self) -> None:
        self.cl = -1
        self.te = False
        self.chunked = False
        self.unknown = False
        self.hosts = 0
        self.conn: set[bytes] = set()
        self.upgrade = False
        self.expect = False

    def field(self, name: bytes, value: bytes) -> None:
        if name == b"content-length":
            if not _DIGITS.match(value) or int(value) > _INT63_MAX:
                raise _Bad(_L.E_CONTENT_LENGTH)
            if self.cl != -1 and self.cl != int(value):
                raise _Bad(_L.E_CONTENT_LENGTH_MISMATCH)
            self.cl = int(value)
        elif name == b"transfer-encoding":
            self.te = True
            codings = _elements(value)
            if not codings:
                raise _Bad(_L.E_TE_SYNTAX)
            for coding in codings:
                if not _FULL_TOKEN.match(coding):
                    raise _Bad(_L.E_TE_SYNTAX)
                if self.chunked:
                    raise _Bad(_L.E_TE_NOT_CHUNKED)
                if coding.lower() == b"chunked":
                    self.chunked = True
                else:
                    self.unknown = True
        elif name == b"connection":
            self.conn.update(e.lower() for e in _elements(value))
        elif name == b"expect":
            self.expect = self.expect or value.lower() == b"100-continue"
        elif name == b"upgrade":
            self.upgrade = True
        elif name == b"host":
            self.hosts += 1
            if self.hosts > 1:
                raise _Bad(_L.E_DUP_HOST)

    def finish(self, minor: int) -> int:
        flags = 0
        if self.te:
            if self.cl != -1:
                raise _Bad(_L.E_CL_AND_TE)
            if minor == 0:
                raise _Bad(_L.E_TE_HTTP10)
            if not self.chunked:
                raise _Bad(_L.E_TE_NOT_CHUNKED)
            if self.unknown:
                raise _Bad(_L.E_TE_UNKNOWN)
            flags |= F_CHUNKED
        if b"close" in self.conn:
            flags |= F_CONN_CLOSE
        if b"keep-alive" in self.conn:
            flags |= F_CONN_KEEPALIVE
        if self.expect:
            flags |= F_EXPECT_CONTINUE
        if b"upgrade" in self.conn and self.upgrade:
            flags |= F_UPGRADE
        return flags


def parse_head(
    buf: bytes, start: int, limits: _LimitsLike
) -> tuple[int, bytes, bytes, int, list[tuple[bytes, bytes]], int, int] | None:
    if not 0 <= start <= len(buf):
        raise ValueError(f"start {start} outside the buffer")
    truncated = len(buf) - start > limits.max_head
    window = buf[: start + limits.max_head] if truncated else buf
    try:
        return _parse(window, start, limits)
    except _OutOfData:
        if truncated:
            raise _protocol_error(_L.E_HEAD_TOO_LARGE) from None
        return None
    except _Bad as exc:
        raise _protocol_error(exc.code) from None


def _parse(
    w: bytes, p: int, limits: _LimitsLike
) -> tuple[int, bytes, bytes, int, list[tuple[bytes, bytes]], int, int]:
    n = len(w)

    def need(pos: int) -> int:
        if pos >= n:
            raise _OutOfData
        return w[pos]

    def crlf_at(pos: int) -> None:
        # w[pos] is CR: the next byte must be LF
        if need(pos + 1) != _LF:
            raise _Bad(_L.E_EOL)

    while True:  # empty lines before the request-line
        c = need(p)
        if c == _LF:
            raise _Bad(_L.E_EOL)
        if c != _CR:
            break
        crlf_at(p)
        p += 2

    m = _TOKEN.match(w, p)
    assert m is not None
    q = m.end()
    if need(q) != _SP or q == p:
        raise _Bad(_L.E_METHOD)
    method = w[p:q]
    p = q + 1

    m = _TARGET_RUN.match(w, p)
    assert m is not None
    q = m.end()
    if q - p > limits.max_target:
        raise _Bad(_L.E_TARGET_TOO_LONG)
    if need(q) != _SP or q == p:
        raise _Bad(_L.E_TARGET)
    target = w[p:q]
    p = q + 1

    for expected in b"HTTP/":
        if need(p) != expected:
            raise _Bad(_L.E_VERSION)
        p += 1
    major = need(p)
    if not 0x30 <= major <= 0x39 or need(p + 1) != ord(".") or not 0x30 <= need(p + 2) <= 0x39:
        # need() runs left to right, so the first bad or missing byte decides, as in C
        raise _Bad(_L.E_VERSION)
    minor = w[p + 2] - 0x30
    p += 3
    c = need(p)
    if c != _CR:
        raise _Bad(_L.E_EOL if c == _LF else _L.E_VERSION)
    crlf_at(p)
    p += 2
    if major != 0x31 or minor > 1:
        raise _Bad(_L.E_VERSION_UNSUPPORTED)

    framing = _Framing()
    headers: list[tuple[bytes, bytes]] = []
    while True:
        c = need(p)
        if c == _CR:
            crlf_at(p)
            p += 2
            break
        if c == _LF:
            raise _Bad(_L.E_EOL)
        if c in (_SP, _HT):
            raise _Bad(_L.E_OBS_FOLD)
        if len(headers) >= limits.max_headers:
            raise _Bad(_L.E_TOO_MANY_HEADERS)
        m = _TOKEN.match(w, p)
        assert m is not None
        q = m.end()
        c = need(q)
        if c != ord(":") or q == p:
            if q == p or c == ord(":"):
                raise _Bad(_L.E_HEADER_NAME)
            if c in (_SP, _HT):
                raise _Bad(_L.E_WS_BEFORE_COLON)
            if c in (_CR, _LF):
                raise _Bad(_L.E_NO_COLON)
            raise _Bad(_L.E_HEADER_NAME)
        name = w[p:q].lower()
        p = q + 1
        while p < n and w[p] in (_SP, _HT):
            p += 1
        m = _VALUE_RUN.match(w, p)
        assert m is not None
        q = m.end()
        c = need(q)
        if c != _CR:
            raise _Bad(_L.E_EOL if c == _LF else _L.E_HEADER_VALUE)
        crlf_at(q)
        value = w[p:q].rstrip(_OWS)
        p = q + 2
        framing.field(name, value)
        headers.append((name, value))

    flags = framing.finish(minor)
    return (p, method, target, minor, headers, framing.cl, flags)


class ChunkedDecoder:
    """Reference chunked decoder (RFC 9112 7.1), same contract and errors as the C one."""

    def __init__(self) -> None:
        self._state = "size0"
        self._size = 0
        self._line = 0
        self._trailer = 0
        self._error = 0

    def _fail(self, code: int) -> ProtocolError:
        self._error = code
        return _protocol_error(code)

    def _line_byte(self) -> None:
        self._line += 1
        if self._line > _L.CHUNK_LINE_MAX:
            raise self._fail(_L.E_CHUNK_LINE_TOO_LONG)

    def _trailer_byte(self) -> None:
        self._trailer += 1
        if self._trailer > _L.CHUNK_TRAILER_MAX:
            raise self._fail(_L.E_TRAILER_TOO_LARGE)

    def feed(self, buf: bytes, start: int) -> tuple[bytes, int, bool]:
        if self._error:
            raise _protocol_error(self._error)
        if not 0 <= start <= len(buf):
            raise ValueError(f"start {start} outside the buffer")
        out: list[bytes] = []
        p = start
        n = len(buf)
        while p < n and self._state != "done":
            c = buf[p]
            st = self._state
            if st == "data":
                take = min(n - p, self._size)
                out.append(buf[p : p + take])
                p += take
                self._size -= take
                if not self._size:
                    self._state = "data_cr"
                continue
            if st == "size0":
                if c not in _HEXDIG:
                    raise self._fail(_L.E_CHUNK_SIZE)
                self._line_byte()
                self._size = int(chr(c), 16)
                self._state = "size"
            elif st == "size":
                if c in _HEXDIG:
                    self._line_byte()
                    if self._size > _INT63_MAX >> 4:
                        raise self._fail(_L.E_CHUNK_OVERFLOW)
                    self._size = self._size * 16 + int(chr(c), 16)
                elif c == _CR:
                    self._state = "size_lf"
                elif c == ord(";"):
                    self._line_byte()
                    self._state = "ext"
                elif c in (_SP, _HT):
                    self._line_byte()
                    self._state = "ext_ws"
                else:
                    raise self._fail(_L.E_CHUNK_EOL if c == _LF else _L.E_CHUNK_SIZE)
            elif st == "ext_ws":
                self._line_byte()
                if c == ord(";"):
                    self._state = "ext"
                elif c not in (_SP, _HT):
                    raise self._fail(_L.E_CHUNK_EXT)
            elif st == "ext":
                if c == _CR:
                    self._state = "size_lf"
                else:
                    if not _VALUE_RUN.fullmatch(buf, p, p + 1):
                        raise self._fail(_L.E_CHUNK_EOL if c == _LF else _L.E_CHUNK_EXT)
                    self._line_byte()
            elif st == "size_lf":
                if c != _LF:
                    raise self._fail(_L.E_CHUNK_EOL)
                self._line = 0
                self._state = "data" if self._size else "trailer_start"
            elif st == "data_cr":
                if c != _CR:
                    raise self._fail(_L.E_CHUNK_EOL)
                self._state = "data_lf"
            elif st == "data_lf":
                if c != _LF:
                    raise self._fail(_L.E_CHUNK_EOL)
                self._state = "size0"
            elif st == "trailer_start":
                self._trailer_byte()
                if c == _CR:
                    self._state = "end_lf"
                elif _FULL_TOKEN.match(buf[p : p + 1]):
                    self._state = "trailer_name"
                else:
                    raise self._fail(_L.E_CHUNK_EOL if c == _LF else _L.E_TRAILER)
            elif st == "trailer_name":
                self._trailer_byte()
                if c == ord(":"):
                    self._state = "trailer_value"
                elif not _FULL_TOKEN.match(buf[p : p + 1]):
                    raise self._fail(_L.E_TRAILER)
            elif st == "trailer_value":
                self._trailer_byte()
                if c == _CR:
                    self._state = "trailer_lf"
                elif not _VALUE_RUN.fullmatch(buf, p, p + 1):
                    raise self._fail(_L.E_CHUNK_EOL if c == _LF else _L.E_TRAILER)
            elif st == "trailer_lf":
                self._trailer_byte()
                if c != _LF:
                    raise self._fail(_L.E_CHUNK_EOL)
                self._state = "trailer_start"
            elif st == "end_lf":
                if c != _LF:
                    raise self._fail(_L.E_CHUNK_EOL)
                self._state = "done"
            p += 1
        return (b"".join(out), p, self._state == "done")
