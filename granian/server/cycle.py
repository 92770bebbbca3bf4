"""The request cycle: the one interface ASGI, RSGI, WSGI and static files speak to.

One `Cycle` object per request. Interface adapters never touch transports or parser objects;
they read the request from the cycle's attributes, read the body with `read()`, and answer with
`respond()` (whole body, one write) or `start()` / `write()` / `sendfile()` / `finish()`
(streamed). The cycle is created by the connection (granian.server.protocol) and is cheap on
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
- Adapters are registered in granian.server.worker.ADAPTERS by interface name.

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
- `await write(data)`: one piece of the streamed body; awaits while the transport's write buffer
  is above its high-water mark (backpressure). Raises `ClientDisconnected` (a
  `ConnectionResetError`) once the client is gone.
- `await sendfile(file, offset, count)`: send `count` bytes of the open binary file `file` from
  `offset` as body of a started stream (give a `content-length` to `start()` so the bytes go
  raw); uses the kernel's sendfile through `loop.sendfile` where the loop and transport support
  it, and positioned reads + writes (with backpressure) otherwise. Raises `ClientDisconnected`.
- `finish()`: ends a streamed response (the terminating chunk); completes the cycle.
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
from collections.abc import Iterable
from typing import IO, TYPE_CHECKING

from ..http1.conn import CONTINUE_RESPONSE
from ..http1.response import (
    FRAME_CHUNKED,
    FRAME_CLOSE,
    FRAME_LENGTH,
    FRAME_NONE,
    build_head,
    simple_response,
)

if TYPE_CHECKING:
    from .protocol import H1Protocol

__all__ = ["ClientDisconnected", "Cycle", "Headers"]

logger = logging.getLogger("_granian")

Headers = Iterable[tuple[bytes | str, bytes | str]]

_500_BODY = b"Internal Server Error"
_SENDFILE_CHUNK = 256 * 1024  # read size of the sendfile fallback, as asyncio's own fallback


class ClientDisconnected(ConnectionResetError):
    """Raised by `write`/`sendfile` once the client connection is gone."""


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
    _framing = FRAME_NONE
    _pending_head: bytes | None = None
    _expected = -1
    # Per-request values with a common default, stored only when they differ.
    http_version = "1.1"
    _is_head = False
    _continue = False

    def __init__(
        self,
        proto: H1Protocol,
        method: str,
        raw_path: bytes,
        query: bytes,
        minor: int,
        headers: list[tuple[bytes, bytes]],
        keep_alive: bool,
        body_eof: bool,
        expect_continue: bool,
    ) -> None:
        self._proto: H1Protocol | None = proto
        self._conn = proto
        self.method = method
        self.raw_path = raw_path
        self.query = query
        self._minor = minor
        if not minor:
            self.http_version = "1.0"
        self.headers = headers
        ctx = proto.ctx
        self.scheme = ctx.scheme
        self.root_path = ctx.root_path
        self.client = proto.client
        self.server = proto.server
        self.keep_alive = keep_alive
        if method == "HEAD":
            self._is_head = True
        self._body_eof = body_eof
        if expect_continue:
            self._continue = True

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
                    proto = self._proto
                    if proto is not None and proto.body_paused:
                        proto.resume_body()
                return data
            if self._body_eof:
                self.body_complete = True
                return b""
            proto = self._proto
            if proto is None or self.disconnected:
                return None
            if self._continue:
                self._continue = False
                if not self.response_started:
                    proto.write(CONTINUE_RESPONSE)
            waiter = proto.ctx.loop.create_future()
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

    # Called by the connection.
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
        """The connection is done with this request (response complete) or gone."""
        self._proto = None
        if lost:
            self.disconnected = True
            self.keep_alive = False
        for waiter in (self._read_waiter, self._done_waiter):
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    # ---------------------------------------------------------------- disconnect

    async def wait_disconnect(self, until_done: bool = False) -> None:
        proto = self._proto
        if until_done:
            if proto is None or self.disconnected:
                return
            waiter = self._done_waiter
            if waiter is None:
                waiter = self._done_waiter = proto.ctx.loop.create_future()
            await asyncio.shield(waiter)
            return
        if self.disconnected:
            return
        # After the response completed, keep following the connection it was served on.
        await asyncio.shield(self._conn.lost_future())

    # ---------------------------------------------------------------- response

    def respond(self, status: int, headers: Headers, body: bytes = b"") -> None:
        if self.response_started:
            raise RuntimeError("response already started")
        proto = self._proto
        if not self._body_eof and proto is not None and proto.unread_too_large(self):
            self.keep_alive = False
        head, framing, keep = build_head(
            status, headers, len(body), self._minor, self.keep_alive, self._is_head
        )
        self.response_started = True
        self.status = status
        self.keep_alive = keep
        if proto is None:
            self.response_done = True
            return
        if framing == FRAME_NONE:
            proto.complete(self, head, None)
        else:
            self.bytes_sent = len(body)
            proto.complete(self, head, body)

    def start(self, status: int, headers: Headers, flush: bool = False) -> None:
        if self.response_started:
            raise RuntimeError("response already started")
        proto = self._proto
        if not self._body_eof and proto is not None and proto.unread_too_large(self):
            self.keep_alive = False
        head, framing, keep = build_head(status, headers, -1, self._minor, self.keep_alive, self._is_head)
        self.response_started = True
        self.status = status
        self.keep_alive = keep
        self._framing = framing
        if framing == FRAME_LENGTH:
            self._expected = _declared_length(headers)
        if proto is None:
            return
        if flush:
            proto.write(head)
        else:
            self._pending_head = head

    async def write(self, data: bytes) -> None:
        proto = self._proto
        if proto is None:
            if self.response_done:
                raise RuntimeError("response already finished")
            raise ClientDisconnected("client disconnected")
        if not self.response_started:
            raise RuntimeError("response not started")
        framing = self._framing
        head = self._pending_head
        if data:
            self.bytes_sent += len(data)
            if framing == FRAME_CHUNKED:
                data = b"%x\r\n%b\r\n" % (len(data), data)
            elif framing == FRAME_NONE:
                data = b""
        if head is not None:
            self._pending_head = None
            data = head + data
        if data:
            proto.write(data)
            if proto.write_paused:
                await proto.drain()
                if self.disconnected:
                    raise ClientDisconnected("client disconnected")
            elif proto.transport.is_closing():
                # A failed send closes the transport at once, but connection_lost only runs on a
                # later loop turn: an app that streams without ever yielding must still learn
                # that the client is gone (RSGI: RSGIProtocolClosed) instead of writing forever.
                raise ClientDisconnected("client disconnected")

    async def sendfile(self, file: IO[bytes], offset: int, count: int) -> None:
        proto = self._proto
        if proto is None:
            raise ClientDisconnected("client disconnected")
        if not self.response_started:
            raise RuntimeError("response not started")
        if self._framing == FRAME_NONE or count <= 0:
            return
        head = self._pending_head
        if head is not None:
            self._pending_head = None
            proto.write(head)
        if self._framing != FRAME_CHUNKED and proto.can_sendfile():
            self.bytes_sent += count
            await proto.sendfile(file, offset, count)
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
            if not proto.write_paused:
                # Let the loop flush between pieces instead of building one huge buffer.
                await asyncio.sleep(0)

    def finish(self) -> None:
        if self.response_done:
            raise RuntimeError("response already finished")
        if not self.response_started:
            raise RuntimeError("response not started")
        proto = self._proto
        if proto is None:
            self.response_done = True
            return
        head = self._pending_head
        self._pending_head = None
        framing = self._framing
        tail = b"0\r\n\r\n" if framing == FRAME_CHUNKED else None
        if framing == FRAME_LENGTH and self.bytes_sent != self._expected:
            # The declared length was not honoured: the connection's framing is broken.
            self.keep_alive = False
        elif framing == FRAME_CLOSE:
            self.keep_alive = False
        if head is None:
            head = b""
        proto.complete(self, head, tail)

    def fail(self, exc: BaseException | None = None) -> None:
        if exc is not None:
            logger.error("Application callable raised an exception", exc_info=exc)
        if self.response_done:
            return
        proto = self._proto
        if not self.response_started and proto is not None:
            self.response_started = True
            self.status = 500
            self.keep_alive = False if not self.body_complete else self.keep_alive
            head_and_body = simple_response(500, _500_BODY, close=not self.keep_alive)
            self.bytes_sent = len(_500_BODY)
            proto.complete(self, head_and_body, None)
            return
        self.abort()

    def abort(self) -> None:
        if self.response_done:
            return
        self.keep_alive = False
        proto = self._proto
        if proto is not None:
            proto.abort_request(self)
        else:
            self.response_done = True


def _declared_length(headers: Headers) -> int:
    for name, value in headers:
        if (name.lower() if isinstance(name, (bytes, str)) else name) in (
            b"content-length",
            "content-length",
        ):
            return int(value)
    return -1
