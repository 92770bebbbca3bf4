"""The end of a connection that we close while the peer may still be sending.

RFC 9112 §9.6 (the TCP reset problem): closing a socket with received bytes unread, or with
bytes arriving after the close, makes the kernel answer with a reset, and a reset discards
whatever of our last response is still queued in our kernel, unread by the peer. An HTTP/2
peer keeps sending until it has read our GOAWAY and the last DATA (WINDOW_UPDATE for what it
reads, PING, streams the GOAWAY refused). So the close goes in stages: a half-close after the
last buffered byte (FIN), then every byte the peer sends is read and dropped until it closes
too; a peer that stays silent for `IDLE` seconds, or lingers past `TOTAL`, is aborted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

__all__ = ["Released", "linger"]

# nginx's lingering_timeout and lingering_time are 5 s and 30 s; a peer that has read our
# last bytes closes at once (it has nothing left to wait for), so the idle bound is shorter.
IDLE = 2.0
TOTAL = 30.0


class _Linger(asyncio.Protocol):
    """The transport's protocol from the half-close on: reads and drops, then reports."""

    __slots__ = ("transport", "done", "loop", "last", "until", "timer")

    def __init__(self, transport: Any, done: Callable[[Exception | None], None], loop: Any) -> None:
        self.transport = transport
        self.done = done
        self.loop = loop
        self.last = now = loop.time()
        self.until = now + TOTAL
        self.timer = loop.call_at(now + IDLE, self._check)

    def data_received(self, data: bytes) -> None:
        self.last = self.loop.time()  # dropped: the exchange is over

    def eof_received(self) -> None:
        return None  # the transport closes; connection_lost follows

    def _check(self) -> None:
        now = self.loop.time()
        due = min(self.last + IDLE, self.until)
        if now < due:
            self.timer = self.loop.call_at(due, self._check)
        else:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.timer.cancel()
        done, self.done = self.done, _nothing
        done(exc)


def _nothing(exc: Exception | None) -> None:
    return None


class Released:
    """What the connection's protocol keeps in place of a transport handed to the linger: the
    linger closes it, so the protocol's own close() is a no-op (closing there would bring back
    the reset); a write is dropped, an abort still aborts."""

    __slots__ = ("_transport",)

    def __init__(self, transport: Any) -> None:
        self._transport = transport

    def close(self) -> None:
        return None

    def is_closing(self) -> bool:
        return True

    def write(self, data: Any) -> None:
        return None

    def writelines(self, data: Any) -> None:
        return None

    def abort(self) -> None:
        self._transport.abort()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)


def linger(transport: Any, done: Callable[[Exception | None], None], loop: Any) -> Released | None:
    """Half-close `transport` once its buffered bytes are written and drop what the peer still
    sends until it closes; `done(exc)` is called once, when the connection is gone. Returns
    the stand-in for the caller to keep instead of the transport, or None when the transport
    cannot half-close (TLS: close_notify is its staged close): the caller closes it then."""
    if not transport.can_write_eof():
        return None
    transport.set_protocol(_Linger(transport, done, loop))
    transport.write_eof()
    return Released(transport)
