"""Files on the wire, for every interface: static paths (`--static-path-*`) served before the
app, and the one helper that sends a file (or a byte range of it) through the request cycle,
shared by ASGI-free callers: RSGI `response_file*` and WSGI `wsgi.file_wrapper`.

The bytes move with `Cycle.sendfile` (the kernel's sendfile on plain TCP, bounded positioned
reads otherwise), so a large file never sits in Python memory.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Coroutine, Iterable
from typing import IO, TYPE_CHECKING, Any

from .._headers import without_framing
from .._types import ClientDisconnected
from . import files
from .config import AppConfig
from .mime import guess_type
from .static_paths import NOT_FOUND, StaticPaths

if TYPE_CHECKING:
    from .._types import RequestCycle as Cycle

__all__ = ["StaticAdapter", "send_file", "send_path", "with_static"]

Handler = Callable[["Cycle"], Coroutine[Any, Any, None]]
StrHeaders = list[tuple[str, str]]

# Request fields the static handler consults, read in one pass over the header list.
_CONDITIONAL = frozenset({b"if-none-match", b"if-modified-since", b"if-match", b"if-unmodified-since"})
_WANTED = _CONDITIONAL | {b"range", b"if-range"}


async def send_file(
    cycle: Cycle, file: IO[bytes], status: int, headers: StrHeaders, offset: int, count: int
) -> None:
    """Send `count` bytes of the open `file` from `offset` as the whole response body, with
    `content-length` set here. A client that leaves mid-way just ends the response."""

    headers.append(("content-length", str(count)))
    cycle.start(status, headers)
    try:
        await cycle.sendfile(file, offset, count)
    except ClientDisconnected:
        return
    cycle.finish()


async def send_path(
    cycle: Cycle,
    path: str | os.PathLike[str],
    status: int,
    headers: Iterable[tuple[str, str]],
    start: int = 0,
    end: int | None = None,
) -> None:
    """Answer with the file at `path`, bytes [start, end) (the whole file by default, `end`
    clamped to its size). A file that cannot be opened gives an empty 404 (RSGI.md)."""
    try:
        file = open(path, "rb")  # noqa: SIM115 - closed by the with below, after the awaits
    except OSError:
        cycle.respond(404, (), b"")
        return
    with file:
        size = os.fstat(file.fileno()).st_size
        stop = size if end is None else min(end, size)
        begin = min(start, stop)
        await send_file(cycle, file, status, without_framing(headers), begin, stop - begin)


class StaticFiles:
    """Serves GET/HEAD on the static routes with validators, 304, 412 and single ranges."""

    __slots__ = ("paths", "cache_control", "metrics")

    def __init__(self, paths: StaticPaths, expires: int) -> None:
        self.paths = paths
        # `--static-path-expires 0` disables the header (Granian's documented meaning), rather
        # than sending `max-age=0`, which tells caches to revalidate every time.
        self.cache_control: tuple[tuple[str, str], ...] = (
            (("cache-control", f"max-age={expires}"),) if expires else ()
        )
        # --metrics: an object with `static_handled`/`static_err` counters
        # (granian.server.metrics.WorkerMetrics), set by the worker before serving; None when off.
        self.metrics: Any = None

    async def serve(self, cycle: Cycle, path: str) -> None:
        if path == NOT_FOUND:
            cycle.respond(404, (), b"")
            return
        if cycle.method not in ("GET", "HEAD"):
            # a static file is read-only (RFC 9110 §15.5.6: 405 lists what is allowed)
            cycle.respond(405, (("allow", "GET, HEAD"),), b"")
            return
        try:
            file = open(path, "rb")  # noqa: SIM115 - closed by the with below
        except OSError:
            cycle.respond(404, (), b"")
            return
        with file:
            st = os.fstat(file.fileno())
            size, mtime = st.st_size, st.st_mtime
            etag = files.etag_for(st)
            validators: StrHeaders = [
                *self.cache_control,
                ("etag", etag),
                ("last-modified", files.http_date(mtime)),
            ]
            req: dict[bytes, str] = {}
            for name, value in cycle.headers:
                if name in _WANTED and name not in req:
                    req[name] = value.decode("latin-1")
            if req.keys() & _CONDITIONAL:
                if files.precondition_failed(
                    req.get(b"if-match"), req.get(b"if-unmodified-since"), etag, mtime
                ):
                    cycle.respond(412, (), b"")
                    return
                if files.is_not_modified(
                    req.get(b"if-none-match"), req.get(b"if-modified-since"), etag, mtime
                ):
                    # a 304 repeats the validators and cache fields a 200 would carry (§15.4.5)
                    cycle.respond(304, validators, b"")
                    return
            headers = validators
            ctype = guess_type(path)
            if ctype is not None:
                headers.append(("content-type", ctype))
            headers.append(("accept-ranges", "bytes"))
            rng = req.get(b"range")
            # Range applies to GET only (RFC 9110 §14.2); HEAD answers like a plain GET would.
            if (
                rng is not None
                and cycle.method == "GET"
                and files.if_range_allows(req.get(b"if-range"), etag, mtime)
            ):
                r = files.evaluate_range(rng, size)
                if r == files.RANGE_UNSATISFIABLE:
                    headers.append(("content-range", f"bytes */{size}"))
                    cycle.respond(416, headers, b"")
                    return
                if isinstance(r, tuple):
                    begin, stop = r
                    headers.append(("content-range", f"bytes {begin}-{stop - 1}/{size}"))
                    await send_file(cycle, file, 206, headers, begin, stop - begin)
                    return
            await send_file(cycle, file, 200, headers, 0, size)

    def wrap(self, inner: Handler) -> Handler:
        match = self.paths.match
        serve: Callable[[Cycle, str], Coroutine[Any, Any, None]] = self.serve
        if self.metrics is not None:
            serve = self._counted(self.metrics)

        def handler(cycle: Cycle) -> Coroutine[Any, Any, None]:
            # A plain function returning the chosen coroutine: requests outside the static
            # routes cost one bytes prefix test and no extra coroutine frame.
            path = match(cycle.raw_path)
            if path is None:
                return inner(cycle)
            return serve(cycle, path)

        return handler

    def _counted(self, m: Any) -> Callable[[Cycle, str], Coroutine[Any, Any, None]]:
        serve = self.serve

        async def counted(cycle: Cycle, path: str) -> None:
            # Handled: every request a static route answered; failed: answered with an error
            # status (no such file, wrong method, bad range) or ended by an exception.
            m.static_handled += 1
            try:
                await serve(cycle, path)
            except BaseException:
                m.static_err += 1
                raise
            if cycle.status >= 400:
                m.static_err += 1

        return counted


class StaticAdapter:
    """Wraps an interface adapter (docs: granian.server.cycle "Interface adapters") so the
    static routes are answered before the app. `handler` is looked up on every access because
    some adapters rebuild theirs during startup (ASGI lifespan state)."""

    def __init__(self, inner: Any, static: StaticFiles) -> None:
        self.inner = inner
        self.static = static
        self._wrapped_for: Any = None
        self._wrapped: Handler | None = None

    @property
    def handler(self) -> Handler:
        inner_handler = self.inner.handler
        if self._wrapped is None or self._wrapped_for is not inner_handler:
            self._wrapped = self.static.wrap(inner_handler)
            self._wrapped_for = inner_handler
        return self._wrapped

    async def startup(self) -> bool:
        return bool(await self.inner.startup())

    async def shutdown(self) -> None:
        await self.inner.shutdown()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def with_static(adapter: Any, settings: Any) -> Any:
    """The adapter itself when no `--static-path-mount` is configured, else a StaticAdapter."""
    static = AppConfig.of(settings).static
    if static is None:
        return adapter
    paths = StaticPaths(list(static.routes), list(static.mounts), static.dir_to_file)
    return StaticAdapter(adapter, StaticFiles(paths, static.expires))
