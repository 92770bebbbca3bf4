"""granian.utils.proxies: forwarded headers are honoured only from trusted peers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from granian.utils.proxies import TrustedHosts, wrap_asgi_with_proxy_headers, wrap_wsgi_with_proxy_headers


def run_asgi(app: Any, scope: dict[str, Any]) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    async def inner(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.update(scope)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request"}

    async def send(msg: Any) -> None:
        pass

    asyncio.run(wrap_asgi_with_proxy_headers(inner, **app)(scope, receive, send))
    return seen


def http_scope(peer: str, headers: list[tuple[bytes, bytes]], kind: str = "http") -> dict[str, Any]:
    scheme = "ws" if kind == "websocket" else "http"
    return {"type": kind, "client": (peer, 5000), "scheme": scheme, "headers": headers}


FWD = [(b"x-forwarded-for", b"203.0.113.7, 10.0.0.2"), (b"x-forwarded-proto", b"https")]


def test_trusted_peer_headers_applied() -> None:
    seen = run_asgi({"trusted_hosts": ["127.0.0.1", "10.0.0.0/8"]}, http_scope("127.0.0.1", FWD))
    # 10.0.0.2 is a trusted proxy hop, so the client is the next address to its left.
    assert seen["client"] == ("203.0.113.7", 0)
    assert seen["scheme"] == "https"


def test_untrusted_peer_headers_ignored() -> None:
    seen = run_asgi({}, http_scope("198.51.100.1", FWD))
    assert seen["client"] == ("198.51.100.1", 5000)
    assert seen["scheme"] == "http"


def test_forged_left_hops_do_not_win() -> None:
    # The client prepended a fake address; only the default trusted host (127.0.0.1) is a proxy.
    headers = [(b"x-forwarded-for", b"1.2.3.4, 203.0.113.7")]
    seen = run_asgi({}, http_scope("127.0.0.1", headers))
    assert seen["client"] == ("203.0.113.7", 0)


def test_star_trusts_everyone_and_websocket_scheme() -> None:
    seen = run_asgi({"trusted_hosts": "*"}, http_scope("198.51.100.1", FWD, "websocket"))
    assert seen["scheme"] == "wss"
    assert seen["client"] == ("203.0.113.7", 0)


def test_unknown_proto_ignored() -> None:
    seen = run_asgi({}, http_scope("127.0.0.1", [(b"x-forwarded-proto", b"gopher")]))
    assert seen["scheme"] == "http"


@pytest.mark.parametrize(
    ("entry", "host", "trusted"),
    [
        ("10.0.0.0/8", "10.200.3.4", True),
        ("10.0.0.0/8", "11.0.0.1", False),
        ("::1", "::1", True),
        ("2001:db8::/32", "2001:db8::5", True),
        ("127.0.0.1", "not-an-ip", False),
    ],
)
def test_trusted_hosts_matching(entry: str, host: str, trusted: bool) -> None:
    assert (host in TrustedHosts(entry)) is trusted


def test_wsgi_wrapper() -> None:
    seen: dict[str, Any] = {}

    def inner(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.update(environ)
        return []

    app = wrap_wsgi_with_proxy_headers(inner, "127.0.0.1")
    env = {
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "HTTP_X_FORWARDED_FOR": "203.0.113.9",
        "HTTP_X_FORWARDED_PROTO": "https",
    }
    app(dict(env), None)
    assert (seen["REMOTE_ADDR"], seen["wsgi.url_scheme"]) == ("203.0.113.9", "https")
    app(dict(env, REMOTE_ADDR="198.51.100.1"), None)
    assert (seen["REMOTE_ADDR"], seen["wsgi.url_scheme"]) == ("198.51.100.1", "http")
