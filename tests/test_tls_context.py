"""granian.server.tls: the server SSLContext, its start-up checks and the ASGI `tls` extension.

Certificates come from trustme; the CRL is built and signed with `cryptography`. Handshakes are
real ones over loopback between a stdlib `ssl` client (in a thread) and a small asyncio server
of this module using the context under test, on asyncio's and on uvloop's TLS transport (the
granian worker itself is wired to the same context elsewhere).
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import os
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from granian.errors import ConfigurationError
from granian.server import tls
from granian.settings import Settings

# IANA TLS cipher suite registry: the code points, independent of OpenSSL's names
# (RFC 8446 §B.4, RFC 5289 §3.2, RFC 7905 §2).
IANA_SUITES = {
    "TLS_AES_128_GCM_SHA256": 0x1301,
    "TLS_AES_256_GCM_SHA384": 0x1302,
    "TLS_CHACHA20_POLY1305_SHA256": 0x1303,
    "ECDHE-ECDSA-AES128-GCM-SHA256": 0xC02B,
    "ECDHE-ECDSA-AES256-GCM-SHA384": 0xC02C,
    "ECDHE-RSA-AES128-GCM-SHA256": 0xC02F,
    "ECDHE-RSA-AES256-GCM-SHA384": 0xC030,
    "ECDHE-RSA-CHACHA20-POLY1305": 0xCCA8,
    "ECDHE-ECDSA-CHACHA20-POLY1305": 0xCCA9,
}
PASSWORD = "s3cret-pw"


@dataclass(frozen=True)
class Cfg:
    """The --ssl-* options, shaped like granian.settings.Settings."""

    ssl_certificate: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_keyfile_password: str | None = None
    ssl_protocol_min: str = "tls1.3"
    ssl_ca: Path | None = None
    ssl_crl: tuple[Path, ...] = ()
    ssl_client_verify: bool = False


@dataclass
class PKI:
    dir: Path
    ca: trustme.CA
    server: trustme.LeafCert
    client: trustme.LeafCert
    revoked: trustme.LeafCert
    stranger: trustme.LeafCert  # issued by another CA
    chained: trustme.LeafCert  # issued by an intermediate of `ca`
    files: dict[str, Path] = field(default_factory=dict)

    def cfg(self, **kw: Any) -> Cfg:
        base = Cfg(ssl_certificate=self.files["cert"], ssl_keyfile=self.files["key"])
        return replace(base, **kw)

    def write(self, name: str, data: bytes | str) -> Path:
        path = self.dir / name
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return path


def _key(leaf: trustme.LeafCert) -> Any:
    return serialization.load_pem_private_key(leaf.private_key_pem.bytes(), None)


def _serial(leaf: trustme.LeafCert) -> int:
    return x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes()).serial_number


def _crl(ca: trustme.CA, revoked: list[int]) -> bytes:
    ca_key = serialization.load_pem_private_key(ca.private_key_pem.bytes(), None)
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now - datetime.timedelta(minutes=5))
        .next_update(now + datetime.timedelta(days=1))
    )
    for serial in revoked:
        entry = (
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(now - datetime.timedelta(minutes=5))
            .build()
        )
        builder = builder.add_revoked_certificate(entry)
    return builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    d = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    other = trustme.CA()
    p = PKI(
        dir=d,
        ca=ca,
        server=ca.issue_cert("localhost", "127.0.0.1"),
        client=ca.issue_cert("client.example", common_name="client one", organization_name="Acme, Inc."),
        revoked=ca.issue_cert("revoked.example", common_name="revoked one"),
        stranger=other.issue_cert("stranger.example"),
        chained=ca.create_child_ca().issue_cert("chained.example", common_name="chained one"),
    )
    f = p.files
    f["cert"] = p.write("server.pem", b"".join(b.bytes() for b in p.server.cert_chain_pems))
    f["key"] = p.write("server.key", p.server.private_key_pem.bytes())
    f["ca"] = p.write("ca.pem", ca.cert_pem.bytes())
    f["other_ca"] = p.write("other-ca.pem", other.cert_pem.bytes())
    f["crl"] = p.write("ca.crl", _crl(ca, [_serial(p.revoked)]))
    f["other_crl"] = p.write("other.crl", _crl(other, []))
    key = _key(p.server)
    for fmt, name in (
        (serialization.PrivateFormat.PKCS8, "pkcs8"),
        (serialization.PrivateFormat.TraditionalOpenSSL, "trad"),
    ):
        f[f"{name}_plain"] = p.write(
            f"{name}.key", key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())
        )
        enc = serialization.BestAvailableEncryption(PASSWORD.encode())
        f[f"{name}_enc"] = p.write(f"{name}-enc.key", key.private_bytes(serialization.Encoding.PEM, fmt, enc))
    f["other_key"] = p.write("other.key", p.client.private_key_pem.bytes())
    return p


# --------------------------------------------------------------------------------------------
# A tiny TLS server of the test's own and a blocking stdlib client.


@dataclass
class Outcome:
    seen: list[dict[str, Any]]  # what the server saw after each completed handshake
    server_errors: list[str]  # handshake failures reported to the loop's exception handler
    reply: dict[str, Any] | None = None  # what the client read
    error: BaseException | None = None  # what the client got instead
    session: ssl.SSLSession | None = None
    reused: bool = False
    cipher: tuple[str, str, int] | None = None


ClientFn = Callable[[int], tuple[dict[str, Any], ssl.SSLSession | None, bool, Any]]


def _client(ctx: ssl.SSLContext, session: ssl.SSLSession | None = None) -> ClientFn:
    def run(port: int) -> tuple[dict[str, Any], ssl.SSLSession | None, bool, Any]:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost", session=session) as s:
                chunks = []
                while chunk := s.recv(65536):
                    chunks.append(chunk)
                return json.loads(b"".join(chunks)), s.session, s.session_reused, s.cipher()

    return run


class _HandshakeFailures(logging.Handler):
    """asyncio and uvloop report a failed server-side handshake only in debug mode, on the
    `asyncio` logger, with the SSLError attached."""

    def __init__(self, sink: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        if "handshake failed" in record.getMessage() and record.exc_info and record.exc_info[1]:
            self.sink.append(repr(record.exc_info[1]))


async def _serve(server_ctx: ssl.SSLContext, client: ClientFn, out: Outcome) -> None:
    loop = asyncio.get_running_loop()
    loop.set_debug(True)
    loop.slow_callback_duration = 60  # debug mode is for the handshake log only
    loop.set_exception_handler(lambda _loop, c: out.server_errors.append(repr(c.get("exception"))))

    class Reporter(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            obj = transport.get_extra_info("ssl_object")
            info = {
                "alpn": obj.selected_alpn_protocol(),
                "compression": obj.compression(),
                "tls": tls.tls_extension(obj),
            }
            out.seen.append(info)
            # uvloop's TLS transport is not an asyncio.Transport subclass: no isinstance here.
            writer = cast(asyncio.Transport, transport)
            writer.write(json.dumps(info).encode())
            writer.close()

    server = await loop.create_server(Reporter, "127.0.0.1", 0, ssl=server_ctx, ssl_handshake_timeout=10)
    try:
        port = server.sockets[0].getsockname()[1]
        try:
            out.reply, out.session, out.reused, out.cipher = await asyncio.wait_for(
                asyncio.to_thread(client, port), 30
            )
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            out.error = exc
            # The server logs its side of a refused handshake on its own schedule.
            for _ in range(500):
                if out.server_errors:
                    break
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.02)  # let the server side finish closing its transport
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture(params=["asyncio", "uvloop"])
def run_tls(request: pytest.FixtureRequest) -> Callable[..., Outcome]:
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if request.param == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        factory = uvloop.new_event_loop

    def run(server_ctx: ssl.SSLContext, client: ClientFn) -> Outcome:
        out = Outcome(seen=[], server_errors=[])
        logger = logging.getLogger("asyncio")
        handler = _HandshakeFailures(out.server_errors)
        level = logger.level
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
        try:
            with asyncio.Runner(loop_factory=factory) as runner:
                runner.run(_serve(server_ctx, client, out))
        finally:
            logger.removeHandler(handler)
            logger.setLevel(level)
        return out

    return run


def client_ctx(
    pki: PKI,
    cert: trustme.LeafCert | None = None,
    *,
    max_version: ssl.TLSVersion | None = None,
    ciphers: str | None = None,
    alpn: list[str] | None = None,
    verify_server: bool = True,
) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if verify_server:
        pki.ca.configure_trust(ctx)
    else:
        # No trust store: OpenSSL's client then sends exactly the chain it was given, instead
        # of completing it from its store (its auto-chaining adds the root to a lone leaf).
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert is not None:
        cert.configure_cert(ctx)  # the leaf, its intermediates and its key
    if max_version is not None:
        ctx.maximum_version = max_version
    if ciphers is not None:
        ctx.set_ciphers(ciphers)
    if alpn is not None:
        ctx.set_alpn_protocols(alpn)
    return ctx


def _refused(out: Outcome) -> str:
    """Check the server refused the handshake; its reason, for the caller to check."""
    assert out.seen == [], "the server completed a handshake it should have refused"
    assert out.reply is None
    assert out.error is not None
    assert out.server_errors, "the server logged no handshake failure"
    return " ".join(out.server_errors).upper()


def _der(pem: str | bytes) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pem.decode() if isinstance(pem, bytes) else pem)


# --------------------------------------------------------------------------------------------
# Handshakes


def test_default_tls13_and_extension_fields(pki: PKI, run_tls: Callable[..., Outcome]) -> None:
    ctx = tls.build_server_context(pki.cfg(), tls.alpn_protocols("auto"))
    out = run_tls(ctx, _client(client_ctx(pki, alpn=["h2", "http/1.1"])))
    assert out.error is None, out
    (seen,) = out.seen
    ext = seen["tls"]
    assert set(ext) == {
        "server_cert",
        "client_cert_chain",
        "client_cert_name",
        "client_cert_error",
        "tls_version",
        "cipher_suite",
    }
    assert ext["tls_version"] == 0x0304
    assert out.cipher is not None
    assert ext["cipher_suite"] == IANA_SUITES[out.cipher[0]]
    assert _der(ext["server_cert"]) == _der(pki.server.cert_chain_pems[0].bytes())
    assert ext["client_cert_chain"] == []
    assert ext["client_cert_name"] is None
    assert ext["client_cert_error"] is None
    assert seen["alpn"] == "http/1.1"  # h2 is not offered while HTTP/2 is not implemented
    assert seen["compression"] is None
    assert out.reply == json.loads(json.dumps(seen))


def test_default_refuses_tls12_only_client(pki: PKI, run_tls: Callable[..., Outcome]) -> None:
    ctx = tls.build_server_context(pki.cfg(), ["http/1.1"])
    out = run_tls(ctx, _client(client_ctx(pki, max_version=ssl.TLSVersion.TLSv1_2)))
    assert "UNSUPPORTED_PROTOCOL" in _refused(out)
    assert isinstance(out.error, ssl.SSLError)


def test_tls12_min_allows_tls12_with_intermediate_cipher(pki: PKI, run_tls: Callable[..., Outcome]) -> None:
    ctx = tls.build_server_context(pki.cfg(ssl_protocol_min="tls1.2"), ["http/1.1"])
    out = run_tls(ctx, _client(client_ctx(pki, max_version=ssl.TLSVersion.TLSv1_2)))
    assert out.error is None, out
    (seen,) = out.seen
    assert out.cipher is not None
    assert out.cipher[0] in tls.INTERMEDIATE_TLS12_CIPHERS.split(":")
    assert seen["tls"]["tls_version"] == 0x0303
    assert seen["tls"]["cipher_suite"] == IANA_SUITES[out.cipher[0]]


def test_tls12_server_cipher_order(pki: PKI, run_tls: Callable[..., Outcome]) -> None:
    # The client prefers CHACHA20; the server's order (AES128-GCM first) wins.
    ctx = tls.build_server_context(pki.cfg(ssl_protocol_min="tls1.2"), ["http/1.1"])
    client = client_ctx(
        pki,
        max_version=ssl.TLSVersion.TLSv1_2,
        ciphers="ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256",
    )
    out = run_tls(ctx, _client(client))
    assert out.error is None, out
    assert out.cipher is not None and out.cipher[0] == "ECDHE-ECDSA-AES128-GCM-SHA256"


def test_tls12_refuses_cipher_outside_intermediate(pki: PKI, run_tls: Callable[..., Outcome]) -> None:
    # CBC with SHA-1 is not in the intermediate profile.
    ctx = tls.build_server_context(pki.cfg(ssl_protocol_min="tls1.2"), ["http/1.1"])
    client = client_ctx(pki, max_version=ssl.TLSVersion.TLSv1_2, ciphers="ECDHE-ECDSA-AES128-SHA")
    assert "NO_SHARED_CIPHER" in _refused(run_tls(ctx, _client(client)))


def test_alpn_selection(pki: PKI, run_tls: Callable[..., Outcome]) -> None:
    ctx = tls.build_server_context(pki.cfg(), ["http/1.1"])
    # A client offering only h2 still completes the handshake, with no protocol selected.
    out = run_tls(ctx, _client(client_ctx(pki, alpn=["h2"])))
    assert out.error is None and out.seen[0]["alpn"] is None
    # Server preference: with h2 offered by both, h2 is chosen whatever the client's order.
    ctx = tls.build_server_context(pki.cfg(), tls.alpn_protocols("auto", h2_implemented=True))
    out = run_tls(ctx, _client(client_ctx(pki, alpn=["http/1.1", "h2"])))
    assert out.error is None and out.seen[0]["alpn"] == "h2"


def test_alpn_protocols_follow_http_mode() -> None:
    assert tls.alpn_protocols("auto") == ("http/1.1",)
    assert tls.alpn_protocols("1") == ("http/1.1",)
    assert tls.alpn_protocols("2") == ()
    assert tls.alpn_protocols("auto", h2_implemented=True) == ("h2", "http/1.1")
    assert tls.alpn_protocols("1", h2_implemented=True) == ("http/1.1",)
    assert tls.alpn_protocols("2", h2_implemented=True) == ("h2",)


def test_session_ticket_resumption(pki: PKI, run_tls: Callable[..., Outcome]) -> None:
    ctx = tls.build_server_context(pki.cfg(), ["http/1.1"])
    client = client_ctx(pki)
    first = run_tls(ctx, _client(client))
    assert first.error is None and first.session is not None
    assert first.session.has_ticket
    again = run_tls(ctx, _client(client, first.session))
    assert again.error is None, again
    assert again.reused


def test_context_options(pki: PKI) -> None:
    ctx = tls.build_server_context(pki.cfg(), ["http/1.1"])
    assert ctx.minimum_version is ssl.TLSVersion.TLSv1_3
    for flag in (ssl.OP_CIPHER_SERVER_PREFERENCE, ssl.OP_NO_COMPRESSION, ssl.OP_NO_RENEGOTIATION):
        assert ctx.options & flag
    assert not ctx.options & ssl.OP_NO_TICKET
    assert ctx.verify_mode is ssl.CERT_NONE
    names = {c["name"] for c in ctx.get_ciphers()}
    assert names == set(tls.INTERMEDIATE_TLS12_CIPHERS.split(":")) | {
        "TLS_AES_128_GCM_SHA256",
        "TLS_AES_256_GCM_SHA384",
        "TLS_CHACHA20_POLY1305_SHA256",
    }


def _with_group(ctx: ssl.SSLContext, group: str) -> ssl.SSLContext:
    # With OpenSSL 3, set_ecdh_curve() leaves exactly this one group in the client's list.
    ctx.set_ecdh_curve(group)
    return ctx


@pytest.mark.parametrize("group", ["X25519", "prime256v1", "secp384r1"])
def test_key_exchange_groups_of_the_intermediate_profile(
    pki: PKI, run_tls: Callable[..., Outcome], group: str
) -> None:
    ctx = tls.build_server_context(pki.cfg(), ["http/1.1"])
    assert ctx.groups == tls.INTERMEDIATE_GROUPS == "X25519:prime256v1:secp384r1"
    out = run_tls(ctx, _client(_with_group(client_ctx(pki), group)))
    assert out.error is None, out
    assert out.seen[0]["tls"]["tls_version"] == 0x0304


@pytest.mark.parametrize("group", ["X448", "secp521r1"])
@pytest.mark.parametrize("protocol_min", ["tls1.3", "tls1.2"])
def test_key_exchange_groups_outside_the_profile_are_refused(
    pki: PKI, run_tls: Callable[..., Outcome], group: str, protocol_min: str
) -> None:
    # sslyze --mozilla_config=intermediate: "tls_curves: TLS curves {'X448', 'secp521r1'} are
    # supported, but should be rejected", with OpenSSL 3's default group list.
    ctx = tls.build_server_context(pki.cfg(ssl_protocol_min=protocol_min), ["http/1.1"])
    # The client speaks TLS 1.3 in both modes: over TLS 1.2 a client without P-256 could not
    # take this ECDSA P-256 certificate anyway (RFC 8422 §5.1), whatever the server's groups.
    out = run_tls(ctx, _client(_with_group(client_ctx(pki), group)))
    # no key share the server accepts, and none it could ask for (RFC 8446 §4.2.8)
    assert "NO_SUITABLE_KEY_SHARE" in _refused(out)
    # OpenSSL's defaults, which build_server_context overrides, would have accepted it
    plain = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    plain.load_cert_chain(pki.files["cert"], pki.files["key"])
    out = run_tls(plain, _client(_with_group(client_ctx(pki), group)))
    assert out.error is None, out


# ---- mutual TLS


def test_mtls_required_refuses_no_certificate(pki: PKI, run_tls: Callable[..., Outcome]) -> None:
    ctx = tls.build_server_context(pki.cfg(ssl_ca=pki.files["ca"], ssl_client_verify=True), ["http/1.1"])
    assert ctx.verify_mode is ssl.CERT_REQUIRED
    assert "PEER_DID_NOT_RETURN_A_CERTIFICATE" in _refused(run_tls(ctx, _client(client_ctx(pki))))


def _sent(leaf: trustme.LeafCert) -> list[bytes]:
    # What configure_cert() makes a client without a trust store send: the leaf and its
    # intermediates, leaf first.
    return [_der(b.bytes()) for b in leaf.cert_chain_pems]


def test_mtls_required_accepts_client_and_reports_it(pki: PKI, run_tls: Callable[..., Outcome]) -> None:
    ctx = tls.build_server_context(pki.cfg(ssl_ca=pki.files["ca"], ssl_client_verify=True), ["http/1.1"])
    out = run_tls(ctx, _client(client_ctx(pki, pki.client, verify_server=False)))
    assert out.error is None, out
    ext = out.seen[0]["tls"]
    assert len(_sent(pki.client)) == 1
    assert [_der(p) for p in ext["client_cert_chain"]] == _sent(pki.client)
    subject = x509.load_der_x509_certificate(_sent(pki.client)[0]).subject
    assert ext["client_cert_name"] == subject.rfc4514_string()
    assert "O=Acme\\, Inc." in ext["client_cert_name"]
    assert ext["client_cert_error"] is None


def test_mtls_chain_leaf_first(pki: PKI, run_tls: Callable[..., Outcome]) -> None:
    # The client sends its leaf and the intermediate; the server trusts the root.
    ctx = tls.build_server_context(pki.cfg(ssl_ca=pki.files["ca"], ssl_client_verify=True), ["http/1.1"])
    out = run_tls(ctx, _client(client_ctx(pki, pki.chained, verify_server=False)))
    assert out.error is None, out
    ext = out.seen[0]["tls"]
    sent = _sent(pki.chained)
    assert len(sent) == 2
    got = [_der(p) for p in ext["client_cert_chain"]]
    assert got[0] == sent[0]
    # Python 3.13's get_unverified_chain(), or the same private method on 3.10-3.12, gives the
    # whole chain; without either only the leaf is reported.
    assert got == sent
    assert ext["client_cert_name"] == x509.load_der_x509_certificate(sent[0]).subject.rfc4514_string()


def test_mtls_resumed_session_still_reports_client(pki: PKI, run_tls: Callable[..., Outcome]) -> None:
    # A resumed session keeps the client's leaf (OpenSSL does not keep the rest of its chain).
    ctx = tls.build_server_context(pki.cfg(ssl_ca=pki.files["ca"], ssl_client_verify=True), ["http/1.1"])
    client = client_ctx(pki, pki.chained, verify_server=False)
    first = run_tls(ctx, _client(client))
    assert first.error is None and first.session is not None, first
    again = run_tls(ctx, _client(client, first.session))
    assert again.error is None and again.reused, again
    ext = again.seen[0]["tls"]
    assert _der(ext["client_cert_chain"][0]) == _sent(pki.chained)[0]
    assert ext["client_cert_name"] == first.seen[0]["tls"]["client_cert_name"]


def test_mtls_refuses_certificate_of_another_ca(pki: PKI, run_tls: Callable[..., Outcome]) -> None:
    for verify in (True, False):
        cfg = pki.cfg(ssl_ca=pki.files["ca"], ssl_client_verify=verify)
        ctx = tls.build_server_context(cfg, ["http/1.1"])
        reason = _refused(run_tls(ctx, _client(client_ctx(pki, pki.stranger))))
        assert "CERTIFICATE VERIFY FAILED" in reason and "ISSUER" in reason


def test_ca_without_client_verify_makes_certificate_optional(
    pki: PKI, run_tls: Callable[..., Outcome]
) -> None:
    ctx = tls.build_server_context(pki.cfg(ssl_ca=pki.files["ca"]), ["http/1.1"])
    assert ctx.verify_mode is ssl.CERT_OPTIONAL
    out = run_tls(ctx, _client(client_ctx(pki)))
    assert out.error is None, out
    assert out.seen[0]["tls"]["client_cert_chain"] == []
    out = run_tls(ctx, _client(client_ctx(pki, pki.client, verify_server=False)))
    assert out.error is None, out
    assert [_der(p) for p in out.seen[0]["tls"]["client_cert_chain"]] == _sent(pki.client)


def test_crl_refuses_revoked_client(pki: PKI, run_tls: Callable[..., Outcome]) -> None:
    cfg = pki.cfg(ssl_ca=pki.files["ca"], ssl_client_verify=True, ssl_crl=(pki.files["crl"],))
    ctx = tls.build_server_context(cfg, ["http/1.1"])
    assert ctx.verify_flags & ssl.VERIFY_CRL_CHECK_LEAF
    assert "CERTIFICATE REVOKED" in _refused(run_tls(ctx, _client(client_ctx(pki, pki.revoked))))
    good = run_tls(ctx, _client(client_ctx(pki, pki.client)))
    assert good.error is None, good
    assert good.seen[0]["tls"]["client_cert_name"] is not None


def test_crl_repeatable_and_leaf_issuer_needs_one(pki: PKI, run_tls: Callable[..., Outcome]) -> None:
    # Only the other CA's CRL: OpenSSL cannot check our client's issuer, so it refuses.
    only_other = pki.cfg(ssl_ca=pki.files["ca"], ssl_client_verify=True, ssl_crl=(pki.files["other_crl"],))
    ctx = tls.build_server_context(only_other, ["http/1.1"])
    assert "UNABLE TO GET CERTIFICATE CRL" in _refused(run_tls(ctx, _client(client_ctx(pki, pki.client))))
    both = replace(only_other, ssl_crl=(pki.files["other_crl"], pki.files["crl"]))
    ctx = tls.build_server_context(both, ["http/1.1"])
    assert run_tls(ctx, _client(client_ctx(pki, pki.client))).error is None
    assert "CERTIFICATE REVOKED" in _refused(run_tls(ctx, _client(client_ctx(pki, pki.revoked))))


# ---- keys and rotation


@pytest.mark.parametrize("name", ["pkcs8_plain", "trad_plain", "pkcs8_enc", "trad_enc"])
def test_key_formats(pki: PKI, run_tls: Callable[..., Outcome], name: str) -> None:
    password = PASSWORD if name.endswith("_enc") else None
    cfg = pki.cfg(ssl_keyfile=pki.files[name], ssl_keyfile_password=password)
    tls.check_config(cfg)
    out = run_tls(tls.build_server_context(cfg, ["http/1.1"]), _client(client_ctx(pki)))
    assert out.error is None, out


@pytest.mark.parametrize("fmt", ["pkcs8", "trad"])
def test_rsa_key_formats(pki: PKI, run_tls: Callable[..., Outcome], fmt: str) -> None:
    # --ssl-keyfile: PKCS#8 or a traditional `RSA PRIVATE KEY` (issue 13); the RSA suites of
    # the intermediate profile then serve TLS 1.2 clients.
    leaf = pki.ca.issue_cert("localhost", "127.0.0.1", key_type=trustme.KeyType.RSA)
    key = _key(leaf)
    form = (
        serialization.PrivateFormat.PKCS8
        if fmt == "pkcs8"
        else serialization.PrivateFormat.TraditionalOpenSSL
    )
    pem = key.private_bytes(serialization.Encoding.PEM, form, serialization.NoEncryption())
    label = b"-----BEGIN PRIVATE KEY-----" if fmt == "pkcs8" else b"-----BEGIN RSA PRIVATE KEY-----"
    assert pem.startswith(label)
    cfg = pki.cfg(
        ssl_certificate=pki.write(f"rsa-{fmt}.pem", b"".join(b.bytes() for b in leaf.cert_chain_pems)),
        ssl_keyfile=pki.write(f"rsa-{fmt}.key", pem),
        ssl_protocol_min="tls1.2",
    )
    tls.check_config(cfg)
    ctx = tls.build_server_context(cfg, ["http/1.1"])
    out = run_tls(ctx, _client(client_ctx(pki)))
    assert out.error is None, out
    assert out.seen[0]["tls"]["tls_version"] == 0x0304
    out = run_tls(ctx, _client(client_ctx(pki, max_version=ssl.TLSVersion.TLSv1_2)))
    assert out.error is None, out
    assert out.cipher is not None and out.cipher[0].startswith("ECDHE-RSA-")
    assert out.cipher[0] in tls.INTERMEDIATE_TLS12_CIPHERS.split(":")


def test_each_build_reads_the_files_again(pki: PKI, run_tls: Callable[..., Outcome], tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    first = pki.ca.issue_cert("localhost")
    cert.write_bytes(first.cert_chain_pems[0].bytes())
    key.write_bytes(first.private_key_pem.bytes())
    cfg = Cfg(ssl_certificate=cert, ssl_keyfile=key)
    old = tls.build_server_context(cfg, ["http/1.1"])
    rotated = pki.ca.issue_cert("localhost")
    cert.write_bytes(rotated.cert_chain_pems[0].bytes())
    key.write_bytes(rotated.private_key_pem.bytes())
    new = tls.build_server_context(cfg, ["http/1.1"])
    for ctx, leaf in ((old, first), (new, rotated)):
        out = run_tls(ctx, _client(client_ctx(pki)))
        assert out.error is None, out
        assert _der(out.seen[0]["tls"]["server_cert"]) == _der(leaf.cert_chain_pems[0].bytes())


def test_real_settings_model_is_accepted(pki: PKI) -> None:
    s = Settings(
        app="m:app",
        ssl_certificate=pki.files["cert"],
        ssl_keyfile=pki.files["trad_enc"],
        ssl_keyfile_password=PASSWORD,
        ssl_protocol_min="tls1.2",
        ssl_ca=pki.files["ca"],
        ssl_crl=[pki.files["crl"]],
        ssl_client_verify=True,
    )
    assert tls.tls_enabled(s)
    tls.check_config(s)
    ctx = tls.build_server_context(s, tls.alpn_protocols(s.http))
    assert ctx.minimum_version is ssl.TLSVersion.TLSv1_2
    assert ctx.verify_mode is ssl.CERT_REQUIRED
    plain = Settings(app="m:app")
    assert not tls.tls_enabled(plain)
    tls.check_config(plain)  # nothing to check


# --------------------------------------------------------------------------------------------
# Configuration errors: option, file and reason in the message; nothing is built.


def _error(cfg: Any) -> str:
    with pytest.raises(ConfigurationError) as info:
        tls.check_config(cfg)
    with pytest.raises(ConfigurationError) as again:
        tls.build_server_context(cfg, ["http/1.1"])
    assert str(again.value) == str(info.value)
    message = str(info.value)
    assert PASSWORD not in message and "wrong-pw" not in message
    return message


def test_error_missing_files(pki: PKI, tmp_path: Path) -> None:
    gone = tmp_path / "gone.pem"
    for option, kw in (
        ("--ssl-certificate", {"ssl_certificate": gone}),
        ("--ssl-keyfile", {"ssl_keyfile": gone}),
        ("--ssl-ca", {"ssl_ca": gone}),
        ("--ssl-crl", {"ssl_ca": pki.files["ca"], "ssl_crl": (pki.files["crl"], gone)}),
    ):
        assert _error(pki.cfg(**kw)) == f"{option} {gone}: no such file"


def test_error_directory_instead_of_file(pki: PKI, tmp_path: Path) -> None:
    assert (
        _error(pki.cfg(ssl_certificate=tmp_path))
        == f"--ssl-certificate {tmp_path}: is a directory, not a file"
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_error_unreadable_file(pki: PKI, tmp_path: Path) -> None:
    key = tmp_path / "locked.key"
    key.write_bytes(pki.files["key"].read_bytes())
    key.chmod(0)
    assert _error(pki.cfg(ssl_keyfile=key)) == f"--ssl-keyfile {key}: cannot read it: Permission denied"


def test_error_key_does_not_match(pki: PKI) -> None:
    message = _error(pki.cfg(ssl_keyfile=pki.files["other_key"]))
    assert message == (
        f"--ssl-keyfile {pki.files['other_key']}: does not match the certificate of "
        f"--ssl-certificate {pki.files['cert']}"
    )


@pytest.mark.parametrize("name", ["pkcs8_enc", "trad_enc"])
def test_error_wrong_or_missing_password(pki: PKI, name: str) -> None:
    path = pki.files[name]
    wrong = _error(pki.cfg(ssl_keyfile=path, ssl_keyfile_password="wrong-pw"))
    assert wrong.startswith(f"--ssl-keyfile {path}: cannot decrypt the key: wrong --ssl-keyfile-password")
    missing = _error(pki.cfg(ssl_keyfile=path))
    assert (
        missing
        == f"--ssl-keyfile {path}: the key is encrypted: give its password with --ssl-keyfile-password"
    )


def test_error_bad_certificate_pem(pki: PKI) -> None:
    real = pki.server.cert_chain_pems[0].bytes()
    body = b"".join(real.splitlines(keepends=True)[1:-1])
    cases = {
        "garbage.pem": (
            b"-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n",
            "bad PEM: certificate #1 is not valid base64",
        ),
        "notcert.pem": (
            b"-----BEGIN CERTIFICATE-----\nAAAAAAAA\n-----END CERTIFICATE-----\n",
            "bad PEM: certificate #1 is not a valid X.509 certificate",
        ),
        "second.pem": (
            real + b"-----BEGIN CERTIFICATE-----\nAAAAAAAA\n-----END CERTIFICATE-----\n",
            "bad PEM: certificate #2 is not a valid X.509 certificate",
        ),
        "truncated.pem": (
            b"-----BEGIN CERTIFICATE-----\n" + body,
            "bad PEM: a '-----BEGIN' line has no '-----END'",
        ),
        "text.pem": (b"hello\n", "bad PEM: no '-----BEGIN CERTIFICATE-----' block"),
        "der.pem": (_der(real), "(this looks like a DER file: convert it with `openssl x509 -inform der`)"),
        "keyonly.pem": (pki.files["key"].read_bytes(), "bad PEM: no '-----BEGIN CERTIFICATE-----' block"),
    }
    for name, (data, reason) in cases.items():
        path = pki.write(name, data)
        message = _error(pki.cfg(ssl_certificate=path))
        assert message.startswith(f"--ssl-certificate {path}: "), message
        assert reason in message, message


def test_error_bad_key_pem(pki: PKI) -> None:
    cert_only = pki.write("certonly.key", pki.server.cert_chain_pems[0].bytes())
    message = _error(pki.cfg(ssl_keyfile=cert_only))
    assert message.startswith(f"--ssl-keyfile {cert_only}: bad PEM: no private key")
    junk = pki.write("junk.key", b"-----BEGIN PRIVATE KEY-----\nAAAAAAAA\n-----END PRIVATE KEY-----\n")
    message = _error(pki.cfg(ssl_keyfile=junk))
    assert message.startswith(f"--ssl-keyfile {junk}: cannot load the key ("), message
    bad64 = pki.write("bad64.key", b"-----BEGIN EC PRIVATE KEY-----\n@@@@\n-----END EC PRIVATE KEY-----\n")
    assert (
        _error(pki.cfg(ssl_keyfile=bad64)) == f"--ssl-keyfile {bad64}: bad PEM: the key is not valid base64"
    )
    dsa = pki.write("dsa.key", b"-----BEGIN DSA PRIVATE KEY-----\nAAAA\n-----END DSA PRIVATE KEY-----\n")
    assert "'DSA PRIVATE KEY' keys are not supported" in _error(pki.cfg(ssl_keyfile=dsa))


def test_error_bad_ca_and_crl(pki: PKI) -> None:
    text = pki.write("ca.txt", b"no certificates here\n")
    message = _error(pki.cfg(ssl_ca=text))
    assert message == f"--ssl-ca {text}: bad PEM: no '-----BEGIN CERTIFICATE-----' block"
    # A certificate in a CRL file would be trusted as a CA by OpenSSL: refused.
    mixed = pki.write("mixed.crl", pki.files["crl"].read_bytes() + pki.files["other_ca"].read_bytes())
    message = _error(pki.cfg(ssl_ca=pki.files["ca"], ssl_crl=(mixed,)))
    assert message == f"--ssl-crl {mixed}: holds more than CRLs ('X509 CRL' PEM blocks only)"
    notcrl = pki.write("not.crl", b"-----BEGIN X509 CRL-----\nAAAAAAAA\n-----END X509 CRL-----\n")
    assert _error(pki.cfg(ssl_ca=pki.files["ca"], ssl_crl=(notcrl,))).startswith(
        f"--ssl-crl {notcrl}: not a valid CRL ("
    )
    empty = pki.write("empty.crl", b"")
    assert _error(pki.cfg(ssl_ca=pki.files["ca"], ssl_crl=(empty,))) == (
        f"--ssl-crl {empty}: bad PEM: no '-----BEGIN X509 CRL-----' block"
    )


def test_error_option_combinations(pki: PKI) -> None:
    cert, key, ca = pki.files["cert"], pki.files["key"], pki.files["ca"]
    assert _error(Cfg(ssl_certificate=cert)) == f"--ssl-certificate {cert}: needs --ssl-keyfile too"
    assert _error(Cfg(ssl_keyfile=key)) == f"--ssl-keyfile {key}: needs --ssl-certificate too"
    verify = _error(pki.cfg(ssl_client_verify=True))
    assert verify.startswith("--ssl-client-verify needs --ssl-ca")
    assert _error(pki.cfg(ssl_crl=(pki.files["crl"],))).startswith("--ssl-crl needs --ssl-ca")
    assert (
        _error(pki.cfg(ssl_protocol_min="tls1.1")) == "--ssl-protocol-min tls1.1: not one of tls1.2, tls1.3"
    )
    for kw, option in (
        ({"ssl_ca": ca}, "--ssl-ca"),
        ({"ssl_client_verify": True}, "--ssl-client-verify"),
        ({"ssl_crl": (pki.files["crl"],)}, "--ssl-crl"),
        ({"ssl_keyfile_password": "wrong-pw"}, "--ssl-keyfile-password"),
    ):
        assert (
            _error(Cfg(**kw))
            == f"{option}: needs --ssl-certificate and --ssl-keyfile (TLS is off without them)"
        )


def test_bad_alpn_name_is_refused(pki: PKI) -> None:
    with pytest.raises(ValueError, match="RFC 7301"):
        tls.build_server_context(pki.cfg(), [""])
    with pytest.raises(ValueError, match="RFC 7301"):
        tls.build_server_context(pki.cfg(), ["x" * 256])
    with pytest.raises(ValueError, match="RFC 7301"):
        tls.build_server_context(pki.cfg(), ["hé"])
    assert tls.build_server_context(pki.cfg(), ["x" * 255]) is not None


# --------------------------------------------------------------------------------------------
# RFC 4514 subject strings, against cryptography's own rendering where both follow RFC 4514 §3


def _self_signed(subject: x509.Name) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


def _subjects() -> list[x509.Name]:
    attr = x509.NameAttribute
    first = x509.Name(
        [
            attr(NameOID.COUNTRY_NAME, "DE"),
            attr(NameOID.STATE_OR_PROVINCE_NAME, "Baden-Württemberg"),
            attr(NameOID.LOCALITY_NAME, "Köln"),
            attr(NameOID.ORGANIZATION_NAME, 'A "quoted" <org>; with+plus, and\\backslash'),
            attr(NameOID.ORGANIZATIONAL_UNIT_NAME, "#leading hash"),
            attr(NameOID.COMMON_NAME, " spaces both ends "),
        ]
    )
    second = x509.Name(
        [
            attr(NameOID.DOMAIN_COMPONENT, "com"),
            attr(NameOID.DOMAIN_COMPONENT, "example"),
            attr(NameOID.USER_ID, "jdoe"),
            attr(NameOID.STREET_ADDRESS, "1 Main St"),
            attr(NameOID.COMMON_NAME, "日本語"),
        ]
    )
    return [first, second]


def test_rfc4514_matches_cryptography() -> None:
    for name in _subjects():
        der = _self_signed(name)
        assert tls.rfc4514_subject(der) == name.rfc4514_string()


def test_rfc4514_multivalued_rdn_and_unknown_types() -> None:
    attr = x509.NameAttribute
    rdn = x509.RelativeDistinguishedName([attr(NameOID.COMMON_NAME, "a"), attr(NameOID.USER_ID, "b")])
    name = x509.Name([x509.RelativeDistinguishedName([attr(NameOID.COUNTRY_NAME, "FR")]), rdn])
    got = tls.rfc4514_subject(_self_signed(name))
    first, second = got.split(",")
    assert sorted(first.split("+")) == ["CN=a", "UID=b"]
    assert second == "C=FR"
    # RFC 4514 §2.4: a type without a §3 short name is the dotted OID and '#' + the hex BER.
    email = x509.Name([attr(NameOID.EMAIL_ADDRESS, "a@b.c"), attr(NameOID.COMMON_NAME, "x")])
    ber = bytes([0x16, 5]) + b"a@b.c"  # IA5String, X.690 §8.1
    assert tls.rfc4514_subject(_self_signed(email)) == f"CN=x,1.2.840.113549.1.9.1=#{ber.hex()}"


def test_rfc4514_rejects_non_certificates() -> None:
    with pytest.raises(ValueError, match="not a DER X.509 certificate"):
        tls.rfc4514_subject(b"\x30\x03\x02\x01\x01")
    with pytest.raises(ValueError, match="not a DER X.509 certificate"):
        tls.rfc4514_subject(b"\x30\x82\xff")
