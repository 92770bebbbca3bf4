"""The fallback engine: the pure-Python `h2` library behind NgSession's interface.

Used where libnghttp2 cannot be loaded; about 30x slower per request (docs: issue 14's
measurement, 49-66 us against 2.0-2.2). Same events, same return values, same limits where h2
lets us set them. Differences, all bounded:
- a malformed request header block, too many streams, or a header list over
  `max_headers_size` is a connection error (GOAWAY) in h2, where nghttp2 resets the stream or
  answers 431;
- the CONTINUATION guard is h2's own fixed backlog of 64 frames (`max_continuations` unused);
- a GOAWAY from the peer ends the session at once (h2 closes its state machine on it).
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Final

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    PingAckReceived,
    PingReceived,
    RemoteSettingsChanged,
    RequestReceived,
    SettingsAcknowledged,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)
from h2.exceptions import H2Error as H2LibError
from h2.exceptions import NoSuchStreamError, ProtocolError, StreamClosedError
from h2.settings import SettingCodes, Settings
from hyperframe.frame import GoAwayFrame

from granian.http2.config import DEFAULT_WINDOW, H2Config
from granian.http2.events import (
    CANCEL,
    CLOSE,
    DATA,
    ENHANCE_YOUR_CALM,
    NO_ERROR,
    PING_ACK,
    PROTOCOL_ERROR,
    REFUSED_STREAM,
    REQUEST,
    RESET,
    SETTINGS_ACK,
    TRAILERS,
    Event,
    H2Error,
    H2HeaderError,
    Headers,
)

_FRAME_SIZE_ERROR: Final = 0x6  # RFC 9113 §7

if TYPE_CHECKING:
    from h2.events import Event as H2Event

__all__ = ["H2LibSession"]

# RFC 9110 section 5.6.2 token, lower-case only (RFC 9113 section 8.2.1).
_TOKEN: Final = re.compile(rb"[!#$%&'*+\-.^_`|~0-9a-z]+\Z")
# RFC 9113 section 8.2.2: connection-specific fields never travel in HTTP/2.
_CONNECTION_SPECIFIC: Final = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade")
)
_MAX_STREAM_ID: Final = 2**31 - 1
# Compact a stream's send buffer once this much of its head has been framed.
_COMPACT: Final = 1 << 20


def _normalize(headers: Headers) -> Headers:
    """What csrc/h2.c's build_nv does: lower-case and check names, trim values, refuse CR, LF
    and NUL, drop connection-specific fields and any TE but "trailers"."""
    out: Headers = []
    for name, value in headers:
        name = bytes(name).lower()
        if not _TOKEN.match(name):
            raise H2HeaderError(f"header name {name!r} not allowed in HTTP/2")
        value = bytes(value).strip(b" \t")
        if b"\r" in value or b"\n" in value or b"\0" in value:
            raise H2HeaderError(f"header {name!r}: CR, LF and NUL are not allowed in a value")
        if name in _CONNECTION_SPECIFIC or (name == b"te" and value.lower() != b"trailers"):
            continue
        out.append((name, value))
    return out


def _request_is_valid(method: bytes, path: bytes, authority: bytes, hosts: list[bytes]) -> bool:
    """The checks csrc/h2.c's request_is_valid adds to the library's (RFC 9113 section 8.3.1)."""
    if method != b"CONNECT":
        if not path:
            return False
        if path[0] != 0x2F and not (method == b"OPTIONS" and path == b"*"):
            return False
    if len(hosts) > 1:
        return False
    return not (hosts and authority and hosts[0].lower() != authority.lower())


class _Stream:
    __slots__ = ("buf", "off", "responded", "ended", "fin_sent", "trailers", "over", "unconsumed")

    def __init__(self) -> None:
        self.buf = bytearray()
        self.off = 0
        self.responded = False
        self.ended = False  # no more body bytes will be added
        self.fin_sent = False
        self.trailers: Headers | None = None
        self.over = False
        self.unconsumed = 0

    def pending(self) -> int:
        return len(self.buf) - self.off


class H2LibSession:
    """A server-side HTTP/2 connection on the `h2` library (the interface: granian.http2.Session)."""

    engine: Final = "h2"

    def __init__(
        self,
        config: H2Config | None = None,
        *,
        upgrade_settings: bytes | None = None,
        upgrade_head: bool = False,
    ) -> None:
        cfg = self.config = config or H2Config()
        conf = H2Configuration(
            client_side=False,
            header_encoding=None,
            # _normalize() does the outbound work once; inbound validation is h2's
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
            validate_inbound_headers=True,
            normalize_inbound_headers=False,  # cookies stay split, as nghttp2 gives them
        )
        c = self._c = H2Connection(conf)
        initial = {
            SettingCodes.MAX_CONCURRENT_STREAMS: cfg.max_concurrent_streams,
            SettingCodes.INITIAL_WINDOW_SIZE: cfg.initial_stream_window_size,
            SettingCodes.MAX_FRAME_SIZE: cfg.max_frame_size,
            SettingCodes.MAX_HEADER_LIST_SIZE: cfg.max_headers_size,
        }
        if cfg.header_table_size:
            initial[SettingCodes.HEADER_TABLE_SIZE] = cfg.header_table_size
        c.local_settings = Settings(client=False, initial_values=initial)
        # h2 applies its local settings once acknowledged; a peer may use them as soon as it has
        # read them (RFC 9113 section 6.5.3), so the receiving limits take them now.
        c.max_inbound_frame_size = cfg.max_frame_size
        c.decoder.max_header_list_size = cfg.max_headers_size
        self._streams: dict[int, _Stream] = {}
        self._drained: list[int] = []
        self._pre = b""  # frames h2 does not let us queue (a graceful GOAWAY), in order
        self._closed = False
        self._close_code = NO_ERROR
        self._goaway_last: int | None = None
        self._last_sid = 0
        self._empty_run = 0
        self._acks = 0  # PING and SETTINGS acks queued since the last data_to_send()
        self._tokens = float(cfg.reset_burst)
        self._tokens_at = time.monotonic()
        if upgrade_settings is not None:
            # RFC 7540 section 3.2.1: base64url without its '=' padding, which h2 wants back
            padded = upgrade_settings + b"=" * (-len(upgrade_settings) % 4)
            c.initiate_upgrade_connection(padded)
            self._streams[1] = _Stream()
            self._last_sid = 1
        else:
            c.initiate_connection()
        if cfg.initial_connection_window_size > DEFAULT_WINDOW:
            c.increment_flow_control_window(cfg.initial_connection_window_size - DEFAULT_WINDOW)

    # -- input --------------------------------------------------------------------------------

    def feed(self, data: bytes) -> list[Event]:
        """Process one received chunk; returns its events (events.py lists them)."""
        if self._closed:
            return []
        try:
            h2_events = self._c.receive_data(data)
        except ProtocolError as e:  # h2 has queued its GOAWAY
            return self._close(int(e.error_code))
        except H2LibError:  # any other refusal of the peer's bytes: no GOAWAY queued yet
            self.terminate(PROTOCOL_ERROR)
            return [(CLOSE, PROTOCOL_ERROR)]
        out: list[Event] = []
        for ev in h2_events:
            self._dispatch(ev, out)
            if self._closed:
                return [(CLOSE, self._close_code)]
        pending = self._c.incoming_buffer._data
        if len(pending) >= 9 and int.from_bytes(pending[:3], "big") > self._c.incoming_buffer.max_frame_size:
            # h2 checks a frame's length only once the whole frame is buffered: a header
            # announcing 16 MB would be buffered first. RFC 9113 §4.2: FRAME_SIZE_ERROR now,
            # as nghttp2 does on the header alone.
            self.terminate(_FRAME_SIZE_ERROR)
            return [(CLOSE, _FRAME_SIZE_ERROR)]
        return out

    def _dispatch(self, ev: H2Event, out: list[Event]) -> None:
        if isinstance(ev, RequestReceived):
            self._request(ev.stream_id, ev.headers or [], ev.stream_ended is not None, out)
        elif isinstance(ev, DataReceived):
            sid = ev.stream_id
            data = ev.data or b""
            flow = ev.flow_controlled_length or 0
            ended = ev.stream_ended is not None
            if flow == 0 and not ended:
                # CVE-2019-9518, as csrc/h2.c: a run of empty DATA frames
                self._empty_run += 1
                if self.config.max_empty_frames and self._empty_run > self.config.max_empty_frames:
                    self.terminate(ENHANCE_YOUR_CALM)
                    return
            elif flow:
                self._empty_run = 0
            st = self._streams.get(sid)
            if st is None:
                self._ack(sid, flow)  # nobody reads it: give the window back now
                return
            if flow > len(data):
                self._ack(sid, flow - len(data))  # padding never reaches the application
            st.unconsumed += len(data)
            out.append((DATA, sid, data, ended, len(data)))
        elif isinstance(ev, TrailersReceived):
            if ev.stream_id in self._streams:
                out.append((TRAILERS, ev.stream_id, list(ev.headers or [])))
        elif isinstance(ev, StreamReset):
            sid = ev.stream_id
            if ev.remote_reset and not self._reset_token():
                # CVE-2023-44487, nghttp2's token bucket on received RST_STREAM
                self.terminate(ENHANCE_YOUR_CALM)
                return
            st = self._streams.pop(sid, None)
            if st is not None:
                if st.unconsumed:
                    self._ack(sid, st.unconsumed)
                out.append((RESET, sid, int(ev.error_code or 0)))
        elif isinstance(ev, WindowUpdated):
            if ev.stream_id:
                st = self._streams.get(ev.stream_id)
                if st is not None:
                    self._pump(ev.stream_id, st)
            else:
                self._pump_all()
        elif isinstance(ev, RemoteSettingsChanged):
            changed = ev.changed_settings
            # CVE-2019-9515, as nghttp2's max_settings: entries per SETTINGS frame (h2 folds
            # repeated ids, which only makes the frame cheaper)
            if self.config.max_settings and len(changed) > self.config.max_settings:
                self.terminate(ENHANCE_YOUR_CALM)
                return
            self._ack_queued()
            if SettingCodes.INITIAL_WINDOW_SIZE in changed or SettingCodes.MAX_FRAME_SIZE in changed:
                self._pump_all()
        elif isinstance(ev, PingReceived):
            self._ack_queued()
        elif isinstance(ev, SettingsAcknowledged):
            out.append((SETTINGS_ACK,))
        elif isinstance(ev, PingAckReceived):
            out.append((PING_ACK, ev.ping_data))
        elif isinstance(ev, ConnectionTerminated):
            # h2 closes the connection's state machine on GOAWAY: nothing more can be sent
            self._closed = True
            self._close_code = int(ev.error_code or 0)
        # StreamEnded is folded into REQUEST/DATA; priority, ALTSVC, unknown frames: ignored

    def _request(self, sid: int, raw: list[tuple[bytes, bytes]], ended: bool, out: list[Event]) -> None:
        if self._goaway_last is not None and sid > self._goaway_last:
            self._c.reset_stream(sid, REFUSED_STREAM)  # section 6.8: after our GOAWAY
            return
        method = path = scheme = authority = b""
        headers: Headers = []
        hosts: list[bytes] = []
        for name, value in raw:
            if name[:1] == b":":
                if name == b":method":
                    method = value
                elif name == b":path":
                    path = value
                elif name == b":scheme":
                    scheme = value
                elif name == b":authority":
                    authority = value
            else:
                if name == b"host":
                    hosts.append(value)
                headers.append((name, value))
        self._last_sid = max(self._last_sid, sid)
        if not _request_is_valid(method, path, authority, hosts):
            self._c.reset_stream(sid, PROTOCOL_ERROR)
            return
        self._streams[sid] = _Stream()
        out.append((REQUEST, sid, method, path, scheme, authority, headers, ended))

    def _reset_token(self) -> bool:
        cfg = self.config
        if not cfg.reset_burst:
            return True
        now = time.monotonic()
        self._tokens = min(float(cfg.reset_burst), self._tokens + (now - self._tokens_at) * cfg.reset_rate)
        self._tokens_at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    def _ack_queued(self) -> None:
        # CVE-2019-9512/9515, as nghttp2's max_outbound_ack: a peer that floods PING or
        # SETTINGS faster than it reads our acks is cut off
        self._acks += 1
        if self.config.max_outbound_ack and self._acks > self.config.max_outbound_ack:
            self.terminate(ENHANCE_YOUR_CALM)

    def _ack(self, sid: int, n: int) -> None:
        if n and not self._closed:
            self._c.acknowledge_received_data(n, sid)

    def _close(self, code: int) -> list[Event]:
        self._closed = True
        self._close_code = code
        return [(CLOSE, code)]

    # -- output -------------------------------------------------------------------------------

    def data_to_send(self) -> bytes:
        """Every byte ready to go out; b"" when none."""
        self._acks = 0
        out = self._c.data_to_send()
        if self._pre:
            out, self._pre = self._pre + out, b""
        return out

    def data_to_write(self) -> bytes:
        """`data_to_send()`: this engine always gathers into one bytes object."""
        return self.data_to_send()

    def drained(self) -> list[int]:
        """Streams whose buffered body went back to `max_send_buffer_size` or below (only
        those that had gone above it). Clears the list."""
        d = self._drained
        if d:
            self._drained = []
        return d

    @property
    def finished(self) -> bool:
        """True once the session wants neither to read nor to write: close the connection."""
        if self._closed:
            return True
        return self._goaway_last is not None and not self._streams and self._c.open_inbound_streams == 0

    @property
    def lib_error(self) -> int:
        return 0

    @property
    def open_streams(self) -> int:
        return len(self._streams)

    def _pump_all(self) -> None:
        for sid, st in list(self._streams.items()):
            if st.responded and (st.pending() or st.ended):
                self._pump(sid, st)

    def _pump(self, sid: int, st: _Stream) -> None:
        """Frame as much of the stream's buffer as the windows allow (h2 queues the bytes)."""
        if not st.responded or st.fin_sent or self._closed:
            return
        c = self._c
        try:
            while True:
                pending = st.pending()
                if pending:
                    n = min(c.local_flow_control_window(sid), c.max_outbound_frame_size, pending)
                    if n <= 0:
                        break
                    with memoryview(st.buf) as mv:
                        chunk = bytes(mv[st.off : st.off + n])
                    st.off += n
                    last = st.ended and st.off == len(st.buf) and st.trailers is None
                    c.send_data(sid, chunk, end_stream=last)
                    if last:
                        st.fin_sent = True
                        break
                elif st.ended:
                    if st.trailers is not None:
                        c.send_headers(sid, st.trailers, end_stream=True)
                    else:
                        c.end_stream(sid)
                    st.fin_sent = True
                    break
                else:
                    break
        except StreamClosedError:
            st.fin_sent = True
        if st.off == len(st.buf):
            st.buf.clear()
            st.off = 0
        elif st.off > _COMPACT and st.off > len(st.buf) // 2:
            del st.buf[: st.off]
            st.off = 0
        if st.over and st.pending() <= self.config.max_send_buffer_size:
            st.over = False
            self._drained.append(sid)
        if st.fin_sent:
            self._streams.pop(sid, None)
            if st.unconsumed:
                self._ack(sid, st.unconsumed)

    def _open(self, stream_id: int) -> _Stream | None:
        return None if self._closed else self._streams.get(stream_id)

    def send_response_block(
        self, stream_id: int, status: int, block: bytes, nfields: int, body: bytes = b"", end: bool = True
    ) -> int:
        """`send_response` with the fields already joined (`engine.field_block`)."""
        it = iter(block.split(b"\0") if nfields else ())
        return self.send_response(stream_id, status, list(zip(it, it, strict=True)), body, end)

    def send_response(
        self, stream_id: int, status: int, headers: Headers, body: bytes = b"", end: bool = True
    ) -> int:
        """Submit the response head and a first part of the body (all of it with `end`).
        Returns the bytes buffered for the stream, or -1 if the stream is gone."""
        st = self._open(stream_id)
        if st is None:
            return -1
        if st.responded:
            raise H2Error("the response has already started", -3)
        if not 200 <= status <= 999:
            raise H2Error(f"status {status} out of range", -4)
        head = [(b":status", b"%d" % status), *_normalize(headers)]
        try:
            if end and not body:
                self._c.send_headers(stream_id, head, end_stream=True)
                st.responded = st.ended = st.fin_sent = True
                self._streams.pop(stream_id, None)
                if st.unconsumed:
                    self._ack(stream_id, st.unconsumed)
                return 0
            self._c.send_headers(stream_id, head, end_stream=False)
        except StreamClosedError:
            self._streams.pop(stream_id, None)
            return -1
        st.responded = True
        st.buf += body
        st.ended = end
        return self._after_append(stream_id, st)

    def _after_append(self, stream_id: int, st: _Stream) -> int:
        if st.pending() > self.config.max_send_buffer_size:
            st.over = True
        self._pump(stream_id, st)
        return st.pending() if not st.fin_sent else 0

    def send_informational(self, stream_id: int, status: int, headers: Headers) -> bool:
        """A 1xx response head (100 Continue, 103 Early Hints) before the final one."""
        st = self._open(stream_id)
        if st is None:
            return False
        if st.responded:
            raise H2Error("the response has already started", -3)
        if not 100 <= status <= 199 or status == 101:  # RFC 9113 section 8.6: no 101
            raise H2Error(f"status {status} is not an informational one", -4)
        self._c.send_headers(stream_id, [(b":status", b"%d" % status), *_normalize(headers)])
        return True

    def send_data(self, stream_id: int, data: bytes, end: bool = False) -> int:
        """Append body bytes (after `send_response(..., end=False)`). Returns the bytes now
        buffered for the stream (above `max_send_buffer_size`: wait for `drained()`), -1 if
        the stream is gone."""
        st = self._open(stream_id)
        if st is None:
            return -1
        if not st.responded or st.ended:
            raise H2Error("no response body is open on this stream", -3)
        st.buf += data
        st.ended = end
        return self._after_append(stream_id, st)

    def send_trailers(self, stream_id: int, headers: Headers) -> bool:
        """End the response with a trailer section (after `send_response(..., end=False)`)."""
        st = self._open(stream_id)
        if st is None:
            return False
        if not st.responded or st.ended:
            raise H2Error("no response body is open on this stream", -3)
        st.trailers = _normalize(headers) or None
        st.ended = True
        self._pump(stream_id, st)
        return True

    def buffered(self, stream_id: int) -> int:
        st = self._streams.get(stream_id)
        return -1 if st is None else st.pending()

    def reset(self, stream_id: int, error_code: int = CANCEL) -> None:
        """RST_STREAM: drop the stream (no RESET event follows for it)."""
        st = self._streams.pop(stream_id, None)
        if st is None or self._closed:
            return
        try:
            self._c.reset_stream(stream_id, error_code)
        except StreamClosedError:
            pass
        if st.unconsumed:
            self._ack(stream_id, st.unconsumed)

    # -- flow control ---------------------------------------------------------------------------

    def consume(self, stream_id: int, n: int) -> None:
        """The application read `n` flow-controlled bytes of the stream's body."""
        st = self._streams.get(stream_id)
        if st is None:
            return  # its bytes went back to the connection when it closed
        n = min(n, st.unconsumed)
        if n:
            st.unconsumed -= n
            self._ack(stream_id, n)

    def set_local_window(self, stream_id: int, size: int) -> None:
        """Grow our receive window of a stream (0: the connection) to `size`; h2 cannot shrink.
        A stream that is gone is left alone, as nghttp2 does."""
        c = self._c
        if self._closed:
            return
        try:
            if stream_id:
                current = c.remote_flow_control_window(stream_id)
            else:
                current = c.inbound_flow_control_window
            if size > current:
                c.increment_flow_control_window(size - current, stream_id=stream_id or None)
        except NoSuchStreamError:  # StreamClosedError too (its subclass)
            pass

    def remote_window(self, stream_id: int = 0) -> int:
        c = self._c
        if not stream_id:
            return int(c.outbound_flow_control_window)
        try:
            return int(c.local_flow_control_window(stream_id))
        except StreamClosedError:
            return -1

    # -- connection -----------------------------------------------------------------------------

    def ping(self, opaque: bytes) -> None:
        if len(opaque) != 8:
            raise ValueError("a PING carries exactly 8 opaque bytes (RFC 9113 section 6.7)")
        self._c.ping(opaque)

    def goaway(self, error_code: int = NO_ERROR, last_stream_id: int | None = None) -> None:
        """GOAWAY naming the last stream we process (default: the last one received); open
        streams up to it go on, newer ones are refused (RFC 9113 section 6.8)."""
        last = self._last_sid if last_stream_id is None else last_stream_id
        if error_code != NO_ERROR:
            self._c.close_connection(error_code=error_code, last_stream_id=last)
            self._closed = True
            self._close_code = error_code
            return
        self._queue_goaway(last)
        self._goaway_last = last

    def shutdown_notice(self) -> None:
        """The first GOAWAY of a graceful shutdown (last stream id 2^31-1, section 6.8)."""
        self._queue_goaway(_MAX_STREAM_ID)

    def _queue_goaway(self, last: int) -> None:
        # h2's close_connection() would close its state machine and end the open streams with it
        f = GoAwayFrame(stream_id=0, last_stream_id=last, error_code=NO_ERROR)
        self._pre += self._c.data_to_send() + f.serialize()

    def terminate(self, error_code: int = NO_ERROR) -> None:
        """GOAWAY, and the session ends once it is sent (`finished`)."""
        if not self._closed:
            self._c.close_connection(error_code=error_code, last_stream_id=self._last_sid)
        self._closed = True
        self._close_code = error_code

    @property
    def last_stream_id(self) -> int:
        return self._last_sid
