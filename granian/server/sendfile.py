"""Zero-copy file bodies on loops without `loop.sendfile` (uvloop).

asyncio's own loop implements `loop.sendfile` with `os.sendfile`; uvloop does not, and its
transports own their socket's fd (`add_writer` on it is refused). So this writes with
`os.sendfile` on a duplicate of the socket's fd (the same socket, its own fd number, which the
loop lets us watch for writability): the kernel copies file pages straight to the socket, and
the event loop only wakes when the socket buffer has room again. Plain TCP only: TLS needs the
bytes in user space (the caller uses its bounded read loop then).
"""

from __future__ import annotations

import asyncio
import os
from typing import IO

__all__ = ["sendfile_dup"]

# Largest single os.sendfile call: big enough to fill a socket buffer in one go, small enough
# that one connection does not monopolise the loop on a fast link (asyncio's own sendfile uses
# the same bound per call).
_MAX_CALL = 1 << 22


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


async def _writable(loop: asyncio.AbstractEventLoop, fd: int) -> None:
    fut = loop.create_future()
    loop.add_writer(fd, _wake, fut)
    try:
        await fut
    finally:
        loop.remove_writer(fd)


async def sendfile_dup(
    loop: asyncio.AbstractEventLoop,
    transport: asyncio.WriteTransport,
    file: IO[bytes],
    offset: int,
    count: int,
) -> None:
    """Send `count` bytes of `file` from `offset` on `transport`'s socket with os.sendfile.

    Raises ConnectionError when the peer is gone (or the transport closes meanwhile), EOFError
    when the file is shorter than `count`. The transport must have nothing else to write while
    this runs (the response owns the connection)."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        raise ConnectionResetError("transport has no socket")
    in_fd = file.fileno()
    out_fd = os.dup(sock.fileno())
    try:
        # Bytes the transport still buffers (the response head) must reach the socket first.
        while transport.get_write_buffer_size():
            if transport.is_closing():
                raise ConnectionResetError("transport closed")
            await _writable(loop, out_fd)
            await asyncio.sleep(0)  # let the transport's own writable callback flush
        while count > 0:
            if transport.is_closing():
                raise ConnectionResetError("transport closed")
            try:
                sent = os.sendfile(out_fd, in_fd, offset, min(count, _MAX_CALL))
            except BlockingIOError:
                await _writable(loop, out_fd)
                continue
            if sent == 0:
                raise EOFError("file shorter than the requested range")
            offset += sent
            count -= sent
    finally:
        os.close(out_fd)
