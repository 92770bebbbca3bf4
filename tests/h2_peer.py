"""In-memory HTTP/2 peers for the granian.http2 engine tests: an `h2` client wired to a server
session (no sockets), and raw-frame helpers (hyperframe + hpack) for what a well-behaved
client never sends."""

from __future__ import annotations

from typing import Any

import pytest
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.settings import Settings
from hpack import Encoder
from hyperframe.frame import Frame, GoAwayFrame, SettingsFrame

from granian.http2 import H2Config, engine_status, new_session
from granian.http2.engine import Session
from granian.http2.events import Event

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
NG_OK, NG_WHY = engine_status()
ENGINES = ["nghttp2", "h2"]


def engine_param(request: Any) -> str:
    name: str = request.param
    if name == "nghttp2" and not NG_OK:
        pytest.skip(f"libnghttp2 is not loadable here: {NG_WHY}")
    return name


def server(engine: str, **cfg: Any) -> Session:
    return new_session(H2Config(**cfg), engine=engine)


def request_headers(
    path: bytes = b"/", method: bytes = b"GET", authority: bytes = b"example.org", extra: Any = ()
) -> list[tuple[bytes, bytes]]:
    return [
        (b":method", method),
        (b":path", path),
        (b":scheme", b"http"),
        (b":authority", authority),
        *extra,
    ]


class Peer:
    """An h2 client connected to a server session in memory."""

    def __init__(
        self,
        session: Session,
        client_settings: dict[int, int] | None = None,
        validate: bool = True,
        preface: bool = True,
    ) -> None:
        self.s = session
        conf = H2Configuration(client_side=True, header_encoding=None, validate_outbound_headers=validate)
        self.c = H2Connection(conf)
        if client_settings:
            self.c.local_settings = Settings(client=True, initial_values=client_settings)
        self.client_events: list[Any] = []
        if preface:
            self.c.initiate_connection()

    def to_server(self, piece: int = 0) -> list[Event]:
        """The client's pending bytes into the server, in pieces of `piece` bytes if set."""
        data = self.c.data_to_send()
        return feed(self.s, data, piece)

    def to_client(self) -> list[Any]:
        data = self.s.data_to_send()
        events = self.c.receive_data(data) if data else []
        self.client_events.extend(events)
        return events

    def handshake(self) -> list[Event]:
        self.to_client()
        events = self.to_server()
        self.to_client()
        return events

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.client_events if isinstance(e, kind)]


def feed(session: Session, data: bytes, piece: int = 0) -> list[Event]:
    if not piece:
        return session.feed(data)
    events: list[Event] = []
    for i in range(0, len(data), piece):
        events.extend(session.feed(data[i : i + piece]))
    return events


def parse_frames(data: bytes) -> list[Any]:
    """Split server output into hyperframe frames."""
    frames = []
    view = memoryview(data)
    pos = 0
    while pos < len(data):
        frame, length = Frame.parse_frame_header(view[pos : pos + 9])
        frame.parse_body(view[pos + 9 : pos + 9 + length])
        frames.append(frame)
        pos += 9 + length
    return frames


def goaways(data: bytes) -> list[tuple[int, int]]:
    """(error code, last stream id) of every GOAWAY in the server's output."""
    return [(f.error_code, f.last_stream_id) for f in parse_frames(data) if isinstance(f, GoAwayFrame)]


class RawClient:
    """Frames a real client would not send, HPACK-encoded by hand."""

    def __init__(self, session: Session) -> None:
        self.s = session
        self.enc = Encoder()
        session.data_to_send()
        self.s.feed(PREFACE + SettingsFrame(0).serialize())
        session.data_to_send()

    def block(self, headers: list[tuple[bytes, bytes]]) -> bytes:
        data: bytes = self.enc.encode(headers)
        return data
