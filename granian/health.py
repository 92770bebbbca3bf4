"""Health paths (`--health-path`, CLI.md "Health"): answered by the worker itself, before static
files and the app.

Sans-I/O: this module holds the per-worker state (serving -> draining) and the answers as bytes,
so the connection only looks the request path up in `Health.routes` (one dict lookup, on the
path bytes the parser already sliced out: an empty dict when no health path is set) and, on a
hit, writes what `Health.http1()` returns.

- GET and HEAD: `200 ok` while serving, `503 draining` from `start_draining()` (the moment a
  graceful stop is requested) until the worker exits. HEAD gets the same head, no body
  (RFC 9110 §9.3.2).
- Any other method: `405` with `allow: GET, HEAD` (RFC 9110 §15.5.6): the path belongs to the
  server, not the app.
- `cache-control: no-store` (RFC 9111 §5.2.2.5): a cache between the probe and us must never
  answer for us, least of all with a stale 200 while we drain.
- `content-type: text/plain; charset=utf-8`, `content-length`, `server` and `date` (RFC 9110
  §6.6.1: an origin server with a clock sends `date`), and the connection framing of the
  request: `connection: close` when the caller says the connection ends (the client asked, or
  the worker is draining and this is its last response), `connection: keep-alive` for a
  persistent HTTP/1.0 exchange (RFC 9112 §9.3), nothing for a persistent HTTP/1.1 one.

The answers are rendered once per `date` second and kept, so a probe costs a dict lookup and a
write. One `Health` serves all loop threads of a worker (`--threads`): `draining` is a plain
attribute, set once, read by every loop.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from .http1.response import SERVER_NAME, http_date

__all__ = ["Health", "HealthView"]

_OK = b"ok"
_DRAINING = b"draining"
_NOT_ALLOWED = b"method not allowed"

# Method -> answer kind (0 GET, 1 HEAD, 2 anything else), for bytes from the parser and str
# from a cycle.
_KIND: dict[bytes | str, int] = {b"GET": 0, "GET": 0, b"HEAD": 1, "HEAD": 1}

# Connection framing (index): 0 close, 1 persistent HTTP/1.1, 2 persistent HTTP/1.0.
_CONN_LINES = (b"connection: close\r\n", b"", b"connection: keep-alive\r\n")

_COMMON = [
    (b"content-type", b"text/plain; charset=utf-8"),
    (b"cache-control", b"no-store"),
]


def _fields(status: int) -> tuple[list[tuple[bytes, bytes]], bytes]:
    if status == 405:
        return [*_COMMON, (b"allow", b"GET, HEAD")], _NOT_ALLOWED
    return list(_COMMON), _OK if status == 200 else _DRAINING


_STATUS_LINES = {
    200: b"HTTP/1.1 200 OK\r\n",
    503: b"HTTP/1.1 503 Service Unavailable\r\n",
    405: b"HTTP/1.1 405 Method Not Allowed\r\n",
}


class Health:
    """The health paths of one worker and their answers (see the module docstring)."""

    __slots__ = ("routes", "draining", "_second", "_rendered")

    def __init__(self, paths: Iterable[str]) -> None:
        # Path bytes (as the HTTP/1 parser yields them, before `?`) -> this object: the one
        # lookup the connection makes. Settings validated the paths (origin-form, ASCII).
        self.routes: dict[bytes, Health] = {p.encode("ascii"): self for p in paths}
        self.draining = False
        self._second = -1
        self._rendered: dict[int, bytes] = {}

    def start_draining(self) -> None:
        """From now on GET/HEAD answer 503 `draining` (idempotent)."""
        self.draining = True

    def status(self, method: bytes | str) -> int:
        """The status a request with `method` gets now: 200, 503 or 405."""
        kind = _KIND.get(method, 2)
        if kind == 2:
            return 405
        return 503 if self.draining else 200

    def answer(self, method: bytes | str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """`(status, fields, body)` for carriers that serialise heads themselves (HTTP/2, a
        request cycle): the fields exclude `content-length`, `date`, `server` and
        `connection`, which such a carrier adds; the body is the GET body (a HEAD drops it)."""
        status = self.status(method)
        fields, body = _fields(status)
        return status, fields, body

    def http1(self, method: bytes | str, minor: int, keep_alive: bool, now: float | None = None) -> bytes:
        """The whole HTTP/1.1 response (head and body) to write for this request.

        `keep_alive` is whether the connection persists after it (the caller's decision: the
        request's own wish, and False for a worker that is past its shutdown delay);
        `minor` is the request's HTTP/1 minor version."""
        kind = _KIND.get(method, 2)
        conn = 0 if not keep_alive else (1 if minor else 2)
        key = (2 if kind == 2 else int(self.draining)) * 6 + (kind == 1) * 3 + conn
        second = int(time.time() if now is None else now)
        if second != self._second:
            self._second = second
            self._rendered = {}
        out = self._rendered.get(key)
        if out is None:
            out = self._render(key, second)
            self._rendered[key] = out
        return out

    @staticmethod
    def _render(key: int, second: int) -> bytes:
        state, rest = divmod(key, 6)
        head_only, conn = divmod(rest, 3)
        status = (200, 503, 405)[state]
        fields, body = _fields(status)
        parts = [_STATUS_LINES[status]]
        parts += [name + b": " + value + b"\r\n" for name, value in fields]
        # HEAD: the length the GET body has (RFC 9110 §9.3.2, §8.6).
        parts.append(b"content-length: %d\r\n" % len(body))
        parts.append(_CONN_LINES[conn])
        parts.append(b"server: " + SERVER_NAME + b"\r\n")
        parts.append(b"date: " + http_date(second) + b"\r\n\r\n")
        if not head_only:
            parts.append(body)
        return b"".join(parts)


class HealthView:
    """What the access log reads of a request (granian.access_log.RequestView), for a health
    answer, which has no request cycle."""

    __slots__ = (
        "method",
        "raw_path",
        "query",
        "http_version",
        "headers",
        "scheme",
        "client",
        "status",
        "bytes_sent",
        "t0",
    )

    def __init__(
        self,
        method: str,
        raw_path: bytes,
        query: bytes,
        minor: int,
        headers: list[tuple[bytes, bytes]],
        scheme: str,
        client: tuple[str, int] | None,
    ) -> None:
        self.method = method
        self.raw_path = raw_path
        self.query = query
        self.http_version = "1.1" if minor else "1.0"
        self.headers = headers
        self.scheme = scheme
        self.client = client
        self.status = 0
        self.bytes_sent = 0
        self.t0 = 0.0
