"""HTTP/2 serving (RFC 9113): the connection (`H2Protocol`) over the sans-I/O session of
granian.http2, and its streams (`H2Stream`), each the carrier of one request cycle.

`register(dispatch, opts, interface, mode)` puts HTTP/2 into a ServerContext's dispatch: h2c
with prior knowledge, ALPN `h2`, and on `--http 2` every new connection."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .protocol import H2Protocol, H2Server
from .stream import H2Stream

if TYPE_CHECKING:
    from ..config import HTTP2Config
    from ..dispatch import Dispatch

__all__ = ["H2Protocol", "H2Server", "H2Stream", "register"]


def register(dispatch: Dispatch, opts: HTTP2Config, interface: str, mode: str) -> H2Server:
    srv = H2Server(dispatch.ctx, opts, interface)
    dispatch.h2c = srv.factory
    dispatch.alpn["h2"] = srv.factory
    if mode == "2":
        dispatch.direct = srv.factory
    else:
        dispatch.upgrades[b"h2c"] = srv.upgrade_maker
    return srv
