"""Proxy headers (`--proxy-headers`, `--forwarded-allow-ips`): who the client really is when a
reverse proxy, an ingress or a load balancer stands between it and us.

Sans-I/O and stdlib-only, so every layer may use it (the worker's hot path included). Two parts:

- `TrustedProxies` parses `--forwarded-allow-ips` once (IPs, CIDRs, `*`) into a membership test
  that is a set lookup for plain IPs, a bounded cache in front of the network walk for CIDRs.
- `ProxyHeaders.resolve(peer_host, peer_port, headers)` reads `X-Forwarded-For/-Proto/-Host` or
  RFC 7239 `Forwarded` from the parser's header list (lower-cased bytes names), only when the
  peer is trusted, and returns `(client_host, client_port, scheme, host)`, or None when nothing
  changes (untrusted peer, or no forwarding header): the common case costs one set lookup, plus
  one frozenset test per header when the peer is a trusted proxy.

Trust rules (the de-facto rule of uvicorn/werkzeug for X-Forwarded-For, and RFC 7239 §5.2 /
§8.1's reasoning for `Forwarded`): each proxy appends the address it received the request from,
so the list is walked from the right, skipping hops that are trusted proxies; the first untrusted
hop is the client. Everything left of it was written by the client and is ignored, so a client
cannot forge its address past our proxies. When every hop is trusted (or with `*`) the leftmost
is the client. `-Proto` and `-Host` values are taken from the same hop, counted from the right
(a proxy that overwrites instead of appending leaves one value: then it is that proxy's).

Which family: a request carrying any `X-Forwarded-*` field is read from those only; `Forwarded`
is read only when none is present. The common ingresses (nginx, Envoy, cloud load balancers)
append to `X-Forwarded-For` and pass an unknown `Forwarded` through untouched, so preferring
`Forwarded` would let a client behind them forge it; the rarer proxy that speaks only RFC 7239
must then strip client-sent `X-Forwarded-*` (nginx: `proxy_set_header X-Forwarded-For ""`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

__all__ = [
    "ProxyHeaders",
    "TrustedProxies",
    "parse_forwarded",
    "ws_scheme",
]

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Results of the CIDR walk for the peers and hops seen. Peers repeat (the same few proxies), so
# after the first request from a proxy its test is a dict hit. Bounded: X-Forwarded-For hops are
# client-chosen and must not grow it without limit; when full it starts over (cheap, and the
# working set of real proxies refills it at once).
_CACHE_MAX = 4096

_XFF = b"x-forwarded-for"
_XFP = b"x-forwarded-proto"
_XFH = b"x-forwarded-host"
_FWD = b"forwarded"
_WANTED = frozenset({_XFF, _XFP, _XFH, _FWD})

# Schemes a proxy may report (RFC 7239 §5.4: a URI scheme). WebSocket schemes are folded into
# their HTTP twins; the caller turns them back for a websocket scope (`ws_scheme`).
_SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}

# RFC 9110 §5.6.2 tchar: the characters of a token (Forwarded parameter names and bare values).
_TCHAR = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
# RFC 3986 §3.2.2 host / §3.2.3 port characters (a forwarded Host, RFC 9110 §7.2): unreserved,
# pct-encoded, sub-delims, IP-literal brackets and the port colon. Anything else (spaces,
# quotes, slashes, controls) is not a host: such a value is ignored, never passed to the app.
_HOSTCHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~%!$&'()*+,;=:[]")
# RFC 7239 §6.3 obfuscated identifiers (`_` followed by ALPHA / DIGIT / "." / "_" / "-").
_OBFCHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")


def ws_scheme(scheme: str) -> str:
    """The WebSocket scheme matching an HTTP one (`https` -> `wss`), for websocket scopes."""
    return "wss" if scheme == "https" else "ws"


class TrustedProxies:
    """`--forwarded-allow-ips`, parsed once: comma-separated IPs and CIDRs, or `*` for everyone.

    `host in trusted` takes the peer's address as the socket reports it (a canonical IP
    string). IPv4 entries also match their IPv4-mapped IPv6 form (`::ffff:10.0.0.1`), which is
    how a dual-stack `::` listener reports IPv4 peers. Raises ValueError naming the bad entry.
    """

    __slots__ = ("everyone", "_ips", "_networks", "_cache")

    def __init__(self, spec: str | Iterable[str]) -> None:
        items = [spec] if isinstance(spec, str) else list(spec)
        entries = [part.strip() for item in items for part in item.split(",")]
        self.everyone = False
        self._ips: set[str] = set()
        self._networks: list[_Network] = []
        self._cache: dict[str, bool] = {}
        for entry in entries:
            if not entry:
                continue
            if entry == "*":
                self.everyone = True
                continue
            net = _parse_entry(entry)
            if net.num_addresses == 1:
                self._add_ip(net.network_address)
            else:
                self._networks.append(net)

    def _add_ip(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
        self._ips.add(str(ip))
        if isinstance(ip, ipaddress.IPv4Address):
            self._ips.add("::ffff:" + str(ip))
        elif ip.ipv4_mapped is not None:
            self._ips.add(str(ip.ipv4_mapped))

    @property
    def is_empty(self) -> bool:
        """True when nobody is trusted (an empty list): proxy headers can never apply."""
        return not (self.everyone or self._ips or self._networks)

    def __contains__(self, host: object) -> bool:
        if self.everyone or host in self._ips:
            return True
        if not self._networks or not isinstance(host, str):
            return False
        hit = self._cache.get(host)
        if hit is None:
            hit = self._in_networks(host)
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            self._cache[host] = hit
        return hit

    def _in_networks(self, host: str) -> bool:
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return False  # a Unix-socket peer or a non-IP hop is never a listed proxy
        candidates: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [ip]
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            candidates.append(ip.ipv4_mapped)
        return any(addr in net for addr in candidates for net in self._networks)


def _parse_entry(entry: str) -> _Network:
    text = entry[1:-1] if entry.startswith("[") and entry.endswith("]") else entry
    try:
        return ipaddress.ip_network(text)
    except ValueError:
        pass
    try:
        loose = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ValueError(f"'{entry}' is not an IP address, a CIDR network or '*'") from None
    # `10.0.0.1/8`: probably meant 10.0.0.0/8, but a typo in a trust list must not widen it
    # silently (Python's ipaddress strict mode, the same call uvicorn's docs ask for).
    raise ValueError(f"'{entry}' has host bits set (did you mean '{loose}'?)")


# ----------------------------------------------------------------------------------------------
# Node and list parsing.


def _split_list(values: list[bytes]) -> list[str]:
    # Several field lines of one name form one comma-separated list, in order (RFC 9110 §5.3);
    # empty elements are allowed and skipped (RFC 9110 §5.6.1). Latin-1 keeps every byte.
    out: list[str] = []
    for value in values:
        for part in value.decode("latin-1").split(","):
            part = part.strip(" \t")
            if part:
                out.append(part)
    return out


def _node(text: str) -> tuple[str, int | None] | None:
    """(host, port) of one hop: an IP (IPv6 in brackets when it has a port), with an optional
    port; or RFC 7239 §6 `unknown` / an obfuscated `_name`. None when it is neither."""
    port: int | None = None
    host = text
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            return None
        host, rest = text[1:close], text[close + 1 :]
        if rest:
            if not rest.startswith(":"):
                return None
            port = _port(rest[1:])
            if port is None and not _obfuscated(rest[1:]):
                return None
    elif text.count(":") == 1:  # IPv4 (or a name) with a port; bare IPv6 has several colons
        host, _, rest = text.partition(":")
        port = _port(rest)
        if port is None and not _obfuscated(rest):
            return None
    try:
        return str(ipaddress.ip_address(host)), port
    except ValueError:
        pass
    if host == "unknown" or _obfuscated(host):
        return host, None
    return None


def _port(text: str) -> int | None:
    # RFC 7239 §6: node-port = port / obfport; port = 1*5DIGIT.
    if 1 <= len(text) <= 5 and text.isdigit() and text.isascii():
        value = int(text)
        return value if value <= 65535 else None
    return None


def _obfuscated(text: str) -> bool:
    return len(text) > 1 and text[0] == "_" and _OBFCHARS.issuperset(text)


def _scheme(text: str | None) -> str | None:
    return None if text is None else _SCHEMES.get(text.strip().lower())


def _host(text: str | None) -> str | None:
    if not text or not _HOSTCHARS.issuperset(text):
        return None
    return text


def parse_forwarded(values: list[bytes]) -> list[dict[str, str]] | None:
    """RFC 7239 §4: the `Forwarded` field lines, in order, as one list of elements, each a dict
    of lower-cased parameter names to (unquoted) values. None when malformed: a parameter twice
    in one element, a bad token, an unterminated quoted-string. RFC 7239 gives no recovery, and
    half a list cannot be trusted, so the caller ignores the field as a whole."""
    elements: list[dict[str, str]] = []
    for value in values:
        text = value.decode("latin-1")
        n = len(text)
        i = 0
        element: dict[str, str] = {}
        while True:
            while i < n and text[i] in " \t":
                i += 1
            if i >= n or text[i] in ",;":
                # An empty pair (`;;`, `a=b;`) or an empty list element (`, ,`) is allowed.
                pass
            else:
                start = i
                while i < n and text[i] in _TCHAR:
                    i += 1
                name = text[start:i].lower()
                if not name or i >= n or text[i] != "=":
                    return None
                i += 1
                if i < n and text[i] == '"':
                    # quoted-string (RFC 9110 §5.6.4), with quoted-pair escapes.
                    i += 1
                    chars: list[str] = []
                    while True:
                        if i >= n:
                            return None
                        c = text[i]
                        if c == '"':
                            i += 1
                            break
                        if c == "\\":
                            i += 1
                            if i >= n:
                                return None
                            c = text[i]
                        chars.append(c)
                        i += 1
                    val = "".join(chars)
                else:
                    start = i
                    while i < n and text[i] in _TCHAR:
                        i += 1
                    val = text[start:i]
                    if not val:
                        return None
                if name in element:
                    return None  # RFC 7239 §4: each parameter at most once per element
                element[name] = val
                while i < n and text[i] in " \t":
                    i += 1
            if i >= n:
                if element:
                    elements.append(element)
                break
            sep = text[i]
            if sep == ",":
                if element:
                    elements.append(element)
                element = {}
            elif sep != ";":
                return None
            i += 1
    return elements


# ----------------------------------------------------------------------------------------------
# The resolver.

Forwarded = tuple[str | None, int | None, str | None, str | None]


class ProxyHeaders:
    """Resolves the client behind trusted proxies (see the module docstring for the rules).

    Build once per worker from `--forwarded-allow-ips`; `resolve` is called per request when
    `--proxy-headers` is on.
    """

    __slots__ = ("trusted",)

    def __init__(self, forwarded_allow_ips: str | Iterable[str]) -> None:
        self.trusted = TrustedProxies(forwarded_allow_ips)

    def resolve(
        self, peer_host: str | None, peer_port: int | None, headers: Iterable[tuple[bytes, bytes]]
    ) -> tuple[str | None, int | None, str | None, str | None] | None:
        """`(client_host, client_port, scheme, host)` for a request from `peer_host` whose parsed
        header list is `headers`, or None when nothing changes (the peer is not a trusted
        proxy, or it sent no forwarding field, or none that could be used).

        - `client_host`/`client_port`: the client; the peer's own when the fields name no
          usable client; `client_port` is None when the proxy did not say (X-Forwarded-For
          rarely carries one: ASGI servers put 0 there).
        - `scheme`: `http` or `https` (ws/wss folded in; see `ws_scheme`), None = unchanged.
        - `host`: the Host the client asked for (`name[:port]`), None = unchanged.
        """
        if peer_host not in self.trusted:
            return None
        xff: list[bytes] | None = None
        xfp: list[bytes] | None = None
        xfh: list[bytes] | None = None
        fwd: list[bytes] | None = None
        for name, value in headers:
            if name in _WANTED:
                if name == _XFF:
                    xff = [value] if xff is None else [*xff, value]
                elif name == _XFP:
                    xfp = [value] if xfp is None else [*xfp, value]
                elif name == _XFH:
                    xfh = [value] if xfh is None else [*xfh, value]
                else:
                    fwd = [value] if fwd is None else [*fwd, value]
        if xff is not None or xfp is not None or xfh is not None:
            result = self._legacy(xff, xfp, xfh)
        elif fwd is not None:
            result = self._rfc7239(fwd)
        else:
            return None
        if result is None:
            return None
        client, port, scheme, host = result
        if client is None:
            client, port = peer_host, peer_port
        if client == peer_host and port == peer_port and scheme is None and host is None:
            return None
        return client, port, scheme, host

    def _walk(self, hosts: list[str | None]) -> int:
        """Index of the client among the hops (left to right): the rightmost untrusted one, or
        the leftmost when all are trusted. A hop that is not a node (None) is untrusted."""
        trusted = self.trusted
        if trusted.everyone:
            return 0
        for i in range(len(hosts) - 1, -1, -1):
            host = hosts[i]
            if host is None or host not in trusted:
                return i
        return 0

    def _legacy(
        self, xff: list[bytes] | None, xfp: list[bytes] | None, xfh: list[bytes] | None
    ) -> Forwarded | None:
        client: str | None = None
        port: int | None = None
        from_right = 0
        if xff is not None:
            hops = _split_list(xff)
            if hops:
                nodes = [_node(h) for h in hops]
                index = self._walk([None if n is None else n[0] for n in nodes])
                from_right = len(hops) - 1 - index
                chosen = nodes[index]
                if chosen is not None:
                    client, port = chosen
        scheme = _scheme(_pick(xfp, from_right))
        host = _host(_pick(xfh, from_right))
        if client is None and scheme is None and host is None:
            return None
        return client, port, scheme, host

    def _rfc7239(self, fwd: list[bytes]) -> Forwarded | None:
        elements = parse_forwarded(fwd)
        if not elements:
            return None
        nodes = [_node(e["for"]) if "for" in e else None for e in elements]
        index = self._walk([None if n is None else n[0] for n in nodes])
        chosen = nodes[index]
        client, port = (None, None) if chosen is None else chosen
        element = elements[index]
        scheme = _scheme(element.get("proto"))
        host = _host(element.get("host"))
        if client is None and scheme is None and host is None:
            return None
        return client, port, scheme, host


def _pick(values: list[bytes] | None, from_right: int) -> str | None:
    """The value written by the same hop as the client's address: `from_right` places from the
    right, or the leftmost present when the list is shorter (proxies that overwrite)."""
    if values is None:
        return None
    items = _split_list(values)
    if not items:
        return None
    return items[max(0, len(items) - 1 - from_right)]
