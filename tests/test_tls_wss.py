"""WebSockets over TLS (issue 13, "wss"): the `websockets` client over wss against real workers,
certificates from trustme (tests/test_tls_serving.pki).

The ASGI websocket scope says `wss` and carries the `tls` extension (server certificate, TLS
version, cipher suite, and with mutual TLS the client's certificate and name); an HTTP request
that edits its extension before an upgrade on the same connection leaves the WebSocket scope's
copy alone; RSGI says `https` (RSGI.md: never ws/wss); messages of 1 MiB cross the TLS record
layer both ways; --ssl-client-verify refuses a wss client without a certificate; a graceful
stop closes an open wss session with 1001. Apps: tests/apps/tls_apps.py.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import time
from typing import Any

import pytest
from test_tls_serving import PKI, TLS13_SUITES, client_ctx, tls_connect, tls_opts, wait_https
from test_tls_serving import pki as pki  # noqa: F401 - the module-scoped fixtures, reused
from test_tls_serving import serve as serve  # noqa: F401
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.sync.client import connect

LOOPS = ("asyncio", "uvloop")


def wss(srv: Any, path: str) -> str:
    return f"wss://127.0.0.1:{srv.port}{path}"


@pytest.mark.parametrize("loop", LOOPS)
def test_asgi_wss_scope_and_tls_extension(serve: Any, pki: PKI, loop: str) -> None:
    srv = serve("tls_apps:asgi", interface="asgi", loop=loop, **tls_opts(pki))
    ctx = client_ctx(pki)
    wait_https(srv, ctx)
    with connect(wss(srv, "/scope"), ssl=ctx, open_timeout=10) as ws:
        info = json.loads(ws.recv(timeout=10))
    assert info["scheme"] == "wss"
    assert info["extensions"] == ["tls", "websocket.http.response"]
    tls = info["tls"]
    assert tls["server_cert"] == pki.cert_leaf_pem
    assert tls["tls_version"] == 0x0304  # RFC 8446 §4.2.1
    assert tls["cipher_suite"] in TLS13_SUITES
    assert tls["client_cert_chain"] == [] and tls["client_cert_name"] is None
    assert tls["client_cert_error"] is None


@pytest.mark.parametrize("loop", LOOPS)
def test_wss_large_messages_both_ways(serve: Any, pki: PKI, loop: str) -> None:
    # 1 MiB is 64 TLS records of 16 KiB (RFC 8446 §5.1) in each direction.
    srv = serve("tls_apps:asgi", interface="asgi", loop=loop, **tls_opts(pki))
    ctx = client_ctx(pki)
    wait_https(srv, ctx)
    with connect(wss(srv, "/echo"), ssl=ctx, max_size=None, open_timeout=10) as ws:
        payload = os.urandom(1024 * 1024)
        ws.send(payload)
        assert ws.recv(timeout=20) == payload
        text = "é" * 300_000
        ws.send(text)
        assert ws.recv(timeout=20) == text
        for n in range(20):  # many small ones on the same session
            ws.send(f"m{n}")
            assert ws.recv(timeout=10) == f"m{n}"


def test_wss_mutual_tls(serve: Any, pki: PKI) -> None:
    srv = serve(
        "tls_apps:asgi",
        interface="asgi",
        **tls_opts(pki, ssl_ca=str(pki.ca_pem), ssl_client_verify=True, ssl_crl=[str(pki.crl)]),
    )
    good = client_ctx(pki, cert=pki.client)
    wait_https(srv, good)
    with connect(wss(srv, "/scope"), ssl=good, open_timeout=10) as ws:
        tls = json.loads(ws.recv(timeout=10))["tls"]
    assert tls["client_cert_name"] == pki.client_name
    assert tls["client_cert_chain"][0] == pki.client_leaf_pem
    # TLS 1.3: the server's refusal may come after the client's side of the handshake, as an
    # alert or the end of the connection where the 101 was expected.
    for ctx in (client_ctx(pki), client_ctx(pki, cert=pki.revoked)):
        with pytest.raises((ssl.SSLError, ConnectionError, InvalidHandshake, ConnectionClosed, EOFError)):
            with connect(wss(srv, "/scope"), ssl=ctx, open_timeout=10) as ws:
                ws.recv(timeout=10)
    with connect(wss(srv, "/echo"), ssl=good, open_timeout=10) as ws:
        ws.send("still serving")
        assert ws.recv(timeout=10) == "still serving"


def _read_frame(sock: socket.socket, buf: bytes) -> tuple[int, bytes]:
    """One unmasked server frame (RFC 6455 §5.2) from `buf` + the socket."""

    def need(n: int) -> None:
        nonlocal buf
        while len(buf) < n:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed mid-frame")
            buf += chunk

    need(2)
    opcode, length, pos = buf[0] & 0x0F, buf[1] & 0x7F, 2
    if length == 126:
        need(4)
        length, pos = int.from_bytes(buf[2:4], "big"), 4
    elif length == 127:
        need(10)
        length, pos = int.from_bytes(buf[2:10], "big"), 10
    need(pos + length)
    return opcode, buf[pos : pos + length]


def test_upgrade_after_a_request_that_edited_its_tls_extension(serve: Any, pki: PKI) -> None:
    # One TLS connection: an HTTP request whose app edits scope["extensions"]["tls"], then a
    # WebSocket upgrade. The connection computed the extension once; each scope has its copy.
    srv = serve("tls_apps:asgi", interface="asgi", **tls_opts(pki))
    ctx = client_ctx(pki)
    wait_https(srv, ctx)
    with tls_connect(srv, ctx) as s:
        s.sendall(b"GET /mutate HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += s.recv(65536)
        head, _, buf = buf.partition(b"\r\n\r\n")
        n = int(
            next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")).split(b":")[1]
        )
        while len(buf) < n:
            buf += s.recv(65536)
        first, buf = json.loads(buf[:n]), buf[n:]
        assert first["tls"]["server_cert"] == "junk"  # the HTTP app's own copy, edited
        s.sendall(
            b"GET /scope HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        while b"\r\n\r\n" not in buf:
            buf += s.recv(65536)
        head, _, buf = buf.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 ")
        opcode, payload = _read_frame(s, buf)
    assert opcode == 0x1
    info = json.loads(payload)
    assert info["scheme"] == "wss"
    assert info["tls"]["server_cert"] == pki.cert_leaf_pem


@pytest.mark.parametrize("loop", LOOPS)
def test_rsgi_wss(serve: Any, pki: PKI, loop: str) -> None:
    srv = serve("tls_apps:rsgi", interface="rsgi", loop=loop, **tls_opts(pki))
    ctx = client_ctx(pki)
    wait_https(srv, ctx)
    with connect(wss(srv, "/ws"), ssl=ctx, max_size=None, open_timeout=10) as ws:
        assert json.loads(ws.recv(timeout=10)) == {"scheme": "https"}  # RSGI.md: never wss
        payload = os.urandom(300_000)
        ws.send(payload)
        assert ws.recv(timeout=20) == payload


@pytest.mark.parametrize("loop", LOOPS)
def test_graceful_stop_closes_wss_with_1001(serve: Any, pki: PKI, loop: str) -> None:
    srv = serve("tls_apps:asgi", interface="asgi", loop=loop, **tls_opts(pki))
    ctx = client_ctx(pki)
    wait_https(srv, ctx)
    with connect(wss(srv, "/echo"), ssl=ctx, open_timeout=10) as ws:
        ws.send("hello")
        assert ws.recv(timeout=10) == "hello"
        t0 = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=20)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1001  # RFC 6455 §7.4.1
    code, err = srv.stop(timeout=20)
    assert code == 0, err
    assert time.monotonic() - t0 < 15
