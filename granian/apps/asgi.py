"""ASGI 3 over the request cycle (HTTP; shared/docs/ASGI.md).

Per request: one scope dict (a copy of a template), one small `_HTTP` object whose bound `receive` and
`send` the app gets. The common shape, start + one final body, becomes `cycle.respond()`: one
write with `content-length`. A first body with `more_body=True` switches to streaming.
`http.response.start` with `trailers: True` (the `http.response.trailers` extension) takes
states of its own, so the common response never tests for trailers past the start message.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from .._headers import decode_path, without_framing
from ..constants import SERVER_LOGGER
from .config import AppConfig
from .lifespan import Lifespan

if TYPE_CHECKING:
    from .._types import RequestCycle as Cycle

__all__ = ["ASGI_VERSION", "ASGIAdapter", "ASGINLAdapter", "decode_path"]

logger = logging.getLogger(SERVER_LOGGER)

Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Message, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]

ASGI_VERSION = {"version": "3.0", "spec_version": "2.3"}

_UNSUPPORTED = "Unsupported ASGI message"
_ALREADY_STARTED = "ASGI flow error: Response already started"
_ALREADY_FINISHED = "ASGI flow error: Response already finished"
_NOT_STARTED = "ASGI flow error: Response not started"

_DISCONNECT = {"type": "http.disconnect"}

# Bytes membership tests take an int (a byte value) on the hot path: `b"?" in data` first tries
# to read its operand as an int, which raises and clears a TypeError (~1 us of C work, about ten
# times the memchr behind `0x3F in data`).
_PERCENT = 0x25  # "%"

# Response states of one request.
_IDLE = 0  # nothing sent yet
_STARTED = 1  # http.response.start received, head not written (held for the first body)
_STREAMING = 2  # head written, body streaming
_DONE = 3
# A response whose start said `trailers: True` (ASGI's HTTP Trailers extension): it is streamed
# (never `respond()`: the cycle stays open for the trailers) and complete only once the last
# `http.response.trailers` (`more_trailers` False) arrives.
_T_STARTED = 4  # head held for the first body
_T_STREAMING = 5  # head written, body streaming
_T_BODY_DONE = 6  # body complete, trailers awaited


# Header lists seen before (as tuples of their pairs) -> whether they declare an event stream.
# Apps answer with the same few lists: one tuple() and one lookup instead of a Python loop.
# Bounded so an app building distinct lists per request cannot grow it without limit.
_SSE_SEEN: dict[tuple[Any, ...], bool] = {}
_SSE_SEEN_MAX = 512


def _is_event_stream(headers: Any) -> bool:
    if headers.__class__ is list or headers.__class__ is tuple:
        try:
            key = tuple(headers)
            known = _SSE_SEEN.get(key)
        except TypeError:  # unhashable items (bytearray): no memo
            return _scan_event_stream(headers)
        if known is None:
            known = _scan_event_stream(headers)
            if len(_SSE_SEEN) < _SSE_SEEN_MAX:
                _SSE_SEEN[key] = known
        return known
    return _scan_event_stream(headers)


def _scan_event_stream(headers: Any) -> bool:
    # The value tests first: byte 5 (the `e` of `event-stream`, one-byte slices are shared
    # objects) rejects almost every header without copying or lower-casing anything.
    for name, value in headers:
        c = value[5:6]
        if (
            (c == b"e" or c == b"E")
            and value[:17].lower() == b"text/event-stream"
            and name.lower() == b"content-type"
        ):
            return True
    return False


class _HTTP:
    # No __init__ (a Python-level __init__ costs a frame per request): the handler sets `cycle`,
    # `state` starts as the class default, and `status` / `headers` are set by
    # http.response.start before any state reads them.
    state = _IDLE
    cycle: Cycle
    status: int
    headers: Any
    trailer_fields: list[Any] | None = None  # http.response.trailers headers gathered so far

    async def receive(self) -> Message:
        cycle = self.cycle
        if not cycle.body_complete:
            data = await cycle.read()
            if data is None:
                return {"type": "http.disconnect"}
            return {"type": "http.request", "body": data, "more_body": not cycle.body_complete}
        await cycle.wait_disconnect(until_done=True)
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        try:
            kind = message["type"]
        except (KeyError, TypeError):
            raise RuntimeError(_UNSUPPORTED) from None
        state = self.state
        if kind == "http.response.body":
            if state == _STARTED:
                body = message.get("body", b"")
                more = message.get("more_body", False)
                if body.__class__ is not bytes:
                    if not isinstance(body, (bytes, bytearray, memoryview)):
                        raise RuntimeError(_UNSUPPORTED)
                    body = bytes(body)
                cycle = self.cycle
                try:
                    if not more:
                        self.state = _DONE
                        cycle.respond(self.status, self.headers, body)
                        return
                    self.state = _STREAMING
                    cycle.start(self.status, self.headers)
                except (TypeError, ValueError):
                    # Nothing reached the wire: the invalid start is dropped with the error.
                    self.state = _IDLE
                    raise RuntimeError(_UNSUPPORTED) from None
                if body:
                    await self._write(bytes(body))
                return
            if state == _STREAMING:
                body = message.get("body", b"")
                if not isinstance(body, (bytes, bytearray, memoryview)):
                    raise RuntimeError(_UNSUPPORTED)
                if body:
                    await self._write(bytes(body))
                if not message.get("more_body", False):
                    self.state = _DONE
                    self.cycle.finish()
                return
            if state == _T_STARTED or state == _T_STREAMING:
                await self._trailered_body(message)
                return
            if state == _IDLE:
                raise RuntimeError(_NOT_STARTED)
            raise RuntimeError(_ALREADY_FINISHED)
        if kind == "http.response.start":
            if state != _IDLE:
                raise RuntimeError(_ALREADY_FINISHED if state == _DONE else _ALREADY_STARTED)
            status = message.get("status")
            headers = message.get("headers", ())
            if status.__class__ is not int:
                # int subclasses (HTTPStatus) are fine, bool and everything else is not.
                if not isinstance(status, int) or isinstance(status, bool):
                    raise RuntimeError(_UNSUPPORTED)
                status = int(status)
            if not 100 <= status <= 999:
                raise RuntimeError(_UNSUPPORTED)
            if headers is None:
                headers = ()
            self.status = status
            self.headers = headers
            if "trailers" in message and message["trailers"]:
                self._start_trailered(status, headers)
                return
            self.state = _STARTED
            if headers and _is_event_stream(headers):
                # Server-sent events: the client must see the head before the first event.
                try:
                    self.cycle.start(status, headers, flush=True)
                except (TypeError, ValueError):
                    self.state = _IDLE
                    raise RuntimeError(_UNSUPPORTED) from None
                self.state = _STREAMING
            return
        if kind == "http.response.pathsend":
            await self._pathsend(message)
            return
        if kind == "http.response.trailers":
            self._trailers(message)
            return
        raise RuntimeError(_UNSUPPORTED)

    # ---------------------------------------------------------------- http.response.trailers

    def _start_trailered(self, status: int, headers: Any) -> None:
        self.state = _T_STARTED
        if headers and _is_event_stream(headers):
            try:
                self.cycle.start_trailers(status, headers, flush=True)
            except (TypeError, ValueError):
                self.state = _IDLE
                raise RuntimeError(_UNSUPPORTED) from None
            self.state = _T_STREAMING

    async def _trailered_body(self, message: Message) -> None:
        body = message.get("body", b"")
        if not isinstance(body, (bytes, bytearray, memoryview)):
            raise RuntimeError(_UNSUPPORTED)
        if self.state == _T_STARTED:
            try:
                self.cycle.start_trailers(self.status, self.headers)
            except (TypeError, ValueError):
                self.state = _IDLE
                raise RuntimeError(_UNSUPPORTED) from None
            self.state = _T_STREAMING
        if not message.get("more_body", False):
            self.state = _T_BODY_DONE
        if body:
            await self._write(bytes(body))

    def _trailers(self, message: Message) -> None:
        state = self.state
        if state != _T_BODY_DONE:
            if state == _IDLE:
                raise RuntimeError(_NOT_STARTED)
            if state == _DONE:
                raise RuntimeError(_ALREADY_FINISHED)
            # Not announced by `trailers: True`, or the body has not ended yet: the extension
            # allows trailers only after the last body message.
            raise RuntimeError(_UNSUPPORTED)
        headers = message.get("headers", ())
        fields = self.trailer_fields
        if fields is None:
            fields = self.trailer_fields = []
        if headers is not None:
            try:
                fields.extend(headers)
            except TypeError:
                raise RuntimeError(_UNSUPPORTED) from None
        if message.get("more_trailers", False):
            return
        self.state = _DONE
        try:
            self.cycle.finish_trailers(fields)
        except (TypeError, ValueError):
            # Nothing of the trailers was written; the app's error aborts the response.
            raise RuntimeError(_UNSUPPORTED) from None

    async def _write(self, data: bytes) -> None:
        try:
            await self.cycle.write(data)
        except ConnectionResetError:  # the cycle's ClientDisconnected
            # ASGI 2.3: a send after the client went away is ignored (the app learns of it
            # through http.disconnect), never an endless wait.
            return

    async def _pathsend(self, message: Message) -> None:
        state = self.state
        if state == _IDLE:
            raise RuntimeError(_NOT_STARTED)
        if state != _STARTED and state != _T_STARTED:
            raise RuntimeError(
                _ALREADY_STARTED if state == _STREAMING or state == _T_STREAMING else _ALREADY_FINISHED
            )
        path = message.get("path")
        if not isinstance(path, (str, os.PathLike)):
            raise RuntimeError(_UNSUPPORTED)
        cycle = self.cycle
        # With `trailers: True` the file is the whole body and the trailers come next.
        trailers = state == _T_STARTED
        self.state = _T_BODY_DONE if trailers else _DONE
        try:
            file = open(path, "rb")  # noqa: SIM115 - closed below, after the await
        except OSError:
            if trailers:
                cycle.start_trailers(404, ())
            else:
                cycle.respond(404, (), b"")
            return
        with file:
            size = os.fstat(file.fileno()).st_size
            headers = without_framing(self.headers)
            headers.append((b"content-length", str(size).encode()))
            try:
                if trailers:
                    cycle.start_trailers(self.status, headers)
                else:
                    cycle.start(self.status, headers)
            except (TypeError, ValueError):
                raise RuntimeError(_UNSUPPORTED) from None
            try:
                await cycle.sendfile(file, 0, size)
            except ConnectionResetError:  # the cycle's ClientDisconnected
                return
            if not trailers:
                cycle.finish()


class ASGIAdapter:
    """`--interface asgi`: HTTP plus lifespan (granian.apps.lifespan)."""

    lifespan_enabled = True

    def __init__(self, app: Any, settings: Any = None, root_path: str | None = None) -> None:
        self.app: ASGIApp = app
        if root_path is None:
            root_path = AppConfig.of(settings).root_path
        self.root_path = root_path
        self.lifespan = Lifespan(app) if self.lifespan_enabled else None
        self.state: dict[str, Any] = {}
        self.handler = self._make_handler()

    async def startup(self) -> bool:
        if self.lifespan is None:
            return True
        ok = await self.lifespan.startup()
        self.state = self.lifespan.state
        self.handler = self._make_handler()
        return ok

    async def shutdown(self) -> None:
        if self.lifespan is not None:
            await self.lifespan.shutdown()

    def ws_handler(self, cycle: Cycle, session: Any) -> Any:
        """A WebSocket upgrade request (granian.apps.asgi_ws): the server calls this instead of
        `handler`, so plain HTTP requests pay nothing for WebSockets."""
        from .asgi_ws import websocket

        return websocket(self, cycle, session)

    def _make_handler(self) -> Callable[[Cycle], Any]:
        app = self.app
        state = self.state
        version = ASGI_VERSION
        root_path = self.root_path
        # Every scope starts as a copy of this one (a copy of a dict is one memcpy of its
        # table; a 14-key literal inserts key by key): the keys, in this order, and the values
        # that are the same for every request.
        template: dict[str, Any] = {
            "type": "http",
            "asgi": version,
            "http_version": None,
            "server": None,
            "client": None,
            "scheme": None,
            "method": None,
            "root_path": root_path,
            "path": None,
            "raw_path": None,
            "query_string": None,
            "headers": None,
            "state": None,
            "extensions": None,
        }

        async def handler(cycle: Cycle) -> None:
            raw_path = cycle.raw_path
            io = _HTTP()
            io.cycle = cycle
            scope = template.copy()
            scope["http_version"] = cycle.http_version
            scope["server"] = cycle.server
            scope["client"] = cycle.client
            scheme = scope["scheme"] = cycle.scheme
            scope["method"] = cycle.method
            scope["path"] = (
                raw_path.decode("utf-8", "replace") if _PERCENT not in raw_path else decode_path(raw_path)
            )
            scope["raw_path"] = raw_path
            scope["query_string"] = cycle.query
            scope["headers"] = cycle.headers
            scope["state"] = state.copy()
            if scheme == "http":
                # Built per request, values included: nothing an app or middleware writes into
                # one request's extensions may show up in another's.
                scope["extensions"] = {"http.response.pathsend": {}, "http.response.trailers": {}}
            else:
                scope["extensions"] = _extensions_tls(cycle)
            try:
                await app(scope, io.receive, io.send)
            except BaseException as exc:  # noqa: BLE001 - the app's error is the server's to report
                if io.state == _IDLE:
                    cycle.fail(exc)
                else:
                    # After http.response.start the client must see a truncated response,
                    # never a clean one of another status.
                    logger.error("Application callable raised an exception", exc_info=exc)
                    cycle.abort()
                if not isinstance(exc, Exception):
                    raise
                return
            if not cycle.response_done:
                if io.state == _IDLE:
                    logger.error("ASGI callable returned without starting response")
                    cycle.fail()
                else:
                    logger.error("ASGI callable returned without completing response")
                    cycle.abort()

        return handler


def _extensions_tls(cycle: Cycle) -> dict[str, Any]:
    """The extensions of a scope whose scheme is not plain `http`: with the `tls` extension
    (asgiref specs/tls.rst) when the connection is TLS. The connection computes it once
    (H1Protocol.tls_info); each scope gets its own copy, so an app that edits it changes only
    its own. A plain connection whose trusted proxy forwarded `https` has none (the spec: only
    for a connection using TLS); a TLS connection whose proxy forwarded `http` is not looked at,
    which keeps plain `http` scopes at one string compare."""
    extensions: dict[str, Any] = {"http.response.pathsend": {}, "http.response.trailers": {}}
    conn = getattr(cycle, "_served_on", None)
    # The connection's own scheme: behind a TLS-terminating proxy (the common case for a
    # forwarded `https`) this is one compare, not a look for an SSL object that is not there.
    if getattr(conn, "scheme", None) == "https":
        tls_info = getattr(conn, "tls_info", None)
        info = tls_info() if tls_info is not None else None
        if info is not None:
            extensions["tls"] = {**info, "client_cert_chain": list(info["client_cert_chain"])}
    return extensions


class ASGINLAdapter(ASGIAdapter):
    """`--interface asginl`: ASGI without lifespan."""

    lifespan_enabled = False
