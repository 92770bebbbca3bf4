"""granian.proxy: --forwarded-allow-ips parsing and the client/scheme/host a request gets from
X-Forwarded-* and RFC 7239 Forwarded behind trusted proxies (the walk from the right)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from granian.proxy import ProxyHeaders, TrustedProxies, parse_forwarded, ws_scheme

Headers = list[tuple[bytes, bytes]]


def h(*pairs: tuple[str, str]) -> Headers:
    return [(n.encode(), v.encode("latin-1")) for n, v in pairs]


# ---------------------------------------------------------------- TrustedProxies


@pytest.mark.parametrize(
    ("spec", "host", "trusted"),
    [
        ("127.0.0.1", "127.0.0.1", True),
        ("127.0.0.1", "127.0.0.2", False),
        ("10.0.0.0/8", "10.200.3.4", True),
        ("10.0.0.0/8", "11.0.0.1", False),
        ("10.0.0.0/8, 192.168.1.7", "192.168.1.7", True),
        ("::1", "::1", True),
        ("[::1]", "::1", True),
        ("2001:db8::/32", "2001:db8::5", True),
        ("2001:db8::/32", "2001:db9::5", False),
        ("10.0.0.7", "::ffff:10.0.0.7", True),  # dual-stack listener reporting an IPv4 peer
        ("10.0.0.0/8", "::ffff:10.1.2.3", True),
        ("::ffff:10.0.0.7", "10.0.0.7", True),
        ("10.0.0.5/32", "10.0.0.5", True),
        ("*", "203.0.113.9", True),
        ("*", "not-an-ip", True),
        ("10.0.0.0/8", "not-an-ip", False),
        ("", "127.0.0.1", False),
    ],
)
def test_trust_matching(spec: str, host: str, trusted: bool) -> None:
    assert (host in TrustedProxies(spec)) is trusted


def test_trust_list_forms_and_empty() -> None:
    assert "10.0.0.1" in TrustedProxies(["10.0.0.1", "10.0.0.2, 10.0.0.3"])
    assert "10.0.0.3" in TrustedProxies(["10.0.0.1", "10.0.0.2, 10.0.0.3"])
    assert TrustedProxies(" , ").is_empty and not TrustedProxies("*").is_empty
    assert None not in TrustedProxies("127.0.0.1")  # a Unix-socket peer has no address
    assert None in TrustedProxies("*")


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("10.0.0.0/33", "'10.0.0.0/33' is not an IP address, a CIDR network or '*'"),
        ("localhost", "'localhost' is not an IP"),
        ("10.0.0.1/8", "did you mean '10.0.0.0/8'?"),
        ("127.0.0.1, 1.2.3", "'1.2.3'"),
    ],
)
def test_bad_entries_are_refused(spec: str, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        TrustedProxies(spec)
    assert fragment in str(info.value)


def test_network_cache_stays_bounded_and_correct() -> None:
    from granian import proxy

    trust = TrustedProxies("10.0.0.0/8")
    for i in range(proxy._CACHE_MAX + 50):
        host = str(ipaddress.ip_address(0x0B000000 + i))  # 11.x.y.z: outside the network
        assert host not in trust
    assert len(trust._cache) <= proxy._CACHE_MAX
    assert "10.9.9.9" in trust and "10.9.9.9" in trust  # second answer from the cache


@given(st.ip_addresses(v=4), st.integers(min_value=8, max_value=32))
def test_cidr_membership_agrees_with_ipaddress(ip: ipaddress.IPv4Address, bits: int) -> None:
    net = ipaddress.ip_network(f"{ip}/{bits}", strict=False)
    trust = TrustedProxies(str(net))
    probe = ipaddress.ip_address(int(ip) ^ 1)
    assert (str(ip) in trust) is True
    assert (str(probe) in trust) is (probe in net)


# ---------------------------------------------------------------- X-Forwarded-*


LOCAL = ProxyHeaders("127.0.0.1")
CHAIN = ProxyHeaders("127.0.0.1, 10.0.0.0/8")


def test_untrusted_peer_changes_nothing() -> None:
    fwd = h(("x-forwarded-for", "203.0.113.7"), ("x-forwarded-proto", "https"))
    assert LOCAL.resolve("198.51.100.1", 5000, fwd) is None


def test_trusted_peer_without_forwarding_fields_changes_nothing() -> None:
    assert LOCAL.resolve("127.0.0.1", 5000, h(("host", "example.com"), ("accept", "*/*"))) is None
    assert LOCAL.resolve("127.0.0.1", 5000, []) is None


def test_single_proxy() -> None:
    fwd = h(
        ("x-forwarded-for", "203.0.113.7"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "shop.example:8443"),
    )
    assert LOCAL.resolve("127.0.0.1", 5000, fwd) == ("203.0.113.7", None, "https", "shop.example:8443")


def test_rightmost_untrusted_hop_is_the_client() -> None:
    # The client sent "1.2.3.4" itself; the ingress appended the address it saw (203.0.113.7),
    # an inner proxy appended the ingress (10.0.0.2).
    fwd = h(("x-forwarded-for", "1.2.3.4, 203.0.113.7, 10.0.0.2"))
    assert CHAIN.resolve("10.0.0.3", 41000, fwd) == ("203.0.113.7", None, None, None)
    # With only the peer trusted, 10.0.0.2 is the client.
    assert ProxyHeaders("10.0.0.3").resolve("10.0.0.3", 1, fwd) == ("10.0.0.2", None, None, None)


def test_all_hops_trusted_takes_the_leftmost_and_star_too() -> None:
    fwd = h(("x-forwarded-for", "10.1.1.1, 10.2.2.2"))
    assert CHAIN.resolve("127.0.0.1", 1, fwd) == ("10.1.1.1", None, None, None)
    fwd = h(("x-forwarded-for", "198.51.100.4, 203.0.113.7"))
    assert ProxyHeaders("*").resolve("192.0.2.1", 1, fwd) == ("198.51.100.4", None, None, None)


def test_repeated_field_lines_form_one_list() -> None:
    fwd = h(("x-forwarded-for", "1.2.3.4"), ("x-forwarded-for", "203.0.113.7, 10.0.0.2"))
    assert CHAIN.resolve("127.0.0.1", 1, fwd) == ("203.0.113.7", None, None, None)


def test_proto_and_host_from_the_clients_hop() -> None:
    # Two appending proxies: the outer one saw https from the client, the inner one http.
    fwd = h(
        ("x-forwarded-for", "203.0.113.7, 10.0.0.2"),
        ("x-forwarded-proto", "https, http"),
        ("x-forwarded-host", "www.example, internal:8000"),
    )
    assert CHAIN.resolve("10.0.0.3", 1, fwd) == ("203.0.113.7", None, "https", "www.example")
    # A proxy that overwrites leaves one value: that proxy's.
    fwd = h(("x-forwarded-for", "203.0.113.7, 10.0.0.2"), ("x-forwarded-proto", "https"))
    assert CHAIN.resolve("10.0.0.3", 1, fwd) == ("203.0.113.7", None, "https", None)


def test_client_forged_proto_left_of_the_proxy_value_is_ignored() -> None:
    fwd = h(("x-forwarded-for", "203.0.113.7"), ("x-forwarded-proto", "https, http"))
    assert LOCAL.resolve("127.0.0.1", 1, fwd) == ("203.0.113.7", None, "http", None)


def test_proto_only_keeps_the_peer_as_client() -> None:
    assert LOCAL.resolve("127.0.0.1", 5000, h(("x-forwarded-proto", "HTTPS"))) == (
        "127.0.0.1",
        5000,
        "https",
        None,
    )


@pytest.mark.parametrize(("proto", "scheme"), [("wss", "https"), ("ws", "http"), ("gopher", None)])
def test_scheme_values(proto: str, scheme: str | None) -> None:
    got = LOCAL.resolve("127.0.0.1", 1, h(("x-forwarded-proto", proto)))
    assert (got[2] if got else None) == scheme
    assert ws_scheme("https") == "wss" and ws_scheme("http") == "ws"


@pytest.mark.parametrize(
    ("hop", "client"),
    [
        ("203.0.113.7:4711", ("203.0.113.7", 4711)),
        ("[2001:db8::17]:4711", ("2001:db8::17", 4711)),
        ("2001:DB8::17", ("2001:db8::17", None)),  # canonical form for the app and the log
        ("unknown", ("unknown", None)),
        ("_hidden", ("_hidden", None)),
    ],
)
def test_hop_forms(hop: str, client: tuple[str, int | None]) -> None:
    assert LOCAL.resolve("127.0.0.1", 1, h(("x-forwarded-for", hop))) == (*client, None, None)


@pytest.mark.parametrize("hop", ["not an address", "203.0.113.7:99999", "[::1", "[::1]x", "1.2.3.4:ab"])
def test_malformed_client_hop_is_not_used(hop: str) -> None:
    assert LOCAL.resolve("127.0.0.1", 1, h(("x-forwarded-for", hop))) is None


@pytest.mark.parametrize("value", ["a b", "evil/path", 'q"uote', "x\x00y", ""])
def test_bad_forwarded_host_is_ignored(value: str) -> None:
    got = LOCAL.resolve("127.0.0.1", 1, h(("x-forwarded-for", "203.0.113.7"), ("x-forwarded-host", value)))
    assert got == ("203.0.113.7", None, None, None)


def test_x_forwarded_family_wins_over_forwarded() -> None:
    # A client behind an X-Forwarded-For proxy can send its own Forwarded: it must not count.
    fwd = h(("forwarded", "for=6.6.6.6;proto=https"), ("x-forwarded-for", "203.0.113.7"))
    assert LOCAL.resolve("127.0.0.1", 1, fwd) == ("203.0.113.7", None, None, None)


# ---------------------------------------------------------------- RFC 7239 Forwarded


def test_forwarded_rfc_examples() -> None:
    # RFC 7239 §4 / §7.1 examples.
    fwd = h(("forwarded", 'for="_gazonk"'))
    assert LOCAL.resolve("127.0.0.1", 1, fwd) == ("_gazonk", None, None, None)
    fwd = h(("forwarded", 'For="[2001:db8:cafe::17]:4711"'))
    assert LOCAL.resolve("127.0.0.1", 1, fwd) == ("2001:db8:cafe::17", 4711, None, None)
    fwd = h(("forwarded", "for=192.0.2.60;proto=http;by=203.0.113.43"))
    assert LOCAL.resolve("127.0.0.1", 1, fwd) == ("192.0.2.60", None, "http", None)
    fwd = h(("forwarded", "for=192.0.2.43, for=198.51.100.17"))
    assert ProxyHeaders("*").resolve("127.0.0.1", 1, fwd) == ("192.0.2.43", None, None, None)
    assert LOCAL.resolve("127.0.0.1", 1, fwd) == ("198.51.100.17", None, None, None)


def test_forwarded_walk_takes_proto_and_host_of_the_clients_element() -> None:
    fwd = h(
        ("forwarded", 'for=1.2.3.4;proto=http, for=203.0.113.7;proto=https;host="shop.example"'),
        ("forwarded", "for=10.0.0.2;proto=http;host=internal"),
    )
    assert CHAIN.resolve("10.0.0.3", 1, fwd) == ("203.0.113.7", None, "https", "shop.example")


def test_forwarded_element_without_for_keeps_the_peer() -> None:
    assert LOCAL.resolve("127.0.0.1", 9, h(("forwarded", "proto=https;host=a.example"))) == (
        "127.0.0.1",
        9,
        "https",
        "a.example",
    )


@pytest.mark.parametrize(
    "value",
    [
        "for=1.2.3.4;for=5.6.7.8",  # a parameter twice in one element (RFC 7239 §4)
        'for="1.2.3.4',  # unterminated quoted-string
        "for",  # no '='
        "for=",  # no value
        "for=1.2.3.4 proto=http",  # missing ';'
        "f@r=1.2.3.4",  # not a token
    ],
)
def test_malformed_forwarded_is_ignored_whole(value: str) -> None:
    assert parse_forwarded([value.encode()]) is None
    assert LOCAL.resolve("127.0.0.1", 1, h(("forwarded", value))) is None


def test_parse_forwarded_structure() -> None:
    got = parse_forwarded([b'for="[::1]:80";Proto=HTTPS , ,for=_x;host="a\\"b"', b"by=10.0.0.1;"])
    assert got == [{"for": "[::1]:80", "proto": "HTTPS"}, {"for": "_x", "host": 'a"b'}, {"by": "10.0.0.1"}]


@given(
    st.lists(st.ip_addresses(v=4).map(str), min_size=1, max_size=6),
    st.lists(st.booleans(), min_size=6, max_size=6),
)
def test_walk_matches_the_definition(hops: list[str], trusted_flags: list[bool]) -> None:
    # Build a trust list from the flags; the answer must be the rightmost untrusted hop, or the
    # leftmost when all are trusted, for X-Forwarded-For and Forwarded alike.
    listed = [hop for hop, flag in zip(hops, trusted_flags, strict=False) if flag]
    resolver = ProxyHeaders(["127.0.0.1", *listed])
    untrusted = [hop for hop in hops if hop not in {"127.0.0.1", *listed}]
    expected = untrusted[-1] if untrusted else hops[0]
    xff = h(("x-forwarded-for", ", ".join(hops)))
    fwd = h(("forwarded", ", ".join(f"for={hop}" for hop in hops)))
    for headers in (xff, fwd):
        got = resolver.resolve("127.0.0.1", 1, headers)
        assert got is not None and got[0] == expected
