"""Trust `X-Forwarded-For` / `X-Forwarded-Proto` from reverse proxies you name.

A client can send these headers itself, so they are only applied when the peer that connected to
us is a trusted proxy (an IP, a CIDR network or `*` for any). `X-Forwarded-For` lists the hops
left to right (client first); walking it from the right and stopping at the first address that is
not a trusted proxy yields the real client without letting it forge an address past our proxies
(the de-facto rule, also RFC 7239 §5.2's reasoning for `Forwarded`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, MutableMapping
from typing import Any

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_PROTOS = frozenset({"http", "https", "ws", "wss"})


class TrustedHosts:
    def __init__(self, trusted: str | Iterable[str]) -> None:
        items = [trusted] if isinstance(trusted, str) else list(trusted)
        entries = [part.strip() for item in items for part in item.split(",") if part.strip()]
        self.any = "*" in entries
        self.networks: list[_Network] = []
        self.literals: set[str] = set()
        for entry in entries:
            if entry == "*":
                continue
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                # Not an IP: keep it as a literal (e.g. a Unix socket peer name).
                self.literals.add(entry)

    def __contains__(self, host: object) -> bool:
        if self.any:
            return True
        if not isinstance(host, str):
            return False
        if host in self.literals:
            return True
        try:
            addr = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(addr in net for net in self.networks)

    def client_from_chain(self, chain: str) -> str | None:
        """The right-most hop that is not a trusted proxy (the left-most if all are trusted)."""
        hops = [h.strip() for h in chain.split(",") if h.strip()]
        if not hops:
            return None
        if self.any:
            return hops[0]
        for hop in reversed(hops):
            if hop not in self:
                return hop
        return hops[0]


def _last_proto(value: str) -> str | None:
    # Each proxy appends its own value; the last one was written by the proxy next to us.
    parts = [p.strip().lower() for p in value.split(",") if p.strip()]
    return parts[-1] if parts and parts[-1] in _PROTOS else None


def _ws_scheme(proto: str) -> str:
    return {"https": "wss", "http": "ws"}.get(proto, proto)


def _http_scheme(proto: str) -> str:
    return {"wss": "https", "ws": "http"}.get(proto, proto)


def wrap_asgi_with_proxy_headers(app: Any, trusted_hosts: str | Iterable[str] = "127.0.0.1") -> Any:
    """Wrap an ASGI app so `scope['client']` and `scope['scheme']` reflect trusted proxy headers."""
    trusted = TrustedHosts(trusted_hosts)

    async def proxied(scope: MutableMapping[str, Any], receive: Any, send: Any) -> Any:
        if scope.get("type") in ("http", "websocket"):
            client = scope.get("client")
            peer = client[0] if client else None
            if trusted.any or peer in trusted:
                fwd_for: list[str] = []
                proto = None
                for name, value in scope.get("headers", ()):
                    if name == b"x-forwarded-for":
                        fwd_for.append(value.decode("latin-1"))
                    elif name == b"x-forwarded-proto":
                        proto = _last_proto(value.decode("latin-1")) or proto
                scope = dict(scope)
                if proto is not None:
                    is_ws = scope["type"] == "websocket"
                    scope["scheme"] = _ws_scheme(proto) if is_ws else _http_scheme(proto)
                if fwd_for:
                    host = trusted.client_from_chain(",".join(fwd_for))
                    if host is not None:
                        # The proxy does not tell us the client's port.
                        scope["client"] = (host, 0)
        return await app(scope, receive, send)

    return proxied


def wrap_wsgi_with_proxy_headers(
    app: Callable[..., Any], trusted_hosts: str | Iterable[str] = "127.0.0.1"
) -> Callable[..., Any]:
    """Wrap a WSGI app so `REMOTE_ADDR` and `wsgi.url_scheme` reflect trusted proxy headers."""
    trusted = TrustedHosts(trusted_hosts)

    def proxied(environ: MutableMapping[str, Any], start_response: Any) -> Any:
        if trusted.any or environ.get("REMOTE_ADDR") in trusted:
            proto = environ.get("HTTP_X_FORWARDED_PROTO")
            if proto:
                scheme = _last_proto(proto)
                if scheme is not None:
                    environ["wsgi.url_scheme"] = _http_scheme(scheme)
            chain = environ.get("HTTP_X_FORWARDED_FOR")
            if chain:
                host = trusted.client_from_chain(chain)
                if host is not None:
                    environ["REMOTE_ADDR"] = host
        return app(environ, start_response)

    return proxied
