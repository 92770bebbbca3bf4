"""--http2-adaptive-window: our receive windows follow the measured bandwidth-delay product.

A receive window smaller than what the peer can put on the wire in one round trip caps an
upload at window / RTT whatever the link (RFC 9113 §5.2.2 leaves the sizing to the receiver).
While request-body DATA arrives, one PING at a time measures a round trip: the bytes that
arrive between sending it and its ack are what the peer managed to send in that RTT, i.e. the
BDP as far as our windows let it through. When that comes near the window (≥ 2/3 of it, the
peer was window-bound rather than app- or link-bound) the windows grow to twice the sample, so
the next round trip has room to show more; else the sample says the window is not the limit.

Bounds: the windows never go below the configured initial sizes and never above `WINDOW_CAP`
(or the configured size when larger; RFC 9113 §6.9.1's 2^31-1 is the absolute bound). The
connection window bounds every request body byte a peer can make this worker hold before the
app reads (stream.py holds the credit past the read buffer), so the cap is a memory bound per
connection: 16 MiB covers 1 Gbit/s at 128 ms RTT. One BDP PING is in flight at most; the next
one waits at least `GAP_MIN` (so at most 10 per second of upload), doubling up to `GAP_MAX` while
samples do not grow the window, and none once the cap is reached.

Windows are applied with `set_local_window`: the connection's and every open stream's at a
grow; a stream opened later gets the grown size at its first DATA frame without END_STREAM
(`data`), so a bodiless request, or a body in one frame, costs nothing here and starts no PING.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from ...http2.config import MAX_WINDOW

if TYPE_CHECKING:
    from .protocol import H2Protocol

__all__ = ["BDP_PING", "AdaptiveWindow"]

WINDOW_CAP = 16 << 20
GAP_MIN = 0.1
GAP_MAX = 5.0
# The BDP PING's opaque data: the keep-alive PINGs count up from 1 (protocol._ping), so the
# top bit set never collides with them (RFC 9113 §6.7: the ack echoes the opaque bytes).
BDP_PING = struct.pack(">Q", 1 << 63)


class AdaptiveWindow:
    """One connection's BDP estimator and the window sizes it has granted."""

    __slots__ = (
        "conn",
        "stream_init",
        "stream_win",
        "conn_win",
        "cap",
        "sent_at",
        "received",
        "next_at",
        "gap",
        "sized",
    )

    def __init__(self, conn: H2Protocol, stream_init: int, conn_init: int) -> None:
        self.conn = conn
        self.stream_init = stream_init
        self.stream_win = stream_init
        self.conn_win = conn_init
        self.cap = min(MAX_WINDOW, max(WINDOW_CAP, stream_init, conn_init))
        self.sent_at: float | None = None  # loop time the BDP PING in flight went out
        self.received = 0  # flow-controlled bytes since then
        self.next_at = 0.0  # no BDP PING before this loop time
        self.gap = GAP_MIN
        # streams already given `stream_win` (only used once it is above the initial size)
        self.sized: set[int] = set()

    def data(self, sid: int, n: int, end: bool) -> None:
        """`n` flow-controlled bytes arrived on stream `sid` (`end`: its body is complete)."""
        if self.sent_at is not None:
            self.received += n
        if end:
            return  # no more bytes to measure or to make room for on this stream
        if self.stream_win > self.stream_init and sid not in self.sized:
            self._size(sid)
        if self.sent_at is not None or (self.stream_win >= self.cap and self.conn_win >= self.cap):
            return
        now = self.conn.ctx.loop.time()
        if now >= self.next_at:
            self.conn.session.ping(BDP_PING)
            self.sent_at = now
            self.received = 0

    def ack(self) -> None:
        """The BDP PING's ack: one round trip's sample."""
        sent = self.sent_at
        if sent is None:
            return  # an ack we did not ask for (the peer echoed our opaque unprompted)
        now = self.conn.ctx.loop.time()
        self.sent_at = None
        bdp = self.received
        limit = min(self.stream_win, self.conn_win)
        if 3 * bdp >= 2 * limit and limit < self.cap:
            size = min(self.cap, 2 * bdp)
            self.stream_win = max(self.stream_win, size)
            self.conn_win = max(self.conn_win, size)
            self._grow()
            self.gap = GAP_MIN
        else:
            self.gap = min(GAP_MAX, 2 * self.gap)
        # a long round trip spaces the samples further: one per RTT at most
        self.next_at = now + max(self.gap, now - sent)

    def _grow(self) -> None:
        conn = self.conn
        conn.session.set_local_window(0, self.conn_win)
        self.sized.clear()
        for sid in conn.open_stream_ids():
            self._size(sid)

    def _size(self, sid: int) -> None:
        self.conn.session.set_local_window(sid, self.stream_win)
        sized = self.sized
        sized.add(sid)
        if len(sized) > 64 and len(sized) > 2 * len(self.conn.streams):
            # ids of finished streams: keep the set as small as the open streams
            sized.intersection_update(self.conn.open_stream_ids())
