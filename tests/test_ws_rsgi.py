"""The RSGI WebSocket protocol (RSGI.md) on a real worker: accept and the transport, message
kinds, close(status) before accept as an HTTP refusal, errors, ProtocolClosed once the peer
has gone. Apps: tests/apps/ws_rsgi_apps.py."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest
from helpers import ServerProc, start_server
from test_ws_server import Raw, frame, wait_event
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProc]:
    srv = start_server("ws_rsgi_apps:app", interface="rsgi", access_log=True)
    try:
        yield srv
    finally:
        srv.stop()


def url(server: ServerProc, path: str) -> str:
    return f"ws://127.0.0.1:{server.port}{path}"


def _status(server: ServerProc, path: str) -> int:
    with pytest.raises(InvalidStatus) as info:
        with connect(url(server, path)):
            pass
    return info.value.response.status_code


def test_scope(server: ServerProc) -> None:
    with connect(url(server, "/scope?x=%41")) as ws:
        info = json.loads(ws.recv())
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000
    assert info == {
        "proto": "ws",
        "scheme": "http",
        "method": "GET",
        "path": "/scope",
        "query_string": "x=%41",
        "http_version": "1.1",
        "rsgi_version": "1.6",
        "upgrade": "websocket",
    }


def test_echo_kinds(server: ServerProc) -> None:
    with connect(url(server, "/echo"), max_size=None) as ws:
        ws.send("text")
        assert ws.recv() == "text"
        ws.send(b"\x00bytes")
        assert ws.recv() == b"\x00bytes"
        big = os.urandom(1 << 20)
        ws.send(big)
        assert ws.recv() == big


def test_close_before_accept_is_an_http_refusal_with_that_status(server: ServerProc) -> None:
    assert _status(server, "/reject") == 403
    assert _status(server, "/teapot") == 418
    assert _status(server, "/return") == 403


def test_exception_before_accept_is_500_after_is_1011(server: ServerProc) -> None:
    assert _status(server, "/boom-before") == 500
    with connect(url(server, "/boom-after")) as ws:
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1011


def test_close_after_accept_sends_its_code_and_sending_then_is_a_protocol_error(server: ServerProc) -> None:
    with connect(url(server, "/echo")) as ws:
        ws.send("close")
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
    assert info.value.rcvd is not None and info.value.rcvd.code == 4000
    with connect(url(server, "/after-close")) as ws:
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
    assert info.value.rcvd is not None and info.value.rcvd.code == 4002
    assert ["after-close", "RSGIProtocolError"] in wait_event(server, ["after-close", "RSGIProtocolError"])


def test_peer_close_gives_kind_0_then_protocol_closed(server: ServerProc) -> None:
    raw = Raw(server.port, "/echo")
    raw.send(frame(0x1, b"hi"))
    assert raw.read_frame() == (0x1, b"hi")
    raw.send(frame(0x8, b"\x03\xe8bye"))
    assert raw.read_close()[0] == 1000
    assert raw.closed_by_server()
    raw.close()
    got = wait_event(server, ["/echo", "send", "ProtocolClosed"])
    assert ["/echo", "closed", "ProtocolClosed on the next receive"] in got
    assert ["/echo", "send", "ProtocolClosed"] in got


def test_no_ws_serves_rsgi_upgrade_as_http() -> None:
    srv = start_server("ws_rsgi_apps:app", interface="rsgi", ws=False)
    try:
        with pytest.raises(InvalidStatus) as info:
            with connect(url(srv, "/echo")):
                pass
        assert info.value.response.status_code == 200
        assert info.value.response.body == b"plain http"
    finally:
        srv.stop()
