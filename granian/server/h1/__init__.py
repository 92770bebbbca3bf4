"""HTTP/1.1 over asyncio: the connection (I/O: granian.server.h1.protocol) and its carrier, the
HTTP/1 framing a request cycle writes through (granian.server.h1.carrier)."""

from .protocol import H1Protocol

__all__ = ["H1Protocol"]
