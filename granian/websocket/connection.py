"""The WebSocket connection state (RFC 6455 5-7), sans-I/O: bytes in, events and bytes out.

    conn = WSConnection(max_message_size, deflate=pmd)   # after the 101 is written
    events, out = conn.feed(data)      # one C call per chunk; write `out` if not empty
    conn.send_text(s) / conn.send_bytes(b) -> bytes       # one frame each
    conn.close(code, reason) -> bytes; conn.ping(payload) -> bytes

Events, in order of arrival:
  - `str`: a complete text message; `bytes`: a complete binary message;
  - `Ping(payload)`: answered already (the pong is in `out`); `Pong(payload)`;
  - `Close(code, reason)`: the peer's close frame (code 1005 when it had none); our reply,
    if we had not sent a close, is in `out`. The connection is CLOSED: the server closes TCP
    (7.1.1) once `out` is written;
  - `Failure(code, reason)`: the peer broke the protocol (`code` 1002, 1007 or 1009) and
    reading is over, but sending is not: the messages before it may still be answered. The
    server sends `conn.close(code, reason)` when it is ready (at once, or once the app has
    consumed the messages that came before: Autobahn's strict result wants their echoes
    before the close), then closes TCP without waiting for the peer's close (7.1.7).
Nothing follows a Close or a Failure; later feeds return nothing.
"""

from __future__ import annotations

import codecs
from typing import Any, Final, NamedTuple

from granian.websocket import codec
from granian.websocket.deflate import InflateError, PerMessageDeflate

__all__ = [
    "CLOSED",
    "CLOSING",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "OPEN",
    "Close",
    "Event",
    "Failure",
    "Ping",
    "Pong",
    "WSConnection",
    "WebSocketClosedError",
    "valid_close_code",
]

#: uvicorn's `--ws-max-size` default (16 MiB): the bound on one message's payload, over all its
#: fragments (decompressed size for compressed messages); over it is close 1009 (7.4.1).
DEFAULT_MAX_MESSAGE_SIZE: Final[int] = 16 * 1024 * 1024
#: Control frame payloads are at most 125 bytes (5.5); a close reason gets 123 after the code.
MAX_CONTROL_PAYLOAD: Final[int] = 125
MAX_CLOSE_REASON: Final[int] = MAX_CONTROL_PAYLOAD - 2

#: States: OPEN (both directions), CLOSING (we sent a close, waiting for the peer's, 7.1.2),
#: CLOSED (close handshake done, or the transport lost: only closing TCP remains). After a
#: Failure the state stays OPEN (or CLOSING) for sending until the server's close().
OPEN: Final[int] = 1
CLOSING: Final[int] = 2
CLOSED: Final[int] = 3


class Ping(NamedTuple):
    payload: bytes


class Pong(NamedTuple):
    payload: bytes


class Close(NamedTuple):
    """The peer's close frame: its code (1005 when it sent none, 7.1.5) and reason."""

    code: int
    reason: str


class Failure(NamedTuple):
    """We failed the connection (7.1.7) with this code: the peer broke the protocol."""

    code: int
    reason: str


Event = str | bytes | Ping | Pong | Close | Failure


class WebSocketClosedError(RuntimeError):
    """A message was sent after the close handshake started."""


def valid_close_code(code: int) -> bool:
    """A code a close frame may carry (7.4.1, 7.4.2 and the IANA registry, 11.7): 1000-1003,
    1007-1014 and 3000-4999. 1004 is reserved; 1005, 1006 and 1015 are never sent; 1016-2999
    are reserved for future RFCs."""
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


# record info words of a whole, final, uncompressed message in one record (the fast path)
_WHOLE: Final[int] = codec.REC_START | codec.REC_END | 0x80
_WHOLE_TEXT: Final[int] = _WHOLE | 0x1
_WHOLE_BINARY: Final[int] = _WHOLE | 0x2
_START: Final[int] = codec.REC_START
_END: Final[int] = codec.REC_END
_FINAL: Final[int] = codec.REC_END | 0x80  # the last piece of a message's last frame
_REC_WORDS: Final[int] = codec.REC_WORDS
_unpack_words: Final = codec.unpack_words
_decode: Final = codec.decode
_decode_from: Final = codec.decode_from
_E_FULL: Final[int] = codec.E_FULL
# the summary bits that say "exactly one record, a whole final text (binary) frame": sign bit
# (errors are negative), record count and last info
_SUMMARY_ONE: Final[int] = (
    (1 << 63) | (codec.SUMMARY_COUNT_MASK << codec.SUMMARY_COUNT_SHIFT) | codec.SUMMARY_INFO
)
_ONE_TEXT: Final[int] = (1 << codec.SUMMARY_COUNT_SHIFT) | _WHOLE_TEXT
_ONE_BINARY: Final[int] = (1 << codec.SUMMARY_COUNT_SHIFT) | _WHOLE_BINARY
_Utf8Decoder: Final = codecs.getincrementaldecoder("utf-8")

# headers of server frames of 0..125 bytes, by first byte: one tuple index per small frame
_HDR_TEXT: Final = codec.header_table(0x81)
_HDR_BINARY: Final = codec.header_table(0x82)
_HDR_TEXT_Z: Final = codec.header_table(0xC1)
_HDR_BINARY_Z: Final = codec.header_table(0xC2)
_HDR_CLOSE: Final = codec.header_table(0x88)
_HDR_PING: Final = codec.header_table(0x89)
_HDR_PONG: Final = codec.header_table(0x8A)
_EMPTY_CLOSE: Final[bytes] = _HDR_CLOSE[0]


def _frame(table: tuple[bytes, ...], b0: int, data: bytes) -> bytes:
    n = len(data)
    if n < 126:
        return table[n] + data
    return codec.frame_header(b0, n) + data


def _close_frame(code: int | None, reason: bytes = b"") -> bytes:
    if code is None:
        return _EMPTY_CLOSE
    payload = code.to_bytes(2, "big") + reason
    return _HDR_CLOSE[len(payload)] + payload


class WSConnection:
    """One server-side WebSocket connection after the handshake. Not thread-safe: used from
    the thread (event loop) that created it."""

    __slots__ = (
        "_ctl",
        "_compressed",
        "_dec",
        "_done",
        "_max",
        "_op",
        "_out",
        "_parts",
        "_pmd",
        "_size",
        "_utf8",
        "_rec",
        "_view",
        "close_code",
        "close_reason",
        "close_received",
        "close_sent",
        "_replied",
        "state",
    )

    def __init__(
        self, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE, deflate: PerMessageDeflate | None = None
    ) -> None:
        if max_message_size <= 0:
            raise ValueError("max_message_size must be positive")
        self._max = max_message_size
        self._pmd = deflate
        # RSV1 belongs to permessage-deflate when it was negotiated (RFC 7692 6)
        self._dec: Any = codec.new_decoder(max_message_size, 0x40 if deflate is not None else 0, True)
        s = codec.scratch()
        self._out: Any = s.out
        self._rec: Any = s.rec
        self._view: Any = s.view
        self._op = 0  # opcode of the data message being assembled; 0: none
        self._compressed = False
        self._parts: list[Any] = []
        self._size = 0  # decompressed bytes of the current compressed message
        self._utf8: Any = None
        self._ctl = b""
        self.state = OPEN
        self._done = False  # reading is over: the peer's close, a failure, or the transport lost
        #: what the app is told on disconnect: the peer's close (1005 without a code), our
        #: failure's code; None while neither happened (connection_lost() then says 1006)
        self.close_code: int | None = None
        self.close_reason = ""
        self.close_sent = False
        self._replied = False  # our Close is the reply to the peer's, handed out by feed()
        self.close_received = False

    # -- receiving -------------------------------------------------------------------------

    def feed(self, data: bytes) -> tuple[list[Event], bytes]:
        """Bytes from the peer -> (events, bytes to write)."""
        if self._done:
            return [], b""
        n = _decode(self._dec, data, len(data))
        # one whole text or binary message in the chunk, the usual case: the summary says so
        # (one record, its info, its length; it starts at offset 0), no record is read back
        kind = n & _SUMMARY_ONE
        if kind == _ONE_TEXT:
            try:
                return [self._view[0 : n >> 32].decode()], b""
            except UnicodeDecodeError:
                return [self._fail(1007, "invalid UTF-8 in a text message")], b""
        if kind == _ONE_BINARY:
            return [self._view[0 : n >> 32]], b""
        return self._feed_records(n, data)

    def _feed_records(self, n: int, data: bytes) -> tuple[list[Event], bytes]:
        events: list[Event] = []
        out: list[bytes] = []
        while True:
            count = (n >> 12) & 0xFFFFF if n >= 0 else self._out.nrec
            if count and not self._records(count, events, out):
                break  # closed or failed: the rest of the chunk is not read (7.1.7)
            if n >= 0:
                break
            if n == -_E_FULL:
                n = _decode_from(self._dec, data, len(data), self._out.consumed)
                continue
            events.append(self._fail(*codec.ERROR_CLOSE[-n]))
            break
        return events, b"".join(out) if out else b""

    def _records(self, count: int, events: list[Event], out: list[bytes]) -> bool:
        """Act on `count` records; False once the connection closed or failed."""
        view = self._view
        # every record's three words in one call, then plain ints
        it = iter(_unpack_words(self._rec, _REC_WORDS * count))
        for info, off, ln in zip(it, it, it, strict=True):
            if info == _WHOLE_TEXT:  # no message can be open then (5.4, checked in C)
                try:
                    events.append(view[off : off + ln].decode())
                except UnicodeDecodeError:
                    events.append(self._fail(1007, "invalid UTF-8 in a text message"))
                    return False
                continue
            if info == _WHOLE_BINARY:
                events.append(view[off : off + ln])
                continue
            op = info & 0x0F
            if op >= 8:
                # control frames (5.5) may come between the fragments of a message
                piece = view[off : off + ln]
                self._ctl = piece if info & _START else self._ctl + piece
                if info & _END and not self._control(op, events, out):
                    return False
                continue
            if op and info & _START:
                # a data message's first frame (the decoder enforced the sequence, 5.4)
                self._op = op
                self._compressed = bool(info & 0x40)
                self._parts = []
                self._size = 0
                if op == 1:
                    if self._utf8 is None:
                        self._utf8 = _Utf8Decoder()
                    else:
                        self._utf8.reset()
            final = (info & _FINAL) == _FINAL
            if not ln and not final:
                continue
            piece = view[off : off + ln]
            if self._compressed:
                try:
                    piece = self._pmd.decompress(piece, self._max - self._size, final)  # type: ignore[union-attr]
                except InflateError as exc:
                    events.append(self._fail(exc.code, exc.reason))
                    return False
                self._size += len(piece)
            if self._op == 1:
                # incremental: a bad byte fails the message when it arrives, not at its end
                try:
                    self._parts.append(_utf8_piece(self._utf8, piece, final))
                except UnicodeDecodeError:
                    events.append(self._fail(1007, "invalid UTF-8 in a text message"))
                    return False
            else:
                self._parts.append(piece)
            if final:
                parts = self._parts
                self._parts = []
                if self._op == 1:
                    events.append(parts[0] if len(parts) == 1 else "".join(parts))
                else:
                    events.append(parts[0] if len(parts) == 1 else b"".join(parts))
                self._op = 0
        return True

    def _control(self, op: int, events: list[Event], out: list[bytes]) -> bool:
        payload = self._ctl
        self._ctl = b""
        if op == 0x9:
            # 5.5.2: answer with the same payload as soon as practical; not after our close
            if self.state == OPEN:
                out.append(_HDR_PONG[len(payload)] + payload)
            events.append(Ping(payload))
            return True
        if op == 0xA:
            events.append(Pong(payload))
            return True
        # close (5.5.1)
        if not payload:
            code, reason = 1005, ""
        elif len(payload) == 1:
            events.append(self._fail(1002, "close frame with a 1-byte payload"))
            return False
        else:
            code = (payload[0] << 8) | payload[1]
            if not valid_close_code(code):
                events.append(self._fail(1002, "invalid close code"))
                return False
            try:
                reason = payload[2:].decode()
            except UnicodeDecodeError:
                events.append(self._fail(1007, "invalid UTF-8 in a close reason"))
                return False
        self.close_received = True
        self._done = True
        if self.state == OPEN:
            # 5.5.1: reply with a close, echoing the code (none when the peer sent none)
            out.append(_close_frame(None if code == 1005 else code))
            self.close_sent = True
            self._replied = True
        self.state = CLOSED
        self.close_code = code
        self.close_reason = reason
        events.append(Close(code, reason))
        return False

    def _fail(self, code: int, reason: str) -> Failure:
        """The peer broke the protocol: reading stops; the server closes with `code` (7.1.7)."""
        self._done = True
        self.close_code = code
        self.close_reason = reason
        return Failure(code, reason)

    # -- sending ---------------------------------------------------------------------------

    def send_text(self, text: str) -> bytes:
        """One text frame (compressed when permessage-deflate was negotiated)."""
        if self.state != OPEN:
            raise WebSocketClosedError("WebSocket is closed: cannot send")
        data = text.encode()
        if self._pmd is not None:
            return _frame(_HDR_TEXT_Z, 0xC1, self._pmd.compress(data))
        n = len(data)
        if n < 126:
            return _HDR_TEXT[n] + data
        return codec.frame_header(0x81, n) + data

    def send_bytes(self, data: bytes) -> bytes:
        """One binary frame (compressed when permessage-deflate was negotiated)."""
        if self.state != OPEN:
            raise WebSocketClosedError("WebSocket is closed: cannot send")
        if self._pmd is not None:
            return _frame(_HDR_BINARY_Z, 0xC2, self._pmd.compress(data))
        n = len(data)
        if n < 126:
            return _HDR_BINARY[n] + data
        return codec.frame_header(0x82, n) + data

    def send_message(self, data: str | bytes) -> bytes:
        """send_text for a str, send_bytes otherwise."""
        if isinstance(data, str):
            return self.send_text(data)
        return self.send_bytes(data)

    def send_before_reply(self, data: str | bytes) -> bytes:
        """A message frame after the peer's Close arrived but before the caller wrote our reply
        from `feed()`'s `out`: RFC 6455 §5.5.1 lets an endpoint delay its Close "until its
        current message is sent", so a server that holds the reply back may still answer the
        messages that came before the Close. WebSocketClosedError unless the Close is the
        peer's and ours is only that reply (after a Close we started no data frame may follow).
        The caller must write this before the reply."""
        if not self._replied:
            raise WebSocketClosedError("WebSocket is closed: cannot send")
        state = self.state
        self.state = OPEN
        try:
            return self.send_message(data)
        finally:
            self.state = state

    def ping(self, payload: bytes = b"") -> bytes:
        """A ping (the server's keep-alive, 5.5.2); b"" once a close was sent."""
        if len(payload) > MAX_CONTROL_PAYLOAD:
            raise ValueError("a ping payload is at most 125 bytes")
        if self.state != OPEN:
            return b""
        return _HDR_PING[len(payload)] + payload

    def pong(self, payload: bytes = b"") -> bytes:
        """An unsolicited pong (5.5.3); b"" once a close was sent."""
        if len(payload) > MAX_CONTROL_PAYLOAD:
            raise ValueError("a pong payload is at most 125 bytes")
        if self.state != OPEN:
            return b""
        return _HDR_PONG[len(payload)] + payload

    def close(self, code: int | None = 1000, reason: str = "") -> bytes:
        """Start the close handshake (7.1.2): our close frame, then wait for the peer's Close
        (a bounded time: the server's job). `code` None sends a close without a code; the
        reason is cut to 123 UTF-8 bytes at a character boundary. b"" when a close was sent
        already or the connection is CLOSED (idempotent)."""
        if code is not None and not valid_close_code(code):
            raise ValueError(f"invalid close code {code}")
        if self.state != OPEN:
            return b""
        self.state = CLOSING
        self.close_sent = True
        if code is None:
            return _EMPTY_CLOSE
        return _close_frame(code, _truncate(reason))

    def connection_lost(self) -> tuple[int, str]:
        """The transport is gone: the state becomes CLOSED and the (code, reason) to report is
        returned: the peer's close or our failure's, else 1006 (abnormal closure, 7.1.5)."""
        self.state = CLOSED
        self._done = True
        if self.close_code is None:
            return 1006, ""
        return self.close_code, self.close_reason


def _utf8_piece(dec: Any, piece: bytes, final: bool) -> str:
    """One piece of a text message through the incremental decoder. CPython's decoder holds
    back an incomplete sequence; it refuses every impossible prefix at once except ED A0-BF
    (a UTF-16 surrogate, RFC 3629 4), which it only refuses with the third byte: checked here,
    so that byte fails the message when it arrives too."""
    text: str = dec.decode(piece, final)
    if not final:
        pending = dec.getstate()[0]
        if len(pending) == 2 and pending[0] == 0xED and pending[1] >= 0xA0:
            raise UnicodeDecodeError("utf-8", pending, 0, 2, "surrogate")
    return text


def _truncate(reason: str) -> bytes:
    raw = reason.encode("utf-8", "replace")
    if len(raw) <= MAX_CLOSE_REASON:
        return raw
    return raw[:MAX_CLOSE_REASON].decode("utf-8", "ignore").encode()
