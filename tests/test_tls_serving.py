"""HTTPS end to end (issue 13): real workers with --ssl-* options, real TLS clients over loopback.

Certificates come from trustme (a CA, the server's, good and revoked client ones); the CRL is
signed with `cryptography`. Clients are httpx over https and raw stdlib `ssl` sockets for what
httpx cannot do (pipelining, TLS 1.2 only, bad and stalled handshakes). Each server is a real
`serve_worker` subprocess (tests/helpers.py), stopped by PID; the exit-code cases run the real
`granian` command.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import json
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from helpers import APPS_DIR, ServerProc, start_server

from granian.errors import EXIT_STARTUP_FAILED

GRANIAN_BIN = Path(sys.executable).parent / "granian"
LOOPS = ("asyncio", "uvloop")
TLS13_SUITES = {0x1301, 0x1302, 0x1303}  # RFC 8446 §B.4
# Mozilla intermediate TLS 1.2 suites without DHE (granian.server.tls; RFC 5289, RFC 7905)
TLS12_SUITES = {0xC02B, 0xC02C, 0xC02F, 0xC030, 0xCCA8, 0xCCA9}


@dataclass(frozen=True)
class PKI:
    ca: trustme.CA
    ca_pem: Path
    cert: Path  # the server's chain
    key: Path
    cert_leaf_pem: str
    client: Path  # key + chain of a good client certificate
    client_leaf_pem: str
    client_name: str  # its subject, RFC 4514 (cryptography's rendering)
    revoked: Path  # key + chain of a client certificate listed in `crl`
    crl: Path
    other_key: Path  # a key that does not match `cert`


def _pem_to_text(blob: trustme.Blob) -> str:
    return blob.bytes().decode("ascii")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    d = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    server = ca.issue_cert("127.0.0.1", "localhost")
    with open(d / "cert.pem", "wb") as f:
        for blob in server.cert_chain_pems:
            f.write(blob.bytes())
    server.private_key_pem.write_to_path(str(d / "key.pem"))
    client = ca.issue_cert("alice@example.org", common_name="alice")
    client.private_key_and_cert_chain_pem.write_to_path(str(d / "client.pem"))
    revoked = ca.issue_cert("mallory@example.org", common_name="mallory")
    revoked.private_key_and_cert_chain_pem.write_to_path(str(d / "revoked.pem"))
    other = ca.issue_cert("127.0.0.1")
    other.private_key_pem.write_to_path(str(d / "other_key.pem"))

    # The CA revokes `revoked` (RFC 5280 §5).
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    ca_key = serialization.load_pem_private_key(ca.private_key_pem.bytes(), password=None)
    revoked_cert = x509.load_pem_x509_certificate(revoked.cert_chain_pems[0].bytes())
    now = datetime.datetime.now(datetime.timezone.utc)
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now - datetime.timedelta(minutes=5))
        .next_update(now + datetime.timedelta(days=1))
        .add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(revoked_cert.serial_number)
            .revocation_date(now - datetime.timedelta(minutes=5))
            .build()
        )
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    (d / "crl.pem").write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    client_cert = x509.load_pem_x509_certificate(client.cert_chain_pems[0].bytes())
    return PKI(
        ca=ca,
        ca_pem=d / "ca.pem",
        cert=d / "cert.pem",
        key=d / "key.pem",
        cert_leaf_pem=_pem_to_text(server.cert_chain_pems[0]),
        client=d / "client.pem",
        client_leaf_pem=_pem_to_text(client.cert_chain_pems[0]),
        client_name=client_cert.subject.rfc4514_string(),
        revoked=d / "revoked.pem",
        crl=d / "crl.pem",
        other_key=d / "other_key.pem",
    )


def tls_opts(pki: PKI, **extra: Any) -> dict[str, Any]:
    return {"ssl_certificate": str(pki.cert), "ssl_keyfile": str(pki.key), **extra}


def client_ctx(
    pki: PKI, cert: Path | None = None, max_version: ssl.TLSVersion | None = None
) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca_pem))
    if cert is not None:
        ctx.load_cert_chain(str(cert))
    if max_version is not None:
        ctx.maximum_version = max_version
    return ctx


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    """start_server, stopped (by PID) at teardown."""
    started: list[ServerProc] = []

    def run(app: str, **options: Any) -> ServerProc:
        proc = start_server(app, **options)
        started.append(proc)
        return proc

    yield run
    for proc in started:
        proc.stop()


def wait_https(srv: ServerProc, ctx: ssl.SSLContext, path: str = "/", timeout: float = 15.0) -> None:
    """The port is bound before the worker serves: wait for the first good answer."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            status, _, _ = request(srv, ctx, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert status.startswith(b"HTTP/1.1 ")
            return
        except (OSError, ConnectionError):
            if time.monotonic() > deadline or srv.proc.poll() is not None:
                raise


class Reader:
    """Responses off one (TLS) socket, pipelined ones included."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def _more(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError(f"closed; have {self.buf[:200]!r}")
        self.buf += data

    def response(self) -> tuple[bytes, dict[bytes, bytes], bytes]:
        while b"\r\n\r\n" not in self.buf:
            self._more()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(b":")
            headers[k.strip().lower()] = v.strip()
        n = int(headers.get(b"content-length", b"0"))
        while len(self.buf) < n:
            self._more()
        body, self.buf = self.buf[:n], self.buf[n:]
        return lines[0], headers, body


def tls_connect(srv: ServerProc, ctx: ssl.SSLContext, timeout: float = 10.0) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", srv.port), timeout=timeout)
    try:
        return ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    except BaseException:
        raw.close()
        raise


def request(
    srv: ServerProc, ctx: ssl.SSLContext, raw: str | bytes
) -> tuple[bytes, dict[bytes, bytes], bytes]:
    with tls_connect(srv, ctx) as s:
        s.sendall(raw.encode() if isinstance(raw, str) else raw)
        return Reader(s).response()


def get_json(srv: ServerProc, ctx: ssl.SSLContext, path: str = "/") -> Any:
    status, _, body = request(srv, ctx, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status == b"HTTP/1.1 200 OK", (status, body)
    return json.loads(body)


def refused(srv: ServerProc, ctx: ssl.SSLContext) -> bool:
    """True when the server does not serve this client: the handshake fails, or (TLS 1.3, where
    the client's side of the handshake ends before the server checks its certificate) the
    first read gets an alert or the end of the connection instead of a response."""
    try:
        with tls_connect(srv, ctx) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return s.recv(65536) == b""
    except (ssl.SSLError, ConnectionError):
        return True


def closed_without_answer(sock: socket.socket, timeout: float = 10.0) -> bool:
    """Reads until the server closes; True if it did (no bytes of an HTTP answer) in time."""
    sock.settimeout(timeout)
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except ConnectionResetError:
        pass
    except TimeoutError:
        return False
    return b"HTTP/" not in data


# ---------------------------------------------------------------- the interfaces over HTTPS


@pytest.mark.parametrize("loop", LOOPS)
def test_asgi_https_scope_and_tls_extension(serve: Any, pki: PKI, loop: str) -> None:
    srv = serve("tls_apps:asgi", interface="asgi", loop=loop, **tls_opts(pki))
    ctx = client_ctx(pki)
    wait_https(srv, ctx)
    got = get_json(srv, ctx)
    assert got["scheme"] == "https"
    assert got["extensions"] == ["http.response.pathsend", "http.response.trailers", "tls"]
    tls = got["tls"]
    assert tls["server_cert"] == pki.cert_leaf_pem
    assert tls["tls_version"] == 0x0304  # TLS 1.3 (RFC 8446 §4.2.1), the default minimum
    assert tls["cipher_suite"] in TLS13_SUITES
    assert tls["client_cert_chain"] == [] and tls["client_cert_name"] is None
    assert tls["client_cert_error"] is None
    assert set(tls) == {
        "server_cert",
        "client_cert_chain",
        "client_cert_name",
        "client_cert_error",
        "tls_version",
        "cipher_suite",
    }


def test_asgi_tls_extension_is_a_copy_per_scope(serve: Any, pki: PKI) -> None:
    srv = serve("tls_apps:asgi", interface="asgi", **tls_opts(pki))
    ctx = client_ctx(pki)
    wait_https(srv, ctx)
    with tls_connect(srv, ctx) as s:
        reader = Reader(s)
        s.sendall(b"GET /mutate HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        first = json.loads(reader.response()[2])
        second = json.loads(reader.response()[2])
    # the second request on the same connection (same cached extension) sees the original
    assert second["tls"]["server_cert"] == pki.cert_leaf_pem
    assert second["tls"]["client_cert_chain"] == []
    assert first["tls"]["server_cert"] == "junk"


def test_plain_asgi_has_no_tls_extension(serve: Any) -> None:
    srv = serve("tls_apps:asgi", interface="asgi")
    deadline = time.monotonic() + 15
    while True:
        try:
            r = httpx.get(srv.url + "/", timeout=5)
            break
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    assert r.json()["scheme"] == "http" and r.json()["extensions"] == [
        "http.response.pathsend",
        "http.response.trailers",
    ]


def test_forwarded_https_on_plain_tcp_has_no_tls_extension(serve: Any) -> None:
    # A TLS-terminating proxy's `X-Forwarded-Proto: https` makes the scheme https, but the
    # connection has no TLS: asgiref tls.rst gives the extension only to TLS connections.
    srv = serve("tls_apps:asgi", interface="asgi", proxy_headers=True, forwarded_allow_ips="127.0.0.1")
    deadline = time.monotonic() + 15
    while True:
        try:
            r = httpx.get(srv.url + "/", headers={"x-forwarded-proto": "https"}, timeout=5)
            break
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    assert r.json()["scheme"] == "https" and r.json()["extensions"] == [
        "http.response.pathsend",
        "http.response.trailers",
    ]


def test_asgi_httpx_upload_2mib(serve: Any, pki: PKI) -> None:
    srv = serve("tls_apps:asgi", interface="asgi", **tls_opts(pki))
    ctx = client_ctx(pki)
    wait_https(srv, ctx)
    body = os.urandom(2 * 1024 * 1024)
    with httpx.Client(verify=ctx, timeout=20) as client:
        r = client.post(f"https://127.0.0.1:{srv.port}/echo", content=body)
        assert r.status_code == 200 and r.content == body
        assert r.http_version == "HTTP/1.1"
        # the same client connection again (keep-alive through httpx's pool)
        r2 = client.get(f"https://127.0.0.1:{srv.port}/")
        assert r2.json()["scheme"] == "https"


@pytest.mark.parametrize("loop", LOOPS)
def test_rsgi_https(serve: Any, pki: PKI, loop: str) -> None:
    srv = serve("tls_apps:rsgi", interface="rsgi", loop=loop, **tls_opts(pki))
    ctx = client_ctx(pki)
    wait_https(srv, ctx)
    assert get_json(srv, ctx) == {"scheme": "https"}
    with httpx.Client(verify=ctx, timeout=10) as client:
        r = client.post(f"https://127.0.0.1:{srv.port}/echo", content=b"x" * 100_000)
        assert r.content == b"x" * 100_000


def test_wsgi_https_environ(serve: Any, pki: PKI) -> None:
    srv = serve("tls_apps:wsgi", interface="wsgi", **tls_opts(pki))
    ctx = client_ctx(pki)
    wait_https(srv, ctx)
    assert get_json(srv, ctx) == {"url_scheme": "https", "HTTPS": "on"}
    with httpx.Client(verify=ctx, timeout=10) as client:
        r = client.post(f"https://127.0.0.1:{srv.port}/echo", content=b"y" * 300_000)
        assert r.content == b"y" * 300_000


def test_wsgi_plain_has_no_https(serve: Any) -> None:
    srv = serve("tls_apps:wsgi", interface="wsgi")
    deadline = time.monotonic() + 15
    while True:
        try:
            r = httpx.get(srv.url + "/", timeout=5)
            break
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    assert r.json() == {"url_scheme": "http", "HTTPS": None}


def test_access_log_says_https(serve: Any, pki: PKI) -> None:
    srv = serve(
        "tls_apps:asgi",
        interface="asgi",
        access_log=True,
        access_log_fmt="ACCESS %(scheme)s %(path)s %(status)d",
        **tls_opts(pki),
    )
    ctx = client_ctx(pki)
    wait_https(srv, ctx, "/logged")
    _, err = srv.stop()
    assert "ACCESS https /logged 200" in srv.stdout.decode(errors="replace") + err


# ---------------------------------------------------------------- connections


@pytest.mark.parametrize("loop", LOOPS)
def test_keep_alive_and_pipelining(serve: Any, pki: PKI, loop: str) -> None:
    srv = serve("tls_apps:rsgi", interface="rsgi", loop=loop, **tls_opts(pki))
    ctx = client_ctx(pki)
    wait_https(srv, ctx)
    with tls_connect(srv, ctx) as s:
        reader = Reader(s)
        pipelined = b"".join(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(b), b)
            for b in (b"one", b"two" * 1000, b"three")
        )
        s.sendall(pipelined)
        assert [reader.response()[2] for _ in range(3)] == [b"one", b"two" * 1000, b"three"]
        # and the connection is still open for more
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = reader.response()
        assert status == b"HTTP/1.1 200 OK" and json.loads(body) == {"scheme": "https"}
        assert headers.get(b"connection") != b"close"


@pytest.mark.parametrize("loop", LOOPS)
def test_close_delivers_the_whole_tail_to_a_slow_reader(serve: Any, pki: PKI, loop: str) -> None:
    # A `Connection: close` response larger than the socket buffers, to a client that starts
    # reading only after the header-read timeout (1 s) has passed: the TLS close (flush, then
    # close_notify) must not be bounded by that timeout, or the loop drops the buffered tail.
    srv = serve("tls_apps:rsgi", interface="rsgi", loop=loop, http1_header_read_timeout=1000, **tls_opts(pki))
    ctx = client_ctx(pki)
    wait_https(srv, ctx)
    body = os.urandom(8 * 1024 * 1024)
    raw = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
        s.sendall(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body)
        )
        s.sendall(body)
        time.sleep(2.5)  # the server's write buffer holds the tail meanwhile
        status, headers, got = Reader(s).response()
    assert status == b"HTTP/1.1 200 OK" and headers[b"connection"] == b"close"
    assert len(got) == len(body) and got == body


def test_plain_http_to_the_tls_port_is_closed(serve: Any, pki: PKI) -> None:
    srv = serve("tls_apps:asgi", interface="asgi", **tls_opts(pki))
    ctx = client_ctx(pki)
    wait_https(srv, ctx)
    for junk in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"\x16\x03\x01\x00\x05hello", os.urandom(64)):
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
            s.sendall(junk)
            assert closed_without_answer(s)
    # the worker goes on serving everyone else
    assert get_json(srv, ctx)["scheme"] == "https"
    assert srv.proc.poll() is None


@pytest.mark.parametrize("loop", LOOPS)
def test_stalled_handshake_is_closed(serve: Any, pki: PKI, loop: str) -> None:
    # The handshake gets --http1-header-read-timeout (1 s here); the read below allows 10 s.
    srv = serve("tls_apps:asgi", interface="asgi", loop=loop, http1_header_read_timeout=1000, **tls_opts(pki))
    ctx = client_ctx(pki)
    wait_https(srv, ctx)
    silent = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    partial = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    try:
        partial.sendall(b"\x16\x03\x01\x02\x00\x01")  # the start of a ClientHello record, then nothing
        assert closed_without_answer(silent)
        assert closed_without_answer(partial)
    finally:
        silent.close()
        partial.close()
    # after the handshake the header-read timeout applies as on plain TCP
    with tls_connect(srv, ctx) as s:
        assert closed_without_answer(s)
    assert get_json(srv, ctx)["scheme"] == "https"


def test_large_static_file(serve: Any, pki: PKI, tmp_path: Path) -> None:
    # 1 MiB through the static route (sendfile would bypass TLS: the carrier must copy it
    # through the TLS transport instead), on both loops.
    root = tmp_path / "pub"
    root.mkdir()
    data = os.urandom(1024 * 1024 + 17)
    (root / "big.bin").write_bytes(data)
    for loop in LOOPS:
        srv = serve(
            "tls_apps:asgi",
            interface="asgi",
            loop=loop,
            static_path_route=["/static"],
            static_path_mount=[str(root)],
            **tls_opts(pki),
        )
        ctx = client_ctx(pki)
        wait_https(srv, ctx)
        with httpx.Client(verify=ctx, timeout=20) as client:
            r = client.get(f"https://127.0.0.1:{srv.port}/static/big.bin")
            assert r.status_code == 200
            assert hashlib.sha256(r.content).digest() == hashlib.sha256(data).digest()
            r = client.get(f"https://127.0.0.1:{srv.port}/pathsend?{root / 'big.bin'}")
            assert r.status_code == 200 and len(r.content) == len(data)
            assert hashlib.sha256(r.content).digest() == hashlib.sha256(data).digest()


@pytest.mark.parametrize("mode", ["workers", "runtime"])
def test_threads_serve_tls(serve: Any, pki: PKI, mode: str) -> None:
    # --threads 2: every serving loop does its own handshakes (runtime mode: after the hand-off)
    srv = serve("tls_apps:rsgi", interface="rsgi", threads=2, threading_mode=mode, **tls_opts(pki))
    ctx = client_ctx(pki)
    wait_https(srv, ctx)
    for _ in range(6):  # round robin in runtime mode: both loop threads serve some
        assert get_json(srv, ctx) == {"scheme": "https"}
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\n\r\n")
        assert closed_without_answer(s)
    assert get_json(srv, ctx) == {"scheme": "https"}


# ---------------------------------------------------------------- versions and mutual TLS


def test_tls12_client_refused_by_default(serve: Any, pki: PKI) -> None:
    srv = serve("tls_apps:asgi", interface="asgi", **tls_opts(pki))
    wait_https(srv, client_ctx(pki))
    with pytest.raises(ssl.SSLError):
        tls_connect(srv, client_ctx(pki, max_version=ssl.TLSVersion.TLSv1_2)).close()
    assert get_json(srv, client_ctx(pki))["tls"]["tls_version"] == 0x0304


def test_tls12_accepted_with_protocol_min(serve: Any, pki: PKI) -> None:
    srv = serve("tls_apps:asgi", interface="asgi", **tls_opts(pki, ssl_protocol_min="tls1.2"))
    ctx12 = client_ctx(pki, max_version=ssl.TLSVersion.TLSv1_2)
    wait_https(srv, ctx12)
    tls = get_json(srv, ctx12)["tls"]
    assert tls["tls_version"] == 0x0303
    assert tls["cipher_suite"] in TLS12_SUITES
    assert get_json(srv, client_ctx(pki))["tls"]["tls_version"] == 0x0304


def test_alpn_selects_http11(serve: Any, pki: PKI) -> None:
    # HTTP/2 is served (issue 14): a client offering h2 gets it (tests/test_h2_serving.py);
    # one offering only http/1.1 gets that, and `--http 1` never offers h2.
    srv = serve("tls_apps:asgi", interface="asgi", **tls_opts(pki))
    ctx = client_ctx(pki)
    wait_https(srv, ctx)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with tls_connect(srv, ctx) as s:
        assert s.selected_alpn_protocol() == "h2"
    ctx11 = client_ctx(pki)
    ctx11.set_alpn_protocols(["http/1.1"])
    with tls_connect(srv, ctx11) as s:
        assert s.selected_alpn_protocol() == "http/1.1"
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert Reader(s).response()[0] == b"HTTP/1.1 200 OK"
    srv1 = serve("tls_apps:asgi", interface="asgi", http="1", **tls_opts(pki))
    wait_https(srv1, ctx11)
    only_h2 = client_ctx(pki)
    only_h2.set_alpn_protocols(["h2"])
    with tls_connect(srv1, only_h2) as s:
        assert s.selected_alpn_protocol() is None  # no common protocol: no ALPN, HTTP/1.1
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert Reader(s).response()[0] == b"HTTP/1.1 200 OK"


@pytest.mark.parametrize("loop", LOOPS)
def test_mtls_client_verify(serve: Any, pki: PKI, loop: str) -> None:
    srv = serve(
        "tls_apps:asgi",
        interface="asgi",
        loop=loop,
        **tls_opts(pki, ssl_ca=str(pki.ca_pem), ssl_client_verify=True),
    )
    good = client_ctx(pki, cert=pki.client)
    wait_https(srv, good)
    tls = get_json(srv, good)["tls"]
    assert tls["client_cert_name"] == pki.client_name
    assert "CN=alice" in tls["client_cert_name"]
    assert tls["client_cert_chain"][0] == pki.client_leaf_pem
    assert tls["client_cert_error"] is None
    # without a certificate: refused
    assert refused(srv, client_ctx(pki))
    # a certificate from another CA: refused
    stranger = trustme.CA().issue_cert("eve@example.org")
    other = client_ctx(pki)
    stranger.configure_cert(other)
    assert refused(srv, other)
    assert get_json(srv, good)["tls"]["client_cert_name"] == pki.client_name


def test_mtls_optional_without_client_verify(serve: Any, pki: PKI) -> None:
    # --ssl-ca alone: a client may send no certificate, but one it sends must verify.
    srv = serve("tls_apps:asgi", interface="asgi", **tls_opts(pki, ssl_ca=str(pki.ca_pem)))
    anonymous = client_ctx(pki)
    wait_https(srv, anonymous)
    assert get_json(srv, anonymous)["tls"]["client_cert_name"] is None
    assert get_json(srv, client_ctx(pki, cert=pki.client))["tls"]["client_cert_name"] == pki.client_name


def test_mtls_revoked_certificate_refused(serve: Any, pki: PKI) -> None:
    srv = serve(
        "tls_apps:asgi",
        interface="asgi",
        **tls_opts(pki, ssl_ca=str(pki.ca_pem), ssl_client_verify=True, ssl_crl=[str(pki.crl)]),
    )
    good = client_ctx(pki, cert=pki.client)
    wait_https(srv, good)
    assert refused(srv, client_ctx(pki, cert=pki.revoked))
    assert get_json(srv, good)["tls"]["client_cert_name"] == pki.client_name


def test_mtls_both_ways_with_httpx(serve: Any, pki: PKI) -> None:
    # httpx checks the server against the CA (and its name), the server checks httpx's
    # certificate; without one, or with the revoked one, httpx gets no response.
    srv = serve(
        "tls_apps:asgi",
        interface="asgi",
        **tls_opts(pki, ssl_ca=str(pki.ca_pem), ssl_client_verify=True, ssl_crl=[str(pki.crl)]),
    )
    good = client_ctx(pki, cert=pki.client)
    wait_https(srv, good)
    url = f"https://127.0.0.1:{srv.port}/"
    with httpx.Client(verify=good, timeout=10) as client:
        for _ in range(2):  # the second over the same kept-alive connection
            got = client.get(url).json()
            assert got["scheme"] == "https" and got["tls"]["client_cert_name"] == pki.client_name
    for ctx in (client_ctx(pki), client_ctx(pki, cert=pki.revoked)):
        with httpx.Client(verify=ctx, timeout=10) as client:
            with pytest.raises(httpx.TransportError):
                client.get(url)
    # a client that does not trust our CA refuses the server
    untrusting = ssl.create_default_context()
    untrusting.load_cert_chain(str(pki.client))
    with httpx.Client(verify=untrusting, timeout=10) as client:
        with pytest.raises(httpx.ConnectError):
            client.get(url)
    with httpx.Client(verify=good, timeout=10) as client:
        assert client.get(url).status_code == 200


# ---------------------------------------------------------------- start-up errors


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_cli(*args: str) -> tuple[int, str, int]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRANIAN_")}
    proc = subprocess.run(
        [str(GRANIAN_BIN), "--host", "127.0.0.1", "--port", str(port), *args, "tls_apps:asgi"],
        cwd=APPS_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    return proc.returncode, proc.stderr, port


def _nothing_listens(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_cli_missing_certificate_file(pki: PKI, tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    code, err, port = run_cli("--ssl-certificate", str(missing), "--ssl-keyfile", str(pki.key))
    assert code == 2, err
    assert "--ssl-certificate" in err and "nope.pem" in err
    assert _nothing_listens(port)


def test_cli_key_mismatch(pki: PKI) -> None:
    code, err, port = run_cli("--ssl-certificate", str(pki.cert), "--ssl-keyfile", str(pki.other_key))
    assert code == 2, err
    assert "--ssl-keyfile" in err and "does not match" in err
    assert _nothing_listens(port)


def test_cli_client_verify_needs_ca(pki: PKI) -> None:
    code, err, port = run_cli(
        "--ssl-certificate", str(pki.cert), "--ssl-keyfile", str(pki.key), "--ssl-client-verify"
    )
    assert code == 2, err
    assert "--ssl-client-verify" in err and "--ssl-ca" in err
    assert _nothing_listens(port)


def test_cli_bad_pem(pki: PKI, tmp_path: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("this is not a certificate\n")
    code, err, port = run_cli("--ssl-certificate", str(bad), "--ssl-keyfile", str(pki.key))
    assert code == 2, err
    assert "--ssl-certificate" in err and "bad.pem" in err and "bad PEM" in err
    assert _nothing_listens(port)


def test_worker_context_failure_is_startup_failure(pki: PKI, tmp_path: Path) -> None:
    # The files were fine when settings were loaded, then changed under the worker: it exits
    # EXIT_STARTUP_FAILED before lifespan, with nothing served.
    from granian.server.worker import WorkerServer

    broken = tmp_path / "cert.pem"
    broken.write_text("-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n")

    class Adapter:
        started = False

        async def startup(self) -> bool:
            self.started = True
            return True

        async def shutdown(self) -> None:
            pass

        def handler(self, cycle: Any) -> None:
            raise AssertionError("nothing is served")

    settings = SimpleNamespace(interface="asgi", ssl_certificate=str(broken), ssl_keyfile=str(pki.key))
    adapter = Adapter()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        worker = WorkerServer(settings, sock, adapter)
        assert asyncio.run(worker.run()) == EXIT_STARTUP_FAILED
    assert not adapter.started and worker.server is None


# ---------------------------------------------------------------- rotation, Unix sockets


def _served_cert(port: int, ctx: ssl.SSLContext) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            status = Reader(s).response()[0]
            assert status == b"HTTP/1.1 200 OK"
            der = s.getpeercert(binary_form=True)
            assert der is not None
            return der


@pytest.mark.timeout(90)
def test_sighup_serves_a_rotated_certificate(pki: PKI, tmp_path: Path) -> None:
    # The master's rolling restart starts new workers, which build their context from the
    # files again: a certificate replaced on disk is served after SIGHUP, and a client making
    # new connections throughout sees no failure.
    import signal
    import threading

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    first = pki.ca.issue_cert("127.0.0.1")
    first.cert_chain_pems[0].write_to_path(str(cert))
    first.private_key_pem.write_to_path(str(key))
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRANIAN_")}
    proc = subprocess.Popen(
        [
            str(GRANIAN_BIN),
            *("--interface", "rsgi", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"),
            *("--respawn-interval", "1", "--ssl-certificate", str(cert), "--ssl-keyfile", str(key)),
            "tls_apps:rsgi",
        ],
        cwd=APPS_DIR,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    ctx = client_ctx(pki)
    stop = threading.Event()
    failures: list[str] = []
    served = [0]

    def load() -> None:
        while not stop.is_set():
            try:
                _served_cert(port, ctx)
                served[0] += 1
            except Exception as exc:  # noqa: BLE001 - every failure is recorded
                failures.append(repr(exc))

    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                old = _served_cert(port, ctx)
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
        assert old == ssl.PEM_cert_to_DER_cert(first.cert_chain_pems[0].bytes().decode())
        second = pki.ca.issue_cert("127.0.0.1", "localhost")
        for blob, path in ((second.cert_chain_pems[0], cert), (second.private_key_pem, key)):
            tmp = path.with_suffix(".new")
            blob.write_to_path(str(tmp))
            os.replace(tmp, path)
        new_der = ssl.PEM_cert_to_DER_cert(second.cert_chain_pems[0].bytes().decode())
        worker = threading.Thread(target=load, daemon=True)
        worker.start()
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while _served_cert(port, ctx) != new_der:
            assert time.monotonic() < deadline, "the rotated certificate was never served"
            time.sleep(0.2)
        time.sleep(1.5)  # past the old worker's drain
        stop.set()
        worker.join(10)
        assert failures == [] and served[0] > 0
        assert _served_cert(port, ctx) == new_der
    finally:
        stop.set()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        if proc.stderr is not None:
            proc.stderr.close()
    assert proc.returncode == 0


_UDS_BOOT = r"""
import json, os, socket, sys
from granian.settings import load
from granian.server.worker import serve_worker
opts, path = json.loads(sys.argv[1]), sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
s.listen(16)
print("READY", flush=True)
sys.exit(serve_worker(load(opts, env={}), s))
"""


@pytest.mark.parametrize("loop", LOOPS)
def test_tls_over_unix_socket(pki: PKI, tmp_path: Path, loop: str) -> None:
    path = str(tmp_path / "g.sock")
    opts = {"app": "tls_apps:asgi", "interface": "asgi", "loop": loop, "working_dir": str(APPS_DIR)}
    opts.update(tls_opts(pki))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(APPS_DIR), env.get("PYTHONPATH", "")])
    proc = subprocess.Popen(
        [sys.executable, "-c", _UDS_BOOT, json.dumps(opts), path],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"READY\n"
        ctx = client_ctx(pki)
        deadline = time.monotonic() + 15
        while True:
            raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            raw.settimeout(5)
            try:
                raw.connect(path)
                with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    status, _, body = Reader(s).response()
                break
            except OSError:
                raw.close()
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.05)
        assert status == b"HTTP/1.1 200 OK"
        got = json.loads(body)
        assert got["scheme"] == "https" and got["tls"]["server_cert"] == pki.cert_leaf_pem
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def _encrypted_key(pki: PKI, tmp_path: Path, password: bytes) -> Path:
    key = serialization.load_pem_private_key(pki.key.read_bytes(), password=None)
    path = tmp_path / "encrypted_key.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(password),
        )
    )
    return path


def test_encrypted_key_with_password(serve: Any, pki: PKI, tmp_path: Path) -> None:
    key = _encrypted_key(pki, tmp_path, b"open sesame")
    srv = serve(
        "tls_apps:asgi",
        interface="asgi",
        ssl_certificate=str(pki.cert),
        ssl_keyfile=str(key),
        ssl_keyfile_password="open sesame",
    )
    ctx = client_ctx(pki)
    wait_https(srv, ctx)
    assert get_json(srv, ctx)["tls"]["server_cert"] == pki.cert_leaf_pem


def test_cli_wrong_key_password(pki: PKI, tmp_path: Path) -> None:
    key = _encrypted_key(pki, tmp_path, b"open sesame")
    code, err, port = run_cli(
        "--ssl-certificate", str(pki.cert), "--ssl-keyfile", str(key), "--ssl-keyfile-password", "wrong-one"
    )
    assert code == 2, err
    assert "--ssl-keyfile-password" in err and "wrong-one" not in err
    assert _nothing_listens(port)
    code, err, _ = run_cli("--ssl-certificate", str(pki.cert), "--ssl-keyfile", str(key))
    assert code == 2 and "encrypted" in err and "--ssl-keyfile-password" in err


@pytest.mark.timeout(90)
def test_sighup_with_a_broken_certificate_keeps_the_old_worker(pki: PKI, tmp_path: Path) -> None:
    # A rotation gone wrong (the new file is not a certificate): the new worker fails to build
    # its context (EXIT_STARTUP_FAILED, the reason logged), the master keeps the old worker,
    # and the old certificate goes on being served.
    import signal

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    leaf = pki.ca.issue_cert("127.0.0.1")
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    old_der = ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode())
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRANIAN_")}
    proc = subprocess.Popen(
        [
            str(GRANIAN_BIN),
            *("--interface", "rsgi", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"),
            *("--respawn-interval", "1", "--ssl-certificate", str(cert), "--ssl-keyfile", str(key)),
            "tls_apps:rsgi",
        ],
        cwd=APPS_DIR,
        stdout=subprocess.PIPE,  # the log goes to stdout
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
    )
    ctx = client_ctx(pki)
    err = ""
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                assert _served_cert(port, ctx) == old_der
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
        cert.write_text("not a certificate\n")
        proc.send_signal(signal.SIGHUP)
        time.sleep(3)  # past the roll's respawn interval: the new worker has failed by now
        for _ in range(3):
            assert _served_cert(port, ctx) == old_der
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            err, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            err, _ = proc.communicate(timeout=5)
    assert proc.returncode == 0
    assert "--ssl-certificate" in err and "bad PEM" in err and str(cert) in err


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_idle_tls_keep_alive_does_not_hold_a_graceful_stop(pki: PKI, serve: Any, loop: str) -> None:
    """An idle pooled TLS connection whose client never answers close_notify: the worker stops
    within about a second of SIGTERM, not after the loop's 30 s ssl_shutdown_timeout."""
    srv = serve("tls_apps:asgi", interface="asgi", loop=loop, **tls_opts(pki))
    ctx = client_ctx(pki)
    wait_https(srv, ctx)
    raw = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    tls = ctx.wrap_socket(raw, server_hostname="localhost")
    try:
        tls.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, _ = Reader(tls).response()
        assert status.startswith(b"HTTP/1.1 200")
        # the connection now idles in the pool: this client never reads again
        t0 = time.monotonic()
        code, _ = srv.stop(timeout=20)
        elapsed = time.monotonic() - t0
    finally:
        tls.close()  # closes `raw` too; no close_notify goes out
    assert code == 0
    assert elapsed < 10, f"the stop waited {elapsed:.1f} s for the idle TLS connection"
