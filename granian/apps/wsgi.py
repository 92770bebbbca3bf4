"""`--interface wsgi`: PEP 3333 over the request cycle.

The app runs on the worker's `--blocking-threads` pool; the event loop keeps doing all I/O.
A request costs one pool submit. The common answers (a list of byte strings, or any iterable
whose first item already fills the declared `content-length`) come back from that one submit
and are written with one `Cycle.respond`; streamed bodies (generators, `write()`) cross back to
the loop once per piece, awaiting the transport's backpressure, so pieces reach the client in
order and as soon as they are produced (PEP 3333 "Buffering and Streaming").
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Coroutine, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .._headers import declared_length, without_framing
from ..constants import SERVER_LOGGER
from .blocking import BlockingPool
from .config import AppConfig
from .static import send_file
from .wsgi_io import EnvironBuilder, FileWrapper, WSGIInput

if TYPE_CHECKING:
    from .._types import RequestCycle as Cycle

__all__ = ["WSGIAdapter"]

logger = logging.getLogger(SERVER_LOGGER)

ExcInfo = tuple[type[BaseException], BaseException, TracebackType]
StrHeaders = list[tuple[str, str]]
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# What the app thread hands back to the loop.
_FULL = 0  # (status, headers, body): one respond()
_FILE = 1  # (status, headers, wrapper): sendfile from the wrapper's file
_STREAMED = 2  # pieces already went out: finish() (or an empty respond() if none did)


class _Call:
    """One WSGI invocation on a pool thread: start_response state and the way back to the loop."""

    __slots__ = ("cycle", "loop", "status", "status_code", "headers", "sent", "length")

    def __init__(self, cycle: Cycle, loop: asyncio.AbstractEventLoop) -> None:
        self.cycle = cycle
        self.loop = loop
        self.status = ""
        self.status_code = 0
        self.headers: StrHeaders = []
        self.sent = False  # the head went to the loop (headers can no longer change)
        self.length = -1

    def start_response(
        self, status: str, headers: StrHeaders, exc_info: ExcInfo | None = None
    ) -> Callable[[bytes], None]:
        if exc_info is not None:
            try:
                if self.sent:
                    # PEP 3333: too late to change the response; re-raise the app's error
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None  # break the frame <-> traceback cycle (PEP 3333)
        elif self.status:
            raise AssertionError("start_response() called twice without exc_info")
        code = _STATUS_CODES.get(status) if status.__class__ is str else None
        if code is None:
            code = _status_code(status)
        self.status = status
        self.status_code = code
        self.headers = headers = list(headers)
        try:
            key: tuple[Any, ...] | None = tuple(headers)
            length = _LENGTHS.get(key)  # type: ignore[arg-type]
        except TypeError:  # unhashable pairs (lists): no memo
            key = length = None
        if length is None:
            length = declared_length(headers)
            if key is not None and len(_LENGTHS) < _MEMO_MAX:
                _LENGTHS[key] = length
        self.length = length
        return self.write

    def push(self, data: bytes) -> None:
        """Send one piece from the app thread, waiting for the loop (and its backpressure)."""
        if not self.status:
            raise AssertionError("write() before start_response()")
        self.sent = True
        asyncio.run_coroutine_threadsafe(self._push(data), self.loop).result()

    async def _push(self, data: bytes) -> None:
        cycle = self.cycle
        if not cycle.response_started:
            cycle.start(self.status_code, self.headers)
        await cycle.write(data)

    def write(self, data: bytes) -> None:
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError(f"write() takes bytes, not {type(data).__name__}")
        self.push(bytes(data))

    def done(self, result: tuple[int, Any] | None, exc: BaseException | None) -> None:
        """On the loop, after the app returned (or raised): complete the response."""
        cycle = self.cycle
        if exc is not None:
            if isinstance(exc, ConnectionResetError) and cycle.disconnected:
                return  # the client left while the app streamed: nothing to report
            if cycle.response_done:
                logger.error("Application callable raised an exception", exc_info=exc)
            elif cycle.response_started:
                # a truncated stream, never a clean response of another status
                logger.error("Application callable raised an exception", exc_info=exc)
                cycle.abort()
            else:
                cycle.fail(exc)
            return
        if cycle.response_done or result is None:
            return
        kind, payload = result
        try:
            if kind == _FULL:
                cycle.respond(self.status_code, self.headers, payload)
            elif kind == _FILE:
                self.loop.create_task(_send_wrapper(cycle, self, payload))
            elif cycle.response_started:
                cycle.finish()
            else:
                cycle.respond(self.status_code, self.headers, b"")
        except Exception as err:  # noqa: BLE001 - e.g. headers the cycle refuses: a 500
            cycle.fail(err)

    def pull(self) -> bytes:
        """`wsgi.input`'s source: the next body piece, read on the loop (flow control)."""
        data = asyncio.run_coroutine_threadsafe(self.cycle.read(), self.loop).result()
        if data is None:
            raise OSError("client disconnected while sending the request body")
        return data


# Status strings and header lists apps send over and over, validated once (bounded, so an app
# inventing them per request cannot grow memory): status -> code, header pairs -> the declared
# content-length (-1: none).
_STATUS_CODES: dict[str, int] = {}
_LENGTHS: dict[tuple[Any, ...], int] = {}
_MEMO_MAX = 512


def _status_code(status: Any) -> int:
    if not isinstance(status, str) or len(status) < 3 or not status[:3].isdigit():
        raise ValueError(f"invalid WSGI status {status!r}")
    if status[3:4] not in ("", " "):
        raise ValueError(f"invalid WSGI status {status!r}")
    code = int(status[:3])
    if status.__class__ is str and len(_STATUS_CODES) < _MEMO_MAX:
        _STATUS_CODES[status] = code
    return code


def _run(app: WSGIApp, environ: dict[str, Any], call: _Call) -> tuple[int, Any]:
    """Runs on a pool thread: calls the app, drains what it returned, always calls close()."""
    result = app(environ, call.start_response)
    deferred_close = False
    try:
        if not call.sent:
            if result.__class__ is list or result.__class__ is tuple:
                body = b"".join(result)
                if not call.status:
                    raise AssertionError("the app returned without calling start_response()")
                return _FULL, body
            if isinstance(result, FileWrapper) and _has_fileno(result.filelike):
                if not call.status:
                    raise AssertionError("the app returned without calling start_response()")
                deferred_close = True  # closed on the loop once the file is sent
                return _FILE, result
        it = iter(result)
        # PEP 3333: a server "should not transmit more bytes to the client than the header
        # allows" and should stop iterating once the declared content-length is sent.
        sent = 0
        if not call.sent:
            # Collect while nothing forces a send: pieces up to the declared content-length
            # are the whole body (one respond); without one, the first piece starts a stream.
            parts: list[bytes] = []
            size = 0
            for piece in it:
                if not piece:
                    continue
                parts.append(piece)
                size += len(piece)
                length = call.length  # start_response may run inside the first next()
                if length < 0:
                    break
                if size >= length:
                    if not call.status:
                        raise AssertionError("the app returned without calling start_response()")
                    return _FULL, b"".join(parts)[:length]
            else:
                if not call.status:
                    raise AssertionError("the app returned without calling start_response()")
                return _FULL, b"".join(parts)
            call.push(b"".join(parts))
            sent = size
        length = call.length
        for piece in it:
            if piece:
                if length >= 0:
                    if sent >= length:
                        break
                    piece = piece[: length - sent]
                call.push(piece)
                sent += len(piece)
        return _STREAMED, None
    finally:
        if not deferred_close:
            close = getattr(result, "close", None)
            if close is not None:
                close()


def _has_fileno(filelike: Any) -> bool:
    try:
        fd = filelike.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    return isinstance(fd, int) and fd >= 0


class WSGIAdapter:
    """`--interface wsgi` (docs: granian.server.cycle "Interface adapters")."""

    def __init__(self, app: Any, settings: Any = None) -> None:
        self.app: WSGIApp = app
        cfg = AppConfig.of(settings)
        self.script_name = cfg.root_path.rstrip("/")
        self.multiprocess = cfg.multiprocess
        self.pool = BlockingPool(cfg.blocking_threads, cfg.blocking_idle_timeout, "granian-wsgi")
        self.handler = self._make_handler()

    async def startup(self) -> bool:
        return True

    async def shutdown(self) -> None:
        # in-flight requests were drained before this; don't block the loop on stragglers
        self.pool.shutdown()

    def _make_handler(self) -> Callable[[Cycle], Any]:
        app = self.app
        call_in_pool = self.pool.call
        builders: dict[str, EnvironBuilder] = {}
        script_name = self.script_name
        multiprocess = self.multiprocess

        def dispatch(cycle: Cycle, loop: asyncio.AbstractEventLoop, call: _Call, first: bytes) -> None:
            scheme = cycle.scheme
            builder = builders.get(scheme)
            if builder is None:
                builder = builders[scheme] = EnvironBuilder(scheme, script_name, multiprocess)
            environ = builder.build(
                cycle.method,
                cycle.raw_path,
                cycle.query,
                cycle.http_version,
                cycle.headers,
                cycle.server,
                cycle.client,
                WSGIInput(call.pull, first, cycle.body_complete),
            )
            # The response is completed by `call.done` on the loop once the app returns: the
            # handler ends here. The request stays in flight (the connection and the drain
            # count it) until the cycle completes.
            call_in_pool(loop, call.done, _run, app, environ, call)

        async def read_then_dispatch(cycle: Cycle, loop: asyncio.AbstractEventLoop, call: _Call) -> None:
            first = await cycle.read()
            if first is None:
                cycle.abort()
                return
            dispatch(cycle, loop, call, first)

        def handler(cycle: Cycle) -> Coroutine[Any, Any, None] | None:
            # Looked up per call: with --threads each loop thread runs this handler on its loop.
            loop = asyncio.get_running_loop()
            call = _Call(cycle, loop)
            # A body already buffered (and an absent one) is handed to the app whole, so small
            # requests never hop back to the loop to read, and need no coroutine or Task at all
            # (granian.server.cycle: a handler may finish synchronously and return None).
            first = cycle.read_buffered()
            if first is None:
                return read_then_dispatch(cycle, loop, call)
            dispatch(cycle, loop, call, first)
            return None

        return handler


async def _send_wrapper(cycle: Cycle, call: _Call, wrapper: FileWrapper) -> None:
    """`wsgi.file_wrapper` over a real file: the bytes from its current position to its end
    (or the app's content-length, if smaller) go out through sendfile."""
    try:
        f = wrapper.filelike
        fd = f.fileno()
        try:
            pos = f.tell()
        except (AttributeError, OSError):
            pos = 0
        count = max(0, os.fstat(fd).st_size - pos)
        if call.length >= 0:
            count = min(count, call.length)
        headers = without_framing(call.headers)
        raw = os.fdopen(os.dup(fd), "rb")
        with raw:
            await send_file(cycle, raw, call.status_code, headers, pos, count)
    except Exception as exc:  # noqa: BLE001
        cycle.fail(exc)
    finally:
        try:
            wrapper.close()
        except Exception:  # noqa: BLE001 - the response is out; report and move on
            logger.exception("wsgi.file_wrapper close() failed")
