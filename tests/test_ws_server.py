"""WebSockets served end to end (issue 12): a real worker (ASGI, tests/apps/ws_apps.py), the
`websockets` client library and raw sockets for what a library will not send.

The RSGI and framework equivalents are in test_ws_rsgi.py and test_ws_frameworks.py; the ASGI
message rules in test_ws_asgi.py. The raw-socket helpers here are shared with them.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import struct
import time
from collections.abc import Iterator

import httpx
import pytest
from helpers import ServerProc, read_response, recv_all, start_server
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

KEY = base64.b64encode(b"0123456789abcdef")


# ---------------------------------------------------------------- raw-socket helpers


def upgrade_request(
    path: str = "/echo", version: bytes = b"13", key: bytes = KEY, extra: bytes = b""
) -> bytes:
    return (
        b"GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: %s\r\n%s\r\n" % (path.encode(), key, version, extra)
    )


def frame(opcode: int, payload: bytes, fin: bool = True, mask: bool = True, rsv: int = 0) -> bytes:
    """A client frame (RFC 6455 §5.2)."""
    b0 = (0x80 if fin else 0) | rsv | opcode
    n = len(payload)
    m = 0x80 if mask else 0
    if n < 126:
        head = bytes([b0, m | n])
    elif n < 1 << 16:
        head = bytes([b0, m | 126]) + struct.pack("!H", n)
    else:
        head = bytes([b0, m | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + key + masked


class Raw:
    """A raw WebSocket client socket after a 101 (reads unmasked server frames)."""

    def __init__(self, port: int, path: str = "/echo", extra: bytes = b"") -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.sendall(upgrade_request(path, extra=extra))
        status, self.headers, _, self.buf = read_response(self.sock)
        assert status.startswith(b"HTTP/1.1 101 "), status

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _need(self, n: int) -> None:
        while len(self.buf) < n:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("closed")
            self.buf += data

    def read_frame(self) -> tuple[int, bytes]:
        """(opcode, payload) of the next server frame (must be unmasked, RFC 6455 §5.1)."""
        self._need(2)
        b0, b1 = self.buf[0], self.buf[1]
        assert not b1 & 0x80, "a server frame is never masked"
        n = b1 & 0x7F
        off = 2
        if n == 126:
            self._need(4)
            n = struct.unpack("!H", self.buf[2:4])[0]
            off = 4
        elif n == 127:
            self._need(10)
            n = struct.unpack("!Q", self.buf[2:10])[0]
            off = 10
        self._need(off + n)
        payload = self.buf[off : off + n]
        self.buf = self.buf[off + n :]
        return b0 & 0x0F, payload

    def read_close(self) -> tuple[int, bytes]:
        """Skip to the close frame: (code, reason)."""
        while True:
            op, payload = self.read_frame()
            if op == 0x8:
                code = struct.unpack("!H", payload[:2])[0] if payload else 1005
                return code, payload[2:]

    def closed_by_server(self) -> bool:
        """The server closed TCP after the close (reads EOF)."""
        return recv_all(self.sock, 5) == b""

    def close(self) -> None:
        self.sock.close()


def events(server: ServerProc) -> list[list[object]]:
    """What the app recorded (its /events HTTP route)."""
    return json.loads(httpx.get(server.url + "/events").text)  # type: ignore[no-any-return]


def wait_event(server: ServerProc, item: list[object], timeout: float = 10.0) -> list[list[object]]:
    deadline = time.monotonic() + timeout
    while True:
        got = events(server)
        if item in got or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProc]:
    srv = start_server("ws_apps:app", access_log=True)
    try:
        yield srv
    finally:
        srv.stop()


def ws_url(server: ServerProc, path: str) -> str:
    return f"ws://127.0.0.1:{server.port}{path}"


# ---------------------------------------------------------------- handshake


def _raw_answer(server: ServerProc, request: bytes) -> tuple[bytes, dict[bytes, bytes], bytes]:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(request)
        status, headers, body, _ = read_response(s)
    return status, headers, body


def test_bad_handshake_is_400(server: ServerProc) -> None:
    no_key = (
        b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    status, headers, body = _raw_answer(server, no_key)
    assert status.startswith(b"HTTP/1.1 400 ") and headers[b"connection"] == b"close"
    assert b"Sec-WebSocket-Key" in body
    status, _, _ = _raw_answer(server, upgrade_request(key=base64.b64encode(b"short")))
    assert status.startswith(b"HTTP/1.1 400 ")
    post = upgrade_request().replace(b"GET ", b"POST ", 1)
    status, _, _ = _raw_answer(server, post)
    assert status.startswith(b"HTTP/1.1 400 ")


def test_wrong_version_is_426_naming_13(server: ServerProc) -> None:
    status, headers, _ = _raw_answer(server, upgrade_request(version=b"8"))
    assert status.startswith(b"HTTP/1.1 426 ")
    assert headers[b"sec-websocket-version"] == b"13"


def test_no_ws_serves_an_upgrade_request_as_plain_http() -> None:
    srv = start_server("ws_apps:app", ws=False)
    try:
        status, headers, body = _raw_answer(srv, upgrade_request())
        assert status.startswith(b"HTTP/1.1 200 ") and body == b"plain http"
        assert b"sec-websocket-accept" not in headers
    finally:
        srv.stop()


def test_pipelined_plain_request_after_upgrade_goes_nowhere_as_http(server: ServerProc) -> None:
    """Bytes right after the upgrade request belong to the WebSocket (the switch hands them
    over): a text frame sent with the request is echoed."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(upgrade_request() + frame(0x1, b"early"))
        status, _, _, rest = read_response(s)
        assert status.startswith(b"HTTP/1.1 101 ")
        while len(rest) < 7:
            rest += s.recv(100)
        assert rest[:7] == b"\x81\x05early"


# ---------------------------------------------------------------- messages


def test_echo_text_and_binary_with_subprotocol_and_headers(server: ServerProc) -> None:
    with connect(ws_url(server, "/echo"), subprotocols=["one", "two"]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "two"
        assert ws.response.headers["x-accepted"] == "1"
        ws.send("hello")
        assert ws.recv() == "hello"
        ws.send(b"\x00\xff")
        assert ws.recv() == b"\x00\xff"
        ws.send("")
        assert ws.recv() == ""


def test_large_and_fragmented_messages(server: ServerProc) -> None:
    with connect(ws_url(server, "/echo"), max_size=None, compression=None) as ws:
        big = os.urandom(3 * 1024 * 1024)
        ws.send(big)
        assert ws.recv() == big
        text = "é" * 100_000
        ws.send(text[i : i + 32] for i in range(0, len(text), 32))  # 6250 fragments
        assert ws.recv() == text
    # a 256 KiB message in 64-byte fragments (size bounds a message, not its fragments)
    raw = Raw(server.port)
    payload = os.urandom(256 * 1024)
    parts = [payload[i : i + 64] for i in range(0, len(payload), 64)]
    data = frame(0x2, parts[0], fin=False)
    data += b"".join(frame(0x0, p, fin=False) for p in parts[1:-1])
    data += frame(0x9, b"mid")  # a ping between fragments is answered (RFC 6455 §5.4)
    data += frame(0x0, parts[-1])
    raw.send(data)
    assert raw.read_frame() == (0xA, b"mid")
    assert raw.read_frame() == (0x2, payload)
    raw.close()


def test_permessage_deflate_negotiated_and_used(server: ServerProc) -> None:
    with connect(ws_url(server, "/echo"), max_size=None) as ws:
        assert "permessage-deflate" in ws.response.headers["sec-websocket-extensions"]
        text = "compress me " * 50_000
        ws.send(text)
        assert ws.recv() == text
    srv = start_server("ws_apps:app", ws_per_message_deflate=False)
    try:
        with connect(ws_url(srv, "/echo")) as ws:
            assert "sec-websocket-extensions" not in ws.response.headers
            ws.send("plain")
            assert ws.recv() == "plain"
    finally:
        srv.stop()


def test_ping_is_answered_with_its_payload(server: ServerProc) -> None:
    with connect(ws_url(server, "/echo")) as ws:
        pong = ws.ping(b"abc")
        assert pong.wait(5)
    raw = Raw(server.port)
    raw.send(frame(0x9, b"payload"))
    assert raw.read_frame() == (0xA, b"payload")
    raw.close()


# ---------------------------------------------------------------- protocol errors (raw frames)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (frame(0x1, b"unmasked", mask=False), 1002),  # RFC 6455 §5.1
        (frame(0x1, b"rsv", rsv=0x20), 1002),  # RSV2 without an extension (§5.2)
        (frame(0x3, b"reserved opcode"), 1002),
        (frame(0x9, b"x" * 126), 1002),  # control frame > 125 bytes (§5.5)
        (frame(0x0, b"continuation without start"), 1002),
        (frame(0x1, b"\xff\xfe"), 1007),  # invalid UTF-8 (§8.1)
        (frame(0x8, struct.pack("!H", 1005)), 1002),  # a close code never sent (§7.4.1)
    ],
    # stable ids: the frames carry random masks, and pytest-xdist needs every worker to
    # collect the same test names
    ids=[
        "unmasked",
        "rsv2",
        "reserved-opcode",
        "long-control",
        "lone-continuation",
        "bad-utf8",
        "close-1005",
    ],
)
def test_malformed_frames_close_with_their_code(server: ServerProc, data: bytes, code: int) -> None:
    raw = Raw(server.port)
    raw.send(data)
    assert raw.read_close()[0] == code
    assert raw.closed_by_server()
    raw.close()


def test_message_over_max_size_is_1009() -> None:
    srv = start_server("ws_apps:app", ws_max_message_size=1000)
    try:
        raw = Raw(srv.port)
        raw.send(frame(0x2, b"x" * 1000))
        assert raw.read_frame() == (0x2, b"x" * 1000)
        raw.send(frame(0x2, b"x" * 1001))
        assert raw.read_close()[0] == 1009
        raw.close()
    finally:
        srv.stop()


# ---------------------------------------------------------------- closing


def test_peer_close_code_and_reason_reach_the_app(server: ServerProc) -> None:
    with connect(ws_url(server, "/echo?peer-close")) as ws:
        ws.send("x")
        assert ws.recv() == "x"
        ws.close(4321, "see you")
    assert wait_event(server, ["/echo", 4321, "see you"])
    # a close without a code: 1005 (RFC 6455 §7.1.5)
    raw = Raw(server.port, "/echo")
    raw.send(frame(0x8, b""))
    assert raw.read_close()[0] == 1005  # our reply carries no code either
    assert raw.closed_by_server()
    raw.close()
    assert ["/echo", 1005, ""] in wait_event(server, ["/echo", 1005, ""])


def test_abrupt_loss_is_1006(server: ServerProc) -> None:
    before = events(server).count(["/echo", 1006, ""])
    raw = Raw(server.port, "/echo")
    raw.send(frame(0x1, b"hi"))
    assert raw.read_frame() == (0x1, b"hi")
    raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    raw.close()  # RST, no close frame
    deadline = time.monotonic() + 10
    while events(server).count(["/echo", 1006, ""]) == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert events(server).count(["/echo", 1006, ""]) == before + 1


def test_app_close_code_and_reason_reach_the_client(server: ServerProc) -> None:
    with connect(ws_url(server, "/echo")) as ws:
        ws.send("close:4000:app says bye")
        with pytest.raises(ConnectionClosed) as info:
            ws.recv()
        assert info.value.rcvd is not None
        assert (info.value.rcvd.code, info.value.rcvd.reason) == (4000, "app says bye")


def test_server_ping_timeout_closes_1011() -> None:
    """A peer that answers no ping (a raw socket that reads nothing) is closed with 1011
    after --ws-ping-interval + --ws-ping-timeout, and the app gets its disconnect."""
    srv = start_server("ws_apps:app", ws_ping_interval=1, ws_ping_timeout=1)
    try:
        raw = Raw(srv.port, "/echo")
        op, payload = raw.read_frame()
        assert op == 0x9  # the keep-alive ping
        assert raw.read_close() == (1011, b"keepalive ping timeout")
        assert raw.closed_by_server()
        raw.close()
        assert ["/echo", 1011, "keepalive ping timeout"] in wait_event(
            srv, ["/echo", 1011, "keepalive ping timeout"]
        )
        # a peer that answers (the library's client) stays open across several pings
        with connect(ws_url(srv, "/echo")) as ws:
            time.sleep(3.5)
            ws.send("still here")
            assert ws.recv() == "still here"
    finally:
        srv.stop()


def test_graceful_stop_closes_open_websockets_with_1001() -> None:
    srv = start_server("ws_apps:app")
    try:
        with connect(ws_url(srv, "/echo?stop")) as ws:
            ws.send("x")
            assert ws.recv() == "x"
            srv.proc.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed) as info:
                ws.recv(timeout=10)
            assert info.value.rcvd is not None and info.value.rcvd.code == 1001
        code, err = srv.stop()
        assert code == 0
        assert "DISCONNECT /echo 1001 server shutdown" in err
    finally:
        srv.stop()


# ---------------------------------------------------------------- flow control


def test_a_client_faster_than_the_app_makes_the_server_stop_reading() -> None:
    """The app reads nothing until released: the server must stop reading at its bounded
    queue, so the client's writes block long before all it wants to send is taken; once the
    app reads, every message arrives."""
    srv = start_server("ws_apps:app")
    try:
        raw = Raw(srv.port, "/slow")
        chunk = frame(0x2, b"m" * 65536)
        limit = 256 * 1024 * 1024
        # blocking sends with a timeout: a send that moves no byte for 2 s means the server
        # stopped reading (its kernel buffers are full too); `off` says where we are in a frame
        raw.sock.settimeout(2)
        sent = off = 0
        while sent < limit:
            try:
                n = raw.sock.send(chunk[off:])
            except TimeoutError:
                break
            off += n
            sent += n
            if off == len(chunk):
                off = 0
        assert sent < limit, "the server read everything: no flow control"
        messages = -(-sent // len(chunk))  # the partial frame is completed below
        with connect(ws_url(srv, "/release")) as rel:
            with pytest.raises(ConnectionClosed):
                rel.recv(timeout=5)
        raw.sock.settimeout(10)
        raw.send(chunk[off:] if off else b"")
        raw.send(frame(0x2, b"done"))
        op, payload = raw.read_frame()
        assert op == 0x1
        assert payload.decode() == f"{messages} {messages * 65536}"
        raw.close()
    finally:
        srv.stop()


# ---------------------------------------------------------------- access log


def test_access_log_has_the_session_once_with_101_and_refusals_with_their_status() -> None:
    srv = start_server("ws_apps:app", access_log=True)
    try:
        with connect(ws_url(srv, "/echo-logged")) as ws:
            ws.send("x")
            assert ws.recv() == "x"
            time.sleep(0.3)
        with pytest.raises(InvalidStatus):
            connect(ws_url(srv, "/reject"))
        with pytest.raises(InvalidStatus):
            connect(ws_url(srv, "/deny"))
        _raw_answer(srv, upgrade_request("/v8", version=b"8"))
        time.sleep(0.5)
    finally:
        srv.stop()
    lines = srv.stdout.decode().splitlines()
    session = [ln for ln in lines if "GET /echo-logged " in ln]
    assert len(session) == 1 and '" 101 ' in session[0]
    # the duration covers the session (it was open for at least the 0.3 s sleep)
    assert float(session[0].rsplit(" ", 1)[1]) >= 300
    assert [ln.split('" ')[1].split()[0] for ln in lines if "GET /reject " in ln] == ["403"]
    assert [ln.split('" ')[1].split()[0] for ln in lines if "GET /deny " in ln] == ["401"]
    assert [ln.split('" ')[1].split()[0] for ln in lines if "GET /v8 " in ln] == ["426"]


# ---------------------------------------------------------------- in process: counters, hook, queue


def test_session_counts_as_a_connection_is_logged_once_and_bounds_its_queue() -> None:
    """The real H1 connection, dispatch, session and ASGI adapter over a fake transport: the
    upgrade leaves --backpressure's count, the session is a tracked connection, reading pauses
    at the bounded queue while the app does not read, and at the end the metrics' active count
    drops and the completion hook sees the session once, as 101."""
    import asyncio

    from fakes import FakeTransport

    from granian.apps.asgi import ASGINLAdapter
    from granian.server.config import WSConfig
    from granian.server.context import ServerContext
    from granian.server.dispatch import Dispatch
    from granian.server.metrics import WorkerMetrics
    from granian.server.ws import WSSession, register

    gate = asyncio.Event()

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        await receive()
        await send({"type": "websocket.accept"})
        await gate.wait()
        while True:
            msg = await receive()
            if msg["type"] == "websocket.disconnect":
                return

    async def main() -> None:
        loop = asyncio.get_running_loop()
        adapter = ASGINLAdapter(app)
        ctx = ServerContext(loop, adapter.handler)
        ctx.dispatch = Dispatch(ctx)
        register(ctx, adapter.ws_handler, WSConfig(ping_interval=0))
        ctx.metrics = metrics = WorkerMetrics()
        completed: list[int] = []
        ctx.on_complete = lambda cycle: completed.append(cycle.status)
        proto = ctx.dispatch.factory()()
        transport = FakeTransport()
        transport.set_protocol(proto)
        proto.connection_made(transport)  # type: ignore[arg-type]
        assert metrics.conn_active == 1
        proto.data_received(upgrade_request())
        for _ in range(20):
            await asyncio.sleep(0)
        assert transport.data.startswith(b"HTTP/1.1 101 ")
        session = transport.get_protocol()
        assert isinstance(session, WSSession)
        assert session in ctx.connections and proto not in ctx.connections
        assert ctx.active == 0  # a session is not a request in flight
        assert completed == []  # not logged before it ends
        for i in range(15):
            session.data_received(frame(0x1, b"m%d" % i))
        assert transport.reading
        session.data_received(frame(0x1, b"m15"))
        assert not transport.reading  # 16 messages wait for the app: reading paused
        gate.set()
        for _ in range(20):
            await asyncio.sleep(0)
        assert transport.reading  # the app caught up
        session.connection_lost(None)
        for _ in range(5):
            await asyncio.sleep(0)
        assert metrics.conn_active == 0 and metrics.conn_handled == 1
        assert completed == [101]
        assert session not in ctx.connections

    asyncio.run(main())


@pytest.mark.parametrize(
    "options", [{"threads": 2}, {"opt": True}, {"interface": "asginl"}, {"loop": "asyncio"}]
)
def test_sessions_on_loop_threads_eager_tasks_and_asginl(options: dict[str, object]) -> None:
    srv = start_server("ws_apps:app", **options)
    try:
        for i in range(4):  # with --threads 2 the kernel spreads these over both loops
            with connect(ws_url(srv, "/echo")) as ws:
                ws.send(f"m{i}")
                assert ws.recv() == f"m{i}"
        # plain HTTP keeps working next to them
        assert httpx.get(srv.url + "/").text == "plain http"
    finally:
        srv.stop()


def test_wsgi_serves_an_upgrade_request_as_plain_http() -> None:
    """WebSockets are always off for WSGI (as in Granian): the app answers, no 101."""
    srv = start_server("wsgi_app:app", interface="wsgi")
    try:
        status, headers, _ = _raw_answer(srv, upgrade_request("/"))
        assert not status.startswith(b"HTTP/1.1 101 ")
        assert b"sec-websocket-accept" not in headers
    finally:
        srv.stop()
