"""TLS configuration: the server's ``ssl.SSLContext`` and the ASGI ``tls`` scope extension.

Stdlib ``ssl`` only: the context built here is handed to ``loop.create_server(ssl=...)``, whose
TLS transport (asyncio's, or uvloop's in Cython over the same OpenSSL) does the record layer.

- ``check_config(cfg)``: validate every ``--ssl-*`` option at start-up (ConfigurationError
  naming the option, the file and the reason), so nothing listens with a broken setup.
- ``build_server_context(cfg, alpn)``: the context, built once per worker. It re-reads the
  certificate and key files each time it is called, which is what certificate rotation on
  SIGHUP (new workers) relies on.
- ``tls_extension(ssl_object)``: what ``scope["extensions"]["tls"]`` holds for one connection
  (asgiref specs/tls.rst, version 0.2). Pure; the caller caches it per connection.
- ``ServerSSLObject``: the SSLObject of every connection of a ``ServerContext``; it logs a
  failed or abandoned handshake at DEBUG on the server logger (junk, plain HTTP, a refused
  client certificate, a peer that closed or stalled), which the loops keep silent.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
import ssl
import sys
from _ssl import ENCODING_DER as _ENCODING_DER
from collections.abc import Sequence
from typing import Any, Protocol, TypeAlias, TypedDict

from ..constants import SERVER_LOGGER
from ..errors import ConfigurationError

__all__ = [
    "INTERMEDIATE_GROUPS",
    "INTERMEDIATE_TLS12_CIPHERS",
    "ServerContext",
    "ServerSSLObject",
    "TLSConfig",
    "TLSExtension",
    "alpn_protocols",
    "build_server_context",
    "check_config",
    "rfc4514_subject",
    "tls_enabled",
    "tls_extension",
]

_StrPath: TypeAlias = "str | os.PathLike[str]"


class TLSConfig(Protocol):
    """The ``--ssl-*`` options as ``granian.settings.Settings`` holds them (any object with
    these attributes will do, which keeps this module free of the settings model)."""

    @property
    def ssl_certificate(self) -> _StrPath | None: ...
    @property
    def ssl_keyfile(self) -> _StrPath | None: ...
    @property
    def ssl_keyfile_password(self) -> str | None: ...
    @property
    def ssl_protocol_min(self) -> str: ...
    @property
    def ssl_ca(self) -> _StrPath | None: ...
    @property
    def ssl_crl(self) -> Sequence[_StrPath]: ...
    @property
    def ssl_client_verify(self) -> bool: ...


# Mozilla Server Side TLS, "intermediate" configuration (version 5.7): its TLS 1.2 suites in
# its order, minus the three DHE-RSA ones. Python's ssl never enables OpenSSL's automatic DH
# parameters (SSL_CTX_set_dh_auto), so without a --ssl-dhparam option those suites could never
# be chosen; leaving them out keeps `get_ciphers()` honest and the profile's subset rule holds.
INTERMEDIATE_TLS12_CIPHERS = ":".join(
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
    )
)
# Mozilla intermediate (5.7) key-exchange groups, in its order. OpenSSL 3's default list adds
# X448 and secp521r1 (sslyze: "tls_curves ... should be rejected"). RFC 8446 §4.2.7, RFC 8422.
INTERMEDIATE_GROUPS = "X25519:prime256v1:secp384r1"
# OpenSSL ssl.h: SSL_CTX_set1_groups_list(ctx, s) is SSL_CTX_ctrl(ctx, 92, 0, s).
_SSL_CTRL_SET_GROUPS_LIST = 92

# TLS 1.3 suites are not set: Python's ssl has no SSL_CTX_set_ciphersuites, and OpenSSL's
# default (TLS_AES_256_GCM_SHA384, TLS_CHACHA20_POLY1305_SHA256, TLS_AES_128_GCM_SHA256) is
# exactly the intermediate profile's TLS 1.3 list.

_MIN_VERSIONS = {"tls1.2": ssl.TLSVersion.TLSv1_2, "tls1.3": ssl.TLSVersion.TLSv1_3}

# asgiref tls.rst: tls_version is the wire value of the protocol version (RFC 8446 §4.2.1,
# RFC 5246 §6.2.1); SSLObject.version() gives OpenSSL's names for them.
_TLS_VERSION_CODES = {"TLSv1": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303, "TLSv1.3": 0x0304}

# RFC 7301 §3.1: a protocol name is 1..255 bytes.
_ALPN_MAX = 255


logger = logging.getLogger(SERVER_LOGGER)

# Why a handshake failed, for the OpenSSL reasons a server meets most (RFC 8446 §6.2 alerts);
# any other reason is logged as OpenSSL gives it.
_HANDSHAKE_HINTS = {
    "HTTP_REQUEST": "plain HTTP sent to the TLS port",
    "WRONG_VERSION_NUMBER": "not a TLS record (junk, or plain text)",
    "UNSUPPORTED_PROTOCOL": "the client offers no TLS version allowed by --ssl-protocol-min",
    "NO_SHARED_CIPHER": "no cipher suite in common",
    "NO_SUITABLE_KEY_SHARE": "no key-exchange group in common",
    "NO_APPLICATION_PROTOCOL": "no ALPN protocol in common",
    "PEER_DID_NOT_RETURN_A_CERTIFICATE": "no client certificate (--ssl-client-verify requires one)",
    "TLSV1_ALERT_UNKNOWN_CA": "the client does not trust our certificate",
    "SSLV3_ALERT_BAD_CERTIFICATE": "the client refused our certificate",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": "the client refused our certificate",
    "UNEXPECTED_EOF_WHILE_READING": "the peer closed during the handshake",
}


def _handshake_failure(exc: ssl.SSLError) -> str:
    reason = getattr(exc, "reason", None) or type(exc).__name__
    verify = getattr(exc, "verify_message", None)
    if verify:  # ssl.SSLCertVerificationError: the client's certificate failed our checks
        return f"{reason}: client certificate refused: {verify}"
    return f"{reason}: {_HANDSHAKE_HINTS.get(str(reason)) or _reason(exc)}"


class ServerSSLObject(ssl.SSLObject):
    """The SSLObject of each connection of a ``ServerContext`` (``sslobject_class``).

    Both loops' TLS transports (asyncio's sslproto, uvloop's in Cython) report a failed
    server-side handshake only in the loop's debug mode, on the ``asyncio`` logger: an SSLError
    is an OSError, which their ``_fatal_error`` never passes to the loop's exception handler.
    So junk, plain HTTP to the TLS port or a refused client certificate would leave no trace
    at all. Both transports drive the handshake through this object's ``do_handshake()``; a
    failure there is one DEBUG line on the server logger, and the transport then closes the
    connection as before. A peer that closes, resets or stalls (the handshake timeout) before
    the handshake ends never gets to ``do_handshake()`` again: that is logged when the
    transport drops this object (on asyncio's loop, an EOF during the handshake leaves a
    reference cycle through the exception's traceback, so that line waits for the cyclic GC).
    Cost on a good connection: one Python frame per handshake step and a flag test when the
    object goes."""

    # 0: handshake in progress; 1: done; 2: its failure is logged. A class default: nothing is
    # stored per connection until the handshake ends.
    _granian_hs = 0

    def do_handshake(self) -> None:
        try:
            super().do_handshake()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise  # the handshake waits for the peer's next flight
        except ssl.SSLError as exc:
            self._granian_hs = 2
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("TLS handshake failed, connection closed: %s", _handshake_failure(exc))
            raise
        self._granian_hs = 1

    def __del__(self) -> None:
        if self._granian_hs != 0:
            return
        try:
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug(
                    "TLS connection closed before its handshake completed "
                    "(the peer closed or reset it, or the handshake timeout expired)"
                )
        except Exception:  # noqa: BLE001 - a finalizer, maybe at interpreter exit: never raise
            pass


class ServerContext(ssl.SSLContext):
    """An SSLContext that also remembers what the ASGI ``tls`` extension reports about it.

    ``server_cert_pem`` is the leaf of --ssl-certificate as loaded; ``cipher_ids`` maps
    OpenSSL's cipher names to their IANA 16-bit code points (RFC 8446 §B.4, RFC 5289).
    Its connections' SSLObjects log their failed handshakes (``ServerSSLObject``)."""

    sslobject_class = ServerSSLObject
    server_cert_pem: str | None = None
    cipher_ids: dict[str, int]
    # The key-exchange groups set by build_server_context (None: OpenSSL's defaults remain).
    groups: str | None = None


class TLSExtension(TypedDict):
    """``scope["extensions"]["tls"]`` (asgiref specs/tls.rst, version 0.2)."""

    server_cert: str | None
    client_cert_chain: list[str]
    client_cert_name: str | None
    client_cert_error: str | None
    tls_version: int | None
    cipher_suite: int | None


# --------------------------------------------------------------------------------------------
# Options


def tls_enabled(cfg: TLSConfig) -> bool:
    """TLS is on when a certificate is configured (check_config ensures the key goes with it)."""
    return cfg.ssl_certificate is not None


def alpn_protocols(http: str, *, h2_implemented: bool = False) -> tuple[str, ...]:
    """The ALPN list to offer for ``--http`` (RFC 7301; names from the IANA ALPN registry).

    ``h2`` first, so a client offering both gets HTTP/2, and only when HTTP/2 is implemented;
    ``http/1.1`` unless ``--http 2`` excludes it."""
    mode = str(http)
    offered: list[str] = []
    if h2_implemented and mode in ("auto", "2"):
        offered.append("h2")
    if mode in ("auto", "1"):
        offered.append("http/1.1")
    return tuple(offered)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _check_options(cfg: TLSConfig) -> None:
    """Cross-option rules that need no file."""
    cert, key = cfg.ssl_certificate, cfg.ssl_keyfile
    if cert is not None and key is None:
        raise ConfigurationError(f"--ssl-certificate {cert}: needs --ssl-keyfile too")
    if key is not None and cert is None:
        raise ConfigurationError(f"--ssl-keyfile {key}: needs --ssl-certificate too")
    if cert is None:
        # Options that only mean something with TLS on: accepting them silently would leave a
        # user believing clients are verified while the server speaks plain HTTP.
        given = [
            name
            for name, value in (
                ("ssl_keyfile_password", cfg.ssl_keyfile_password),
                ("ssl_ca", cfg.ssl_ca),
                ("ssl_crl", tuple(cfg.ssl_crl or ())),
                ("ssl_client_verify", cfg.ssl_client_verify),
            )
            if value
        ]
        if given:
            raise ConfigurationError(
                f"{_flag(given[0])}: needs --ssl-certificate and --ssl-keyfile (TLS is off without them)"
            )
        return
    if str(cfg.ssl_protocol_min) not in _MIN_VERSIONS:
        raise ConfigurationError(
            f"--ssl-protocol-min {cfg.ssl_protocol_min}: not one of {', '.join(_MIN_VERSIONS)}"
        )
    if cfg.ssl_client_verify and cfg.ssl_ca is None:
        # Granian only warns here and turns verification off (its #788); refusing is safer.
        raise ConfigurationError(
            "--ssl-client-verify needs --ssl-ca: without a CA bundle no client certificate can be verified"
        )
    if cfg.ssl_crl and cfg.ssl_ca is None:
        raise ConfigurationError("--ssl-crl needs --ssl-ca: revocation is only checked for verified clients")


# --------------------------------------------------------------------------------------------
# Files


def _read(flag: str, path: _StrPath) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise ConfigurationError(f"{flag} {path}: no such file") from None
    except IsADirectoryError:
        raise ConfigurationError(f"{flag} {path}: is a directory, not a file") from None
    except OSError as exc:
        raise ConfigurationError(f"{flag} {path}: cannot read it: {exc.strerror or exc}") from None


# RFC 7468 §2-3: textual encoding; text outside the boundaries is allowed and ignored.
_PEM_BLOCK = re.compile(
    rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----",
    re.DOTALL,
)
_PEM_BEGIN = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----")


def _pem_blocks(flag: str, path: _StrPath, data: bytes) -> list[tuple[str, bytes]]:
    """Every (label, body) of a PEM file; a BEGIN without its END is a bad PEM."""
    blocks = [(m.group(1).decode("ascii"), m.group(2)) for m in _PEM_BLOCK.finditer(data)]
    if len(_PEM_BEGIN.findall(data)) != len(blocks):
        raise ConfigurationError(f"{flag} {path}: bad PEM: a '-----BEGIN' line has no '-----END' line")
    return blocks


def _pem_der(flag: str, path: _StrPath, what: str, body: bytes) -> bytes:
    # RFC 7468 §3: the body is base64 with line breaks; legacy encrypted keys (RFC 1421) put
    # `Name: value` headers first, which OpenSSL parses itself.
    try:
        return base64.b64decode(b"".join(body.split()), validate=True)
    except binascii.Error:
        raise ConfigurationError(f"{flag} {path}: bad PEM: {what} is not valid base64") from None


def _not_pem_hint(data: bytes, tool: str) -> str:
    # DER starts with a SEQUENCE tag (X.690 §8.9); say so, since that mistake is common.
    if data[:1] == b"\x30":
        return f" (this looks like a DER file: convert it with `openssl {tool} -inform der`)"
    return ""


def _certificates(flag: str, path: _StrPath, data: bytes) -> list[bytes]:
    """The DER certificates of a PEM file, each one parsed by OpenSSL."""
    certs = [body for label, body in _pem_blocks(flag, path, data) if label == "CERTIFICATE"]
    if not certs:
        raise ConfigurationError(
            f"{flag} {path}: bad PEM: no '-----BEGIN CERTIFICATE-----' block{_not_pem_hint(data, 'x509')}"
        )
    ders = []
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    for n, body in enumerate(certs, 1):
        what = f"certificate #{n}"
        der = _pem_der(flag, path, what, body)
        try:
            probe.load_verify_locations(cadata=der)  # parses the X.509 structure
        except ssl.SSLError as exc:
            raise ConfigurationError(
                f"{flag} {path}: bad PEM: {what} is not a valid X.509 certificate ({_reason(exc)})"
            ) from None
        ders.append(der)
    return ders


_KEY_LABELS = {"PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"}


def _key_is_encrypted(flag: str, path: _StrPath, data: bytes) -> bool:
    """Check the key file holds one PEM key of a supported kind; True when it is encrypted."""
    keys = [(label, body) for label, body in _pem_blocks(flag, path, data) if label.endswith("PRIVATE KEY")]
    if not keys:
        raise ConfigurationError(
            f"{flag} {path}: bad PEM: no private key (a PKCS#8 '-----BEGIN PRIVATE KEY-----' or "
            "traditional '-----BEGIN RSA PRIVATE KEY-----' / 'EC PRIVATE KEY' block)"
            + _not_pem_hint(data, "pkey")
        )
    label, body = keys[0]
    if label not in _KEY_LABELS:
        raise ConfigurationError(f"{flag} {path}: '{label}' keys are not supported (RSA or EC keys only)")
    # PKCS#8 EncryptedPrivateKeyInfo (RFC 5958 §3) or OpenSSL's legacy RFC 1421 header.
    legacy_encrypted = b"Proc-Type: 4,ENCRYPTED" in body
    if not legacy_encrypted and b":" not in body:
        _pem_der(flag, path, "the key", body)
    return label == "ENCRYPTED PRIVATE KEY" or legacy_encrypted


def _reason(exc: ssl.SSLError) -> str:
    reason = getattr(exc, "reason", None)
    if reason:
        return str(reason).lower().replace("_", " ")
    return str(exc.strerror or exc)


class _NoPassword(Exception):
    pass


def _load_chain(ctx: ssl.SSLContext, cfg: TLSConfig, cert: _StrPath, key: _StrPath, encrypted: bool) -> None:
    password = cfg.ssl_keyfile_password

    def give_password() -> bytes:
        # Always a callable: with no password argument OpenSSL would prompt on the terminal.
        if password is None:
            raise _NoPassword
        return password.encode("utf-8")

    try:
        ctx.load_cert_chain(cert, key, password=give_password)
    except _NoPassword:
        raise ConfigurationError(
            f"--ssl-keyfile {key}: the key is encrypted: give its password with --ssl-keyfile-password"
        ) from None
    except ssl.SSLError as exc:
        if getattr(exc, "reason", None) == "KEY_VALUES_MISMATCH":
            raise ConfigurationError(
                f"--ssl-keyfile {key}: does not match the certificate of --ssl-certificate {cert}"
            ) from None
        if encrypted:
            # OpenSSL reports a wrong password as a generic PEM error; the pre-checks above
            # already ruled out a missing block and bad base64.
            raise ConfigurationError(
                f"--ssl-keyfile {key}: cannot decrypt the key: wrong --ssl-keyfile-password "
                "(or a damaged key)"
            ) from None
        raise ConfigurationError(f"--ssl-keyfile {key}: cannot load the key ({_reason(exc)})") from None
    except OSError as exc:  # a file went away between the checks and the load
        raise ConfigurationError(
            f"--ssl-certificate {cert} / --ssl-keyfile {key}: cannot read them: {exc.strerror or exc}"
        ) from None


def _load_crl(ctx: ssl.SSLContext, path: _StrPath) -> None:
    flag = "--ssl-crl"
    data = _read(flag, path)
    blocks = _pem_blocks(flag, path, data)
    if any(label != "X509 CRL" for label, _ in blocks):
        # load_verify_locations() would also trust any certificate in the file as a CA.
        raise ConfigurationError(f"{flag} {path}: holds more than CRLs ('X509 CRL' PEM blocks only)")
    if not blocks:
        raise ConfigurationError(
            f"{flag} {path}: bad PEM: no '-----BEGIN X509 CRL-----' block" + _not_pem_hint(data, "crl")
        )
    for n, (_, body) in enumerate(blocks, 1):
        _pem_der(flag, path, f"CRL #{n}", body)
    try:
        ctx.load_verify_locations(cafile=path)
    except ssl.SSLError as exc:
        raise ConfigurationError(f"{flag} {path}: not a valid CRL ({_reason(exc)})") from None
    except OSError as exc:
        raise ConfigurationError(f"{flag} {path}: cannot read it: {exc.strerror or exc}") from None


# --------------------------------------------------------------------------------------------
# The context


def check_config(cfg: TLSConfig) -> None:
    """Validate the ``--ssl-*`` options; raise ConfigurationError naming option, file and reason.

    Builds a throw-away context, so every file is read, parsed and matched exactly as a worker
    will. Does nothing when no TLS option is set."""
    _check_options(cfg)
    if tls_enabled(cfg):
        build_server_context(cfg, ("http/1.1",))


def build_server_context(cfg: TLSConfig, alpn: Sequence[str]) -> ServerContext:
    """The server's SSLContext from the ``--ssl-*`` options (call once per worker).

    ``alpn`` is the list to offer, most preferred first (see ``alpn_protocols``); an empty list
    offers none. Raises ConfigurationError like ``check_config``."""
    _check_options(cfg)
    cert, key = cfg.ssl_certificate, cfg.ssl_keyfile
    if cert is None or key is None:
        raise ConfigurationError("TLS needs --ssl-certificate and --ssl-keyfile")

    chain = _certificates("--ssl-certificate", cert, _read("--ssl-certificate", cert))
    encrypted = _key_is_encrypted("--ssl-keyfile", key, _read("--ssl-keyfile", key))

    ctx = ServerContext(ssl.PROTOCOL_TLS_SERVER)
    _load_chain(ctx, cfg, cert, key, encrypted)

    ctx.minimum_version = _MIN_VERSIONS[str(cfg.ssl_protocol_min)]
    ctx.set_ciphers(INTERMEDIATE_TLS12_CIPHERS)
    # The server's cipher order (issue 13; Mozilla's intermediate profile would let the client
    # choose, every suite above being strong, so both comply); no compression (CRIME, RFC 7457
    # §2.6); no renegotiation (RFC 7457 §2.10; TLS 1.3 has none). Session tickets stay on
    # (RFC 5077, RFC 8446 §4.6.1): a resumed handshake skips the certificate signature. OpenSSL
    # makes a random ticket key per context, so a ticket resumes only on the worker that made it.
    ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE | ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    ctx.options &= ~ssl.OP_NO_TICKET
    if _set_groups(ctx, INTERMEDIATE_GROUPS):
        ctx.groups = INTERMEDIATE_GROUPS

    protocols = list(alpn)
    for name in protocols:
        if not name or not name.isascii() or len(name) > _ALPN_MAX:
            raise ValueError(
                f"ALPN protocol name {name!r} must be 1..{_ALPN_MAX} ASCII bytes (RFC 7301 §3.1)"
            )
    if protocols:
        # A client whose list shares nothing with ours still completes the handshake without
        # ALPN (Python's selection callback answers SSL_TLSEXT_ERR_NOACK); the dispatch seam
        # reads selected_alpn_protocol() None as HTTP/1.1.
        ctx.set_alpn_protocols(protocols)

    if cfg.ssl_ca is not None:
        ca_data = _read("--ssl-ca", cfg.ssl_ca)
        _certificates("--ssl-ca", cfg.ssl_ca, ca_data)
        try:
            # cadata: certificates only, so a CRL misplaced in the bundle is not silently used.
            ctx.load_verify_locations(cadata=ca_data.decode("ascii", "replace"))
        except ssl.SSLError as exc:
            raise ConfigurationError(f"--ssl-ca {cfg.ssl_ca}: cannot load it ({_reason(exc)})") from None
        # Without --ssl-client-verify a client may send no certificate, but one it sends must
        # verify (Granian's allow-unauthenticated verifier does the same).
        ctx.verify_mode = ssl.CERT_REQUIRED if cfg.ssl_client_verify else ssl.CERT_OPTIONAL
        crls = tuple(cfg.ssl_crl or ())
        for crl in crls:
            _load_crl(ctx, crl)
        if crls:
            # The leaf only: intermediates are not checked (that would need a CRL for every CA
            # of the chain). OpenSSL then refuses a client whose issuer has no CRL loaded.
            ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF

    ctx.server_cert_pem = ssl.DER_cert_to_PEM_cert(chain[0])
    ctx.cipher_ids = _cipher_ids(ctx)
    return ctx


def _set_groups(ctx: ssl.SSLContext, groups: str) -> bool:
    """SSL_CTX_set1_groups_list on the context; False (OpenSSL's defaults stay) where that
    cannot be done safely.

    Python's ssl has no call for a list of groups before 3.15: set_ecdh_curve() keeps exactly
    one, and a single group either drops X25519 (the fastest) or the clients that have only
    P-256. So the SSL_CTX pointer is read from the context object: in CPython's _ssl.c (3.7 to
    3.14) PySSLContext starts with PyObject_HEAD then `SSL_CTX *ctx`. The pointer is trusted
    only when SSL_CTX_get_options() through it gives back exactly ``ctx.options``, and the call
    is made on the libssl that _ssl itself is linked with."""
    if sys.implementation.name != "cpython":
        return False
    try:
        import _ssl
        import ctypes

        lib = ctypes.CDLL(getattr(_ssl, "__file__", None))  # None: a statically linked _ssl
        get_options = lib.SSL_CTX_get_options
        get_options.restype, get_options.argtypes = ctypes.c_uint64, [ctypes.c_void_p]
        ctrl = lib.SSL_CTX_ctrl
        ctrl.restype = ctypes.c_long
        ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_char_p]
        ptr = ctypes.c_void_p.from_address(id(ctx) + object.__basicsize__).value
        if not ptr or get_options(ptr) != int(ctx.options):
            return False
        return bool(ctrl(ptr, _SSL_CTRL_SET_GROUPS_LIST, 0, groups.encode("ascii")) == 1)
    except (ImportError, OSError, AttributeError, ValueError):
        return False


def _cipher_ids(ctx: ssl.SSLContext) -> dict[str, int]:
    # get_ciphers() 'id' is OpenSSL's SSL_CIPHER_get_id(): 0x0300 in the top half, the IANA
    # code point in the low 16 bits (SSL_CIPHER_get_protocol_id).
    return {c["name"]: c["id"] & 0xFFFF for c in ctx.get_ciphers()}


# --------------------------------------------------------------------------------------------
# ASGI `tls` extension


def tls_extension(ssl_object: ssl.SSLObject) -> TLSExtension:
    """The ASGI ``tls`` extension of one connection, from ``transport.get_extra_info("ssl_object")``
    after the handshake. Pure: the caller computes it once per connection and reuses it.

    ``client_cert_chain`` is the chain the client sent, leaf first. Python 3.13 exposes it as
    ``get_unverified_chain()``; on 3.10-3.12 the same method exists only on the private
    ``_ssl`` object, used when present; otherwise the leaf alone is given.
    ``client_cert_error`` is always None: a client certificate that fails verification aborts
    the handshake, so no scope ever sees one."""
    ctx = ssl_object.context
    server_cert = None
    ids: dict[str, int] | None = None
    if isinstance(ctx, ServerContext):
        server_cert = ctx.server_cert_pem
        ids = getattr(ctx, "cipher_ids", None)
    if ids is None:
        ids = _cipher_ids(ctx)
    chain = _peer_chain(ssl_object)
    cipher = ssl_object.cipher()
    version = ssl_object.version()
    return {
        "server_cert": server_cert,
        "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der) for der in chain],
        "client_cert_name": rfc4514_subject(chain[0]) if chain else None,
        "client_cert_error": None,
        "tls_version": _TLS_VERSION_CODES.get(version) if version else None,
        "cipher_suite": ids.get(cipher[0]) if cipher else None,
    }


def _peer_chain(ssl_object: ssl.SSLObject) -> list[bytes]:
    """The client's certificates as DER, leaf first; [] when it sent none."""
    leaf = ssl_object.getpeercert(binary_form=True)
    if not leaf:
        return []
    sent: list[Any] = []
    try:
        public = getattr(ssl_object, "get_unverified_chain", None)  # Python >= 3.13
        if public is not None:
            sent = list(public() or ())
        else:
            private = getattr(getattr(ssl_object, "_sslobj", None), "get_unverified_chain", None)
            if private is not None:
                sent = list(private() or ())
        ders = [c if isinstance(c, bytes) else c.public_bytes(_ENCODING_DER) for c in sent]
    except Exception:  # a changed private API must cost the chain, never the request
        ders = []
    # OpenSSL's server-side peer chain may leave out the leaf (SSL_get_peer_cert_chain(3)).
    return [leaf, *(d for d in ders if d != leaf)]


# ---- RFC 4514 string of the subject, read from the DER certificate (X.690 DER, RFC 5280 §4.1)

# RFC 4514 §3: the attribute types whose short names every implementation must recognise.
_RFC4514_NAMES = {
    "2.5.4.3": "CN",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "2.5.4.6": "C",
    "2.5.4.9": "STREET",
    "0.9.2342.19200300.100.1.25": "DC",
    "0.9.2342.19200300.100.1.1": "UID",
}
# X.680 universal string types and how their octets decode to Unicode.
_STRING_CODECS = {
    0x0C: "utf-8",  # UTF8String
    0x13: "ascii",  # PrintableString
    0x16: "ascii",  # IA5String
    0x1A: "ascii",  # VisibleString
    0x14: "latin-1",  # TeletexString (T.61); latin-1 is the common reading
    0x1E: "utf-16-be",  # BMPString
    0x1C: "utf-32-be",  # UniversalString
}


class _DERError(ValueError):
    pass


def _tlv(buf: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the DER element at pos (X.690 §8.1)."""
    if pos + 2 > len(buf):
        raise _DERError("truncated")
    tag = buf[pos]
    if tag & 0x1F == 0x1F:
        raise _DERError("high tag numbers are not used in certificates")
    length = buf[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        if n == 0 or n > 4 or pos + n > len(buf):
            raise _DERError("bad length")
        length = int.from_bytes(buf[pos : pos + n], "big")
        pos += n
    if pos + length > len(buf):
        raise _DERError("truncated")
    return tag, pos, pos + length


def _children(buf: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """(tag, element start, content start, content end) of each element in [start, end)."""
    out = []
    while start < end:
        tag, cstart, cend = _tlv(buf, start)
        out.append((tag, start, cstart, cend))
        start = cend
    return out


def _oid(content: bytes) -> str:
    # X.690 §8.19: base-128 sub-identifiers; the first one packs the first two arcs.
    arcs: list[int] = []
    value = 0
    for byte in content:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    if not arcs:
        raise _DERError("empty OID")
    first = arcs[0]
    head = [0, first] if first < 40 else [1, first - 40] if first < 80 else [2, first - 80]
    return ".".join(map(str, head + arcs[1:]))


def _escape(value: str) -> str:
    # RFC 4514 §2.4: backslash-escape the specials, a leading '#' or space, a trailing space,
    # and write NUL as \00.
    out = []
    last = len(value) - 1
    for i, ch in enumerate(value):
        if ch in '"+,;<>\\' or (ch == "#" and i == 0) or (ch == " " and i in (0, last)):
            out.append("\\" + ch)
        elif ch == "\0":
            out.append("\\00")
        else:
            out.append(ch)
    return "".join(out)


def rfc4514_subject(der: bytes) -> str:
    """The subject of a DER certificate as an RFC 4514 string: RDNs last-first (§2.1), '+'
    between the values of a multi-valued RDN (§2.2), the §3 short names, and the dotted OID
    with '#' and the hex BER value for any other attribute type (§2.4)."""
    try:
        _, start, end = _tlv(der, 0)  # Certificate
        _, tstart, tend = _tlv(der, start)  # TBSCertificate (RFC 5280 §4.1)
        fields = _children(der, tstart, tend)
        if fields and fields[0][0] == 0xA0:  # [0] EXPLICIT version
            fields = fields[1:]
        # serialNumber, signature, issuer, validity, subject
        _, _, sstart, send = fields[4]
        rdns = []
        for _, _, rstart, rend in _children(der, sstart, send):  # RelativeDistinguishedName SET
            parts = []
            for _, _, astart, aend in _children(der, rstart, rend):  # AttributeTypeAndValue
                (otag, _, ostart, oend), (vtag, vpos, vstart, vend) = _children(der, astart, aend)[:2]
                oid = _oid(der[ostart:oend])
                name = _RFC4514_NAMES.get(oid)
                codec = _STRING_CODECS.get(vtag)
                if name is not None and codec is not None:
                    text = der[vstart:vend].decode(codec, "replace")
                    parts.append(f"{name}={_escape(text)}")
                else:
                    parts.append(f"{name or oid}=#{der[vpos:vend].hex()}")
            rdns.append("+".join(parts))
    except (_DERError, IndexError, ValueError) as exc:
        raise ValueError(f"not a DER X.509 certificate: {exc}") from None
    return ",".join(reversed(rdns))
