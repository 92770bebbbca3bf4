"""The dispatch seam: the one place that picks the protocol of each connection.

A new connection gets its protocol from `Dispatch.factory()`: HTTP/1.1. With TLS the loop's
TLS transport calls the protocol's `connection_made` only after the handshake, so the HTTP/1
connection asks `on_alpn(selected_alpn_protocol())` there and hands over to what it answers
(`by_alpn` is the same choice as a factory). During a connection two more decisions come here:

- `on_preface(data)`: an HTTP/1 connection whose first bytes are HTTP/2's connection preface
  (RFC 9113 §3.4, h2c with prior knowledge) may switch to HTTP/2;
- `upgrade_handler(cycle)` / `on_upgrade(cycle, token)`: a request with `Connection: upgrade`
  and `Upgrade` (RFC 9110 §7.8: `websocket`, `h2c`) may be served by the protocol registered
  for its token, which switches once its `101` is sent (`H1Protocol.switch_after`).

Each answers with a protocol factory (an upgrade: the handler that serves the request), or None
to stay on HTTP/1.1 (a preface is then a 505, an upgrade request an ordinary request for the
app, as before these protocols exist).

The switch itself is `switch_protocol`: the new protocol takes over the transport and gets the
bytes already read after the point of the switch (after a 101's request, or the preface
itself) as its first `data_received`, so nothing is parsed twice and no byte is lost (h11's
`trailing_data` is the same idea).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .h1 import H1Protocol
from .h1.switch import H2_PREFACE, ProtocolFactory, switch_protocol

if TYPE_CHECKING:
    from .context import ServerContext

__all__ = ["H2_PREFACE", "Dispatch", "ProtocolFactory", "switch_protocol"]


class Dispatch:
    """Protocol choices for the connections of one ServerContext (one per event loop)."""

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        # Extra choices, registered by the protocols that exist (HTTP/2, WebSockets):
        # ALPN id -> factory; Upgrade token (lower-case bytes) -> handler maker (upgrade_handler).
        self.alpn: dict[str, ProtocolFactory] = {}
        self.upgrades: dict[bytes, Callable[[Any], Any]] = {}
        self.h2c: ProtocolFactory | None = None
        # `--http 2`: every connection starts on this protocol (no HTTP/1.1 at all).
        self.direct: ProtocolFactory | None = None

    def factory(self) -> ProtocolFactory:
        """What `loop.create_server` gets. Plain HTTP/1.1 needs no choice at accept time, so its
        connections start on H1Protocol directly: no extra hop on the hot path."""
        if self.direct is not None:
            return self.direct
        ctx = self.ctx
        return lambda: H1Protocol(ctx)

    def by_alpn(self, selected: str | None) -> ProtocolFactory:
        """After a TLS handshake: `selected_alpn_protocol()` (None: no ALPN, HTTP/1.1)."""
        chosen = self.on_alpn(selected)
        return chosen if chosen is not None else self.factory()

    def on_alpn(self, selected: str | None) -> ProtocolFactory | None:
        """The protocol other than HTTP/1.1 that ALPN chose, or None to stay on HTTP/1.1
        (no ALPN, `http/1.1`, or a name no protocol registered)."""
        if selected is None or not self.alpn:
            return None
        return self.alpn.get(selected)

    def on_preface(self, data: bytes) -> ProtocolFactory | None:
        if self.h2c is not None and data.startswith(H2_PREFACE):
            return self.h2c
        return None

    def on_upgrade(self, cycle: Any, token: bytes) -> Any:
        make = self.upgrades.get(token.strip().lower())
        return make(cycle) if make is not None else None

    def upgrade_handler(self, cycle: Any) -> Any:
        """For a request with `Connection: upgrade` (the HTTP/1 connection asks only then):
        the handler of the first `Upgrade` token (RFC 9110 §7.8: the client's order of
        preference) whose registered maker takes the request, or None (an ordinary request
        for the app: no protocol registered, or none wants it).

        A maker `upgrades[token](cycle)` answers None, or a handler `h(cycle) -> Coroutine |
        None` that the connection calls instead of the app's: it answers the request through
        the cycle (a refusal, access-logged as any response), or writes its `101` and takes
        the connection over with `H1Protocol.switch_after(cycle, head, factory)`."""
        if not self.upgrades:
            return None
        for name, value in cycle.headers:
            if name == b"upgrade":
                for token in value.split(b","):
                    handler = self.on_upgrade(cycle, token)
                    if handler is not None:
                        return handler
        return None
