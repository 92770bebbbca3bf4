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
from typing import TYPE_CHECKING, Any, TypeVar

from .._apikw import GROUPED, RENAMED, SAME, settings_options
from ..errors import ConfigurationError
from . import run
from .master import Hooks

if TYPE_CHECKING:
    from ..settings import Settings

F = TypeVar("F", bound=Callable[..., Any])

# Handled here rather than by Settings.
_SPECIAL = frozenset({"log_dictconfig", "reload_filter"})


class Granian:
    """A server for the app at `target` ("module:attr"); `serve()` blocks until it stops."""

    def __init__(self, target: str, **kwargs: Any) -> None:
        unknown = sorted(set(kwargs) - SAME - set(RENAMED) - GROUPED - _SPECIAL)
        if unknown:
            raise TypeError(f"Granian() got unexpected keyword argument(s): {', '.join(unknown)}")
        self.target = target
        self.options: dict[str, Any] = settings_options(kwargs, skip=_SPECIAL)
        self.log_dictconfig: Mapping[str, Any] | None = kwargs.get("log_dictconfig")
        self.hooks = Hooks(reload_filter=kwargs.get("reload_filter"))
        self.exit_code: int | None = None

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
