"""Flow control of one connection (uvicorn's flow_control.py is the model): reading pauses for
any of several reasons and resumes only when none holds; writing is paused while the
transport's buffer is above its high-water mark, and `drain()` awaits the resume.

Reasons are bits (HTTP/1 uses three: body waiting for the app, pipelined bytes over the buffer,
`--backpressure`), so each is set and cleared on its own.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["FlowControl"]


class FlowControl:
    __slots__ = ("transport", "reasons", "write_paused", "lost", "_waiter")

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self.reasons = 0  # why reading is paused (0: reading)
        self.write_paused = False
        self.lost = False
        self._waiter: asyncio.Future[None] | None = None

    def pause_reading(self, reason: int) -> None:
        if not self.reasons and not self.lost:
            self.transport.pause_reading()
        self.reasons |= reason

    def resume_reading(self, reason: int) -> None:
        if self.reasons & reason:
            self.reasons &= ~reason
            if not self.reasons and not self.lost:
                self.transport.resume_reading()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._wake()

    def connection_lost(self) -> None:
        self.lost = True
        self._wake()

    async def drain(self) -> None:
        """Return once the transport takes writes again (at once when it does, or is gone)."""
        if not self.write_paused or self.lost:
            return
        waiter = self._waiter
        if waiter is None or waiter.done():
            waiter = self._waiter = asyncio.get_running_loop().create_future()
        await waiter

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
