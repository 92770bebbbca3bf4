"""The settings model: every option of CLI.md declared once, with its flag, env var, default and
range. ``load()`` is the only place precedence (CLI > ``GRANIAN_*`` env > config file > default)
is resolved; the CLI (``granian.cli``) is generated from this model's field metadata.

Consumers read plain, resolved values from a frozen ``Settings``: cross-field defaults
(backpressure, blocking_threads, ws under WSGI) are filled in by the model itself.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import sys
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BeforeValidator,
    DirectoryPath,
    Field,
    FilePath,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from .access_log import check_access_format
from .constants import (
    ACCESS_LOG_ATOMS,
    DEFAULT_ACCESS_LOG_FMT,
    HTTP1_BUFFER_SIZE,
    HTTPModes,
    Interfaces,
    LogLevels,
    Loops,
    RuntimeModes,
    SSLProtocols,
    TaskImpl,
    ThreadModes,
)
from .errors import ConfigurationError
from .proxy import TrustedProxies

__all__ = [
    "NOT_IMPLEMENTED",
    "OptionError",
    "OptionMeta",
    "Settings",
    "Source",
    "load",
    "option_meta",
    "parse_duration",
]

# --------------------------------------------------------------------------------------------
# Value parsers shared with the CLI (granian.cli.Duration uses parse_duration).

_DURATION_RE = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_DURATION_UNITS = (86400, 3600, 60, 1)


def parse_duration(value: object, min: int | None = None, max: int | None = None) -> int:
    """Seconds from an int or a ``1d2h3m4s``-style string (Granian's DURATION syntax).

    Raises ValueError with Granian's exact wording, quoting the user's input."""
    if isinstance(value, bool):
        raise ValueError(f"'{value}' is not a valid duration")
    if isinstance(value, int):
        seconds = value
    elif isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            seconds = int(text)
        else:
            m = _DURATION_RE.fullmatch(text)
            if not text or m is None:
                raise ValueError(f"'{value}' is not a valid duration")
            seconds = sum(int(g) * unit for g, unit in zip(m.groups(), _DURATION_UNITS, strict=True) if g)
    else:
        raise ValueError(f"'{value}' is not a valid duration")
    if min is not None and seconds < min:
        raise ValueError(f"'{value}' is less than the minimum allowed value of {min} seconds")
    if max is not None and seconds > max:
        raise ValueError(f"'{value}' is greater than the maximum allowed value of {max} seconds")
    return seconds


def _duration(value: object) -> object:
    return value if value is None else parse_duration(value)


def _octal(value: object) -> object:
    # chmod modes are written in octal (`660`, `0o660`); a TOML/YAML integer is taken as-is.
    if isinstance(value, str):
        text = value.strip().lower().removeprefix("0o")
        try:
            return int(text, 8)
        except ValueError:
            raise ValueError(f"'{value}' is not an octal permission mode") from None
    return value


def _one_or_many(value: object) -> object:
    # A single string where a list is expected (config file, Python API) means a one-item list.
    if isinstance(value, (str, Path)):
        return (value,)
    return value


def _ip_literal(value: str) -> str:
    # The bind address must be an IP literal (CLI.md); brackets around IPv6 are tolerated.
    text = value[1:-1] if value.startswith("[") and value.endswith("]") else value
    try:
        ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"'{value}' is not an IPv4 or IPv6 address") from None
    return text


def _ip_list(value: object) -> object:
    # --forwarded-allow-ips is one comma-separated string (CLI.md); a config file or the Python
    # API may give a list, which means the same entries.
    if isinstance(value, (list, tuple)):
        return ",".join(str(item) for item in value)
    return value


def _trust_list(value: str) -> str:
    # Parsed here only to refuse a bad entry at start-up (exit 2 naming the option); workers
    # parse it again with the same granian.proxy code (stdlib only, no pydantic).
    TrustedProxies(value)
    return ",".join(part.strip() for part in value.split(",") if part.strip())


def _health_path(value: str) -> str:
    # Matched against the request's path bytes, before the query (CLI.md "Health"): an
    # origin-form path (RFC 9112 §3.2.1) of visible ASCII, without a query or fragment.
    if not value.startswith("/"):
        raise ValueError(f"'{value}' must start with '/'")
    if not value.isascii() or not value.isprintable() or any(c in value for c in " ?#"):
        raise ValueError(f"'{value}' must be a plain path: visible ASCII, no '?', '#' or spaces")
    return value


Duration = Annotated[int, BeforeValidator(_duration)]
Octal = Annotated[int, BeforeValidator(_octal)]
IPLiteral = Annotated[str, AfterValidator(_ip_literal)]
Strs = Annotated[tuple[str, ...], BeforeValidator(_one_or_many)]
Files = Annotated[tuple[FilePath, ...], BeforeValidator(_one_or_many)]
Dirs = Annotated[tuple[DirectoryPath, ...], BeforeValidator(_one_or_many)]
Paths = Annotated[tuple[Path, ...], BeforeValidator(_one_or_many)]
HealthPaths = Annotated[
    tuple[Annotated[str, AfterValidator(_health_path)], ...], BeforeValidator(_one_or_many)
]
TrustList = Annotated[str, BeforeValidator(_ip_list), AfterValidator(_trust_list)]


# --------------------------------------------------------------------------------------------
# Field metadata: what the CLI and load() need to know about each option.


@dataclass(frozen=True)
class OptionMeta:
    name: str  # field name
    flags: tuple[str, ...]  # CLI flags; the first is the canonical one used in messages
    envs: tuple[str, ...]  # env vars, first one wins when several are set
    metavar: str | None
    duration: bool  # a DURATION option (int seconds or `1d2h3m4s`)
    default_help: str | None  # how --help shows the default when it is computed
    cli: bool  # False for fields that are not options (`app` is the positional argument)


def _opt(
    default: Any,
    help: str,
    *,
    flags: tuple[str, ...] = (),
    env: str | tuple[str, ...] = (),
    ge: float | None = None,
    le: float | None = None,
    metavar: str | None = None,
    duration: bool = False,
    default_help: str | None = None,
) -> Any:
    """Declare one option. Flags and env var default to `--name-with-dashes` and GRANIAN_NAME."""
    envs = (env,) if isinstance(env, str) else env
    extra: dict[str, Any] = {
        "flags": list(flags),
        "envs": list(envs),
        "metavar": metavar,
        "duration": duration,
        "default_help": default_help,
    }
    return Field(default, description=help, ge=ge, le=le, json_schema_extra=extra)


# RFC 9113 §6.5.2: SETTINGS_MAX_FRAME_SIZE must lie in [2^14, 2^24 - 1]; §6.9.1: windows are
# at most 2^31 - 1.
_H2_MIN_FRAME = 16384
_H2_MAX_FRAME = 16777215
_H2_MAX_WINDOW = 2**31 - 1


class Settings(BaseSettings):
    """Every server option, resolved. Build it with ``load()``; constructing it directly reads
    only the keyword arguments (no environment, no file), which is what tests want."""

    model_config = SettingsConfigDict(frozen=True, extra="forbid", validate_default=False)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment and config file are merged by load(), which knows where each value came
        # from and can say so in error messages; the model itself only validates.
        return (init_settings,)

    app: str = Field(description="the APP target, module.path:attr")

    # ---- section 1: the product brief
    host: IPLiteral = _opt("127.0.0.1", "Bind address (IPv4 or IPv6 literal).", metavar="TEXT")
    port: int = _opt(8000, "Bind port; 0 picks a free port.", ge=0, le=65535)
    interface: Interfaces = _opt(Interfaces.RSGI, "Application interface; asginl = ASGI without lifespan.")
    http: HTTPModes = _opt(HTTPModes.auto, "HTTP version: auto, 1 (HTTP/1.x only) or 2 (HTTP/2 only).")
    ws: bool = _opt(
        True, "WebSocket upgrades (always off for WSGI).", flags=("--ws",), env="GRANIAN_WEBSOCKETS"
    )
    workers: int = _opt(1, "Worker processes.", ge=1)
    threads: int = _opt(
        1,
        "Event-loop threads per worker.",
        ge=1,
        flags=("--threads", "--runtime-threads"),
        env=("GRANIAN_THREADS", "GRANIAN_RUNTIME_THREADS"),
    )
    blocking_threads: int = _opt(
        None,
        "Most threads per worker running blocking work (WSGI calls, file reads).",
        ge=1,
        default_help="WSGI: max(1, backpressure // 2); else 1",
    )
    threading_mode: ThreadModes = _opt(
        ThreadModes.workers, "workers: each loop thread accepts; runtime: one acceptor hands out."
    )
    loop: Loops = _opt(Loops.auto, "Event loop; auto = uvloop when importable.")
    opt: bool = _opt(
        False,
        "Start each request's Task eagerly (Python 3.12+; the same as the default on 3.10/3.11,"
        " where no eager start that keeps asyncio's task contract is faster).",
        flags=("--opt",),
        env="GRANIAN_LOOP_OPT",
    )
    # 128 is Granian's floor and the historical SOMAXCONN; fewer queues too little under bursts.
    backlog: int = _opt(1024, "Listen backlog (global).", ge=128)
    backpressure: int = _opt(
        None,
        "Most requests a worker handles at once; past it the worker stops accepting.",
        ge=1,
        default_help="backlog / workers",
    )
    # The request head must fit in the buffer; 8192 is the smallest Granian accepts and the
    # usual per-line limit of other servers (Apache, nginx large_client_header_buffers).
    http1_buffer_size: int = _opt(
        HTTP1_BUFFER_SIZE, "Largest HTTP/1 read buffer (request head must fit).", ge=8192
    )
    http1_keep_alive: bool = _opt(True, "HTTP/1 keep-alive.")
    http1_pipeline_flush: bool = _opt(False, "Aggregate writes of pipelined responses into one flush.")
    http2_adaptive_window: bool = _opt(False, "Grow HTTP/2 flow-control windows with measured BDP.")
    # RFC 9113 §6.9.2: the connection window starts at 65535 and can only grow.
    http2_initial_connection_window_size: int = _opt(
        1048576, "HTTP/2 connection-level receive window.", ge=65535, le=_H2_MAX_WINDOW
    )
    http2_initial_stream_window_size: int = _opt(
        1048576, "HTTP/2 SETTINGS_INITIAL_WINDOW_SIZE.", ge=1, le=_H2_MAX_WINDOW
    )
    http2_keep_alive_interval: int | None = _opt(None, "HTTP/2 PING interval, ms (none = off).", ge=1)
    http2_keep_alive_timeout: int = _opt(20, "Seconds to wait for an HTTP/2 PING ack before closing.", ge=1)
    http2_max_concurrent_streams: int = _opt(200, "HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS.", ge=1)
    http2_max_frame_size: int = _opt(
        16384, "HTTP/2 SETTINGS_MAX_FRAME_SIZE.", ge=_H2_MIN_FRAME, le=_H2_MAX_FRAME
    )
    http2_max_headers_size: int = _opt(16777216, "Largest received HTTP/2 header list.", ge=1)
    http2_max_send_buffer_size: int = _opt(409600, "HTTP/2 per-stream write buffer.", ge=1)
    log: bool = _opt(True, "Server logging.", flags=("--log",), env="GRANIAN_LOG_ENABLED")
    log_level: LogLevels = _opt(LogLevels.info, "Level of the server logger.")
    log_config: FilePath | None = _opt(None, "JSON logging.config.dictConfig document.", metavar="FILE")
    access_log: bool = _opt(
        False,
        "Access log on logger granian.access.",
        flags=("--access-log",),
        env="GRANIAN_LOG_ACCESS_ENABLED",
    )
    access_log_fmt: str = _opt(
        DEFAULT_ACCESS_LOG_FMT,
        "Access-log format, %-style atoms: " + ", ".join(sorted(ACCESS_LOG_ATOMS)) + ", header{Name}.",
        env="GRANIAN_LOG_ACCESS_FMT",
        metavar="TEXT",
    )
    ssl_keyfile: FilePath | None = _opt(None, "PEM private key.", metavar="FILE")
    ssl_certificate: FilePath | None = _opt(None, "PEM certificate chain.", metavar="FILE")
    url_path_prefix: str | None = _opt(
        None, "Mount prefix: ASGI root_path, WSGI SCRIPT_NAME.", metavar="TEXT"
    )
    respawn_failed_workers: bool = _opt(False, "Start a new worker when one exits unexpectedly.")
    respawn_interval: float = _opt(3.5, "Seconds between respawns and rolling-restart steps.", ge=0)
    reload: bool = _opt(False, "Restart workers when watched files change (extra granian[reload]).")
    process_name: str | None = _opt(
        None, "Process title; workers get '<name> worker-N' (extra granian[pname]).", metavar="TEXT"
    )

    # ---- section 2: today's Granian 2.x
    uds: Path | None = _opt(None, "Listen on this Unix socket instead of TCP.", metavar="PATH")
    uds_permissions: Octal | None = _opt(
        None, "chmod mode of the Unix socket.", ge=0, le=0o777, metavar="OCTAL"
    )
    runtime_blocking_threads: int | None = _opt(None, "Threads for blocking file I/O.", ge=1)
    blocking_threads_idle_timeout: Duration = _opt(
        30, "Idle blocking threads are reaped after this.", ge=1, duration=True
    )
    task_impl: TaskImpl = _opt(
        TaskImpl.asyncio, "Accepted for compatibility; rust = the eager path of --opt."
    )
    runtime_mode: RuntimeModes = _opt(
        RuntimeModes.auto, "Alias of --threading-mode: mt = runtime, st = workers, auto = default."
    )
    http1_header_read_timeout: int = _opt(30000, "Milliseconds allowed to receive a full request head.", ge=1)
    ssl_keyfile_password: str | None = _opt(None, "Password of an encrypted key.", metavar="TEXT")
    ssl_protocol_min: SSLProtocols = _opt(SSLProtocols.tls13, "Minimum TLS version.")
    ssl_ca: FilePath | None = _opt(None, "CA bundle for client certificates.", metavar="FILE")
    ssl_crl: Files = _opt((), "Certificate revocation list (repeatable).", metavar="FILE")
    ssl_client_verify: bool = _opt(False, "Require and verify client certificates.")
    # Granian's floor: rolling restarts more often than once a minute would thrash.
    workers_lifetime: Duration | None = _opt(
        None, "Rolling respawn of workers older than this.", ge=60, duration=True
    )
    workers_max_rss: int | None = _opt(None, "Rolling respawn of a worker above this RSS (MiB).", ge=1)
    rss_sample_interval: Duration = _opt(30, "How often worker RSS is sampled.", ge=1, duration=True)
    rss_samples: int = _opt(1, "Consecutive samples over the limit before a respawn.", ge=1)
    workers_kill_timeout: Duration | None = _opt(
        None, "SIGKILL a worker still running this long after SIGTERM.", ge=1, duration=True
    )
    factory: bool = _opt(False, "APP is a zero-argument callable returning the app.")
    working_dir: DirectoryPath | None = _opt(
        None, "Put DIR first on sys.path and chdir there.", metavar="DIR"
    )
    env_files: Files = _opt(
        (), "Dotenv file loaded into the workers' environment (repeatable).", metavar="FILE"
    )
    static_path_route: Strs = _opt(("/static",), "URL route of static files (repeatable).", metavar="TEXT")
    static_path_mount: Dirs = _opt((), "Directory served at the matching route (repeatable).", metavar="DIR")
    static_path_dir_to_file: str | None = _opt(
        None, "File served for a request naming a directory.", metavar="TEXT"
    )
    static_path_expires: Duration = _opt(86400, "Cache lifetime of static files.", ge=0, duration=True)
    metrics: bool = _opt(
        False, "Prometheus exporter in the master.", flags=("--metrics",), env="GRANIAN_METRICS_ENABLED"
    )
    metrics_address: IPLiteral = _opt("127.0.0.1", "Metrics bind address.", metavar="TEXT")
    metrics_port: int = _opt(9090, "Metrics bind port.", ge=0, le=65535)
    metrics_scrape_interval: Duration = _opt(15, "Metrics refresh interval.", ge=1, duration=True)
    reload_paths: Paths = _opt(
        (), "Paths watched for reload (repeatable).", metavar="PATH", default_help="cwd"
    )
    reload_ignore_dirs: Strs = _opt((), "Directory names ignored by reload (repeatable).", metavar="TEXT")
    reload_ignore_patterns: Strs = _opt((), "Regex patterns ignored by reload (repeatable).", metavar="TEXT")
    reload_ignore_paths: Paths = _opt((), "Paths ignored by reload (repeatable).", metavar="PATH")
    reload_tick: int = _opt(50, "Milliseconds between reload checks.", ge=1)
    reload_ignore_worker_failure: bool = _opt(False, "Keep reloading after a worker fails to start.")
    pid_file: Path | None = _opt(None, "Write the master PID here.", metavar="FILE")

    # ---- section 3: ours
    config: Path | None = _opt(None, "TOML (.toml) or YAML (.yaml/.yml) config file.", metavar="FILE")
    # WebSocket limits and keep-alive: uvicorn's names and defaults (--ws-max-size 16 MiB,
    # --ws-ping-interval/--ws-ping-timeout 20 s, permessage-deflate on).
    ws_max_message_size: int = _opt(
        16777216, "Largest WebSocket message after decompression (bytes); over it: close 1009.", ge=1
    )
    ws_ping_interval: Duration = _opt(
        20, "Send a WebSocket ping this often on an idle session; 0 turns pings off.", ge=0, duration=True
    )
    ws_ping_timeout: Duration = _opt(
        20, "Close with 1011 when a WebSocket ping is not answered within this.", ge=0, duration=True
    )
    ws_per_message_deflate: bool = _opt(True, "Negotiate permessage-deflate (RFC 7692) when offered.")
    health_path: HealthPaths = _opt(
        (), "Path answered by the server itself: 200 ok, 503 draining (repeatable).", metavar="TEXT"
    )
    shutdown_delay: Duration = _opt(
        0, "On SIGTERM/SIGINT keep serving this long (health paths say 503) before draining.",
        ge=0, duration=True,
    )  # fmt: skip
    proxy_headers: bool = _opt(False, "Trust X-Forwarded-* and Forwarded from --forwarded-allow-ips.")
    forwarded_allow_ips: TrustList = _opt(
        "127.0.0.1", "Proxies trusted for proxy headers: comma-separated IPs or CIDRs, * for all.",
        metavar="TEXT",
    )  # fmt: skip

    # ---- validators

    @field_validator("app")
    @classmethod
    def _check_app(cls, value: str) -> str:
        # Same grammar as granian.apps.loader.split_target (which reports import problems later,
        # in the worker); a malformed target is a usage error caught here, before forking.
        module, colon, attr = value.partition(":")
        if not module or ":" in attr or (colon and not all(attr.split("."))):
            raise ValueError(f"'{value}' is not a module.path:attr target")
        return value

    @field_validator("access_log_fmt")
    @classmethod
    def _check_access_fmt(cls, value: str) -> str:
        # Compiled once here (granian.access_log) so a typo fails at start-up, not on the first request.
        check_access_format(value)
        return value

    @field_validator("url_path_prefix")
    @classmethod
    def _check_prefix(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith("/"):
            raise ValueError(f"'{value}' must start with '/'")
        # ASGI root_path and WSGI SCRIPT_NAME never end with a slash (PEP 3333, ASGI spec).
        return value.rstrip("/") or None

    @model_validator(mode="before")
    @classmethod
    def _drop_auto_nones(cls, data: Any) -> Any:
        # None for a computed option (Granian(backpressure=None)) means "compute it".
        if isinstance(data, dict):
            data = {k: v for k, v in data.items() if not (v is None and k in _COMPUTED)}
            # Direct construction gets the same alias folding as each layer in load().
            data, _ = _fold_aliases((data, {}))
        return data

    @model_validator(mode="after")
    def _resolve(self) -> Settings:
        # Frozen model: fill the computed fields once, here, so consumers read plain values.
        if "backpressure" not in self.model_fields_set:
            object.__setattr__(self, "backpressure", max(1, self.backlog // self.workers))
        if "blocking_threads" not in self.model_fields_set:
            bt = max(1, self.backpressure // 2) if self.interface is Interfaces.WSGI else 1
            object.__setattr__(self, "blocking_threads", bt)
        if self.interface is Interfaces.WSGI and self.ws:
            object.__setattr__(self, "ws", False)  # WSGI has no WebSocket interface
        if (self.ssl_keyfile is None) != (self.ssl_certificate is None):
            missing = "ssl_certificate" if self.ssl_certificate is None else "ssl_keyfile"
            given = "ssl_keyfile" if missing == "ssl_certificate" else "ssl_certificate"
            raise _cross(given, f"needs {_flag(missing)} too")
        if self.uds_permissions is not None and self.uds is None:
            raise _cross("uds_permissions", "needs --uds")
        if self.static_path_mount and len(self.static_path_route) != len(self.static_path_mount):
            raise _cross("static_path_mount", "needs one --static-path-route per --static-path-mount")
        return self

    # ---- conveniences for consumers

    def option_is_default(self, name: str) -> bool:
        return bool(getattr(self, name) == _default(name))


_COMPUTED = frozenset({"backpressure", "blocking_threads"})
# Never echoed back in messages (they end up in logs and CI output).
_SECRETS = frozenset({"ssl_keyfile_password"})
_REDACTED = "<redacted>"


def _cross(field: str, message: str) -> PydanticCustomError:
    return PydanticCustomError("cross_field", "{message}", {"field": field, "message": message})


def _default(name: str) -> Any:
    return Settings.model_fields[name].default


def option_meta(name: str) -> OptionMeta:
    """The CLI/env metadata of a field, with defaults filled in."""
    info: FieldInfo = Settings.model_fields[name]
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    dashed = "--" + name.replace("_", "-")
    flags = tuple(extra.get("flags") or ()) or (dashed,)  # type: ignore[arg-type]
    envs = tuple(extra.get("envs") or ()) or ("GRANIAN_" + name.upper(),)  # type: ignore[arg-type]
    return OptionMeta(
        name=name,
        flags=tuple(str(f) for f in flags),
        envs=tuple(str(e) for e in envs),
        metavar=extra.get("metavar"),  # type: ignore[arg-type]
        duration=bool(extra.get("duration")),
        default_help=extra.get("default_help"),  # type: ignore[arg-type]
        cli=name != "app",
    )


def _flag(name: str) -> str:
    return option_meta(name).flags[0]


def option_names() -> list[str]:
    """Every option field, in declaration order (excluding the positional `app`)."""
    return [n for n in Settings.model_fields if n != "app"]


# --------------------------------------------------------------------------------------------
# Options whose behaviour is not built yet. Setting one to a refused value is an error rather
# than a silent no-op. Value: None = any non-default value is refused; else a predicate that
# returns True for refused values. Whoever builds a feature deletes its line(s).

_ANY = None

NOT_IMPLEMENTED: dict[str, Callable[[Any], bool] | None] = {}


# --------------------------------------------------------------------------------------------
# load(): precedence and error attribution.


@dataclass(frozen=True)
class Source:
    """Where one value came from: the CLI flag, the env var, or the config file and key."""

    kind: str  # "cli", "env" or "file"
    name: str  # the flag, the env var or the key
    path: str | None = None  # the config file
    raw: Any = None

    def describe(self) -> str:
        if self.kind == "env":
            return f"environment variable {self.name}={self.raw!r}"
        if self.kind == "file":
            return f"key '{self.name}' of config file {self.path}"
        return f"option '{self.name}'"


class OptionError(ConfigurationError):
    """A bad value of one option; names the option and the source of the value."""

    def __init__(self, option: str, source: Source | None, reason: str) -> None:
        self.option = option  # the canonical flag, e.g. "--workers"
        self.source = source
        self.reason = reason
        where = "" if source is None or source.kind == "cli" else f" (from {source.describe()})"
        super().__init__(f"Invalid value for '{option}'{where}: {reason}")

    @property
    def param_hint(self) -> str:
        """The click-style hint: the option, plus the env var or file key it came from."""
        hint = f"'{self.option}'"
        if self.source is not None and self.source.kind != "cli":
            hint += f" (from {self.source.describe()})"
        return hint


# Keys accepted besides the field names: Granian 2.x's alias of --threads.
_KEY_ALIASES = {"runtime_threads": "threads"}
_RUNTIME_MODE_MAP = {"mt": ThreadModes.runtime, "st": ThreadModes.workers, "auto": ThreadModes.workers}

_Layer = tuple[dict[str, Any], dict[str, Source]]


def _enum_text(value: Any) -> str:
    return str(getattr(value, "value", value)).lower()


def _fold_aliases(layer: _Layer) -> _Layer:
    """Within one layer, turn the compatibility aliases into the options they stand for, so a
    higher layer's alias beats a lower layer's canonical option and vice versa."""
    values, sources = layer
    if "runtime_mode" in values and "threading_mode" not in values:
        mapped = _RUNTIME_MODE_MAP.get(_enum_text(values["runtime_mode"]))
        if mapped is not None:
            values["threading_mode"] = mapped
            if "runtime_mode" in sources:
                sources["threading_mode"] = sources["runtime_mode"]
    if "task_impl" in values and "opt" not in values and _enum_text(values["task_impl"]) == "rust":
        values["opt"] = True
        if "task_impl" in sources:
            sources["opt"] = sources["task_impl"]
    return values, sources


def _canonical(key: str) -> str | None:
    key = _KEY_ALIASES.get(key, key)
    return key if key in Settings.model_fields else None


def _from_cli(cli: Mapping[str, Any]) -> _Layer:
    values: dict[str, Any] = {}
    sources: dict[str, Source] = {}
    for key, value in cli.items():
        name = _canonical(key)
        if name is None:
            raise ConfigurationError(f"unknown option '{key}'")
        if value is None:
            continue  # not given
        values[name] = value
        flag = "--" + key.replace("_", "-") if name != "app" else "APP"
        sources[name] = Source("cli", flag, raw=value)
    return values, sources


def _from_env(env: Mapping[str, str]) -> _Layer:
    values: dict[str, Any] = {}
    sources: dict[str, Source] = {}
    for name in option_names():
        meta = option_meta(name)
        for var in meta.envs:
            raw = env.get(var)
            if not raw:
                continue  # click's precedent: an empty variable counts as unset
            annotation = Settings.model_fields[name].annotation
            # Repeatable options: whitespace-separated, like click's envvar splitting.
            values[name] = raw.split() if _is_tuple(annotation) else raw
            sources[name] = Source("env", var, raw=_REDACTED if name in _SECRETS else raw)
            break
    return values, sources


def _is_tuple(annotation: Any) -> bool:
    return typing.get_origin(annotation) is tuple


def _read_config(path: Path, source: Source) -> Mapping[str, Any]:
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml"):
        raise OptionError("--config", source, f"'{path}' is neither .toml nor .yaml/.yml")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise OptionError("--config", source, f"cannot read '{path}': {exc.strerror or exc}") from None
    try:
        if suffix == ".toml":
            if sys.version_info >= (3, 11):
                import tomllib
            else:  # pydantic-settings[toml] installs tomli on Python 3.10
                import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]
            parsed: Any = tomllib.loads(data.decode("utf-8"))
        else:
            import yaml

            parsed = yaml.safe_load(data) or {}
    except Exception as exc:  # each parser has its own error type; all mean "bad file"
        raise OptionError("--config", source, f"cannot parse '{path}': {exc}") from None
    if not isinstance(parsed, dict):
        raise OptionError("--config", source, f"'{path}' must hold a table/mapping of options")
    return parsed


def _from_file(path: Path, source: Source) -> _Layer:
    values: dict[str, Any] = {}
    sources: dict[str, Source] = {}
    for key, value in _read_config(path, source).items():
        key = str(key)
        name = _canonical(key)
        if name is None or name == "config":
            hint = ""
            close = difflib.get_close_matches(key.replace("-", "_"), list(Settings.model_fields), n=1)
            if close and close[0] != "config":
                hint = f" (did you mean '{close[0]}'?)"
            raise ConfigurationError(f"unknown option '{key}' in config file {path}{hint}")
        if value is None:
            continue  # YAML `key:` with no value: leave the option at its default
        values[name] = value
        sources[name] = Source("file", key, str(path), raw=_REDACTED if name in _SECRETS else value)
    return values, sources


def _explain(exc: ValidationError, sources: Mapping[str, Source]) -> OptionError:
    """Turn pydantic's first error into one message naming the option and its source."""
    err = exc.errors(include_url=False)[0]
    loc = err.get("loc") or ()
    ctx = err.get("ctx") or {}
    name = str(loc[0]) if loc else str(ctx.get("field", ""))
    msg = str(err.get("msg", "invalid value"))
    msg = msg.removeprefix("Value error, ")
    if str(err.get("type", "")).startswith("path_"):
        # pydantic's "Path does not point to a file" does not say which path: name it.
        msg = f"{msg}: '{err.get('input')}'"
    if name == "app":
        return OptionError("APP", sources.get("app"), msg)
    if name not in Settings.model_fields:
        return OptionError("?", None, msg)
    source = sources.get(name)
    flag = source.name if source is not None and source.kind == "cli" else _flag(name)
    if source is not None and source.kind == "file":
        flag = _flag(name)
    return OptionError(flag, source, msg)


def _refuse_unbuilt(settings: Settings, sources: Mapping[str, Source]) -> None:
    for name, refused in NOT_IMPLEMENTED.items():
        value = getattr(settings, name)
        if refused(value) if refused is not None else value != _default(name):
            source = sources.get(name)
            shown = ", ".join(map(str, value)) if isinstance(value, tuple) else str(value)
            if name in _SECRETS:
                shown = _REDACTED
            where = ""
            if source is not None and not (source.kind == "cli" and source.name == _flag(name)):
                where = f" (from {source.describe()})"
            raise ConfigurationError(f"{_flag(name)} {shown}{where}: not implemented yet")


def load(cli: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Settings:
    """Resolve CLI > GRANIAN_* env > config file > default into one frozen Settings.

    ``cli`` holds only the options the user gave (field names, or `runtime_threads`); ``env``
    defaults to ``os.environ``. Raises ConfigurationError (an OptionError for a bad value)
    naming the option and where its value came from."""
    environ: Mapping[str, str] = os.environ if env is None else env
    cli_layer = _fold_aliases(_from_cli(cli))
    env_layer = _fold_aliases(_from_env(environ))

    file_layer: _Layer = ({}, {})
    for values, sources in (cli_layer, env_layer):
        if "config" in values:
            source = sources["config"]
            file_layer = _fold_aliases(_from_file(Path(values["config"]), source))
            break

    merged: dict[str, Any] = {}
    origin: dict[str, Source] = {}
    for values, sources in (file_layer, env_layer, cli_layer):  # lowest precedence first
        merged.update(values)
        origin.update(sources)
    if "app" not in merged:
        raise OptionError("APP", None, "missing the APP target (module.path:attr)")
    try:
        settings = Settings(**merged)
    except ValidationError as exc:
        raise _explain(exc, origin) from None
    _refuse_unbuilt(settings, origin)
    _check_tls(settings)
    return settings


_SSL_FIELDS = (
    "ssl_certificate",
    "ssl_keyfile",
    "ssl_keyfile_password",
    "ssl_ca",
    "ssl_crl",
    "ssl_client_verify",
)


def _check_tls(settings: Settings) -> None:
    """--ssl-*: read, parse and match every file now, as each worker will, so that a bad
    option is exit 2 naming the option and the file, with nothing listening (issue 13).
    granian.server.tls (and the ssl module) is imported only when an option asks for TLS."""
    if any(getattr(settings, name) != _default(name) for name in _SSL_FIELDS):
        from .server.tls import check_config

        check_config(settings)
