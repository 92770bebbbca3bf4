"""Which HTTP/2 engine runs, the one interface both implement, and the session factory."""

from __future__ import annotations

import logging
import threading
from itertools import chain
from typing import Literal, Protocol

from granian.http2.config import H2Config
from granian.http2.events import CANCEL, NO_ERROR, Event, Headers

from ..constants import SERVER_LOGGER

__all__ = ["EngineName", "Session", "engine_status", "field_block", "new_session", "select_engine"]

EngineName = Literal["nghttp2", "h2"]

# granian.log's server logger, by name: this layer does no I/O and imports nothing above it.
_log = logging.getLogger(SERVER_LOGGER)
_lock = threading.Lock()
_logged = False


class Session(Protocol):
    """A server-side HTTP/2 connection, sans I/O. Stream ids are the peer's (odd) ids.

    Returns: `send_response`/`send_data` the bytes buffered for the stream (wait for
    `drained()` while above `config.max_send_buffer_size`) or -1 once the stream is gone;
    `send_informational`/`send_trailers` False once it is gone. Misuse (data before the
    response head, after its end) raises `H2Error`; a header HTTP/2 cannot carry raises
    `H2HeaderError` (a ValueError)."""

    @property
    def engine(self) -> str: ...
    @property
    def config(self) -> H2Config: ...

    def feed(self, data: bytes) -> list[Event]: ...
    def data_to_send(self) -> bytes: ...
    def data_to_write(self) -> bytes | list[bytes | memoryview]: ...
    def drained(self) -> list[int]: ...
    @property
    def finished(self) -> bool: ...
    @property
    def lib_error(self) -> int: ...
    @property
    def open_streams(self) -> int: ...
    @property
    def last_stream_id(self) -> int: ...
    def send_response(
        self, stream_id: int, status: int, headers: Headers, body: bytes = b"", end: bool = True
    ) -> int: ...
    def send_response_block(
        self, stream_id: int, status: int, block: bytes, nfields: int, body: bytes = b"", end: bool = True
    ) -> int: ...
    def send_informational(self, stream_id: int, status: int, headers: Headers) -> bool: ...
    def send_data(self, stream_id: int, data: bytes, end: bool = False) -> int: ...
    def send_trailers(self, stream_id: int, headers: Headers) -> bool: ...
    def buffered(self, stream_id: int) -> int: ...
    def reset(self, stream_id: int, error_code: int = CANCEL) -> None: ...
    def consume(self, stream_id: int, n: int) -> None: ...
    def set_local_window(self, stream_id: int, size: int) -> None: ...
    def remote_window(self, stream_id: int = 0) -> int: ...
    def ping(self, opaque: bytes) -> None: ...
    def goaway(self, error_code: int = NO_ERROR, last_stream_id: int | None = None) -> None: ...
    def shutdown_notice(self) -> None: ...
    def terminate(self, error_code: int = NO_ERROR) -> None: ...


def field_block(headers: Headers) -> bytes:
    """Response fields as `send_response_block` takes them: `name\0value\0name\0value`
    (csrc/h2.h's layout). A server that answers many responses with the same fields builds
    this once and skips the per-response join."""
    return b"\0".join(chain.from_iterable(headers)) if headers else b""


def engine_status() -> tuple[bool, str]:
    """`(True, libnghttp2 version)` when the nghttp2 engine can run, else `(False, reason)`."""
    from granian.http2 import ngsession

    return ngsession.load()


def select_engine(prefer: str = "auto") -> EngineName:
    """The engine new sessions get: "nghttp2" when libnghttp2 loads (or `prefer="h2"` forces
    the fallback). Logs the choice once per process on the `_granian` logger."""
    global _logged
    if prefer not in ("auto", "nghttp2", "h2"):
        raise ValueError(f"unknown HTTP/2 engine {prefer!r}")
    ok, detail = engine_status() if prefer != "h2" else (False, "the h2 engine was asked for")
    if prefer == "nghttp2" and not ok:
        raise RuntimeError(f"the nghttp2 HTTP/2 engine cannot run: {detail}")
    name: EngineName = "nghttp2" if ok else "h2"
    with _lock:
        if not _logged:
            _logged = True
            if ok:
                from granian.http2 import ngsession

                g = ngsession.guards()
                missing = [k for k, have in g.items() if not have]
                _log.info(
                    "HTTP/2 engine: libnghttp2 %s%s",
                    detail,
                    f" (without {', '.join(missing)}: that flood guard is off)" if missing else "",
                )
            else:
                _log.warning(
                    "HTTP/2 engine: the pure-Python h2 library (%s); about 30x slower per request"
                    " than libnghttp2",
                    detail,
                )
    return name


def new_session(
    config: H2Config | None = None,
    *,
    engine: str = "auto",
    upgrade_settings: bytes | None = None,
    upgrade_head: bool = False,
) -> Session:
    """A server session with its SETTINGS (and connection WINDOW_UPDATE) already queued: write
    `data_to_send()` before reading. For an h2c Upgrade (RFC 7540 section 3.2) pass the
    request's HTTP2-Settings value as `upgrade_settings` (and `upgrade_head` for a HEAD):
    stream 1 then exists, half-closed, for the HTTP/1.1 request's response."""
    name = select_engine(engine)
    if name == "nghttp2":
        from granian.http2.ngsession import NgSession

        return NgSession(config, upgrade_settings=upgrade_settings, upgrade_head=upgrade_head)
    from granian.http2.h2session import H2LibSession

    return H2LibSession(config, upgrade_settings=upgrade_settings, upgrade_head=upgrade_head)
