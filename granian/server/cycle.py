"""The request cycle core: the one interface ASGI, RSGI, WSGI and static files speak to.

One `Cycle` object per request, on any protocol. It keeps what is protocol-neutral: the body
queue, the waiters, disconnect, fail and abort. The framing goes through its carrier
(`granian._types.Carrier`): the HTTP/1 connection (granian.server.h1) does Content-Length or
chunked framing and `100 Continue`; an HTTP/2 stream (granian.server.h2) does HEADERS, DATA
and END_STREAM, and `:status 100` as an interim HEADERS. The adapters see it as
`granian._types.RequestCycle` and never import this module.

Interface adapters never touch transports or parser objects;
they read the request from the cycle's attributes, read the body with `read()`, and answer with
`respond()` (whole body, one write) or `start()` / `write()` / `sendfile()` / `finish()`
(streamed). The cycle is created by the connection (granian.server.h1) and is cheap on
purpose: plain slots, no per-request futures unless someone actually waits.

Contract
========

Interface adapters
------------------
The worker builds one adapter per worker: `Adapter(app, settings)` with

- `adapter.handler(cycle) -> Coroutine[Any, Any, None] | None`: serves one request. It must not
  raise (it catches the app's errors and calls `cycle.fail(exc)`), and when its coroutine returns
  the response must be complete (`respond`, `finish`, `fail` or `abort` was called). A handler
  that has nothing to await may do its part synchronously and return None instead of a
  coroutine (WSGI hands a request whose body is already here straight to its thread pool): the
  connection then creates no Task, and the request stays in flight until the cycle completes.
  Work the app does after completing the response (background tasks) may continue: the
  connection moves on to its next request as soon as the response is complete.
- `await adapter.startup() -> bool` before serving (False: the worker exits non-zero) and
  `await adapter.shutdown() -> None` after draining. (ASGI lifespan, `__rsgi_init__`/`__rsgi_del__`.)
- Adapters are registered in granian.server.worker.ADAPTERS by interface name. Their type is
  `granian._types.Adapter`.

Request attributes (read-only)
------------------------------
- `method: str` upper-case as sent; `raw_path: bytes` undecoded path without the query
  (absolute-form targets reduced to their path); `query: bytes` raw text after `?` (b'' if none);
- `http_version: str` `'1.0'` / `'1.1'`; `headers: list[tuple[bytes, bytes]]` lower-cased names,
  values without surrounding whitespace, order and duplicates kept (do not mutate);
- `scheme: str` `'http'` / `'https'`; `client`, `server`: `(host, port)` with an int port, or
  None (Unix sockets); `root_path: str` (`--url-path-prefix`, '' if none);
- `keep_alive: bool` whether the connection will persist after this response (may turn False).

Request body
------------
- `await read() -> bytes | None`: the next piece of body (everything buffered so far, so one call
  returns a whole small body). `b''` once the body is exhausted. `None` when the client has gone
  or the request is over (the response completed), before the body was exhausted. The first
  call sends `100 Continue` if the client sent `Expect: 100-continue` (RFC 9110 §10.1.1).
  Reading is paused while more than `--http1-buffer-size` bytes of body wait for the app, and
  resumed as it reads (flow control); a body that fits in the buffer never pauses reading.
- `read_buffered() -> bytes | None`: synchronous: when the whole body is already buffered (or
  there is none), returns it as one `read()` would, else None and nothing is consumed.
- `body_complete: bool`: True once `read()` has returned the last piece (so `more_body` in ASGI
  terms is `not cycle.body_complete` after each read). A request without a body still returns
  one `b''` read before `body_complete` turns True.

Disconnect
----------
- `disconnected: bool`: the client connection is gone.
- `await wait_disconnect(until_done=False)`: resolves when the client connection closes. With
  `until_done=True` it also resolves once this request's response is complete (ASGI's
  `http.disconnect` semantics); without it, it follows the connection (RSGI's
  `client_disconnect`), even across later keep-alive requests.

Response
--------
Headers are an iterable of `(name, value)` pairs, bytes (ASGI) or str (RSGI/WSGI: encoded as
latin-1). The server adds `date` and `server` when absent and owns framing: `content-length` for
`respond()`, chunked for streams on HTTP/1.1 (close-delimited on 1.0) unless the app gave a
`content-length`; nothing after HEAD, 1xx, 204, 304. Bad names/values raise ValueError or
TypeError before anything is written (the adapter turns that into its own error).

- `respond(status, headers, body=b'')`: the whole response, written with ONE transport write;
  completes the cycle.
- `start(status, headers, flush=False)`: begins a streamed response. The head is held back and
  sent together with the first `write()`, unless `flush=True` (e.g. `text/event-stream`).
- `start_trailers(status, headers, flush=False)`: `start()` for a response that will end with
  `finish_trailers()`: on HTTP/1.1 it is chunked even when the app gave a `content-length` (see
  there). A method of its own, so `start()`, on every streamed response, tests nothing more.
- `await write(data)`: one piece of the streamed body; awaits while the transport's write buffer
  is above its high-water mark (backpressure). Raises `ClientDisconnected` (a
  `ConnectionResetError`) once the client is gone.
- `await sendfile(file, offset, count)`: send `count` bytes of the open binary file `file` from
  `offset` as body of a started stream (give a `content-length` to `start()` so the bytes go
  raw); uses the kernel's sendfile through `loop.sendfile` where the loop and transport support
  it, and positioned reads + writes (with backpressure) otherwise. Raises `ClientDisconnected`.
- `finish()`: ends a streamed response (the terminating chunk); completes the cycle.
- `finish_trailers(headers)`: ends a response begun with `start_trailers()` with a trailer
  section (RFC 9110 §6.5); completes the cycle. HTTP/1.1: after the last chunk (RFC 9112
  §7.1.2), so such a response is chunked and an app's `content-length` is dropped (a message
  with transfer coding must not carry one, RFC 9112 §6.2, and the receiver would ignore it,
  §6.3); HTTP/2: a HEADERS frame with END_STREAM after the DATA. Where the response cannot carry
  trailers (HTTP/1.0: length- or close-delimited, nothing after HEAD, 1xx, 204, 304) they are
  dropped and the response ends as `finish()` would. Fields that must not be trailers (RFC 9110
  §6.5.1: framing, routing, authentication, response controls, content format; pseudo-headers,
  RFC 9113 §8.1) are dropped; bad names/values raise ValueError or TypeError before anything is
  written. A client that left makes it a no-op, as `finish()`.
- `fail(exc=None)`: the app failed: logs the traceback on logger `_granian`, then answers 500
  if nothing was sent yet, otherwise aborts (the client sees a truncated response).
- `abort()`: closes the connection at once; the response is never completed.
- State: `response_started`, `response_done` (bool), `status` (int, 0 until started),
  `bytes_sent` (body bytes written).

Completion hook
---------------
`ServerContext.on_complete`, if set, is called with the cycle once its response is complete
(or aborted): `cycle.status`, `cycle.bytes_sent`, and `cycle.t0` (`time.perf_counter()` at
request start, set only while a hook is installed: uvloop's `loop.time()` has only millisecond
resolution) give access logs and metrics what they need.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import IO

from .._types import Carrier, ClientDisconnected, Headers
from ..constants import SERVER_LOGGER

__all__ = ["ClientDisconnected", "Cycle", "Headers", "trailer_fields"]

logger = logging.getLogger(SERVER_LOGGER)

_500_BODY = b"Internal Server Error"
_SENDFILE_CHUNK = 256 * 1024  # read size of the sendfile fallback, as asyncio's own fallback
_QUEUED, _PAUSED, _CLOSING = 0, 1, 2  # Carrier.send_data results
_FILE_COPY, _FILE_RAW, _FILE_SKIP = 0, 1, 2  # Carrier.file_mode results


# RFC 9110 §5.6.2 token characters: the only bytes a field name may hold.
_TCHAR = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz")
# Fields a server does not send as trailers (RFC 9110 §6.5.1: "evaluation is necessary prior to
# receiving the content"): framing and connection control (§6.4, RFC 9112 §6, RFC 9113 §8.2.2),
# routing (Host), authentication challenges and credentials (§11), request modifiers, response
# controls (§10.2) and content format (§8). Dropped rather than refused: the body has gone
# out by then, and refusing would leave only a truncated response. `authentication-info` and
# `server-timing`-like fields, whose definitions allow trailers, pass.
_NOT_TRAILERS = frozenset(
    {
        b"content-length",
        b"transfer-encoding",
        b"te",
        b"trailer",
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"upgrade",
        b"host",
        b"authorization",
        b"proxy-authorization",
        b"www-authenticate",
        b"proxy-authenticate",
        b"set-cookie",
        b"cookie",
        b"expect",
        b"max-forwards",
        b"range",
        b"if-match",
        b"if-none-match",
        b"if-modified-since",
        b"if-unmodified-since",
        b"if-range",
        b"age",
        b"cache-control",
        b"expires",
        b"date",
        b"location",
        b"retry-after",
        b"vary",
        b"content-type",
        b"content-encoding",
        b"content-range",
        b"content-language",
        b"content-location",
    }
)


def _field_bytes(x: object, what: str) -> bytes:
    if isinstance(x, str):
        return x.encode("latin-1")
    if isinstance(x, (bytes, bytearray, memoryview)):
        return bytes(x)
    raise TypeError(f"header {what} must be bytes or str, not {type(x).__name__}")


def trailer_fields(headers: Headers) -> list[tuple[bytes, bytes]]:
    """The app's trailer fields as both carriers send them: bytes (str as latin-1), names
    lower-cased, values trimmed; names that must not be trailers, and pseudo-headers (RFC 9113
    §8.1: never in trailers), dropped. A name that is not a token, or a value with CR, LF or NUL
    (field splitting, RFC 9110 §5.5), raises ValueError; neither bytes nor str, TypeError."""
    out: list[tuple[bytes, bytes]] = []
    for name, value in headers:
        if name.__class__ is not bytes:
            name = _field_bytes(name, "name")
        if value.__class__ is not bytes:
            value = _field_bytes(value, "value")
        name = name.lower()
        if name[:1] == b":":
            continue
        if not name or not _TCHAR.issuperset(name):
            raise ValueError(f"invalid trailer name {name!r}")
        value = value.strip(b" \t")
        if 13 in value or 10 in value or 0 in value:
            raise ValueError(f"invalid trailer value {value!r}: CR, LF and NUL are not allowed")
        if name not in _NOT_TRAILERS:
            out.append((name, value))
    return out


class Cycle:
    # No __slots__: the defaults below live on the class, so creating a cycle (once per
    # request) only stores what differs per request; state is written when it changes.
    disconnected = False
    body_complete = False
    response_started = False
    response_done = False
    status = 0
    bytes_sent = 0
    t0 = 0.0
    _body: list[bytes] | None = None
    _body_size = 0
    _read_waiter: asyncio.Future[None] | None = None
    _done_waiter: asyncio.Future[None] | None = None
    _trailers = False  # start_trailers(): the response ends with finish_trailers()
    # Per-request values with a common default, stored only when they differ.
    http_version = "1.1"
    authority: str | None = None  # HTTP/2's `:authority` (RSGI's scope.authority; None on HTTP/1)

    def __init__(
        self,
        carrier: Carrier,
        method: str,
        raw_path: bytes,
        query: bytes,
        http_version: str,
        headers: list[tuple[bytes, bytes]],
        keep_alive: bool,
        body_eof: bool,
    ) -> None:
        # `_carrier` is set while the request is attached to its connection or stream, and None
        # once its response is complete or the client is gone; `_served_on` stays, so that
        # RSGI's client_disconnect() can follow the connection after the response.
        self._carrier: Carrier | None = carrier
        self._served_on = carrier
        self.method = method
        self.raw_path = raw_path
        self.query = query
        if http_version != "1.1":
            self.http_version = http_version
        self.headers = headers
        self.scheme = carrier.scheme
        self.root_path = carrier.root_path
        self.client = carrier.client
        self.server = carrier.server
        self.keep_alive = keep_alive
        self._body_eof = body_eof

    # ---------------------------------------------------------------- body

    async def read(self) -> bytes | None:
        while True:
            body = self._body
            if body:
                data = body[0] if len(body) == 1 else b"".join(body)
                self._body = None
                self._body_size = 0
                if self._body_eof:
                    self.body_complete = True
                else:
                    carrier = self._carrier
                    if carrier is not None and carrier.body_paused:
                        carrier.resume_body()
                return data
            if self._body_eof:
                self.body_complete = True
                return b""
            carrier = self._carrier
            if carrier is None or self.disconnected:
                return None
            carrier.want_body(self)  # `100 Continue` on the first wait (RFC 9110 §10.1.1)
            waiter = asyncio.get_running_loop().create_future()
            self._read_waiter = waiter
            try:
                await waiter
            finally:
                self._read_waiter = None

    def read_buffered(self) -> bytes | None:
        if not self._body_eof:
            return None
        self.body_complete = True
        body = self._body
        if not body:
            return b""
        self._body = None
        self._body_size = 0
        return body[0] if len(body) == 1 else b"".join(body)

    # Called by the carrier.
    def _push(self, data: bytes, eof: bool) -> int:
        """Queue body bytes for the app; returns the number of bytes now waiting."""
        if data:
            body = self._body
            if body is None:
                self._body = [data]
            else:
                body.append(data)
            self._body_size += len(data)
        if eof:
            self._body_eof = True
        waiter = self._read_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        return self._body_size

    def _detach(self, lost: bool) -> None:
        """The carrier is done with this request (response complete) or gone."""
        self._carrier = None
        if lost:
            self.disconnected = True
            self.keep_alive = False
        for waiter in (self._read_waiter, self._done_waiter):
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    # ---------------------------------------------------------------- disconnect

    async def wait_disconnect(self, until_done: bool = False) -> None:
        if until_done:
            if self._carrier is None or self.disconnected:
                return
            waiter = self._done_waiter
            if waiter is None:
                waiter = self._done_waiter = asyncio.get_running_loop().create_future()
            await asyncio.shield(waiter)
            return
        if self.disconnected:
            return
        # After the response completed, keep following the connection it was served on.
        await asyncio.shield(self._served_on.lost_future())

    # ---------------------------------------------------------------- response

    def respond(self, status: int, headers: Headers, body: bytes = b"") -> None:
        if self.response_started:
            raise RuntimeError("response already started")
        carrier = self._carrier
        if carrier is None:
            self.response_started = self.response_done = True
            self.status = status
            return
        carrier.send_response(self, status, headers, body)

    def start(self, status: int, headers: Headers, flush: bool = False) -> None:
        if self.response_started:
            raise RuntimeError("response already started")
        carrier = self._carrier
        if carrier is None:
            self.response_started = True
            self.status = status
            return
        carrier.send_head(self, status, headers, flush)

    def start_trailers(self, status: int, headers: Headers, flush: bool = False) -> None:
        if self.response_started:
            raise RuntimeError("response already started")
        self._trailers = True
        carrier = self._carrier
        if carrier is None:
            self.response_started = True
            self.status = status
            return
        carrier.send_head_trailers(self, status, headers, flush)

    async def write(self, data: bytes) -> None:
        carrier = self._carrier
        if carrier is None:
            # A client that left also ends the response (response_done): say which it was.
            if self.response_done and not self.disconnected:
                raise RuntimeError("response already finished")
            raise ClientDisconnected("client disconnected")
        if not self.response_started:
            raise RuntimeError("response not started")
        sent = carrier.send_data(self, data)
        if sent == _PAUSED:
            await carrier.drain()
            if self.disconnected:
                raise ClientDisconnected("client disconnected")
        elif sent == _CLOSING:
            # A failed send closes the transport at once, but connection_lost only runs on a
            # later loop turn: an app that streams without ever yielding must still learn
            # that the client is gone (RSGI: RSGIProtocolClosed) instead of writing forever.
            raise ClientDisconnected("client disconnected")

    async def sendfile(self, file: IO[bytes], offset: int, count: int) -> None:
        carrier = self._carrier
        if carrier is None:
            raise ClientDisconnected("client disconnected")
        if not self.response_started:
            raise RuntimeError("response not started")
        mode = carrier.file_mode(self)
        if mode == _FILE_SKIP or count <= 0:
            return
        if mode == _FILE_RAW:
            self.bytes_sent += count
            await carrier.send_file(self, file, offset, count)
            if self.disconnected:
                raise ClientDisconnected("client disconnected")
            return
        fd = file.fileno()
        while count > 0:
            data = os.pread(fd, min(count, _SENDFILE_CHUNK), offset)
            if not data:
                raise EOFError("file shorter than the requested range")
            offset += len(data)
            count -= len(data)
            await self.write(data)
            if not carrier.write_paused:
                # Let the loop flush between pieces instead of building one huge buffer.
                await asyncio.sleep(0)

    def finish(self) -> None:
        if self.response_done:
            if self.disconnected:
                # The client left (which also ended the response): the end is moot, and ASGI.md
                # wants a send after a disconnect ignored or an OSError, not a RuntimeError.
                return
            raise RuntimeError("response already finished")
        if not self.response_started:
            raise RuntimeError("response not started")
        carrier = self._carrier
        if carrier is None:
            self.response_done = True
            return
        carrier.end(self)

    def finish_trailers(self, headers: Headers) -> None:
        if self.response_done:
            if self.disconnected:
                return  # as finish(): the end is moot once the client left
            raise RuntimeError("response already finished")
        if not self.response_started:
            raise RuntimeError("response not started")
        if not self._trailers:
            raise RuntimeError("response not begun with start_trailers()")
        fields = trailer_fields(headers)
        carrier = self._carrier
        if carrier is None:
            self.response_done = True
            return
        carrier.send_trailers(self, fields)

    def fail(self, exc: BaseException | None = None) -> None:
        if exc is not None:
            logger.error("Application callable raised an exception", exc_info=exc)
        if self.response_done:
            return
        carrier = self._carrier
        if not self.response_started and carrier is not None:
            self.response_started = True
            self.status = 500
            self.keep_alive = False if not self.body_complete else self.keep_alive
            self.bytes_sent = len(_500_BODY)
            carrier.send_error(self, 500, _500_BODY)
            return
        self.abort()

    def abort(self) -> None:
        if self.response_done:
            return
        self.keep_alive = False
        carrier = self._carrier
        if carrier is not None:
            carrier.abort(self)
        else:
            self.response_done = True
