"""The WebSocket opening handshake (RFC 6455 4.2): request checks with their statuses, the
101 and refusal heads, and a full handshake + conversation with the `websockets` client."""

from __future__ import annotations

import base64
import os

import pytest
from wsinterop import LIMITS, Pair

from granian.errors import ProtocolError
from granian.http1.parser import parse_head
from granian.websocket import (
    Close,
    HandshakeError,
    Ping,
    accept_key,
    check_request,
    reject_head,
    response_head,
    wants_websocket,
)

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 1.3


def request(
    *lines: str, method: str = "GET", version: str = "1.1"
) -> tuple[bytes, list[tuple[bytes, bytes]], int]:
    """A request through the real HTTP/1 parser: (method, headers, minor) as the server has them."""
    raw = f"{method} /chat HTTP/{version}\r\n" + "".join(line + "\r\n" for line in lines) + "\r\n"
    head = parse_head(raw.encode(), 0, LIMITS)
    assert head is not None
    return head[1], head[4], head[3]


GOOD = (
    "Host: example.com",
    "Upgrade: websocket",
    "Connection: Upgrade",
    f"Sec-WebSocket-Key: {KEY.decode()}",
    "Sec-WebSocket-Version: 13",
)


def test_rfc_example_accept_key() -> None:
    assert accept_key(KEY) == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_valid_request() -> None:
    up = check_request(
        *request(*GOOD, "Sec-WebSocket-Protocol: chat, superchat", "Sec-WebSocket-Protocol: ,  v2 ")
    )
    assert up.accept == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert up.subprotocols == ["chat", "superchat", "v2"]
    assert up.extensions == []


def test_extension_header_values_are_kept_in_order() -> None:
    up = check_request(
        *request(
            *GOOD, "Sec-WebSocket-Extensions: permessage-deflate", "Sec-WebSocket-Extensions: x-foo; a=1"
        )
    )
    assert up.extensions == [b"permessage-deflate", b"x-foo; a=1"]


def test_tokens_are_case_insensitive_and_may_be_in_lists() -> None:
    lines = (
        "Host: h",
        "Upgrade: h2c, WebSocket",
        "Connection: keep-alive",
        "Connection: UPGRADE",
        f"Sec-WebSocket-Key: {KEY.decode()}",
        "Sec-WebSocket-Version: 13",
    )
    assert check_request(*request(*lines)).accept == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def _without(name: str) -> list[str]:
    return [line for line in GOOD if not line.lower().startswith(name.lower())]


BAD_400 = [
    ("POST", request(*GOOD, method="POST")),
    ("HTTP/1.0", request(*GOOD, version="1.0")),
    ("no host", request(*_without("host"))),
    ("no upgrade", request(*_without("upgrade"))),
    ("upgrade h2c", request(*_without("upgrade"), "Upgrade: h2c")),
    ("no connection", request(*_without("connection"))),
    ("connection close", request(*_without("connection"), "Connection: close")),
    ("no version", request(*_without("sec-websocket-version"))),
    ("no key", request(*_without("sec-websocket-key"))),
    ("two keys", request(*GOOD, "Sec-WebSocket-Key: " + base64.b64encode(os.urandom(16)).decode())),
    ("key not base64", request(*_without("sec-websocket-key"), "Sec-WebSocket-Key: not*base64*at*all=====")),
    (
        "key of 15 bytes",
        request(*_without("sec-websocket-key"), "Sec-WebSocket-Key: " + base64.b64encode(b"x" * 15).decode()),
    ),
    (
        "key of 17 bytes",
        request(*_without("sec-websocket-key"), "Sec-WebSocket-Key: " + base64.b64encode(b"x" * 17).decode()),
    ),
]


@pytest.mark.parametrize("name,req", BAD_400, ids=[b[0] for b in BAD_400])
def test_bad_handshakes_are_400(name: str, req: tuple[bytes, list[tuple[bytes, bytes]], int]) -> None:
    with pytest.raises(HandshakeError) as info:
        check_request(*req)
    assert info.value.status_hint == 400
    assert isinstance(info.value, ProtocolError)
    assert info.value.headers == []


@pytest.mark.parametrize("version", ["8", "12", "14", "13x", "7, 8"])
def test_other_versions_are_426_naming_13(version: str) -> None:
    req = request(*_without("sec-websocket-version"), f"Sec-WebSocket-Version: {version}")
    with pytest.raises(HandshakeError) as info:
        check_request(*req)
    assert info.value.status_hint == 426
    assert info.value.headers == [(b"sec-websocket-version", b"13")]
    head = reject_head(info.value, [(b"server", b"granian")])
    status_line, rest = head.split(b"\r\n", 1)
    assert status_line == b"HTTP/1.1 426 Upgrade Required"
    headers, body = rest.split(b"\r\n\r\n", 1)
    lines = headers.split(b"\r\n")
    assert b"sec-websocket-version: 13" in lines
    assert b"server: granian" in lines
    assert b"connection: close" in lines
    assert f"content-length: {len(body)}".encode() in lines
    assert body == str(info.value).encode()


def test_a_version_list_with_13_is_accepted() -> None:
    req = request(*_without("sec-websocket-version"), "Sec-WebSocket-Version: 8, 13")
    assert check_request(*req).accept


def test_reject_head_for_400() -> None:
    with pytest.raises(HandshakeError) as info:
        check_request(*request(*_without("host")))
    head = reject_head(info.value)
    assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"sec-websocket-version" not in head


def test_response_head() -> None:
    head = response_head(b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    assert head == (
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
        b"sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
    )
    head = response_head(b"A", "chat", [(b"x-app", b"1"), (b"server", b"granian")], b"permessage-deflate")
    lines = head.split(b"\r\n")
    assert lines[4:] == [
        b"sec-websocket-protocol: chat",
        b"sec-websocket-extensions: permessage-deflate",
        b"x-app: 1",
        b"server: granian",
        b"",
        b"",
    ]


@pytest.mark.parametrize(
    "subprotocol,headers",
    [
        ("two words", []),
        ("chat\r\nx-evil: 1", []),
        ("", []),
        (None, [(b"x-evil", b"a\r\nb: c")]),
        (None, [(b"bad name", b"v")]),
        (None, [(b"", b"v")]),
        (None, [(b"x", b"nul\x00")]),
    ],
)
def test_response_head_refuses_header_injection(
    subprotocol: str | None, headers: list[tuple[bytes, bytes]]
) -> None:
    with pytest.raises(ValueError):
        response_head(b"A", subprotocol, headers)


def test_wants_websocket() -> None:
    assert wants_websocket(request(*GOOD)[1])
    assert wants_websocket([(b"upgrade", b"foo, WebSocket")])
    assert not wants_websocket([(b"upgrade", b"h2c")])
    assert not wants_websocket([(b"connection", b"upgrade")])


# -- with the websockets client -------------------------------------------------------------


def test_websockets_client_handshake_and_conversation() -> None:
    pytest.importorskip("websockets")
    pair = Pair(subprotocols=["v2.chat", "chat"], choose="chat")
    assert pair.upgrade.subprotocols == ["v2.chat", "chat"]
    assert pair.client.subprotocol == "chat"
    assert pair.http_response.status_code == 101
    # client -> server: text, binary, fragmented, ping
    pair.client.send_text("héllo".encode())
    pair.client.send_binary(b"\x00" * 70000)
    pair.client.send_text(b"frag", fin=False)
    pair.client.send_continuation(b"ment", fin=True)
    pair.client.send_ping(b"hb")
    events = pair.client_to_server()
    assert events == ["héllo", b"\x00" * 70000, "fragment", Ping(b"hb")]
    frames = pair.client.events_received()
    assert [(f.opcode.name, f.data) for f in frames] == [("PONG", b"hb")]
    # server -> client
    frames = pair.server_to_client(
        pair.server.send_text("ünïcode" * 50) + pair.server.send_bytes(b"b" * 66000)
    )
    assert [(f.opcode.name, bytes(f.data)) for f in frames] == [
        ("TEXT", ("ünïcode" * 50).encode()),
        ("BINARY", b"b" * 66000),
    ]
    # the server closes; the client answers; the handshake completes
    frames = pair.server_to_client(pair.server.close(1001, "bye"))
    assert frames[0].opcode.name == "CLOSE"
    assert pair.client.close_rcvd is not None and pair.client.close_rcvd.code == 1001
    events = pair.client_to_server()
    assert events == [Close(1001, "bye")]
    assert pair.server.connection_lost() == (1001, "bye")


def test_websockets_client_closes_first() -> None:
    pytest.importorskip("websockets")
    pair = Pair()
    pair.client.send_close(4000, "done")
    assert pair.client_to_server() == [Close(4000, "done")]
    # our reply completed the client's close handshake
    assert pair.client.close_rcvd is not None and pair.client.close_rcvd.code == 4000
    assert pair.client.close_expected()
