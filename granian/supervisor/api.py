"""The Python API: `Granian(target, **kwargs).serve()`, Granian 2.x's keyword names.

Keywords map onto `Settings` fields and go through `settings.load()` like CLI options (so the
same validation, refusals and messages apply); the environment is not read, as in Granian,
whose API takes only what the caller passes.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import ConfigurationError
from ..http import HTTP1Settings, HTTP2Settings
from . import run
from .master import Hooks

if TYPE_CHECKING:
    from ..settings import Settings

F = TypeVar("F", bound=Callable[..., Any])

# Granian keyword -> Settings field, where the names differ.
_RENAMED = {
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
_SAME = frozenset(
    """port uds uds_permissions interface workers blocking_threads blocking_threads_idle_timeout
    runtime_blocking_threads runtime_mode loop task_impl http backlog backpressure log_level
    ssl_protocol_min ssl_ca ssl_crl ssl_client_verify url_path_prefix respawn_failed_workers
    respawn_interval rss_sample_interval rss_samples workers_lifetime workers_max_rss
    workers_kill_timeout factory working_dir env_files static_path_route static_path_mount
    static_path_dir_to_file static_path_expires metrics_scrape_interval metrics_address
    metrics_port reload reload_paths reload_ignore_dirs reload_ignore_patterns
    reload_ignore_paths reload_tick reload_ignore_worker_failure process_name pid_file""".split()
)
# Handled here rather than by Settings.
_SPECIAL = frozenset({"http1_settings", "http2_settings", "log_dictconfig", "reload_filter"})
_H1_FIELDS = {
    "header_read_timeout": "http1_header_read_timeout",
    "keep_alive": "http1_keep_alive",
    "max_buffer_size": "http1_buffer_size",
    "pipeline_flush": "http1_pipeline_flush",
}


class Granian:
    """A server for the app at `target` ("module:attr"); `serve()` blocks until it stops."""

    def __init__(self, target: str, **kwargs: Any) -> None:
        unknown = sorted(set(kwargs) - _SAME - set(_RENAMED) - _SPECIAL)
        if unknown:
            raise TypeError(f"Granian() got unexpected keyword argument(s): {', '.join(unknown)}")
        self.target = target
        self.options: dict[str, Any] = {}
        for key, value in kwargs.items():
            if key in _SPECIAL or value is None:
                continue
            self.options[_RENAMED.get(key, key)] = value
        self._apply_http_settings(kwargs.get("http1_settings"), kwargs.get("http2_settings"))
        self.log_dictconfig: Mapping[str, Any] | None = kwargs.get("log_dictconfig")
        self.hooks = Hooks(reload_filter=kwargs.get("reload_filter"))
        self.exit_code: int | None = None

    def _apply_http_settings(self, h1: HTTP1Settings | None, h2: HTTP2Settings | None) -> None:
        if h1 is not None:
            for key, value in asdict(h1).items():
                self.options[_H1_FIELDS[key]] = value
        if h2 is not None:
            defaults = asdict(HTTP2Settings())
            for key, value in asdict(h2).items():
                # Only what differs from the defaults: unbuilt HTTP/2 knobs are refused when set.
                if value != defaults[key]:
                    self.options[f"http2_{key}"] = value

    # Hooks: decorator-friendly, as in Granian (`@server.on_startup`).
    def on_startup(self, hook: F) -> F:
        self.hooks.on_startup.append(hook)
        return hook

    def on_reload(self, hook: F) -> F:
        self.hooks.on_reload.append(hook)
        return hook

    def on_shutdown(self, hook: F) -> F:
        self.hooks.on_shutdown.append(hook)
        return hook

    @contextlib.contextmanager
    def _log_config_file(self) -> Iterator[str | None]:
        # Settings carries a file path (workers re-apply it after fork), so an in-memory
        # dictConfig travels as a temporary JSON file for the life of the server.
        if self.log_dictconfig is None:
            yield None
            return
        try:
            text = json.dumps(self.log_dictconfig)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"log_dictconfig must be JSON-serialisable: {exc}") from exc
        fd, path = tempfile.mkstemp(prefix="granian-log-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            yield path
        finally:
            os.unlink(path)

    def build_settings(self, log_config: str | None = None) -> Settings:
        """The Settings this server runs with (ConfigurationError naming a bad keyword)."""
        from ..settings import load

        options = dict(self.options, app=self.target)
        if log_config is not None:
            options["log_config"] = log_config
        return load(options, env={})

    def serve(self) -> None:
        """Run the master and its workers until SIGINT/SIGTERM; SystemExit on a failed run."""
        with self._log_config_file() as log_config:
            settings = self.build_settings(log_config)
            self.exit_code = run(settings, self.hooks)
        if self.exit_code:
            raise SystemExit(self.exit_code)
