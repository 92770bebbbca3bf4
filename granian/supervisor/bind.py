"""Create the one listening socket the master shares with every worker (bound before fork).

The master binds exactly once so `--port 0` resolves to one port that every worker serves, and so
that a busy address is reported once, at start-up, as an error. SO_REUSEADDR lets a restart bind
while old connections sit in TIME_WAIT (RFC 9293 §3.6.1, the usual server habit); SO_REUSEPORT is
deliberately never set: it would let a second server silently share the port with us.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
from dataclasses import dataclass


class BindError(OSError):
    """The address could not be bound or listened on; the message names the address."""


@dataclass(frozen=True)
class Listener:
    sock: socket.socket
    # What the user connects to, e.g. `http://127.0.0.1:8000` or `unix:/run/app.sock`.
    display: str
    uds_path: str | None = None

    def close(self) -> None:
        self.sock.close()


def _tcp_display(host: str, port: int, scheme: str) -> str:
    # RFC 3986 §3.2.2: an IPv6 literal in a URI is written inside brackets.
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}:{port}"


def bind_tcp(host: str, port: int, backlog: int, scheme: str = "http") -> Listener:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            # An explicit IPv6 address means IPv6 only; `::` must not also grab the IPv4 port,
            # or a second server on 0.0.0.0 would fail for a reason the user did not ask for.
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        where = _tcp_display(host, port, scheme)
        raise BindError(exc.errno, f"cannot listen at {where}: {exc.strerror or exc}") from exc
    bound_port = sock.getsockname()[1]
    return Listener(sock, _tcp_display(host, bound_port, scheme))


def _remove_stale_uds(path: str) -> None:
    """Unlink a socket file left behind by a dead server; refuse one a live server answers on."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise BindError(errno.EEXIST, f"cannot listen at unix:{path}: exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        os.unlink(path)
        return
    except OSError:
        return
    finally:
        probe.close()
    raise BindError(errno.EADDRINUSE, f"cannot listen at unix:{path}: another server is listening on it")


def bind_uds(path: str, backlog: int, permissions: int | None = None) -> Listener:
    _remove_stale_uds(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        if permissions is not None:
            os.chmod(path, permissions)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise BindError(exc.errno, f"cannot listen at unix:{path}: {exc.strerror or exc}") from exc
    return Listener(sock, f"unix:{path}", uds_path=path)


def unlink_uds(listener: Listener) -> None:
    if listener.uds_path is None:
        return
    try:
        os.unlink(listener.uds_path)
    except FileNotFoundError:
        pass
