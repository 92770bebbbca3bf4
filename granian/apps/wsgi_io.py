"""WSGI's request side (PEP 3333): the environ builder and `wsgi.input`.

Both run without an event loop: the environ is built on the loop thread from the request
attributes; `wsgi.input` is read by the app on a blocking thread and pulls body chunks through
a callable that the interface module wires to the request cycle (so the socket's flow control
applies: a chunk is only read from the socket when the app asks for more).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import unquote_to_bytes

WSGI_VERSION = (1, 0)
_DEFAULT_PORTS = {"http": "80", "https": "443"}
_LINE_BREAK = b"\n"


class WSGIInput:
    """A file-like reader over the request body (PEP 3333 "Input and Error Streams").

    `pull()` returns the next body chunk, `b''` once the body is complete; it may block. Bytes
    pulled but not yet returned stay in `_buf`, so no call ever loses data: `readline(5)`
    followed by `read()` returns exactly the body's bytes in order.
    """

    __slots__ = ("_pull", "_buf", "_pos", "_eof")

    def __init__(self, pull: Callable[[], bytes], initial: bytes = b"", complete: bool = False) -> None:
        self._pull = pull
        self._buf = initial
        self._pos = 0
        self._eof = complete

    def _fill(self) -> bool:
        """Pull one more chunk onto the buffer; False at end of body."""
        if self._eof:
            return False
        chunk = self._pull()
        if not chunk:
            self._eof = True
            return False
        if self._pos:
            self._buf = self._buf[self._pos :] + chunk
            self._pos = 0
        else:
            self._buf += chunk
        return True

    def _take(self, end: int) -> bytes:
        data = self._buf[self._pos : end]
        self._pos = end
        if self._pos == len(self._buf):
            self._buf = b""
            self._pos = 0
        return data

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            while self._fill():
                pass
            return self._take(len(self._buf))
        while len(self._buf) - self._pos < size and self._fill():
            pass
        return self._take(min(len(self._buf), self._pos + size))

    def readline(self, size: int | None = -1) -> bytes:
        limit = -1 if size is None else size
        scanned = self._pos
        while True:
            nl = self._buf.find(_LINE_BREAK, scanned)
            if nl >= 0:
                end = nl + 1
                if 0 <= limit < end - self._pos:
                    end = self._pos + limit
                return self._take(end)
            if 0 <= limit <= len(self._buf) - self._pos:
                return self._take(self._pos + limit)
            seen = len(self._buf) - self._pos  # no newline in these; _fill may move them
            if not self._fill():
                return self._take(len(self._buf))
            scanned = self._pos + seen

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        lines: list[bytes] = []
        total = 0
        while True:
            line = self.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                return lines

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def close(self) -> None:
        """Apps may close the stream; the server still drains the body for keep-alive."""


class FileWrapper:
    """`wsgi.file_wrapper` (PEP 3333 "Optional Platform-Specific File Handling"): iterable over
    blocks of a file-like object; the server recognises it and sends the file with sendfile
    when the object has a real `fileno()`."""

    __slots__ = ("filelike", "blksize")

    def __init__(self, filelike: Any, blksize: int = 8192) -> None:
        self.filelike = filelike
        self.blksize = blksize

    def __iter__(self) -> Iterator[bytes]:
        read = self.filelike.read
        while True:
            data = read(self.blksize)
            if not data:
                return
            yield data

    def close(self) -> None:
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()


def _split_host(host: str, scheme: str) -> tuple[str, str]:
    """SERVER_NAME and SERVER_PORT from a Host value (RFC 9112 §3.2): `[v6]:port`, `name:port`
    or a bare name with the scheme's default port."""
    if host.startswith("["):
        end = host.find("]")
        if end > 0:
            rest = host[end + 1 :]
            if rest.startswith(":") and rest[1:].isdigit():
                return host[: end + 1], rest[1:]
            return host[: end + 1], _DEFAULT_PORTS.get(scheme, "80")
    name, sep, port = host.rpartition(":")
    if sep and port.isdigit():
        return name, port
    return host, _DEFAULT_PORTS.get(scheme, "80")


# Header name -> environ key ("user-agent" -> "HTTP_USER_AGENT"; None for names dropped), and
# Host value -> (SERVER_NAME, SERVER_PORT): the same few values repeat on every request, so they
# are computed once. Both caches stop growing at _CACHE_MAX entries (a client sending random
# names must not grow memory without bound).
_CACHE_MAX = 512
_SPECIAL = {b"content-type": "CONTENT_TYPE", b"content-length": "CONTENT_LENGTH"}


def _header_key(name: bytes, cache: dict[bytes, str | None]) -> str | None:
    key: str | None
    if name in _SPECIAL:
        key = _SPECIAL[name]
    elif b"_" in name:
        # "x_forwarded_for" would become the same HTTP_ key as "x-forwarded-for" and could
        # spoof it past a proxy that filters the dashed form; nginx and gunicorn drop them.
        key = None
    else:
        key = "HTTP_" + name.decode("latin-1").upper().replace("-", "_")
    if len(cache) < _CACHE_MAX:
        cache[name] = key
    return key


class EnvironBuilder:
    """Builds PEP 3333 environs for one adapter: the per-worker constants live in a template
    dict copied per request; header keys and Host splits come from small caches."""

    __slots__ = ("scheme", "script_name", "_base", "_keys", "_hosts")

    def __init__(self, scheme: str, script_name: str, multiprocess: bool) -> None:
        self.scheme = scheme
        self.script_name = script_name
        self._base: dict[str, Any] = {
            "SCRIPT_NAME": script_name,
            "wsgi.version": WSGI_VERSION,
            "wsgi.url_scheme": scheme,
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": multiprocess,
            "wsgi.run_once": False,
            "wsgi.file_wrapper": FileWrapper,
            # the body is delimited by the server (content-length or chunked): reading to EOF
            # is safe, the mod_wsgi/gunicorn convention Werkzeug and Django honour
            "wsgi.input_terminated": True,
        }
        if scheme == "https":
            # The CGI-era variable of Apache's mod_ssl and nginx's fastcgi_params, which code
            # predating wsgi.url_scheme still reads (the stdlib's wsgiref.util.guess_scheme).
            self._base["HTTPS"] = "on"
        self._keys: dict[bytes, str | None] = {}
        self._hosts: dict[str, tuple[str, str]] = {}

    def build(
        self,
        method: str,
        raw_path: bytes,
        query: bytes,
        http_version: str,
        headers: list[tuple[bytes, bytes]],
        server: tuple[str, int] | None,
        client: tuple[str, int] | None,
        wsgi_input: WSGIInput,
    ) -> dict[str, Any]:
        """The environ of one request. Strings are "native strings": bytes decoded as latin-1
        (PEP 3333 "Unicode Issues"); apps recover the raw octets with `.encode('latin-1')`."""
        # 0x25 is "%": an int operand makes `in` a memchr (a bytes one first fails an int
        # conversion, raising and clearing a TypeError).
        path = (unquote_to_bytes(raw_path) if 0x25 in raw_path else raw_path).decode("latin-1")
        script_name = self.script_name
        if script_name:
            # --url-path-prefix mounts the app: SCRIPT_NAME is the prefix, PATH_INFO what
            # follows it (CGI/1.1, RFC 3875 §4.1.5 and §4.1.13); a path outside the prefix
            # keeps PATH_INFO whole.
            if path == script_name or path.startswith(script_name + "/"):
                path = path[len(script_name) :]
        environ = self._base.copy()
        environ["REQUEST_METHOD"] = method
        environ["PATH_INFO"] = path
        environ["QUERY_STRING"] = query.decode("latin-1")
        environ["SERVER_PROTOCOL"] = "HTTP/" + ("1.0" if http_version == "1" else http_version)
        environ["wsgi.input"] = wsgi_input
        keys = self._keys
        host: str | None = None
        for name, value in headers:
            key = keys[name] if name in keys else _header_key(name, keys)
            if key is None:
                continue
            val = value.decode("latin-1")
            prev = environ.get(key)
            if prev is None:
                environ[key] = val
                if host is None and key == "HTTP_HOST":
                    host = val
            else:
                # repeated fields are combined with commas (RFC 9110 §5.3), in order
                environ[key] = prev + "," + val
        # SERVER_PORT is the port the request was received on (CGI, RFC 3875 §4.1.15; Granian
        # does the same), not the one in Host: `Host: example.com` to port 8123 is still 8123.
        # SERVER_NAME comes from Host when there is one (PEP 3333's URL reconstruction reads
        # HTTP_HOST first anyway). Only a Unix socket, which has no port, falls back to Host's.
        if host:
            hosts = self._hosts
            split = hosts.get(host)
            if split is None:
                split = _split_host(host, self.scheme)
                if len(hosts) < _CACHE_MAX:
                    hosts[host] = split
            environ["SERVER_NAME"] = split[0]
            environ["SERVER_PORT"] = str(server[1]) if server is not None else split[1]
        elif server is not None:
            environ["SERVER_NAME"], environ["SERVER_PORT"] = server[0], str(server[1])
        else:
            environ["SERVER_NAME"] = "localhost"
            environ["SERVER_PORT"] = _DEFAULT_PORTS.get(self.scheme, "80")
        if client is not None:
            environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = client[0], str(client[1])
        else:
            # a Unix socket has no peer address; CGI wants REMOTE_ADDR set, gunicorn uses ""
            environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = "", ""
        return environ


def build_environ(
    method: str,
    target: bytes,
    http_version: str,
    headers: list[tuple[bytes, bytes]],
    server: tuple[str, int] | None,
    client: tuple[str, int] | None,
    scheme: str,
    script_name: str,
    wsgi_input: WSGIInput,
    multiprocess: bool,
) -> dict[str, Any]:
    """One-off form of `EnvironBuilder.build` for a whole request target."""
    raw_path, _, query = target.partition(b"?")
    builder = EnvironBuilder(scheme, script_name, multiprocess)
    return builder.build(method, raw_path, query, http_version, headers, server, client, wsgi_input)
