"""A raw HTTP/2 client over a real socket for the serving tests (tests/test_h2_*.py): the `h2`
library frames what a well-behaved client sends; `send_raw` and hyperframe cover the rest.
Every read is bounded by a timeout: a test never hangs on a server that stays silent."""

from __future__ import annotations

import socket
import time
from typing import Any

import h2.events as ev
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.exceptions import ProtocolError
from h2.settings import SettingCodes
from hyperframe.frame import Frame

__all__ = ["H2Client", "ev", "SettingCodes"]


class H2Client:
    def __init__(
        self,
        port: int,
        settings: dict[int, int] | None = None,
        timeout: float = 10.0,  # generous: the suite shares a loaded machine
        host: str = "127.0.0.1",
        sock: socket.socket | None = None,
        upgrade: bool = False,
    ) -> None:
        self.sock = sock or socket.create_connection((host, port), timeout=timeout)
        self.timeout = timeout
        self.authority = f"{host}:{port}".encode()
        self.c = H2Connection(H2Configuration(client_side=True, header_encoding=None))
        self.events: list[Any] = []
        self.raw = bytearray()  # every byte received: `frames()` parses them whatever h2 thinks
        self.closed = False
        self.auto_ack = True  # send what h2 queued (PING/SETTINGS acks) after each read
        if upgrade:
            # h2c Upgrade (RFC 7540 §3.2): the HTTP2-Settings value for the HTTP/1.1 request;
            # the preface goes out on the first flush(), after the 101.
            self.upgrade_settings: bytes = self.c.initiate_upgrade_connection()
            return
        self.c.initiate_connection()
        if settings:
            self.c.update_settings(settings)
        self.flush()

    # ---------------------------------------------------------------- sending

    def flush(self) -> None:
        data = self.c.data_to_send()
        if data and not self.closed:
            try:
                self.sock.sendall(data)
            except OSError:
                self.closed = True

    def send_raw(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError:
            self.closed = True

    def request(
        self,
        path: str,
        method: str = "GET",
        body: bytes | None = None,
        headers: list[tuple[bytes, bytes]] | None = None,
        end: bool = True,
    ) -> int:
        sid: int = self.c.get_next_available_stream_id()
        hdrs = [
            (b":method", method.encode()),
            (b":path", path.encode()),
            (b":scheme", b"http"),
            (b":authority", self.authority),
            *(headers or []),
        ]
        self.c.send_headers(sid, hdrs, end_stream=end and body is None)
        if body is not None:
            self.send_body(sid, body, end=end)
        self.flush()
        return sid

    def send_body(self, sid: int, body: bytes, end: bool = True) -> None:
        """Send `body`, waiting for window updates as needed (bounded by the timeout)."""
        view = memoryview(body)
        deadline = time.monotonic() + self.timeout * 4
        while view:
            window = min(self.c.local_flow_control_window(sid), self.c.max_outbound_frame_size)
            if window <= 0:
                if time.monotonic() > deadline:
                    raise TimeoutError("no window to send the body")
                self.flush()
                self.read(0.5)
                continue
            n = min(window, len(view))
            self.c.send_data(sid, bytes(view[:n]), end_stream=end and n == len(view))
            view = view[n:]
            self.flush()
        if end and not body:
            self.c.end_stream(sid)
            self.flush()

    # ---------------------------------------------------------------- receiving

    def read(self, timeout: float | None = None) -> list[Any]:
        """One recv (up to `timeout`); the h2 events it produced. [] on timeout."""
        if self.closed:
            return []
        self.sock.settimeout(self.timeout if timeout is None else timeout)
        try:
            data = self.sock.recv(1 << 20)
        except TimeoutError:
            return []
        except OSError:
            self.closed = True
            return []
        if not data:
            self.closed = True
            return []
        self.raw += data
        try:
            got = self.c.receive_data(data)
        except ProtocolError:
            got = []
        self.events.extend(got)
        for e in got:
            if isinstance(e, ev.DataReceived) and e.flow_controlled_length:
                self.c.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
        if self.auto_ack:
            self.flush()
        return got

    def until(self, pred: Any, timeout: float | None = None) -> bool:
        """Read until `pred(self)` holds, the peer closes, or the timeout passes."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not pred(self):
            left = deadline - time.monotonic()
            if left <= 0 or self.closed:
                return bool(pred(self))
            self.read(min(left, 0.5))
        return True

    def of(self, kind: type, sid: int | None = None) -> list[Any]:
        return [
            e
            for e in self.events
            if isinstance(e, kind) and (sid is None or getattr(e, "stream_id", None) == sid)
        ]

    def ended(self, sid: int) -> bool:
        return bool(self.of(ev.StreamEnded, sid) or self.of(ev.StreamReset, sid))

    def response(self, sid: int, timeout: float | None = None) -> tuple[int, dict[bytes, bytes], bytes]:
        """Wait for stream `sid` to end; (status, headers, body). Status 0 if it never came."""
        self.until(lambda c: c.ended(sid), timeout)
        status = 0
        headers: dict[bytes, bytes] = {}
        for e in self.of(ev.ResponseReceived, sid):
            for n, v in e.headers:
                if n == b":status":
                    status = int(v)
                else:
                    headers[n] = v
        body = b"".join(e.data for e in self.of(ev.DataReceived, sid))
        return status, headers, body

    def get(self, path: str, **kw: Any) -> tuple[int, dict[bytes, bytes], bytes]:
        return self.response(self.request(path, **kw))

    def frames(self) -> list[Any]:
        """The received frames (hyperframe), after the connection preface's SETTINGS too. h2
        refuses frames after a GOAWAY; a server finishing its streams still sends them."""
        out = []
        view = memoryview(bytes(self.raw))
        pos = 0
        while pos + 9 <= len(view):
            frame, length = Frame.parse_frame_header(view[pos : pos + 9])
            if pos + 9 + length > len(view):
                break
            frame.parse_body(view[pos + 9 : pos + 9 + length])
            out.append(frame)
            pos += 9 + length
        return out

    def goaway(self) -> Any:
        got = self.of(ev.ConnectionTerminated)
        return got[0] if got else None

    def wait_closed(self, timeout: float = 5.0) -> bool:
        return self.until(lambda c: c.closed, timeout)

    def close(self) -> None:
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass
