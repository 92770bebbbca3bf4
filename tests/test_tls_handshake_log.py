"""Failed TLS handshakes are one DEBUG line on the server logger (issue 13, "Handshakes").

Junk, plain HTTP to the TLS port, a client whose TLS versions are refused, a client that does
not trust us, a missing or revoked client certificate, and a client that stalls until the
handshake timeout: each is closed, logged once at DEBUG on `_granian`
(granian.constants.SERVER_LOGGER) with the reason, and the worker goes on serving. At the
default INFO level none of them prints anything. The loops themselves log nothing of this
outside their debug mode (granian.server.tls.ServerSSLObject says why).

The end-to-end tests run the real `granian` command (master + one worker) with trustme's
certificates; the in-process ones drive `ServerSSLObject` over memory BIOs.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import APPS_DIR
from test_tls_serving import PKI, Reader, client_ctx, closed_without_answer
from test_tls_serving import pki as pki  # noqa: F401 - the module-scoped fixture, reused

from granian.constants import SERVER_LOGGER
from granian.server import tls

GRANIAN_BIN = Path(sys.executable).parent / "granian"
LOOPS = ("asyncio", "uvloop")
FAILED = "TLS handshake failed, connection closed: "
ABANDONED = "TLS connection closed before its handshake completed"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Granian:
    """The real `granian` command; its log (stdout and stderr) read line by line."""

    def __init__(self, pki: PKI, loop: str, log_level: str) -> None:
        self.port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("GRANIAN_")}
        args = [str(GRANIAN_BIN), "--interface", "rsgi", "--host", "127.0.0.1", "--port", str(self.port)]
        args += ["--loop", loop, "--log-level", log_level, "--http1-header-read-timeout", "1000"]
        args += [
            "--ssl-certificate",
            str(pki.cert),
            "--ssl-keyfile",
            str(pki.key),
            "--ssl-ca",
            str(pki.ca_pem),
        ]
        args += ["--ssl-client-verify", "--ssl-crl", str(pki.crl), "tls_apps:rsgi"]
        self.proc = subprocess.Popen(
            args, cwd=APPS_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def matching(self, text: str) -> list[str]:
        return [line for line in list(self.lines) if text in line]

    def wait_line(self, text: str, count: int = 1, timeout: float = 10.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while len(self.matching(text)) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.matching(text)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._reader.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode


@pytest.fixture
def granian() -> Iterator[list[Granian]]:
    started: list[Granian] = []
    yield started
    for g in started:
        g.stop()


def _connect(port: int, ctx: ssl.SSLContext) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        return ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    except BaseException:
        raw.close()
        raise


def _served(port: int, ctx: ssl.SSLContext) -> bytes:
    with _connect(port, ctx) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return Reader(s).response()[0]


def _wait_served(g: Granian, ctx: ssl.SSLContext) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            assert _served(g.port, ctx) == b"HTTP/1.1 200 OK"
            return
        except OSError:
            assert g.proc.poll() is None and time.monotonic() < deadline, g.lines
            time.sleep(0.1)


def _refused(port: int, ctx: ssl.SSLContext) -> bool:
    # TLS 1.3: the client's handshake ends before the server checks its certificate, so the
    # refusal may arrive at the first read instead of the handshake.
    try:
        with _connect(port, ctx) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return s.recv(65536) == b""
    except (ssl.SSLError, ConnectionError):
        return True


def _raw(port: int, data: bytes) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        if data:
            s.sendall(data)
        return closed_without_answer(s)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("loop", LOOPS)
def test_each_failed_handshake_is_one_debug_line(pki: PKI, granian: list[Granian], loop: str) -> None:
    g = Granian(pki, loop, "debug")
    granian.append(g)
    good = client_ctx(pki, cert=pki.client)
    _wait_served(g, good)

    # (what the client does, the reason the line must name)
    cases = [
        (
            lambda: _raw(g.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
            "HTTP_REQUEST: plain HTTP sent to the TLS port",
        ),
        (lambda: _raw(g.port, b"\x00" * 64), "WRONG_VERSION_NUMBER"),
        (
            lambda: _refused(g.port, client_ctx(pki, cert=pki.client, max_version=ssl.TLSVersion.TLSv1_2)),
            "UNSUPPORTED_PROTOCOL",
        ),
        (lambda: _refused(g.port, ssl.create_default_context()), "TLSV1_ALERT_UNKNOWN_CA"),
        (lambda: _refused(g.port, client_ctx(pki)), "PEER_DID_NOT_RETURN_A_CERTIFICATE"),
        (
            lambda: _refused(g.port, client_ctx(pki, cert=pki.revoked)),
            "CERTIFICATE_VERIFY_FAILED: client certificate refused: certificate revoked",
        ),
    ]
    for n, (attempt, reason) in enumerate(cases, 1):
        assert attempt(), reason
        lines = g.wait_line(FAILED, count=n)
        assert len(lines) == n, (reason, g.lines)
        assert reason in lines[-1] and lines[-1].startswith("[DEBUG]"), lines[-1]
        # the worker goes on serving everyone else
        assert _served(g.port, good) == b"HTTP/1.1 200 OK"

    # A client that opens the connection and says nothing: closed at the handshake timeout
    # (--http1-header-read-timeout, 1 s), and logged when the transport drops the connection.
    assert _raw(g.port, b"")
    stalled = g.wait_line(ABANDONED)
    assert len(stalled) == 1 and stalled[0].startswith("[DEBUG]"), g.lines
    assert _served(g.port, good) == b"HTTP/1.1 200 OK"

    assert g.stop() == 0
    assert not [line for line in g.lines if "[ERROR]" in line or "Traceback" in line or "[WARN" in line]
    assert len(g.matching(FAILED)) == len(cases)


@pytest.mark.timeout(60)
def test_nothing_is_logged_at_info_level(pki: PKI, granian: list[Granian]) -> None:
    g = Granian(pki, "uvloop", "info")
    granian.append(g)
    good = client_ctx(pki, cert=pki.client)
    _wait_served(g, good)
    assert _raw(g.port, b"GET / HTTP/1.1\r\n\r\n")
    assert _raw(g.port, os.urandom(64))
    assert _refused(g.port, client_ctx(pki))
    assert _served(g.port, good) == b"HTTP/1.1 200 OK"
    assert g.stop() == 0
    assert g.matching("Listening at"), g.lines  # the log itself works
    assert not g.matching("TLS"), g.lines
    assert not [line for line in g.lines if "[ERROR]" in line or "Traceback" in line]


# ---------------------------------------------------------------- in process, over memory BIOs


def _server_context(pki: PKI) -> tls.ServerContext:
    class Cfg:
        ssl_certificate = pki.cert
        ssl_keyfile = pki.key
        ssl_keyfile_password = None
        ssl_protocol_min = "tls1.3"
        ssl_ca = None
        ssl_crl = ()
        ssl_client_verify = False

    return tls.build_server_context(Cfg(), ("http/1.1",))


def _pump(src: ssl.MemoryBIO, dst: ssl.MemoryBIO) -> None:
    data = src.read()
    if data:
        dst.write(data)


def test_server_ssl_object_logs_failures_only(pki: PKI, caplog: pytest.LogCaptureFixture) -> None:
    ctx = _server_context(pki)
    caplog.set_level(logging.DEBUG, logger=SERVER_LOGGER)

    # A complete handshake (client and server over memory BIOs): no line, also when it goes.
    s_in, s_out, c_in, c_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    server = ctx.wrap_bio(s_in, s_out, server_side=True)
    assert isinstance(server, tls.ServerSSLObject)
    client = client_ctx(pki).wrap_bio(c_in, c_out, server_hostname="127.0.0.1")
    done = {"server": False, "client": False}
    for _ in range(10):
        for name, obj in (("client", client), ("server", server)):
            if not done[name]:
                try:
                    obj.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        _pump(c_out, s_in)
        _pump(s_out, c_in)
        if all(done.values()):
            break
    assert all(done.values()) and server.version() == "TLSv1.3"
    del server
    assert [r for r in caplog.records if r.name == SERVER_LOGGER] == []

    # Dropped before any byte came: the abandoned-handshake line.
    abandoned = ctx.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_side=True)
    del abandoned
    # Junk: the SSLError still reaches the transport, after one DEBUG line.
    junk_in = ssl.MemoryBIO()
    junk = ctx.wrap_bio(junk_in, ssl.MemoryBIO(), server_side=True)
    junk_in.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    with pytest.raises(ssl.SSLError):
        junk.do_handshake()
    del junk
    records = [r for r in caplog.records if r.name == SERVER_LOGGER]
    assert [(r.levelno, r.getMessage()) for r in records] == [
        (logging.DEBUG, ABANDONED + " (the peer closed or reset it, or the handshake timeout expired)"),
        (logging.DEBUG, FAILED + "HTTP_REQUEST: plain HTTP sent to the TLS port"),
    ]


def test_server_ssl_object_waiting_for_the_peer_is_not_a_failure(
    pki: PKI, caplog: pytest.LogCaptureFixture
) -> None:
    ctx = _server_context(pki)
    caplog.set_level(logging.DEBUG, logger=SERVER_LOGGER)
    incoming = ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, ssl.MemoryBIO(), server_side=True)
    incoming.write(b"\x16\x03\x01\x02\x00\x01")  # the start of a ClientHello record
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    assert caplog.records == []
    caplog.set_level(logging.INFO, logger=SERVER_LOGGER)
    del obj  # abandoned, but DEBUG is off: nothing
    assert caplog.records == []


def test_a_reason_without_a_hint_is_given_in_openssls_words() -> None:
    exc = ssl.SSLError(1, "[SSL: UNEXPECTED_MESSAGE] unexpected message (_ssl.c:1006)")
    exc.reason = "UNEXPECTED_MESSAGE"  # type: ignore[attr-defined]
    assert tls._handshake_failure(exc) == "UNEXPECTED_MESSAGE: unexpected message"
