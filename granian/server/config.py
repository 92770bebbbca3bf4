"""The worker's configuration, typed and frozen, built once from the settings snapshot.

`WorkerConfig.of(settings)` reads a `Settings`, the worker's `SettingsSnapshot` or any object
with the settings' attribute names (tests, embedding) once; everything downstream reads typed
fields, and each default lives here (the settings model holds the user-facing ones, these only
cover a stand-in object that lacks an attribute).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..apps.config import AppConfig
from ..constants import HTTP1_BUFFER_SIZE

__all__ = ["HTTP1Config", "HTTP2Config", "TLSOptions", "WorkerConfig"]


@dataclass(frozen=True, slots=True)
class HTTP1Config:
    buffer_size: int = HTTP1_BUFFER_SIZE  # --http1-buffer-size
    keep_alive: bool = True  # --http1-keep-alive
    pipeline_flush: bool = False  # --http1-pipeline-flush
    header_read_timeout: float = 30.0  # --http1-header-read-timeout, in seconds here


@dataclass(frozen=True, slots=True)
class HTTP2Config:
    """The --http2-* options (CLI.md defaults); granian.server.h2 maps them to an H2Config."""

    max_concurrent_streams: int = 200
    initial_stream_window_size: int = 1048576
    initial_connection_window_size: int = 1048576
    max_frame_size: int = 16384
    max_headers_size: int = 16777216
    max_send_buffer_size: int = 409600
    keep_alive_interval: int | None = None  # ms; None: no PINGs
    keep_alive_timeout: int = 20  # s
    adaptive_window: bool = False

    @classmethod
    def of(cls, settings: Any) -> HTTP2Config:
        d = cls()

        def get(name: str, default: Any) -> Any:
            value = getattr(settings, "http2_" + name, None)
            return default if value is None else value

        return cls(
            max_concurrent_streams=int(get("max_concurrent_streams", d.max_concurrent_streams)),
            initial_stream_window_size=int(get("initial_stream_window_size", d.initial_stream_window_size)),
            initial_connection_window_size=int(
                get("initial_connection_window_size", d.initial_connection_window_size)
            ),
            max_frame_size=int(get("max_frame_size", d.max_frame_size)),
            # a SETTINGS value is 32 bits (RFC 9113 §6.5.1): larger means "no limit we state"
            max_headers_size=min(int(get("max_headers_size", d.max_headers_size)), 2**32 - 1),
            max_send_buffer_size=min(int(get("max_send_buffer_size", d.max_send_buffer_size)), 2**32 - 1),
            keep_alive_interval=getattr(settings, "http2_keep_alive_interval", None),
            keep_alive_timeout=int(get("keep_alive_timeout", d.keep_alive_timeout)),
            adaptive_window=bool(get("adaptive_window", False)),
        )


@dataclass(frozen=True, slots=True)
class WSConfig:
    """--ws and the --ws-* options (granian.server.ws); uvicorn's defaults, as the settings."""

    enabled: bool = True  # --ws/--no-ws (always off for WSGI)
    max_message_size: int = 16 * 1024 * 1024  # --ws-max-message-size, bytes
    ping_interval: float = 20.0  # --ws-ping-interval, seconds; 0: no keep-alive pings
    ping_timeout: float = 20.0  # --ws-ping-timeout, seconds; 0: a ping never times out
    per_message_deflate: bool = True  # --ws-per-message-deflate


@dataclass(frozen=True, slots=True)
class TLSOptions:
    """The --ssl-* options (a `granian.server.tls.TLSConfig`); present only when TLS is on."""

    ssl_certificate: str
    ssl_keyfile: str | None = None
    ssl_keyfile_password: str | None = None
    ssl_protocol_min: str = "tls1.3"
    ssl_ca: str | None = None
    ssl_crl: tuple[str, ...] = ()
    ssl_client_verify: bool = False

    @classmethod
    def of(cls, settings: Any) -> TLSOptions | None:
        """None without --ssl-certificate (TLS off; settings.load() already refused a
        half-configured TLS through tls.check_config)."""
        cert = getattr(settings, "ssl_certificate", None)
        if cert is None:
            return None

        def path(value: Any) -> str | None:
            return None if value is None else str(value)

        return cls(
            ssl_certificate=str(cert),
            ssl_keyfile=path(getattr(settings, "ssl_keyfile", None)),
            ssl_keyfile_password=getattr(settings, "ssl_keyfile_password", None),
            ssl_protocol_min=str(getattr(settings, "ssl_protocol_min", None) or "tls1.3"),
            ssl_ca=path(getattr(settings, "ssl_ca", None)),
            ssl_crl=tuple(str(p) for p in (getattr(settings, "ssl_crl", None) or ())),
            ssl_client_verify=bool(getattr(settings, "ssl_client_verify", False)),
        )


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    interface: str = "rsgi"
    http: str = "auto"  # --http: which protocols ALPN offers over TLS
    loop: str = "auto"
    threads: int = 1
    runtime_mode: bool = False  # --threading-mode runtime
    backlog: int = 1024
    backpressure: int = 1024  # requests in flight per worker (CLI.md)
    root_path: str = ""  # --url-path-prefix
    eager: bool = False  # --opt / --task-impl rust
    metrics: bool = False
    metrics_scrape_interval: float = 15.0
    access_log: bool = False
    health_paths: tuple[str, ...] = ()  # --health-path
    proxy_headers: bool = False  # --proxy-headers
    forwarded_allow_ips: str = "127.0.0.1"  # --forwarded-allow-ips
    http1: HTTP1Config = field(default_factory=HTTP1Config)
    http2: HTTP2Config = field(default_factory=HTTP2Config)
    tls: TLSOptions | None = None  # --ssl-*: None is plain TCP
    ws: WSConfig = field(default_factory=WSConfig)
    app: AppConfig = field(default_factory=AppConfig)

    @classmethod
    def of(cls, settings: Any) -> WorkerConfig:
        if isinstance(settings, WorkerConfig):
            return settings

        def get(name: str, default: Any) -> Any:
            value = getattr(settings, name, None)
            return default if value is None else value

        return cls(
            interface=str(get("interface", "rsgi")),
            http=str(get("http", "auto")),
            loop=str(get("loop", "auto")),
            threads=max(1, int(get("threads", 1))),
            runtime_mode=str(get("threading_mode", "workers")) == "runtime",
            backlog=int(get("backlog", 1024)),
            backpressure=int(get("backpressure", 1024)),
            root_path=str(get("url_path_prefix", "")),
            eager=bool(get("opt", False)) or str(get("task_impl", "")) == "rust",
            metrics=bool(get("metrics", False)),
            metrics_scrape_interval=float(get("metrics_scrape_interval", 15)),
            access_log=bool(get("access_log", False)),
            health_paths=tuple(str(p) for p in get("health_path", ())),
            proxy_headers=bool(get("proxy_headers", False)),
            forwarded_allow_ips=_allow_list(get("forwarded_allow_ips", "127.0.0.1")),
            http1=HTTP1Config(
                buffer_size=int(get("http1_buffer_size", HTTP1_BUFFER_SIZE)),
                keep_alive=bool(get("http1_keep_alive", True)),
                pipeline_flush=bool(get("http1_pipeline_flush", False)),
                header_read_timeout=float(get("http1_header_read_timeout", 30000)) / 1000.0,
            ),
            http2=HTTP2Config.of(settings),
            tls=TLSOptions.of(settings),
            ws=WSConfig(
                enabled=bool(get("ws", True)) and str(get("interface", "rsgi")) != "wsgi",
                max_message_size=int(get("ws_max_message_size", 16 * 1024 * 1024)),
                ping_interval=float(get("ws_ping_interval", 20)),
                ping_timeout=float(get("ws_ping_timeout", 20)),
                per_message_deflate=bool(get("ws_per_message_deflate", True)),
            ),
            app=AppConfig.of(settings),
        )


def _allow_list(value: Any) -> str:
    """--forwarded-allow-ips as the comma-separated text granian.proxy parses."""
    if isinstance(value, str):
        return value
    return ",".join(str(v) for v in value)
