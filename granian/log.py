"""Server logging and the access log.

Logger names are Granian's (``_granian`` for the server, ``granian.access`` for the access log), so
``--log-config`` files written for Granian keep working. `configure(settings)` is called by the master
and again by every worker after fork (dictConfig is idempotent, and a worker may be started alone).

The access log is compiled once at start-up (`AccessLog`): the format is scanned for the atoms it
uses and only those are computed per request. With the access log off nothing is installed, so the
request path does no work for it at all.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import logging.config
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from .constants import ACCESS_LOG_ATOMS
from .errors import ConfigurationError

SERVER_LOGGER = "_granian"
ACCESS_LOGGER = "granian.access"

logger = logging.getLogger(SERVER_LOGGER)
access_logger = logging.getLogger(ACCESS_LOGGER)

# CLI.md's default, Granian's too.
DEFAULT_ACCESS_LOG_FMT = '[%(time)s] %(addr)s - "%(method)s %(path)s %(protocol)s" %(status)d %(dt_ms).3f'

LOG_LEVELS: dict[str, int] = {
    "critical": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "notset": logging.NOTSET,
}

# Granian's default document: same formatter and handler names, so a user file that references
# `console`/`access`/`generic` keeps resolving.
LOGGING_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "generic": {
            "()": "logging.Formatter",
            "fmt": "[%(levelname)s] %(message)s",
            "datefmt": "[%Y-%m-%d %H:%M:%S %z]",
        },
        "access": {
            "()": "logging.Formatter",
            "fmt": "%(message)s",
            "datefmt": "[%Y-%m-%d %H:%M:%S %z]",
        },
    },
    "handlers": {
        "console": {"formatter": "generic", "class": "logging.StreamHandler", "stream": "ext://sys.stdout"},
        "access": {"formatter": "access", "class": "granian.log.AccessHandler", "stream": "ext://sys.stdout"},
    },
    "loggers": {
        SERVER_LOGGER: {"handlers": ["console"], "level": "INFO", "propagate": False},
        ACCESS_LOGGER: {"handlers": ["access"], "level": "INFO", "propagate": False},
    },
}

# Above CRITICAL: `--no-log` silences the server logger without touching handlers a user file set up.
_SILENT = logging.CRITICAL + 1


class LogSettings(Protocol):
    """The part of `granian.settings.Settings` this module reads (kept structural so that the
    bottom layers never import the settings model)."""

    @property
    def log(self) -> bool: ...
    @property
    def log_level(self) -> Any: ...
    @property
    def log_config(self) -> Any: ...


def level_number(level: Any) -> int:
    """`--log-level` value (a str or a str enum) to a logging level number."""
    name = str(getattr(level, "value", level)).lower()
    try:
        return LOG_LEVELS[name]
    except KeyError:
        raise ConfigurationError(
            f"--log-level: {name!r} is not one of {', '.join(k for k in LOG_LEVELS if k != 'notset')}"
        ) from None


def load_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a `--log-config` JSON document; errors name the file and the reason."""
    where = f"--log-config {os.fspath(path)}"
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as exc:
        raise ConfigurationError(f"{where}: cannot read: {exc.strerror or exc}") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"{where}: invalid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigurationError(
            f"{where}: expected a JSON object (a logging.config.dictConfig document), "
            f"got {type(data).__name__}"
        )
    return data


def build_config(level: Any = "info", user: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The dictConfig document: Granian's defaults with the user's document applied over them.

    Sections (`formatters`, `handlers`, `filters`, `loggers`) merge per entry, so a file that only
    redefines `granian.access` keeps the default server logger; other top-level keys replace. The
    `--log-level` goes on `_granian` unless the user's own entry for it sets a level (the file is
    the more specific statement)."""
    cfg = copy.deepcopy(LOGGING_CONFIG)
    if user:
        for key, value in user.items():
            if key in ("formatters", "handlers", "filters", "loggers") and isinstance(value, Mapping):
                section = cfg.setdefault(key, {})
                for name, entry in value.items():
                    section[name] = copy.deepcopy(entry)
            else:
                cfg[key] = copy.deepcopy(value)
    server = cfg.setdefault("loggers", {}).setdefault(SERVER_LOGGER, {})
    user_server = ((user or {}).get("loggers") or {}).get(SERVER_LOGGER)
    if not (isinstance(user_server, Mapping) and "level" in user_server):
        server["level"] = level_number(level)
    return cfg


def configure_logging(
    level: Any = "info",
    config: Mapping[str, Any] | str | os.PathLike[str] | None = None,
    enabled: bool = True,
) -> None:
    """Apply the logging setup. `config` is a dictConfig mapping or the path of a JSON file."""
    source = None
    if config is not None and not isinstance(config, Mapping):
        source = os.fspath(config)
        config = load_config_file(source)
    cfg = build_config(level, config)
    try:
        logging.config.dictConfig(cfg)
    except (ValueError, TypeError, AttributeError, ImportError) as exc:
        where = f" {source}" if source else ""
        # dictConfig wraps the real reason ("No module named ...") as the cause: show both.
        reason = f"{exc}: {exc.__cause__}" if exc.__cause__ is not None else str(exc)
        raise ConfigurationError(f"--log-config{where}: invalid logging configuration: {reason}") from exc
    if not enabled:
        logger.setLevel(_SILENT)


def configure(settings: LogSettings) -> None:
    """Configure logging from the settings; called by the master and by each worker."""
    configure_logging(settings.log_level, settings.log_config, settings.log)


# ---------------------------------------------------------------------------------------------
# Access log

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
# `dt` (seconds), `client` (c.client) and `hv` (the wanted header values). A format is compiled
# into one function returning just its atoms' values (see AccessLog._compile); only these fixed
# expressions and integer indexes ever go into that source, never text from the format.
_ATOM_EXPR = {
    "addr": "(client[0] if client else '-')",
    "time": "_clock(_time() - dt)",
    "dt_ms": "dt * 1000.0",
    "status": "c.status",
    "path": "_esc(c.raw_path.decode('latin-1'))",
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


class AccessLog:
    """A compiled access-log format. Build it once per worker; call `log()` once per response."""

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
        self._compile()
        self._check_format()
        self._template = dict(
            logging.LogRecord(self.logger.name, logging.INFO, __file__, 0, fmt, None, None).__dict__
        )

    def _compile(self) -> None:
        """Build `_values(c, dt)` (this format's atom values, in order) and `log(c, dt)` (the
        whole per-request path in one frame: level check, values, the fast path)."""
        exprs = []
        for k in self._order:
            name = _header_name(k)
            if name is not None:
                exprs.append(f"hv[{self._hnames[name]}]")
            else:
                exprs.append(_ATOM_EXPR.get(k, "'-'"))
        prelude = []
        if "addr" in self.keys:
            prelude.append("    client = c.client")
        if self._hnames:
            prelude.append("    hv = _headers(c.headers)")
        values = f"({', '.join(exprs)}{',' if exprs else ''})"
        src = [
            "def values(c, dt):",
            *prelude,
            f"    return {values}",
            "",
            "def log(c, dt):",
            "    if not _enabled(20):",
            "        return",
            *prelude,
            f"    values = {values}",
            # The default setup (one AccessHandler printing the bare message, no filters, no
            # propagation) renders the line directly: no LogRecord at all.
            "    hs = _lg.handlers",
            "    if len(hs) == 1 and not _lg.propagate and not _lg.filters:",
            "        h = hs[0]",
            "        if type(h) is _AH and h.plain and not h.filters and h.level <= 20:",
            "            try:",
            "                line = _FMT % values",
            "            except (TypeError, ValueError):",
            "                pass",  # a value the start-up check could not foresee: let logging report it
            "            else:",
            "                h.write_line(line)",
            "                return",
            "    _slow(values)",
        ]
        lg = self.logger
        ns: dict[str, Any] = {
            "_clock": self._clock.text,
            "_time": time.time,
            "_esc": _escape,
            "_P": _PROTOCOLS,
            "_proto": _protocol,
            "_headers": self._header_values,
            "_enabled": lg.isEnabledFor,
            "_lg": lg,
            "_AH": AccessHandler,
            "_FMT": self._positional,
            "_slow": self._log_record,
        }
        exec(compile("\n".join(src) + "\n", "<granian access-log format>", "exec"), ns)
        self._values: Callable[[RequestView, float], tuple[Any, ...]] = ns["values"]
        self.log: Callable[[RequestView, float], None] = ns["log"]
        """Emit one line for a finished request `c` (a `granian.server.cycle.Cycle`, or anything
        with the same attributes) that took `dt` seconds from its head to its response end."""

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

    def _log_record(self, values: tuple[Any, ...]) -> None:
        # makeRecord + handle rather than .info(): skips the caller lookup (a stack walk) that an
        # access line has no use for. `args` is the atoms mapping, as Granian passes it, so
        # handlers/filters that read `record.args` keep working.
        self.logger.handle(self._record(dict(zip(self._order, values, strict=True))))

    def _record(self, atoms: dict[str, Any]) -> logging.LogRecord:
        # A LogRecord's __init__ costs more than the rest of the line (path splitting, thread and
        # process lookups, the caller frame walk of `.info()`); every field but the clock, the
        # thread and the atoms is the same for each access line, so records are cloned from a
        # template made once per worker (after fork, so `process` is right). The result is a
        # complete LogRecord: any formatter field or filter a user config uses still works.
        rec = _new_record()
        d = rec.__dict__
        d.update(self._template)
        ns = time.time_ns()
        d["created"] = ns / 1e9
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


# The default access handler writes its lines at most this long after they were logged, in one
# write: per-line writes were the largest single cost of an access line, and 10 ms is below what
# a person tailing the log can notice (nginx's `access_log ... buffer= flush=` makes the same
# trade, with a default flush of seconds). A burst writes early once this many lines wait.
ACCESS_FLUSH_INTERVAL = 0.01
ACCESS_FLUSH_LINES = 256


class AccessHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The default access-log handler: a StreamHandler that batches lines on the event loop (see
    ACCESS_FLUSH_INTERVAL) instead of writing once per request. Outside a running loop, and when
    the worker flushes its handlers at exit (logging.shutdown), it writes through."""

    def __init__(self, stream: Any = None) -> None:
        super().__init__(stream)
        self._pending: list[str] = []
        self._scheduled = False
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

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self.write_line(msg)

    def write_line(self, line: str) -> None:
        with self.lock:  # type: ignore[union-attr]
            pending = self._pending
            pending.append(line)
            if self._scheduled:
                if len(pending) >= ACCESS_FLUSH_LINES:
                    self.flush()
                return
            loop = asyncio._get_running_loop()
            if loop is None or loop.is_closed():
                self.flush()
                return
            self._scheduled = True
        loop.call_later(ACCESS_FLUSH_INTERVAL, self.flush)

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._scheduled = False
            if self._pending:
                data = self.terminator.join(self._pending) + self.terminator
                self._pending.clear()
                try:
                    self.stream.write(data)
                except Exception:
                    # A closed or broken stdout must not take the worker down with it.
                    return
            super().flush()


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
