"""The ASGI WebSocket interface (ASGI.md "WebSocket messages") on a real worker: the scope,
refusals before accept (403, the denial extension, 500), 1011 after an app error, misuse
errors, and wss over TLS. Apps: tests/apps/ws_apps.py."""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from helpers import ServerProc, start_server
from test_ws_server import Raw, wait_event
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProc]:
    srv = start_server("ws_apps:app", url_path_prefix="/root")
    try:
        yield srv
    finally:
        srv.stop()


def url(server: ServerProc, path: str) -> str:
    return f"ws://127.0.0.1:{server.port}{path}"


def _refused(server: ServerProc, path: str) -> InvalidStatus:
    with pytest.raises(InvalidStatus) as info:
        with connect(url(server, path)):
            pass
    return info.value


def test_scope(server: ServerProc) -> None:
    # (a raw client: the library will not send a subprotocol list with blanks around items)
    raw = Raw(server.port, "/scope%20x?a=1&b=%20", extra=b"Sec-WebSocket-Protocol: chat ,  v2\r\n")
    assert raw.headers[b"sec-websocket-protocol"] == b"v2"
    op, payload = raw.read_frame()
    raw.close()
    assert op == 0x1
    info = json.loads(payload)
    assert info == {
        "scheme": "ws",
        "path": "/scope x",
        "root_path": "/root",
        "raw_path": "/scope%20x",
        "query_string": "a=1&b=%20",
        "subprotocols": ["chat", "v2"],
        "http_version": "1.1",
        "extensions": ["websocket.http.response"],
        "client_port_is_int": True,
    }


def test_close_before_accept_is_403(server: ServerProc) -> None:
    assert _refused(server, "/reject").response.status_code == 403


def test_return_before_accept_is_403(server: ServerProc) -> None:
    assert _refused(server, "/return").response.status_code == 403


def test_denial_response_extension(server: ServerProc) -> None:
    r = _refused(server, "/deny").response
    assert r.status_code == 401
    assert r.headers["x-denied"] == "yes"
    assert r.body == b"go away"


def test_exception_before_accept_is_500(server: ServerProc) -> None:
    assert _refused(server, "/boom-before").response.status_code == 500


def test_exception_after_accept_is_close_1011(server: ServerProc) -> None:
    with connect(url(server, "/boom-after")) as ws:
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1011


def test_misuse_raises_runtime_errors_with_clear_messages(server: ServerProc) -> None:
    assert _refused(server, "/misuse-early").response.status_code == 403
    with connect(url(server, "/misuse")) as ws:
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
        assert info.value.rcvd is not None
        assert (info.value.rcvd.code, info.value.rcvd.reason) == (4001, "bye")
    got = wait_event(server, ["misuse-early", "x"], timeout=0)
    early = [e for e in got if e[0] == "misuse-early"]
    assert early and "not accepted" in str(early[0][1])
    misuse = [e for e in got if e[0] == "misuse"]
    assert misuse and len(misuse[0]) == 3
    assert "already accepted" in str(misuse[0][1])
    assert "closed" in str(misuse[0][2])


def test_wss_over_tls(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    with open(cert_path, "wb") as f:
        for blob in cert.cert_chain_pems:
            f.write(blob.bytes())
    cert.private_key_pem.write_to_path(str(key_path))
    srv = start_server("ws_apps:app", ssl_certificate=str(cert_path), ssl_keyfile=str(key_path))
    try:
        ctx = ssl.create_default_context()
        ca.configure_trust(ctx)
        with connect(f"wss://127.0.0.1:{srv.port}/scope", ssl=ctx) as ws:
            info = json.loads(ws.recv())
        assert info["scheme"] == "wss"
        assert "tls" in info["extensions"]
        with connect(f"wss://127.0.0.1:{srv.port}/echo", ssl=ctx, max_size=None) as ws:
            payload = b"\x01" * 300_000
            ws.send(payload)
            assert ws.recv() == payload
            ws.send("text over tls")
            assert ws.recv() == "text over tls"
    finally:
        srv.stop()
