"""permessage-deflate (RFC 7692): offer negotiation and the per-connection (de)compressor.

`negotiate(header_values, config)` reads the client's `Sec-WebSocket-Extensions` offers and
returns the response header value with a fresh `PerMessageDeflate` for the first offer we can
accept, or None (no compression: declining is always allowed, RFC 7692 5). The zlib objects are
created on first use, so an idle connection holds none.
"""

from __future__ import annotations

import re
import sys
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

__all__ = [
    "DeflateConfig",
    "InflateError",
    "PerMessageDeflate",
    "negotiate",
    "parse_extensions",
]

#: The empty stored block a sync flush ends with; removed by the sender and appended by the
#: receiver (RFC 7692 7.2.1, 7.2.2).
TAIL: Final[bytes] = b"\x00\x00\xff\xff"
#: Window sizes an offer may name: 8..15 bits, decimal without leading zeros (7.1.2.1, 7.1.2.2).
_WINDOW_BITS: Final[frozenset[str]] = frozenset(str(n) for n in range(8, 16))
#: zlib refuses an 8-bit window for raw deflate (deflateInit2). Its compressor never emits a
#: distance over MAX_DIST = window - MIN_LOOKAHEAD (262), 250 bytes for a 9-bit window, so a
#: 9-bit compressor's output fits a peer that asked for 8 (tested in test_ws_deflate.py).
_MIN_ZLIB_BITS: Final[int] = 9
_MAX_OUT: Final[int] = sys.maxsize - 1

_TOKEN: Final = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_OWS: Final = re.compile(rb"[ \t]*")
# quoted-string (RFC 9110 5.6.4): qdtext and quoted-pair
_QUOTED: Final = re.compile(rb'"((?:[\t !\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*)"')
_QUOTED_PAIR: Final = re.compile(rb"\\(.)", re.S)

Params = list[tuple[str, "str | None"]]


def parse_extensions(value: bytes) -> list[tuple[str, Params]]:
    """`Sec-WebSocket-Extensions` (RFC 6455 9.1) as [(extension, [(param, value or None)])].

    Empty list elements are skipped (RFC 9110 5.6.1); a quoted value is unescaped and must then
    be a token (RFC 6455 9.1). Raises ValueError on a syntax error."""
    result: list[tuple[str, Params]] = []
    n = len(value)
    pos = 0
    while True:
        # skip OWS and empty elements
        while True:
            pos = _OWS.match(value, pos).end()  # type: ignore[union-attr]
            if pos < n and value[pos] == 0x2C:
                pos += 1
                continue
            break
        if pos == n:
            return result
        m = _TOKEN.match(value, pos)
        if m is None:
            raise ValueError(f"extension name expected at {pos}")
        name = m.group().decode("ascii")
        pos = m.end()
        params: Params = []
        while True:
            pos = _OWS.match(value, pos).end()  # type: ignore[union-attr]
            if pos == n or value[pos] != 0x3B:  # ';'
                break
            pos = _OWS.match(value, pos + 1).end()  # type: ignore[union-attr]
            m = _TOKEN.match(value, pos)
            if m is None:
                raise ValueError(f"parameter name expected at {pos}")
            pname = m.group().decode("ascii")
            pos = _OWS.match(value, m.end()).end()  # type: ignore[union-attr]
            pvalue: str | None = None
            if pos < n and value[pos] == 0x3D:  # '='
                pos = _OWS.match(value, pos + 1).end()  # type: ignore[union-attr]
                if pos < n and value[pos] == 0x22:  # '"'
                    q = _QUOTED.match(value, pos)
                    if q is None:
                        raise ValueError(f"bad quoted string at {pos}")
                    raw = _QUOTED_PAIR.sub(rb"\1", q.group(1))
                    if _TOKEN.fullmatch(raw) is None:
                        raise ValueError(f"quoted value is not a token at {pos}")
                    pos = q.end()
                else:
                    t = _TOKEN.match(value, pos)
                    if t is None:
                        raise ValueError(f"parameter value expected at {pos}")
                    raw = t.group()
                    pos = t.end()
                pvalue = raw.decode("ascii")
            params.append((pname, pvalue))
        result.append((name, params))
        pos = _OWS.match(value, pos).end()  # type: ignore[union-attr]
        if pos == n:
            return result
        if value[pos] != 0x2C:
            raise ValueError(f"',' expected at {pos}")
        pos += 1


@dataclass(frozen=True)
class DeflateConfig:
    """What the server is willing to do. The defaults accept any valid offer as it is
    (uvicorn's and websockets' behaviour) with zlib's default level."""

    #: the largest window the server compresses with (it says so when below 15, 7.1.2.1)
    server_max_window_bits: int = 15
    #: when set and the client offered `client_max_window_bits`, ask it for at most this (7.1.2.2)
    client_max_window_bits: int | None = None
    #: reset the compressor after every message even if the client did not ask (7.1.1.1)
    server_no_context_takeover: bool = False
    #: ask the client to reset its compressor after every message (7.1.1.2)
    client_no_context_takeover: bool = False
    level: int = zlib.Z_DEFAULT_COMPRESSION
    mem_level: int = 8

    def __post_init__(self) -> None:
        if not 8 <= self.server_max_window_bits <= 15:
            raise ValueError("server_max_window_bits must be 8..15")
        if self.client_max_window_bits is not None and not 8 <= self.client_max_window_bits <= 15:
            raise ValueError("client_max_window_bits must be 8..15")
        if not -1 <= self.level <= 9:
            raise ValueError("level must be -1..9")
        if not 1 <= self.mem_level <= 9:
            raise ValueError("mem_level must be 1..9")


class InflateError(Exception):
    """A compressed message could not be accepted: `code` 1009 when it inflates past the
    message size bound, 1007 when it is not valid deflate data."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class PerMessageDeflate:
    """The negotiated parameters and this connection's zlib objects (created on first use)."""

    __slots__ = (
        "_deflater",
        "_flush",
        "_inflater",
        "client_max_window_bits",
        "client_no_context_takeover",
        "level",
        "mem_level",
        "response",
        "server_max_window_bits",
        "server_no_context_takeover",
    )

    def __init__(
        self,
        *,
        server_no_context_takeover: bool = False,
        client_no_context_takeover: bool = False,
        server_max_window_bits: int = 15,
        client_max_window_bits: int = 15,
        level: int = zlib.Z_DEFAULT_COMPRESSION,
        mem_level: int = 8,
        response: bytes = b"permessage-deflate",
    ) -> None:
        self.server_no_context_takeover = server_no_context_takeover
        self.client_no_context_takeover = client_no_context_takeover
        self.server_max_window_bits = server_max_window_bits
        self.client_max_window_bits = client_max_window_bits
        self.level = level
        self.mem_level = mem_level
        self.response = response
        self._deflater: zlib._Compress | None = None
        self._inflater: zlib._Decompress | None = None
        # A full flush ends the message like a sync flush and also drops the compressor's
        # history, so no later message refers back past it: no context takeover without a
        # new compressor (256 KiB of zlib state) per message.
        self._flush = zlib.Z_FULL_FLUSH if server_no_context_takeover else zlib.Z_SYNC_FLUSH

    def compress(self, data: bytes) -> bytes:
        """One message's payload, compressed for a frame with RSV1 set (7.2.1)."""
        c = self._deflater
        if c is None:
            bits = max(self.server_max_window_bits, _MIN_ZLIB_BITS)
            c = self._deflater = zlib.compressobj(self.level, zlib.DEFLATED, -bits, self.mem_level)
        out = c.compress(data) + c.flush(self._flush)
        if out.endswith(TAIL):
            out = out[:-4]
        return out

    def decompress(self, data: bytes, limit: int, final: bool) -> bytes:
        """Inflate one piece of a compressed message; `final` on its last piece (the tail is
        then appended, 7.2.2). At most `limit` bytes come out: more is InflateError(1009),
        raised before the rest is inflated, so a zip bomb costs no memory."""
        d = self._inflater
        if d is None:
            d = self._inflater = zlib.decompressobj(-self.client_max_window_bits)
        if limit >= _MAX_OUT:
            limit = _MAX_OUT  # zlib's max_length is a Py_ssize_t
        try:
            out = d.decompress(data, limit + 1) if data else b""
            if len(out) > limit:
                raise InflateError(1009, "message too big")
            if final:
                if not d.eof:
                    out += d.decompress(TAIL, limit + 1 - len(out))
                    if len(out) > limit:
                        raise InflateError(1009, "message too big")
                # a peer that resets its context (or ended the deflate stream with BFINAL,
                # 7.2.3.4) starts the next message from an empty window
                if self.client_no_context_takeover or d.eof:
                    self._inflater = None
        except zlib.error as exc:
            raise InflateError(1007, "invalid compressed data") from exc
        return out


def _window_bits(value: str | None) -> int | None:
    return int(value) if value in _WINDOW_BITS else None


def _accept(params: Params, config: DeflateConfig) -> PerMessageDeflate | None:
    """The response to one permessage-deflate offer, or None to decline it (7: an unknown,
    repeated or invalid parameter declines the offer)."""
    seen: set[str] = set()
    server_nct = client_nct = False
    server_bits: int | None = None
    client_bits: int | bool | None = None  # True: offered without a value
    for name, value in params:
        name = name.lower()
        if name in seen:
            return None
        seen.add(name)
        if name == "server_no_context_takeover":
            if value is not None:
                return None
            server_nct = True
        elif name == "client_no_context_takeover":
            if value is not None:
                return None
            client_nct = True
        elif name == "server_max_window_bits":
            server_bits = _window_bits(value)
            if server_bits is None:
                return None
        elif name == "client_max_window_bits":
            if value is None:
                client_bits = True
            else:
                client_bits = _window_bits(value)
                if client_bits is None:
                    return None
        else:
            return None
    server_nct = server_nct or config.server_no_context_takeover
    client_nct = client_nct or config.client_no_context_takeover
    parts = ["permessage-deflate"]
    if server_nct:
        parts.append("server_no_context_takeover")  # MUST be echoed when offered (7.1.1.1)
    if client_nct:
        parts.append("client_no_context_takeover")
    bits = min(server_bits or 15, config.server_max_window_bits)
    if server_bits is not None or bits < 15:
        # MUST be answered, with no more than offered, when offered (7.1.2.1)
        parts.append(f"server_max_window_bits={bits}")
    inflate_bits = 15  # absent from the response, the client may use 15 bits (7.1.2.2)
    if client_bits is not None and config.client_max_window_bits is not None:
        inflate_bits = config.client_max_window_bits
        if client_bits is not True:
            inflate_bits = min(inflate_bits, int(client_bits))
        parts.append(f"client_max_window_bits={inflate_bits}")
    return PerMessageDeflate(
        server_no_context_takeover=server_nct,
        client_no_context_takeover=client_nct,
        server_max_window_bits=bits,
        client_max_window_bits=inflate_bits,
        level=config.level,
        mem_level=config.mem_level,
        response="; ".join(parts).encode("ascii"),
    )


_DEFAULT: Final = DeflateConfig()


def negotiate(
    header_values: Iterable[bytes], config: DeflateConfig = _DEFAULT
) -> tuple[bytes, PerMessageDeflate] | None:
    """Accept the first permessage-deflate offer in the `Sec-WebSocket-Extensions` header
    values that we can: (response header value, per-connection state), or None. A header that
    does not parse declines every offer in it (the handshake itself goes on uncompressed)."""
    values = [v for v in header_values if v]
    if not values:
        return None
    try:
        offers = parse_extensions(b", ".join(values))
    except ValueError:
        return None
    for name, params in offers:
        if name.lower() != "permessage-deflate":
            continue
        pmd = _accept(params, config)
        if pmd is not None:
            return pmd.response, pmd
    return None
