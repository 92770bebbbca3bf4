"""The access log: a format compiled once per worker, lines rendered and written in batches.

`AccessLog(fmt)` scans the format for the atoms it uses and compiles functions over just those
(so a request pays for what the format prints, nothing else). Per request the completion hook
(granian.server.metrics.make_completion_hook) only queues the finished request and its duration
on its event loop's `AccessBatch`; the batch's lines are rendered and written together at most
ACCESS_FLUSH_INTERVAL later (and at worker exit). With the access log off nothing is installed,
so the request path does no work for it at all.

Logging set-up (the `--log-config` document, levels) is granian.log's; this module only needs
the logger names (granian.constants).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import asyncio

from .constants import ACCESS_LOG_ATOMS, ACCESS_LOGGER, DEFAULT_ACCESS_LOG_FMT, SERVER_LOGGER
from .errors import ConfigurationError

__all__ = [
    "ACCESS_FLUSH_INTERVAL",
    "ACCESS_FLUSH_LINES",
    "ATOMS",
    "DEFAULT_ACCESS_LOG_FMT",
    "AccessBatch",
    "AccessHandler",
    "AccessLog",
    "RequestView",
    "check_access_format",
    "make_access_log",
    "scan_format",
]

logger = logging.getLogger(SERVER_LOGGER)
# Atoms and what they mean; `header{Name}` is any request header (Granian's spelling of it).
# The atoms (granian.constants, which the CLI help lists): addr (client address, no port, as
# Granian), time (request start, local time), dt_ms (duration, ms, float), status (int), path and
# query_string (as sent, percent-encoded; the query without `?`), method, scheme (http|https),
# protocol (HTTP/1.0|HTTP/1.1|HTTP/2), size (response body bytes, int), referer, user_agent;
# plus `rbl`, Granian's undocumented alias of size, and `header{Name}` for any request header.
ATOMS = ACCESS_LOG_ATOMS | {"rbl"}
_HEADER_ATOMS = {"referer": b"referer", "user_agent": b"user-agent"}
_MISSING = "-"
_TIME_FMT = "%Y-%m-%d %H:%M:%S %z"


def scan_format(fmt: str) -> list[str]:
    """The mapping keys of a %-style format, in order (`%%` is a literal percent sign).

    `%(header{User-Agent})s` parses as the key `header{User-Agent}` with %-formatting (a key ends at
    the first `)`, and a header name is an RFC 9110 §5.6.2 token, which cannot contain one), so the
    pre-scan only has to learn which header each such key names."""
    keys: list[str] = []
    i = 0
    n = len(fmt)
    while True:
        i = fmt.find("%", i)
        if i < 0 or i + 1 >= n:
            return keys
        if fmt[i + 1] == "%":
            i += 2
            continue
        if fmt[i + 1] == "(":
            end = fmt.find(")", i + 2)
            if end < 0:
                raise ConfigurationError(f"--access-log-fmt: unterminated '%(' at offset {i}")
            keys.append(fmt[i + 2 : end])
            i = end + 1
            continue
        i += 1


def _escape(value: str) -> str:
    # Quote-escaping of client-controlled text, so `"%(path)s"` stays one field (Granian does the same).
    return value.replace('"', '\\"') if '"' in value else value


class RequestView(Protocol):
    """What the access log reads from a finished request (granian.server.cycle.Cycle's names)."""

    @property
    def method(self) -> str: ...
    @property
    def raw_path(self) -> bytes: ...
    @property
    def query(self) -> bytes: ...
    @property
    def http_version(self) -> str: ...
    @property
    def headers(self) -> Sequence[tuple[bytes, bytes]]: ...
    @property
    def scheme(self) -> str: ...
    @property
    def client(self) -> tuple[str, int] | None: ...
    @property
    def status(self) -> int: ...
    @property
    def bytes_sent(self) -> int: ...
    @property
    def t0(self) -> float: ...


_PROTOCOLS = {"1.0": "HTTP/1.0", "1.1": "HTTP/1.1", "2": "HTTP/2"}


class _ClockCache:
    """`time` atom text, formatted at most once per second (request start times share seconds)."""

    __slots__ = ("_sec", "_text")

    def __init__(self) -> None:
        self._sec = -1
        self._text = ""

    def text(self, wall: float) -> str:
        sec = int(wall)
        if sec != self._sec:
            self._text = time.strftime(_TIME_FMT, time.localtime(sec))
            self._sec = sec
        return self._text


# How each atom is computed, as a Python expression over the finished request `c`, its duration
# `dt` (seconds), `client` (c.client), `hv` (the wanted header values) and `tstart` (the request
# start as wall-clock text). A format is compiled into functions over just its atoms' values (see
# AccessLog._compile); only these fixed expressions and integer indexes ever go into that source,
# never text from the format.
_ATOM_EXPR = {
    "addr": "(client[0] if client else '-')",
    "time": "tstart",
    "dt_ms": "dt * 1000.0",
    "status": "c.status",
    # quote-escaped inline (see _escape): the path is in nearly every format
    "path": "(_p if '\"' not in (_p := c.raw_path.decode('latin-1')) else _esc(_p))",
    "query_string": "_esc(c.query.decode('latin-1'))",
    "method": "c.method",
    "scheme": "c.scheme",
    "protocol": "(_P.get(c.http_version) or _proto(c.http_version))",
    "size": "c.bytes_sent",
    "rbl": "c.bytes_sent",
}
_SAMPLE: dict[str, Any] = {
    "addr": "127.0.0.1", "time": "2000-01-01 00:00:00 +0000", "dt_ms": 1.0, "status": 200, "path": "/",
    "query_string": "", "method": "GET", "scheme": "http", "protocol": "HTTP/1.1", "size": 0, "rbl": 0,
}  # fmt: skip


def _protocol(version: str) -> str:
    return _PROTOCOLS.get(version) or f"HTTP/{version}"


# Finished requests wait at most this long before their lines are rendered and written, in one
# write: rendering and writing a batch in one go costs about half of doing it per request (the
# logger checks, the handler lock and the call overheads are paid once per batch), and 10 ms is
# below what a person tailing the log can notice (nginx's `access_log ... buffer= flush=` makes
# the same trade, with a default flush of seconds). A burst is rendered early once this many
# requests wait, which also bounds what the batch holds on to.
ACCESS_FLUSH_INTERVAL = 0.01
ACCESS_FLUSH_LINES = 256


class AccessBatch:
    """The requests one event loop finished since its last flush, as `(cycle, dt)` pairs.

    The completion hook only appends (granian.server.metrics.make_completion_hook); `arm()` on the
    first pair schedules `flush()` on the running loop. Without a running loop (a test, the last
    requests at exit) the pair is written through at once."""

    __slots__ = ("_alog", "_handle", "items")

    def __init__(self, alog: AccessLog) -> None:
        self._alog = alog
        self.items: list[tuple[Any, float]] = []
        self._handle: asyncio.TimerHandle | None = None

    def arm(self) -> None:
        # imported here: the master loads this module (its logging config names AccessHandler)
        # and must not pay for asyncio (about 7 MB of its RSS)
        from asyncio import _get_running_loop

        loop = _get_running_loop()
        if loop is None or loop.is_closed():
            self.flush()
        elif self._handle is None:
            self._handle = loop.call_later(ACCESS_FLUSH_INTERVAL, self.flush)

    def flush(self) -> None:
        handle = self._handle
        if handle is not None:
            self._handle = None
            handle.cancel()
        items = self.items
        if items:
            # Copy then delete what was copied: another thread's append in between (a flush
            # at exit from the main thread) stays for the next flush instead of being lost.
            batch = items[:]
            del items[: len(batch)]
            self._alog.emit(batch)


class AccessLog:
    """A compiled access-log format. Build it once per worker; each event loop feeds its finished
    requests through its own `batch()` (batched), or call `log()` for one request at once."""

    def __init__(self, fmt: str = DEFAULT_ACCESS_LOG_FMT, logger_name: str = ACCESS_LOGGER) -> None:
        self.fmt = fmt
        self.logger = logging.getLogger(logger_name)
        order = scan_format(fmt)
        self.keys = frozenset(order)
        self.unknown = sorted(k for k in self.keys if k not in ATOMS and not _is_header_key(k))
        # The format with its mapping keys removed (`%(status)d` -> `%d`): positional %-formatting
        # of a tuple is the cheapest way Python has to render the line.
        self._order = tuple(order)
        self._positional = _strip_keys(fmt)
        # Header atoms: each distinct (lower-cased) header name gets one slot in `hv`.
        self._hnames: dict[bytes, int] = {}
        for k in order:
            name = _header_name(k)
            if name is not None and name not in self._hnames:
                self._hnames[name] = len(self._hnames)
        self._clock = _ClockCache()
        self._batches: list[AccessBatch] = []
        self._compile()
        self._check_format()
        self._template = dict(
            logging.LogRecord(self.logger.name, logging.INFO, __file__, 0, fmt, None, None).__dict__
        )

    def _compile(self) -> None:
        """Build `_values(c, dt, off)` (this format's atom values, in order, for one request) and
        `_render(batch, off)` (the lines of a batch of `(c, dt)` pairs). `off` turns the
        request's `perf_counter()` start `c.t0` into wall-clock time."""
        exprs = []
        for k in self._order:
            name = _header_name(k)
            if name is not None:
                exprs.append(f"hv[{self._hnames[name]}]")
            else:
                exprs.append(_ATOM_EXPR.get(k, "'-'"))
        prelude = []
        if "addr" in self.keys:
            prelude.append("client = c.client")
        if self._hnames:
            prelude.append("hv = _headers(c.headers)")
        values = f"({', '.join(exprs)}{',' if exprs else ''})"
        timed = "time" in self.keys
        src = [
            "def values(c, dt, off):",
            *(f"    {line}" for line in prelude),
            *(["    tstart = _clock(c.t0 + off)"] if timed else []),
            f"    return {values}",
            "",
            "def render(batch, off):",
            "    out = []",
            "    put = out.append",
            *(["    sec = -1", "    tstart = ''"] if timed else []),
            "    for c, dt in batch:",
            *(f"        {line}" for line in prelude),
            *(
                [
                    # the `time` text changes once a second: batches share it
                    "        w = int(c.t0 + off)",
                    "        if w != sec:",
                    "            sec = w",
                    "            tstart = _clock(w)",
                ]
                if timed
                else []
            ),
            f"        put(_FMT % {values})",
            "    return out",
        ]
        ns: dict[str, Any] = {
            "_clock": self._clock.text,
            "_esc": _escape,
            "_P": _PROTOCOLS,
            "_proto": _protocol,
            "_headers": self._header_values,
            "_FMT": self._positional,
        }
        exec(compile("\n".join(src) + "\n", "<granian access-log format>", "exec"), ns)
        self._values: Callable[[RequestView, float, float], tuple[Any, ...]] = ns["values"]
        self._render: Callable[[list[tuple[Any, float]], float], list[str]] = ns["render"]

    def batch(self) -> AccessBatch:
        """A new batch for one event loop's completion hook (flushed by `flush()` at exit)."""
        b = AccessBatch(self)
        self._batches.append(b)
        return b

    def flush(self) -> None:
        """Write every batch's pending lines now (the worker calls this once its loops stopped)."""
        for b in self._batches:
            b.flush()

    def log(self, c: RequestView, dt: float) -> None:
        """Emit the line for one finished request `c` (a `granian.server.cycle.Cycle`, or anything
        with the same attributes) that took `dt` seconds from its head to its response end and
        ended now."""
        self.emit([(c, dt)], time.time() - dt - c.t0)

    def emit(self, batch: list[tuple[Any, float]], off: float | None = None) -> None:
        """Write the lines of finished `(cycle, dt)` pairs; `off` maps `cycle.t0` to wall time
        (by default: the pairs' `t0` are this process's `perf_counter()` readings)."""
        lg = self.logger
        if not lg.isEnabledFor(logging.INFO):
            return
        if off is None:
            off = time.time() - time.perf_counter()
        # The default setup (one AccessHandler printing the bare message, no filters, no
        # propagation) gets the rendered lines directly: no LogRecord at all.
        hs = lg.handlers
        if len(hs) == 1 and not lg.propagate and not lg.filters:
            h = hs[0]
            if type(h) is AccessHandler and h.plain and not h.filters and h.level <= logging.INFO:
                try:
                    lines = self._render(batch, off)
                except (TypeError, ValueError):
                    pass  # a value the start-up check could not foresee: let logging report it
                else:
                    h.write_lines(lines)
                    return
        values = self._values
        for c, dt in batch:
            self._log_record(values(c, dt, off), c.t0 + off + dt)

    def _check_format(self) -> None:
        # Render a sample now so a bad conversion (`%(path)d`) fails at start-up, not per request.
        sample = {k: _SAMPLE.get(k, _MISSING) for k in self.keys}
        try:
            text = self.fmt % sample
            positional = self._positional % tuple(sample[k] for k in self._order)
        except (ValueError, TypeError, KeyError) as exc:
            raise ConfigurationError(f"--access-log-fmt {self.fmt!r}: not a %-style format ({exc})") from exc
        if text != positional:  # e.g. `%(a)s %s` mixes mapping and positional specs
            raise ConfigurationError(f"--access-log-fmt {self.fmt!r}: not a %-style format (mixed specs)")

    def _log_record(self, values: tuple[Any, ...], created: float) -> None:
        # makeRecord + handle rather than .info(): skips the caller lookup (a stack walk) that an
        # access line has no use for. `args` is the atoms mapping, as Granian passes it, so
        # handlers/filters that read `record.args` keep working.
        self.logger.handle(self._record(dict(zip(self._order, values, strict=True)), created))

    def _record(self, atoms: dict[str, Any], created: float) -> logging.LogRecord:
        # A LogRecord's __init__ costs more than the rest of the line (path splitting, thread and
        # process lookups, the caller frame walk of `.info()`); every field but the clock, the
        # thread and the atoms is the same for each access line, so records are cloned from a
        # template made once per worker (after fork, so `process` is right). The result is a
        # complete LogRecord: any formatter field or filter a user config uses still works.
        # `created` is when the response ended (not when its batch was flushed).
        rec = _new_record()
        d = rec.__dict__
        d.update(self._template)
        ns = int(created * 1e9)
        d["created"] = created
        d["msecs"] = (ns % 1_000_000_000) // 1_000_000 + 0.0
        d["relativeCreated"] = (ns - _START_NS) / 1e6
        d["args"] = atoms
        d["thread"] = threading.get_ident()
        d["threadName"] = threading.current_thread().name
        return rec

    def _header_values(self, headers: Sequence[tuple[bytes, bytes]]) -> list[str]:
        wanted = self._hnames
        out: list[str | None] = [None] * len(wanted)
        for name, value in headers:
            i = wanted.get(name)
            if i is not None:
                text = _escape(value.decode("latin-1"))
                prev = out[i]
                # Repeated field lines combine with ", " (RFC 9110 §5.3).
                out[i] = text if prev is None else f"{prev}, {text}"
        return [_MISSING if v is None else v for v in out]


def _header_name(key: str) -> bytes | None:
    """The lower-cased header name a key stands for (`referer`, `user_agent`, `header{Name}`)."""
    name = _HEADER_ATOMS.get(key)
    if name is None and _is_header_key(key):
        name = key[7:-1].strip().lower().encode("latin-1")
    return name


def _strip_keys(fmt: str) -> str:
    out: list[str] = []
    i = 0
    n = len(fmt)
    while True:
        j = fmt.find("%", i)
        if j < 0 or j + 1 >= n:
            out.append(fmt[i:])
            return "".join(out)
        if fmt[j + 1] == "%":
            out.append(fmt[i : j + 2])
            i = j + 2
        elif fmt[j + 1] == "(":
            end = fmt.index(")", j + 2)
            out.append(fmt[i : j + 1])
            i = end + 1
        else:
            out.append(fmt[i : j + 1])
            i = j + 1


class AccessHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The default access-log handler: a StreamHandler that also takes a batch of rendered lines
    in one write (`write_lines`, from `AccessLog.emit`). Records (any non-default setup) are
    written one by one, as by a StreamHandler."""

    def __init__(self, stream: Any = None) -> None:
        super().__init__(stream)
        self._checked: object = _UNCHECKED
        self._plain = False

    @property
    def plain(self) -> bool:
        """True when the formatter prints just the message (Granian's `access` formatter)."""
        f = self.formatter
        if f is not self._checked:
            self._plain = f is None or (type(f) is logging.Formatter and f._fmt == "%(message)s")
            self._checked = f
        return self._plain

    def write_lines(self, lines: list[str]) -> None:
        if not lines:
            return
        term = self.terminator
        data = term.join(lines) + term
        with self.lock:  # type: ignore[union-attr]
            try:
                self.stream.write(data)
                self.stream.flush()
            except Exception:  # noqa: BLE001
                # A closed or broken stdout must not take the worker down with it.
                return


_UNCHECKED = object()


def _new_record() -> logging.LogRecord:
    return logging.LogRecord.__new__(logging.LogRecord)


# logging's own start time (for `relativeCreated`), in ns like `created` is computed here.
_START_NS = int(getattr(logging, "_startTime", time.time()) * 1e9)


def _is_header_key(key: str) -> bool:
    return key.startswith("header{") and key.endswith("}") and len(key) > 8


def check_access_format(fmt: str) -> None:
    """Validate `--access-log-fmt` at start-up: ValueError naming an unknown atom or a bad
    %-conversion (used by the settings model, so a typo is an option error, exit status 2)."""
    try:
        alog = AccessLog(fmt)
    except ConfigurationError as exc:
        raise ValueError(str(exc).split(": ", 1)[-1]) from None
    if alog.unknown:
        known = ", ".join([*sorted(ATOMS - {"rbl"}), "header{Name}"])
        raise ValueError(f"unknown atom {alog.unknown[0]!r}; known: {known}")


def make_access_log(settings: Any) -> AccessLog | None:
    """The worker's access logger, or None when `--no-access-log` (then nothing is installed)."""
    if not getattr(settings, "access_log", False):
        return None
    fmt = getattr(settings, "access_log_fmt", None) or DEFAULT_ACCESS_LOG_FMT
    alog = AccessLog(fmt)
    if alog.unknown:
        logger.warning("Access log format uses unknown atoms (printed as '-'): %s", ", ".join(alog.unknown))
    return alog
