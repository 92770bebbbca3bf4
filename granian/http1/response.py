"""HTTP/1.1 response-head serialisation (sans-I/O, RFC 9112 §4-§6, RFC 9110 §15).

`build_head()` turns a status and the app's header pairs into the bytes of one response head and
tells the caller how to frame the body. It runs once per response, so everything that can be
is precomputed: status lines come from a table, validated header names from a bounded cache,
and the `server` + `date` lines from a block refreshed once per second (`refresh_date()`, called
by the worker's ticker) instead of formatting a date per response.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from http import HTTPStatus

__all__ = [
    "FRAME_CHUNKED",
    "FRAME_CLOSE",
    "FRAME_LENGTH",
    "FRAME_NONE",
    "SERVER_NAME",
    "build_head",
    "http_date",
    "refresh_date",
    "simple_response",
    "status_line",
]

# How the body that follows a head is delimited (RFC 9112 §6.3).
FRAME_NONE = 0  # no body may follow: HEAD, 1xx, 204, 304 (RFC 9110 §6.4.1)
FRAME_LENGTH = 1  # content-length
FRAME_CHUNKED = 2  # transfer-encoding: chunked (HTTP/1.1 only)
FRAME_CLOSE = 3  # delimited by closing the connection (HTTP/1.0 streaming, RFC 9112 §6.3 rule 8)

SERVER_NAME = b"granian"

# Status lines for every registered status; HTTP/1.1 is sent to 1.0 clients too, as RFC 9110
# §2.5 allows (the minor version advertises capability, framing follows the request's version).
_STATUS_LINES: dict[int, bytes] = {
    int(s): b"HTTP/1.1 %d %s\r\n" % (int(s), s.phrase.encode("latin-1")) for s in HTTPStatus
}


def status_line(status: int) -> bytes:
    """The status line for `status` (three digits, RFC 9110 §15); ValueError otherwise."""
    line = _STATUS_LINES.get(status)
    if line is not None:
        return line
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 999:
        raise ValueError(f"invalid status code {status!r}")
    # Unregistered but well-formed codes get an empty reason phrase (RFC 9112 §4: it is optional).
    line = b"HTTP/1.1 %d \r\n" % status
    _STATUS_LINES[status] = line
    return line


# Header-name kinds the serializer must act on.
_K_PLAIN = 0
_K_CONTENT_LENGTH = 1
_K_TRANSFER_ENCODING = 2
_K_DATE = 3
_K_SERVER = 4
_K_CONNECTION = 5
_SPECIAL = {
    b"content-length": _K_CONTENT_LENGTH,
    b"transfer-encoding": _K_TRANSFER_ENCODING,
    b"date": _K_DATE,
    b"server": _K_SERVER,
    b"connection": _K_CONNECTION,
}
# RFC 9110 §5.6.2 token characters: the only bytes a field name may hold.
_TCHAR = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
# Validated names (bytes or str, as the app passes them) -> (encoded name, kind). Bounded so an
# app inventing names per request cannot grow it without limit; past the bound names are still
# validated, just not remembered.
_NAMES: dict[object, tuple[bytes, int]] = {}
_NAMES_MAX = 4096


def _learn_name(name: object) -> tuple[bytes, int]:
    if name.__class__ is str or isinstance(name, str):
        raw = name.encode("latin-1")
    elif isinstance(name, (bytes, bytearray, memoryview)):
        raw = bytes(name)
    else:
        raise TypeError(f"header name must be bytes or str, not {type(name).__name__}")
    if not raw or not _TCHAR.issuperset(raw):
        raise ValueError(f"invalid header name {raw!r}")
    entry = (raw, _SPECIAL.get(raw.lower(), _K_PLAIN))
    if len(_NAMES) < _NAMES_MAX:
        _NAMES[name] = entry
    return entry


# Values already checked for CR/LF/NUL (RFC 9110 §5.5; the response-splitting guard). Apps send
# the same few values (content types, cache policies) over and over; bounded like _NAMES.
_VALUES: set[bytes] = set()
_VALUES_MAX = 4096
# `content-length: N` lines for the body sizes seen so far, below _CL_CACHE_LIMIT.
_CL_LINES: dict[int, bytes] = {}
_CL_CACHE_LIMIT = 1 << 20


def _check_value(value: bytes) -> None:
    # Byte values, not b"\r": an int operand makes `in` a plain memchr (bytes operands first
    # fail an int conversion, raising and clearing a TypeError each).
    if 13 in value or 10 in value or 0 in value:
        raise ValueError(f"invalid header value {value!r}: CR, LF and NUL are not allowed")
    if len(_VALUES) < _VALUES_MAX:
        _VALUES.add(value)


def _coerce_value(value: object) -> bytes:
    if isinstance(value, str):
        return value.encode("latin-1")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"header value must be bytes or str, not {type(value).__name__}")


def _cl_line(length: int) -> bytes:
    line = b"content-length: %d\r\n" % length
    if length < _CL_CACHE_LIMIT and len(_CL_LINES) < _VALUES_MAX:
        _CL_LINES[length] = line
    return line


_common = b""  # b"server: granian\r\ndate: ...\r\n", refreshed once per second
# The end of a head by which of date (bit 1) / server (bit 2) the app set itself.
_tails: tuple[bytes, bytes, bytes, bytes] = (b"", b"", b"", b"\r\n")
_date_line = b""
_server_line = b"server: " + SERVER_NAME + b"\r\n"
_date_second = -1


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date(second: int) -> bytes:
    """IMF-fixdate (RFC 9110 §5.6.7), locale-independent: `Sun, 06 Nov 1994 08:49:37 GMT`."""
    t = time.gmtime(second)
    return b"%s, %02d %s %04d %02d:%02d:%02d GMT" % (
        _DAYS[t.tm_wday].encode(),
        t.tm_mday,
        _MONTHS[t.tm_mon - 1].encode(),
        t.tm_year,
        t.tm_hour,
        t.tm_min,
        t.tm_sec,
    )


def refresh_date(now: float | None = None) -> None:
    """Re-render the `date` line (RFC 9110 §6.6.1 IMF-fixdate) when the second has changed."""
    global _common, _date_line, _date_second, _tails
    second = int(time.time() if now is None else now)
    if second != _date_second:
        _date_second = second
        _date_line = b"date: " + http_date(second) + b"\r\n"
        _common = _server_line + _date_line
        _tails = (_common + b"\r\n", _server_line + b"\r\n", _date_line + b"\r\n", b"\r\n")


refresh_date()


# Whole field lists seen before (as tuples of their pairs) -> (serialised fields, app's
# content-length, date/server bits, app asked for close). Apps answer with the same few header
# lists over and over; an equal key serialises to the same bytes, so only the first is
# validated field by field. Bounded like _NAMES; lists beyond a few fields are not remembered.
_HEADS: dict[tuple[object, ...], tuple[bytes, int, int, bool]] = {}
_HEADS_MAX = 512
_HEADS_FIELDS = 16


def build_head(
    status: int,
    headers: Iterable[tuple[bytes | str, bytes | str]],
    body_len: int,
    minor: int,
    keep_alive: bool,
    is_head: bool,
) -> tuple[bytes, int, bool]:
    """Serialise a response head.

    `body_len` is the length of the whole body when it is known up front (one write), or -1
    when the body will be streamed. Returns `(head, framing, keep_alive)`: `framing` is one of
    the FRAME_* constants and `keep_alive` may have been turned off (the app sent
    `connection: close`, or an HTTP/1.0 stream must be close-delimited).

    Framing is ours: the app's `transfer-encoding` is dropped, its `content-length` is kept
    (and trusted: a one-shot body of another length closes the connection afterwards, since the
    framing can no longer be relied on), `date` and `server` are added when the app set none.
    Names must be RFC 9110 tokens; values must not hold CR, LF or NUL (response splitting);
    otherwise ValueError. Non-bytes/str names or values raise TypeError.
    """
    try:
        key = tuple(headers) if headers.__class__ is list or headers.__class__ is tuple else None
        known = _HEADS.get(key) if key is not None else None
    except TypeError:  # an unhashable name or value (bytearray): take the long way
        key = known = None
    if known is not None:
        # These exact fields were validated and serialised before: reuse the result.
        fields, app_cl, common, close = known
        line = _STATUS_LINES.get(status)
        if (
            line is not None
            and body_len >= 0
            and keep_alive
            and minor
            and not (close or is_head or status < 200 or status == 204 or status == 304)
        ):
            # The common answer, a persistent HTTP/1.1 one with its whole body: what the
            # general path below would produce, in one expression.
            if app_cl < 0:
                cl = _CL_LINES.get(body_len) or _cl_line(body_len)
                return line + fields + cl + _tails[common], FRAME_LENGTH, True
            if app_cl == body_len:
                return line + fields + _tails[common], FRAME_LENGTH, True
        parts = [line or status_line(status), fields]
        if close:
            keep_alive = False
    else:
        parts = [_STATUS_LINES.get(status) or status_line(status)]
        app_cl, common, close = _serialise(headers, parts)
        if close:
            keep_alive = False
        if key is not None and len(_HEADS) < _HEADS_MAX and len(key) <= _HEADS_FIELDS:
            _HEADS[key] = (b"".join(parts[1:]), app_cl, common, close)

    if status < 200 or status == 204 or status == 304:
        framing = FRAME_NONE
    elif body_len >= 0:
        framing = FRAME_NONE if is_head else FRAME_LENGTH
        if app_cl < 0:
            # HEAD gets the length the GET body would have had (RFC 9110 §9.3.2).
            parts.append(_CL_LINES.get(body_len) or _cl_line(body_len))
        elif app_cl != body_len and not is_head:
            keep_alive = False
    elif is_head:
        framing = FRAME_NONE
    elif app_cl >= 0:
        framing = FRAME_LENGTH
    elif minor:
        framing = FRAME_CHUNKED
        parts.append(b"transfer-encoding: chunked\r\n")
    else:
        framing = FRAME_CLOSE
        keep_alive = False

    if not keep_alive:
        parts.append(b"connection: close\r\n")
    elif not minor:
        # HTTP/1.0 persistence must be confirmed explicitly (RFC 9112 §9.3 / RFC 1945 practice).
        parts.append(b"connection: keep-alive\r\n")
    if not common:
        parts.append(_common)
    elif common != 3:
        parts.append(_server_line if common == 1 else _date_line)
    parts.append(b"\r\n")
    return b"".join(parts), framing, keep_alive


def _serialise(
    headers: Iterable[tuple[bytes | str, bytes | str]], parts: list[bytes]
) -> tuple[int, int, bool]:
    """Validate the app's fields and append their lines to `parts` (see build_head)."""
    app_cl = -1
    common = 0  # bit 1: app set date, bit 2: app set server
    close = False
    for name, value in headers:
        entry = _NAMES.get(name)
        if entry is None:
            entry = _learn_name(name)
        if value.__class__ is not bytes:
            value = _coerce_value(value)
        if value not in _VALUES:
            _check_value(value)
        kind = entry[1]
        if kind:
            if kind == _K_CONTENT_LENGTH:
                if not value.isdigit():
                    raise ValueError(f"invalid content-length {value!r}")
                app_cl = int(value)
            elif kind == _K_TRANSFER_ENCODING:
                continue
            elif kind == _K_DATE:
                common |= 1
            elif kind == _K_SERVER:
                common |= 2
            elif kind == _K_CONNECTION:
                if value.lower().find(b"close") >= 0:
                    close = True
                # Connection is hop-by-hop and ours to send (RFC 9110 §7.6.1).
                continue
        parts += (entry[0], b": ", value, b"\r\n")
    return app_cl, common, close


def simple_response(status: int, body: bytes = b"", close: bool = True) -> bytes:
    """A complete plain-text response the server itself sends (errors, 408, 500)."""
    head, _, _ = build_head(
        status,
        ((b"content-type", b"text/plain; charset=utf-8"),),
        len(body),
        1,
        not close,
        False,
    )
    return head + body
