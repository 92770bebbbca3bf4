"""The dispatch seam and the switch hand-off (granian.server.dispatch), with the shared fake
transport: the protocol that takes over gets every byte read and not consumed, exactly once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fakes import FakeTransport

from granian.server.context import ServerContext
from granian.server.cycle import Cycle
from granian.server.dispatch import Dispatch
from granian.server.h1 import H1Protocol
from granian.server.h1.switch import H2_PREFACE


class Recorder(asyncio.Protocol):
    """Stands in for the next protocol (HTTP/2, a WebSocket session)."""

    def __init__(self) -> None:
        self.transport: Any = None
        self.data = b""
        self.calls: list[str] = []

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.calls.append("made")

    def data_received(self, data: bytes) -> None:
        self.data += data
        self.calls.append("data")


async def _hello(cycle: Cycle) -> None:
    cycle.respond(200, [(b"content-type", b"text/plain")], b"hi")


def _setup(loop: asyncio.AbstractEventLoop) -> tuple[ServerContext, Dispatch, H1Protocol, FakeTransport]:
    ctx = ServerContext(loop, _hello)
    dispatch = ctx.dispatch = Dispatch(ctx)
    proto = dispatch.factory()()
    assert isinstance(proto, H1Protocol)
    transport = FakeTransport()
    transport.set_protocol(proto)
    proto.connection_made(transport)  # type: ignore[arg-type]
    return ctx, dispatch, proto, transport


@pytest.mark.parametrize("split", [0, 5, 18, len(H2_PREFACE) - 1, len(H2_PREFACE)])
def test_h2c_preface_switches_with_every_byte(split: int) -> None:
    async def main() -> None:
        ctx, dispatch, proto, transport = _setup(asyncio.get_running_loop())
        rec = Recorder()
        dispatch.h2c = lambda: rec
        frames = H2_PREFACE + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # + an empty SETTINGS frame
        if split:
            proto.data_received(frames[:split])
            if split < len(H2_PREFACE):
                assert rec.calls == []  # a partial preface waits, it is not answered as HTTP/1
        transport.get_protocol().data_received(frames[split:])  # the transport delivers to its protocol
        assert transport.get_protocol() is rec and rec.transport is transport
        assert rec.calls[0] == "made" and rec.data == frames
        assert proto not in ctx.connections  # the H1 side no longer tracks it
        assert transport.data == b"" and not transport.closed

    asyncio.run(main())


def test_preface_without_http2_is_a_505() -> None:
    async def main() -> None:
        _, _, proto, transport = _setup(asyncio.get_running_loop())
        proto.data_received(H2_PREFACE)
        assert transport.data.startswith(b"HTTP/1.1 505 ") and transport.closed

    asyncio.run(main())


def test_switch_after_a_101_hands_over_the_bytes_that_followed() -> None:
    """An upgrade: the app's 101 goes out, then the next protocol gets what followed the
    request in the same read, and nothing is parsed as HTTP/1 after the switch."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        rec = Recorder()
        holder: list[H1Protocol] = []

        async def upgrade(cycle: Cycle) -> None:
            cycle.respond(101, [(b"upgrade", b"test"), (b"connection", b"upgrade")])
            holder[0].switch_to(lambda: rec)

        ctx = ServerContext(loop, upgrade)
        ctx.dispatch = Dispatch(ctx)
        proto = ctx.dispatch.factory()()
        assert isinstance(proto, H1Protocol)
        holder.append(proto)
        transport = FakeTransport()
        transport.set_protocol(proto)
        proto.connection_made(transport)  # type: ignore[arg-type]
        after = b"\x81\x05hello and more"  # not HTTP: parsing it as HTTP/1 would answer 400
        proto.data_received(
            b"GET /up HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: test\r\n\r\n" + after
        )
        for _ in range(10):
            await asyncio.sleep(0)
        assert transport.data.startswith(b"HTTP/1.1 101 ")
        assert b"400" not in transport.data and not transport.closed
        assert rec.data == after and transport.get_protocol() is rec
        assert proto not in ctx.connections

    asyncio.run(main())


def test_alpn_and_upgrade_choices() -> None:
    async def main() -> None:
        _, dispatch, _, _ = _setup(asyncio.get_running_loop())
        assert isinstance(dispatch.by_alpn(None)(), H1Protocol)
        assert isinstance(dispatch.by_alpn("http/1.1")(), H1Protocol)
        rec = Recorder()
        dispatch.alpn["h2"] = lambda: rec
        assert dispatch.by_alpn("h2")() is rec
        assert dispatch.on_upgrade(None, b"websocket") is None  # not registered: plain HTTP
        dispatch.upgrades[b"websocket"] = lambda cycle: lambda: rec
        factory = dispatch.on_upgrade(None, b" WebSocket ")
        assert factory is not None and factory() is rec

    asyncio.run(main())
