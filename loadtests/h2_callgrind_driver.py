"""In-process HTTP/2 driver for exact per-request instruction counts (no sockets, no wall clock).

The HTTP/2 sibling of callgrind_driver.py: pushes N h2load-style requests through the real
`H2Protocol`, session engine (`GRANIAN_HTTP2_ENGINE`, default nghttp2), `Cycle`, and interface
adapter (the loadtests apps) with a fake transport, on uvloop. Requests arrive 10 streams per
`data_received` (h2load's `-m10` on one connection); the next batch is fed from a loop callback
once every stream of the last one is answered, as a socket read would arrive.

    .venv/bin/python loadtests/h2_callgrind_driver.py --callgrind h2-rsgi  # instructions/request
    .venv/bin/python loadtests/h2_callgrind_driver.py --profile h2-rsgi    # cProfile, top 25
    .venv/bin/python loadtests/h2_callgrind_driver.py h2-asgi 10000         # smoke test

Modes: `h2-asgi`, `h2-rsgi` (GET /), `h2-asgi-64k`, `h2-rsgi-64k` (GET /64k; the fake client
opens its windows wide, so nothing waits for WINDOW_UPDATE). `GRANIAN_SRC=/dir` measures the
package found there (before/after comparisons).
"""

from __future__ import annotations

import asyncio
import os
import struct
import sys
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.environ.get("GRANIAN_SRC") or os.path.dirname(HERE))
sys.path.insert(0, HERE)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
PER_CHUNK = 10
_FRAME = struct.Struct(">HBBBI")  # 24-bit length split as 16+8, type, flags, stream id


def frame(kind: int, flags: int, sid: int, payload: bytes) -> bytes:
    n = len(payload)
    return _FRAME.pack(n >> 8, n & 0xFF, kind, flags, sid) + payload


def header_block(path: bytes) -> bytes:
    """HPACK (RFC 7541): :method GET (static 2), :scheme http (static 6), :path as a literal
    without indexing (name: static 4), :authority and user-agent likewise (static 1, 58)."""

    def lit(index: int, value: bytes) -> bytes:
        assert index < 15 and len(value) < 127
        return bytes([index, len(value)]) + value

    return (
        b"\x82\x86"
        + lit(4, path)
        + lit(1, b"127.0.0.1:8000")
        + bytes([0x0F, 58 - 15, len(b"h2load nghttp2/1.52.0")])
        + b"h2load nghttp2/1.52.0"
    )


class FakeTransport:
    def __init__(self, loop: asyncio.AbstractEventLoop, n: int, path: bytes) -> None:
        self.loop = loop
        self.left = n
        self.block = header_block(path)
        self.next_sid = 1
        self.done: asyncio.Future[None] = loop.create_future()
        self.proto: Any = None
        self.written = 0
        self.first = True

    def chunk(self) -> bytes:
        out = []
        if self.first:
            self.first = False
            # client SETTINGS (INITIAL_WINDOW_SIZE 2^30) and a wide connection window
            out.append(PREFACE + frame(0x4, 0, 0, struct.pack(">HI", 4, 1 << 30)))
            out.append(frame(0x8, 0, 0, struct.pack(">I", (1 << 30) - 65535)))
        for _ in range(min(PER_CHUNK, self.left)):
            out.append(frame(0x1, 0x5, self.next_sid, self.block))
            self.next_sid += 2
            self.left -= 1
        return b"".join(out)

    def feed(self) -> None:
        if self.left <= 0:
            if not self.done.done():
                self.done.set_result(None)
            return
        self.proto.data_received(self.chunk())

    def write(self, data: bytes) -> None:
        self.written += len(data)
        if not self.proto.streams:
            self.loop.call_soon(self.feed)

    def writelines(self, data: Any) -> None:
        self.write(b"".join(data))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name in ("peername", "sockname") else default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        raise AssertionError("connection closed")

    def abort(self) -> None:
        raise AssertionError("connection aborted")

    def is_closing(self) -> bool:
        return False


def _adapter(mode: str) -> Any:
    from callgrind_driver import _adapter as h1_adapter  # the same loadtests apps and adapters

    return h1_adapter("asgi" if "asgi" in mode else "rsgi")


async def _serve(mode: str, n: int) -> None:
    from granian.server.config import HTTP2Config
    from granian.server.context import ServerContext
    from granian.server.h2.protocol import H2Protocol, H2Server

    os.environ.setdefault("GRANIAN_HTTP2_ENGINE", "nghttp2")
    loop = asyncio.get_running_loop()
    adapter = _adapter(mode)
    if not await adapter.startup():
        raise SystemExit("startup failed")
    ctx = ServerContext(loop, adapter.handler)
    srv = H2Server(ctx, HTTP2Config(), "asgi" if "asgi" in mode else "rsgi")
    proto = H2Protocol(srv)
    transport = FakeTransport(loop, n, b"/64k" if mode.endswith("-64k") else b"/")
    transport.proto = proto
    proto.connection_made(transport)
    loop.call_soon(transport.feed)
    await transport.done
    want = n * (65536 if mode.endswith("-64k") else 13)
    if transport.written < want:
        raise SystemExit(f"wrote {transport.written} bytes, want at least {want}")
    proto.connection_lost(None)
    await adapter.shutdown()


def serve(mode: str, n: int) -> None:
    import uvloop

    uvloop.run(_serve(mode, n))


def main(argv: list[str]) -> None:
    if argv and argv[0] == "--callgrind":
        from callgrind_driver import per_request

        print(per_request(__file__, argv[1] if len(argv) > 1 else "h2-rsgi"))
        return
    if argv and argv[0] == "--profile":
        import cProfile
        import pstats

        mode = argv[1] if len(argv) > 1 else "h2-rsgi"
        cProfile.run(f"serve({mode!r}, 20000)", "/tmp/h2prof.out")
        pstats.Stats("/tmp/h2prof.out").sort_stats("tottime").print_stats(25)
        return
    mode = argv[0] if argv else "h2-rsgi"
    n = int(argv[1]) if len(argv) > 1 else 10000
    serve(mode, n)


if __name__ == "__main__":
    main(sys.argv[1:])
