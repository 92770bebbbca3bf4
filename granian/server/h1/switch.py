"""The switch hand-off (granian.server.dispatch): a connection moves to another protocol with
the bytes already read, so nothing is parsed twice and no byte is lost."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["H2_PREFACE", "ProtocolFactory", "switch_protocol"]

ProtocolFactory = Callable[[], asyncio.Protocol]

# RFC 9113 §3.4: the client connection preface starts with this octet sequence.
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def switch_protocol(
    transport: asyncio.BaseTransport, factory: ProtocolFactory, data: bytes
) -> asyncio.Protocol:
    """Hand `transport` to a new protocol, with `data` (bytes read but not consumed) first."""
    protocol = factory()
    transport.set_protocol(protocol)
    protocol.connection_made(transport)
    if data:
        protocol.data_received(data)
    return protocol
