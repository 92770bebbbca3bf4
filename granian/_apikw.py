"""Granian 2.x Python API keywords -> Settings field names.

One table for both `Granian(target, **kwargs)` (granian.supervisor.api) and
`granian.server.embed.Server(app, **kwargs)`, so a keyword means the same in each.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import asdict, is_dataclass
from typing import Any

from .http import HTTP2Settings

# Keywords whose Settings field has another name.
RENAMED = {
    "address": "host",
    "websockets": "ws",
    "runtime_threads": "threads",
    "log_enabled": "log",
    "log_access": "access_log",
    "log_access_format": "access_log_fmt",
    "ssl_cert": "ssl_certificate",
    "ssl_key": "ssl_keyfile",
    "ssl_key_password": "ssl_keyfile_password",
    "metrics_enabled": "metrics",
}
# Keywords whose name is already the Settings field.
SAME = frozenset(
    """port uds uds_permissions interface workers blocking_threads blocking_threads_idle_timeout
    runtime_blocking_threads runtime_mode loop task_impl http backlog backpressure log_level
    ssl_protocol_min ssl_ca ssl_crl ssl_client_verify url_path_prefix respawn_failed_workers
    respawn_interval rss_sample_interval rss_samples workers_lifetime workers_max_rss
    workers_kill_timeout factory working_dir env_files static_path_route static_path_mount
    static_path_dir_to_file static_path_expires metrics_scrape_interval metrics_address
    metrics_port reload reload_paths reload_ignore_dirs reload_ignore_patterns
    reload_ignore_paths reload_tick reload_ignore_worker_failure process_name pid_file""".split()
)
# HTTP1Settings field -> Settings field.
H1_FIELDS = {
    "header_read_timeout": "http1_header_read_timeout",
    "keep_alive": "http1_keep_alive",
    "max_buffer_size": "http1_buffer_size",
    "pipeline_flush": "http1_pipeline_flush",
}
# Expanded into several fields by settings_options().
GROUPED = frozenset({"http1_settings", "http2_settings"})


def _fields(value: Any) -> dict[str, Any]:
    return asdict(value) if is_dataclass(value) and not isinstance(value, type) else dict(value)


def settings_options(kwargs: Mapping[str, Any], skip: Collection[str] = ()) -> dict[str, Any]:
    """The Settings options the keywords stand for (None means "the default": left out)."""
    options: dict[str, Any] = {}
    for key, value in kwargs.items():
        if key in skip or value is None:
            continue
        if key == "http1_settings":
            options.update((H1_FIELDS[k], v) for k, v in _fields(value).items())
        elif key == "http2_settings":
            # Only what differs from the defaults: the unbuilt HTTP/2 knobs are refused when set.
            defaults = asdict(HTTP2Settings())
            options.update((f"http2_{k}", v) for k, v in _fields(value).items() if v != defaults[k])
        else:
            options[RENAMED.get(key, key)] = value
    return options
