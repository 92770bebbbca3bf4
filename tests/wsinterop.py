"""A sans-I/O conversation between the `websockets` library's client (ClientProtocol) and our
handshake + connection, without sockets: the request goes through our real HTTP/1 parser."""

from __future__ import annotations

from typing import Any

from granian.http1.parser import H1Limits, parse_head
from granian.websocket import WSConnection, check_request, negotiate, response_head
from granian.websocket.deflate import DeflateConfig

LIMITS = H1Limits(max_head=417792, max_headers=100, max_target=8190)


class Pair:
    """The library's client and our server connection after a completed handshake."""

    def __init__(
        self,
        *,
        extensions: list[Any] | None = None,
        subprotocols: list[str] | None = None,
        choose: str | None = None,
        deflate: DeflateConfig | None = None,
        max_message_size: int = 16 * 1024 * 1024,
    ) -> None:
        from websockets.client import ClientProtocol
        from websockets.uri import parse_uri

        self.client = ClientProtocol(
            parse_uri("ws://127.0.0.1:8000/chat?room=1"),
            extensions=extensions,
            subprotocols=subprotocols,  # type: ignore[arg-type]
            max_size=None,
        )
        self.client.send_request(self.client.connect())
        raw = b"".join(self.client.data_to_send())
        head = parse_head(raw, 0, LIMITS)
        assert head is not None
        end, method, _target, minor, headers, _cl, _flags = head
        assert end == len(raw)
        self.upgrade = check_request(method, headers, minor)
        self.negotiated = negotiate(self.upgrade.extensions, deflate) if deflate is not None else None
        self.response = response_head(
            self.upgrade.accept,
            choose,
            [(b"server", b"granian")],
            self.negotiated[0] if self.negotiated else None,
        )
        self.client.receive_data(self.response)
        (self.http_response,) = self.client.events_received()
        if self.client.handshake_exc is not None:
            raise self.client.handshake_exc
        self.server = WSConnection(max_message_size, self.negotiated[1] if self.negotiated else None)

    def client_to_server(self) -> list[Any]:
        """Deliver what the client wrote; the server's automatic replies go back to it."""
        data = b"".join(self.client.data_to_send())
        events, out = self.server.feed(data)
        if out:
            self.client.receive_data(out)
        return events

    def server_to_client(self, data: bytes) -> list[Any]:
        self.client.receive_data(data)
        return self.client.events_received()
