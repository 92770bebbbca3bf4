"""Sans-I/O HTTP/1.1 server connection: the bytes a connection has read and the decisions about
them (where a request head starts and ends, keep-alive, pipelining, body framing, what comes
after a response). No transport, no asyncio, no request objects: the results are tuples and
small int codes, so the hot path creates nothing per request beyond the parser's own tuple.

`H1State` is the base class of the asyncio connection (granian.server.h1.H1Protocol), which
owns the I/O and inlines the two commonest transitions (a fresh head in one read, a
keep-alive response with nothing pipelined) for speed; both are the first branch of
`receive()` and of `response_done()` here. It is tested on its own, without sockets.

States (RFC 9112 §9.3: requests are served one at a time, in order):
- IDLE: between requests; received bytes are (part of) the next head.
- REQUEST: a request is in flight; its body bytes go to it, later bytes wait (pipelining).
- DISCARD: its response is complete but its body is not; the rest is read and dropped.
- CLOSED: no further request on this connection (close, a peer error, a protocol switch).
"""

from __future__ import annotations

from typing import Any

from ..errors import ProtocolError
from .conn import DISCARD_LIMIT, body_reader, split_target, wants_keep_alive
from .parser import F_EXPECT_CONTINUE, F_UPGRADE, H1Limits, Head, parse_head

__all__ = [
    "BODY",
    "CLOSE",
    "CLOSED",
    "DISCARD",
    "DROP_BODY",
    "HEAD",
    "IDLE",
    "NEED_DATA",
    "NEXT",
    "OVERFLOW",
    "PAUSE",
    "REQUEST",
    "WAIT",
    "H1State",
]

IDLE, REQUEST, DISCARD, CLOSED = 0, 1, 2, 3

# receive() results: what the new bytes call for.
NEED_DATA = 0  # nothing to do yet
HEAD = 1  # a head may be complete: next_head()
BODY = 2  # body bytes are buffered: feed_body()
PAUSE = 3  # pipelined bytes past the buffer size: stop reading until the request in flight ends
OVERFLOW = 4  # a partial head past the buffer size: 431 (RFC 6585 §5)

# response_done() results: what follows a complete response.
NEXT = 0  # pipelined bytes are buffered: parse the next head
WAIT = 1  # wait for the next request
DROP_BODY = 2  # the request's unread body is still coming: read and drop it (DISCARD)
CLOSE = 3  # close the connection

_QMARK = 0x3F  # "?": an int operand makes `in` a memchr (see granian.http1.parser)
_LF = 0x0A

_METHODS = {
    m: m.decode("ascii")
    for m in (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS", b"CONNECT", b"TRACE")
}


class H1State:
    __slots__ = (
        "limits",
        "buffer_size",
        "state",
        "_buf",
        "_pos",
        "_partial",
        "_reader",
        "_discarded",
        "_continue",
        "upgrade",
    )

    def __init__(self, limits: H1Limits, buffer_size: int) -> None:
        self.limits = limits
        # --http1-buffer-size: the most bytes held for a head or for pipelined requests
        self.buffer_size = buffer_size
        self.state = IDLE
        self._buf = b""  # read bytes; the unconsumed ones start at _pos
        self._pos = 0
        self._partial: bytearray | None = None  # a head still incomplete, or pipelined bytes
        self._reader: Any = None  # the request body's decoder (granian.http1.conn), if any
        self._discarded = 0  # body bytes dropped after the response (DISCARD)
        self._continue = False  # the request in flight expects `100 Continue` (RFC 9110 §10.1.1)
        # F_UPGRADE of the last head that had it (Connection: upgrade + an Upgrade field, RFC
        # 9110 §7.8): set only on the slow branch of next_head; the connection clears it when
        # it routes the request, so a plain request pays one attribute test (granian.server.h1)
        self.upgrade = 0

    # ---------------------------------------------------------------- bytes in

    def receive(self, data: bytes) -> int:
        """Take newly read bytes; returns NEED_DATA, HEAD, BODY, PAUSE or OVERFLOW."""
        if self._reader is not None:
            # Body bytes, for the request in flight or being discarded after its response.
            if self._pos < len(self._buf):
                data = self._buf[self._pos :] + data
            self._buf = data
            self._pos = 0
            return BODY
        state = self.state
        if state == REQUEST:
            return PAUSE if self._stash(data) else NEED_DATA
        if state == CLOSED:
            return NEED_DATA
        more = self._partial
        if more is not None:
            more += data
            if _LF not in data:
                # A head only ends at a line end: do not re-parse a growing partial line.
                return OVERFLOW if len(more) > self.buffer_size else NEED_DATA
            data = bytes(more)
            self._partial = None
        elif self._pos < len(self._buf):
            data = self._buf[self._pos :] + data
        self._buf = data
        self._pos = 0
        return HEAD if data else NEED_DATA

    def _stash(self, data: bytes) -> bool:
        """Keep bytes that arrive while a request is in flight; True once past the buffer."""
        more = self._partial
        if more is None:
            more = self._partial = bytearray(self._buf[self._pos :])
            self._buf = b""
            self._pos = 0
        more += data
        return len(more) > self.buffer_size

    def pipelined(self) -> bool:
        """Whether unconsumed bytes (the start of a next request) are buffered."""
        return bool(self._partial) or self._pos < len(self._buf)

    # ---------------------------------------------------------------- heads

    def next_head(self) -> tuple[str, bytes, bytes, int, list[tuple[bytes, bytes]], bool, bool] | None:
        """The next request head in the buffer, as
        `(method, path, query, minor, headers, keep_alive, body_eof)`,
        and the state becomes REQUEST; None while the head is incomplete. Raises
        ProtocolError with the status for the peer (400, 414, 431, 501, 505)."""
        if self._partial is not None:
            self._buf = bytes(self._partial)
            self._pos = 0
            self._partial = None
        buf = self._buf
        pos = self._pos
        res = parse_head(buf, pos, self.limits)
        if res is None:
            self.incomplete_head()
            return None
        return self.start_request(res)

    def incomplete_head(self) -> None:
        """parse_head() found no complete head at the unconsumed bytes: keep them for the next
        read. Raises ProtocolError (431) once they exceed the buffer (RFC 6585 §5)."""
        buf = self._buf
        pos = self._pos
        if len(buf) - pos > self.buffer_size:
            raise ProtocolError("request head too large", 431)
        self._partial = bytearray(buf[pos:] if pos else buf)
        self._buf = b""
        self._pos = 0

    def start_request(
        self, res: Head
    ) -> tuple[str, bytes, bytes, int, list[tuple[bytes, bytes]], bool, bool]:
        """The decisions about a parsed head (`parse_head`'s result at the unconsumed bytes):
        target split, keep-alive, body framing, `100 Continue`; the state becomes REQUEST."""
        end, method, target, minor, headers, content_length, flags = res
        if target[:1] == b"/" and _QMARK not in target:
            path, query = target, b""
        else:
            path, query = split_target(target)
        self.state = REQUEST
        self._pos = end
        if flags or content_length > 0:
            keep = wants_keep_alive(minor, flags)
            self.upgrade = flags & F_UPGRADE
            reader = body_reader(content_length, flags)
            self._continue = reader is not None and bool(flags & F_EXPECT_CONTINUE)
            if reader is not None:
                self._reader = reader
                self._discarded = 0
        else:
            # The common case (no body, no Connection/Expect/TE fields): HTTP/1.1 persists.
            keep = minor == 1
            reader = None
            self._continue = False
            self.upgrade = 0
        method_s = _METHODS.get(method) or method.decode("latin-1")
        return method_s, path, query, minor, headers, keep, reader is None

    # ---------------------------------------------------------------- bodies

    def feed_body(self) -> tuple[bytes, bool]:
        """Decode the buffered body bytes: `(data, done)`. In DISCARD the data is counted as
        dropped and the state returns to IDLE when done. Raises ProtocolError (400) on a
        malformed chunked body."""
        data, end, done = self._reader.feed(self._buf, self._pos)
        self._pos = end
        if done:
            self._reader = None
        if self.state == DISCARD:
            self._discarded += len(data)
            if done:
                self.state = IDLE
        return data, done

    def discard_overflow(self) -> bool:
        """In DISCARD: more than DISCARD_LIMIT bytes were dropped and the body goes on."""
        return self._reader is not None and self._discarded > DISCARD_LIMIT

    def unread_too_large(self) -> bool:
        """Whether an unread request body rules out keeping the connection: the client still
        waits for `100 Continue`, or more than DISCARD_LIMIT bytes are still to come."""
        reader = self._reader
        if reader is None:
            return False
        return self._continue or reader.remaining > DISCARD_LIMIT

    # ---------------------------------------------------------------- after a response

    def response_done(self, keep_alive: bool) -> int:
        """The response of the request in flight is complete; `keep_alive` is whether it leaves
        the connection persistent. Returns NEXT, WAIT, DROP_BODY or CLOSE."""
        if not keep_alive or self.state == CLOSED:
            self.state = CLOSED
            return CLOSE
        if self._reader is not None:
            # The app answered without reading its whole body; drop the rest (RFC 9112 §9.3)
            # unless it is large or the client is still waiting for `100 Continue`.
            if self.unread_too_large():
                self.state = CLOSED
                return CLOSE
            self.state = DISCARD
            return DROP_BODY
        self.state = IDLE
        return NEXT if self._partial or self._pos < len(self._buf) else WAIT

    def close(self) -> None:
        """No further request (an error answered, a shutdown): drop what is buffered."""
        self.state = CLOSED
        self._partial = None
        self._buf = b""
        self._pos = 0

    def take_unconsumed(self) -> bytes:
        """For a protocol switch: every byte read and not consumed, once; then CLOSED."""
        partial = self._partial
        data = bytes(partial) if partial is not None else self._buf[self._pos :]
        self.close()
        return data
