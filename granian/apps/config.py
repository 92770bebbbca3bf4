"""What the interface adapters read of the settings, typed and frozen, built once per worker.

The worker hands adapters an `AppConfig` (granian.server.config builds it from the settings
snapshot); every default lives here, once. Adapters also accept any object with the settings'
attribute names (a `Settings`, a test's stand-in) and convert it with `AppConfig.of`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["AppConfig", "StaticConfig"]


@dataclass(frozen=True, slots=True)
class StaticConfig:
    """--static-path-*: routes and the directories mounted on them (same order)."""

    routes: tuple[str, ...]
    mounts: tuple[str, ...]
    dir_to_file: str | None = None
    expires: int = 86400  # seconds; 0 sends no cache-control (Granian)


@dataclass(frozen=True, slots=True)
class AppConfig:
    root_path: str = ""  # --url-path-prefix
    blocking_threads: int = 1  # --blocking-threads (WSGI's pool)
    blocking_idle_timeout: float = 30.0  # --blocking-threads-idle-timeout, seconds
    multiprocess: bool = False  # more than one worker (WSGI's wsgi.multiprocess)
    static: StaticConfig | None = None  # None: no --static-path-mount

    @classmethod
    def of(cls, settings: Any) -> AppConfig:
        """`settings` itself when it is an AppConfig; else built from its attributes (a missing
        or None attribute keeps the default above)."""
        if isinstance(settings, AppConfig):
            return settings
        if settings is None:
            return cls()

        def get(name: str, default: Any) -> Any:
            value = getattr(settings, name, None)
            return default if value is None else value

        mounts = tuple(str(m) for m in get("static_path_mount", ()))
        static = None
        if mounts:
            static = StaticConfig(
                tuple(str(r) for r in get("static_path_route", ("/static",))),
                mounts,
                get("static_path_dir_to_file", None),
                int(get("static_path_expires", 86400)),
            )
        return cls(
            root_path=str(get("url_path_prefix", "")),
            blocking_threads=int(get("blocking_threads", 1)) or 1,
            blocking_idle_timeout=float(get("blocking_threads_idle_timeout", 30.0)) or 30.0,
            multiprocess=int(get("workers", 1)) > 1,
            static=static,
        )
