"""HTTP/2 served over real sockets (issue 14): h2c with prior knowledge, ALPN h2 over TLS and
the h2c Upgrade, on ASGI, RSGI and WSGI, with both engines (libnghttp2's shim and the `h2`
fallback, forced through GRANIAN_HTTP2_ENGINE).

Clients: httpx[http2] (what an application's client does), the `h2` library over a socket
(tests/apps/h2_client.py) for stream-level checks, and curl where it is installed. Each server
is a real `serve_worker` subprocess (tests/helpers.py), stopped by PID.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from apps.h2_client import H2Client, ev
from h2_serve import APPS, PREFACE, MiB, serve_fixture, wait_h2
from h2_serve import engine as _engine
from helpers import APPS_DIR, start_server

engine = _engine  # the shared fixture (h2_serve), under its name
serve = serve_fixture()


def h2c() -> httpx.Client:
    # http1=False: httpx speaks HTTP/2 with prior knowledge on http:// URLs
    return httpx.Client(http1=False, http2=True, timeout=10)


# ---------------------------------------------------------------- h2c prior knowledge


@pytest.mark.parametrize("iface", ["asgi", "rsgi", "wsgi"])
def test_h2c_prior_knowledge_on_each_interface(serve: Any, engine: str, iface: str) -> None:
    srv = serve(iface)
    with h2c() as c:
        r = c.get(srv.url + "/scope?a=1", headers={"x-test": "yes"})
        assert r.http_version == "HTTP/2" and r.status_code == 200
        seen = r.json()
        host = f"127.0.0.1:{srv.port}"
        if iface == "asgi":
            assert seen["http_version"] == "2" and seen["query"] == "a=1"
            headers = dict(seen["headers"])
            assert headers["host"] == host  # from :authority (Granian #188)
            assert headers["x-test"] == "yes"
        elif iface == "rsgi":
            assert seen["http_version"] == "2" and seen["authority"] == host
            assert dict(seen["headers"])["host"] == host
        else:
            assert seen["SERVER_PROTOCOL"] == "HTTP/2" and seen["HTTP_HOST"] == host
        # several requests on the one connection, each its own stream
        assert [c.get(srv.url + "/").text for _ in range(3)] == ["hello"] * 3
        r = c.post(srv.url + "/echo", content=b"ping" * 1000)
        assert r.content == b"ping" * 1000
        r = c.get(srv.url + "/file")
        assert r.content == (APPS_DIR / "h2_apps.py").read_bytes()
        assert "date" in r.headers and r.headers["server"] == "granian"


@pytest.mark.parametrize("iface", ["asgi", "rsgi"])
def test_streamed_responses(serve: Any, engine: str, iface: str) -> None:
    srv = serve(iface)
    with h2c() as c:
        r = c.get(srv.url + "/big?n=300001")
        assert r.content == b"x" * 300001
        if iface == "asgi":
            assert c.get(srv.url + "/stream").content == b"one,two,three"


def test_wsgi_cookies_joined_with_semicolons(serve: Any, engine: str) -> None:
    # RFC 9113 §8.2.3 lets a client split `cookie`; WSGI's environ has one HTTP_COOKIE,
    # joined with "; " (Granian #287), not the ", " of other repeated fields.
    srv = serve("wsgi")
    c = H2Client(srv.port)
    try:
        status, _, body = c.get("/scope", headers=[(b"cookie", b"a=1"), (b"cookie", b"b=2")])
        assert status == 200
        assert json.loads(body)["HTTP_COOKIE"] == "a=1; b=2"
    finally:
        c.close()


def test_host_header_kept_when_sent(serve: Any, engine: str) -> None:
    srv = serve("asgi")
    c = H2Client(srv.port, host="127.0.0.1")
    c.authority = b"127.0.0.1"
    try:
        status, _, body = c.get("/scope", headers=[(b"host", b"127.0.0.1")])
        assert status == 200
        assert [v for n, v in json.loads(body)["headers"] if n == "host"] == ["127.0.0.1"]
    finally:
        c.close()


def test_head_and_app_error(serve: Any, engine: str) -> None:
    srv = serve("asgi")
    c = H2Client(srv.port)
    try:
        status, headers, body = c.get("/", method="HEAD")
        assert status == 200 and body == b"" and headers[b"content-length"] == b"5"
        status, _, body = c.get("/fail")
        assert status == 500
        # the connection survives an app's error
        assert c.get("/")[2] == b"hello"
    finally:
        c.close()


# ---------------------------------------------------------------- concurrency, big bodies


@pytest.mark.parametrize("iface", ["asgi", "rsgi"])
def test_nine_slow_streams_on_one_connection_run_together(serve: Any, engine: str, iface: str) -> None:
    # Each request waits until all nine are in the app at once (10 s bound, then "alone"):
    # streams served one after another could never all answer "together".
    srv = serve(iface)

    async def main() -> list[str]:
        async with httpx.AsyncClient(http1=False, http2=True, timeout=20) as c:
            rs = await asyncio.gather(*(c.get(srv.url + "/barrier?n=9") for _ in range(9)))
            assert {r.http_version for r in rs} == {"HTTP/2"}
            return [r.text for r in rs]

    assert asyncio.run(main()) == ["together"] * 9


def test_eight_mib_each_way(serve: Any, engine: str) -> None:
    srv = serve("asgi")
    body = bytes(range(256)) * (8 * MiB // 256)
    with h2c() as c:
        r = c.post(srv.url + "/echo", content=body)
        assert r.status_code == 200 and r.content == body
        r = c.get(srv.url + f"/big?n={8 * MiB}")
        assert len(r.content) == 8 * MiB


def test_eight_mib_wsgi_upload(serve: Any, engine: str) -> None:
    srv = serve("wsgi")
    body = b"w" * (8 * MiB)
    with h2c() as c:
        r = c.post(srv.url + "/echo", content=body)
        assert r.content == body


# ---------------------------------------------------------------- reset, shutdown


@pytest.mark.parametrize("iface", ["asgi", "rsgi"])
def test_rst_stream_is_a_disconnect_for_that_stream_only(
    serve: Any, engine: str, iface: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = tmp_path / "events"
    monkeypatch.setenv("H2_EVENTS", str(events))
    srv = serve(iface)
    c = H2Client(srv.port)
    try:
        waiting = c.request("/wait-disconnect?id=one")
        c.until(lambda c: bool(c.of(ev.DataReceived, waiting)))
        slow = c.request("/slow?s=0.3")
        c.c.reset_stream(waiting)
        c.flush()
        status, _, body = c.response(slow)
        assert (status, body) == (200, b"slow")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not events.exists():
            time.sleep(0.05)
        assert events.read_text().split("\n")[0] == f"{iface} disconnect id=one"
        assert c.get("/")[2] == b"hello"  # the connection goes on
    finally:
        c.close()


def test_graceful_stop_sends_goaway_and_finishes_open_streams(serve: Any, engine: str) -> None:
    srv = serve("asgi")
    c = H2Client(srv.port)
    try:
        assert c.get("/")[0] == 200
        sid = c.request("/slow?s=0.8")
        time.sleep(0.3)  # the stream is in the app
        # h2 answers the frames that follow a GOAWAY with its own GOAWAY(PROTOCOL_ERROR),
        # which would end the connection: from here the client only reads (and so does not
        # ack the stop's PING either: the final GOAWAY comes on the server's timer)
        c.auto_ack = False
        srv.proc.send_signal(signal.SIGTERM)
        c.until(lambda c: c.goaway() is not None)
        goaway = c.goaway()
        assert goaway is not None and goaway.error_code == 0
        # RFC 9113 §6.8: first a GOAWAY with 2^31-1 (streams opened meanwhile are served)...
        assert goaway.last_stream_id == 2**31 - 1
        # h2 takes no frame after a GOAWAY: read the rest as raw frames
        assert c.wait_closed()
        # ... then, a round trip later, the one with the last stream id
        goaways = [(f.last_stream_id, f.error_code) for f in c.frames() if f.type == 0x7]
        assert goaways == [(2**31 - 1, 0), (sid, 0)]
        data = [f for f in c.frames() if f.type == 0x0 and f.stream_id == sid]
        assert b"".join(f.data for f in data) == b"slow" and "END_STREAM" in data[-1].flags
    finally:
        c.close()
    code, _err = srv.stop()
    assert code == 0


# ---------------------------------------------------------------- dispatch


def test_http1_refuses_the_preface() -> None:
    proc = start_server(APPS["asgi"], interface="asgi", http="1")
    try:
        deadline = time.monotonic() + 15
        data = b""
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", proc.port), timeout=2) as s:
                    s.sendall(PREFACE)
                    s.settimeout(3)
                    data = s.recv(100)
                    break
            except OSError:
                time.sleep(0.1)
        assert data.startswith(b"HTTP/1.1 505 ")
        with httpx.Client() as c:
            assert c.get(proc.url + "/").http_version == "HTTP/1.1"
    finally:
        proc.stop()


def test_http2_only_serves_h2_from_the_first_byte(serve: Any, engine: str) -> None:
    srv = serve("asgi", http="2")
    with h2c() as c:
        assert c.get(srv.url + "/").text == "hello"
    with socket.create_connection(("127.0.0.1", srv.port), timeout=3) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        s.settimeout(3)
        data = b""
        while True:
            try:
                got = s.recv(4096)
            except (TimeoutError, ConnectionResetError):
                break
            if not got:
                break
            data += got
        assert b"HTTP/1.1" not in data  # no HTTP/1.1 answer: a GOAWAY, then the close


def test_auto_serves_http1_and_h2c_side_by_side(serve: Any, engine: str) -> None:
    srv = serve("asgi")
    with httpx.Client() as c1, h2c() as c2:
        assert c1.get(srv.url + "/").http_version == "HTTP/1.1"
        assert c2.get(srv.url + "/").http_version == "HTTP/2"


# ---------------------------------------------------------------- h2c Upgrade


def test_h2c_upgrade_answers_stream_one(serve: Any, engine: str) -> None:
    srv = serve("asgi")
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
        c = H2Client(srv.port, sock=s, upgrade=True)
        s.sendall(
            b"GET /scope?u=1 HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            b"Upgrade: h2c\r\nHTTP2-Settings: " + c.upgrade_settings + b"\r\n\r\n"
        )
        s.settimeout(5)
        head = b""
        while b"\r\n\r\n" not in head:
            got = s.recv(1)
            assert got
            head += got
        assert head.startswith(b"HTTP/1.1 101 ")
        c.flush()  # the client's preface
        status, _, body = c.response(1)
        assert status == 200
        seen = json.loads(body)
        assert seen["http_version"] == "2" and seen["query"] == "u=1"
        assert c.get("/")[2] == b"hello"  # stream 3 on the upgraded connection


def test_upgrade_with_a_body_stays_http1(serve: Any, engine: str) -> None:
    srv = serve("asgi")
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
        s.sendall(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\nContent-Length: 3\r\n\r\nabc"
        )
        s.settimeout(5)
        data = s.recv(4096)
        assert data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"abc")


needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


def _curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["curl", "-s", "-m", "10", "-w", "\n%{http_version} %{http_code}", *args],
        capture_output=True,
        text=True,
        timeout=20,
    )


@needs_curl
@pytest.mark.parametrize("iface", ["asgi", "rsgi", "wsgi"])
def test_curl_prior_knowledge_and_upgrade(serve: Any, engine: str, iface: str) -> None:
    srv = serve(iface)
    done = _curl("--http2-prior-knowledge", srv.url + "/")
    assert done.stdout == "hello\n2 200"
    done = _curl("--http2", srv.url + "/", srv.url + "/scope")  # Upgrade, then stream 3
    assert done.stdout.startswith("hello\n2 200")
    assert done.stdout.endswith("\n2 200")
    done = _curl("--http2", "--data-binary", "abc", srv.url + "/echo")
    assert done.stdout == "abc\n1.1 200"  # a request with a body is not upgraded


# ---------------------------------------------------------------- TLS (ALPN h2)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    d = tmp_path_factory.mktemp("h2pki")
    cert = ca.issue_cert("127.0.0.1", "localhost")
    with open(d / "cert.pem", "wb") as f:
        for blob in cert.cert_chain_pems:
            f.write(blob.bytes())
    cert.private_key_pem.write_to_path(str(d / "key.pem"))
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    return {"cert": str(d / "cert.pem"), "key": str(d / "key.pem"), "ca": str(d / "ca.pem")}


@pytest.mark.parametrize("iface", ["asgi", "rsgi", "wsgi"])
def test_alpn_h2_over_tls(engine: str, iface: str, pki: dict[str, Any]) -> None:
    proc = start_server(APPS[iface], interface=iface, ssl_certificate=pki["cert"], ssl_keyfile=pki["key"])
    try:
        ctx = ssl.create_default_context(cafile=pki["ca"])
        url = f"https://127.0.0.1:{proc.port}"
        deadline = time.monotonic() + 15
        with httpx.Client(http2=True, verify=ctx, timeout=10) as c:
            while True:
                try:
                    r = c.get(url + "/scope")
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            assert r.http_version == "HTTP/2"
            seen = r.json()
            if iface == "asgi":
                assert seen["scheme"] == "https" and seen["tls"] is True
            elif iface == "rsgi":
                assert seen["scheme"] == "https"
            else:
                assert seen["wsgi.url_scheme"] == "https"
            body = b"t" * (3 * MiB)
            assert c.post(url + "/echo", content=body).content == body
    finally:
        proc.stop()


def test_access_log_one_line_per_stream(engine: str, tmp_path: Path) -> None:
    proc = start_server(APPS["asgi"], interface="asgi", access_log=True)
    try:
        wait_h2(proc)
        with h2c() as c:
            for path in ("/", "/scope", "/echo"):
                assert c.get(proc.url + path).status_code == 200
    finally:
        _, err = proc.stop()
    text = err + proc.stdout.decode(errors="replace")
    lines = [line for line in text.splitlines() if 'HTTP/2" ' in line]
    assert len(lines) == 3, text[-2000:]
    assert [line.split('"')[1] for line in lines] == ["GET / HTTP/2", "GET /scope HTTP/2", "GET /echo HTTP/2"]
    assert all(line.split('"')[2].split()[0] == "200" for line in lines)
