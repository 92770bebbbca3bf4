"""`--reload`: watch files (watchfiles) in a master thread and wake the main loop on changes.

The watcher only records what changed and pokes the loop; restarting workers stays in the main
loop with every other decision (habit 8 of ARCHITECTURE.md). watchfiles is an optional extra
(`granian[reload]`), so it is imported only when reload is on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..constants import SERVER_LOGGER
from ..errors import ConfigurationError

log = logging.getLogger(SERVER_LOGGER)


def build_filter(
    ignore_dirs: Sequence[str],
    ignore_patterns: Sequence[str],
    ignore_paths: Sequence[str],
    filter_cls: Any = None,
) -> Any:
    """watchfiles' DefaultFilter extended with the user's lists (Granian's `--reload-ignore-*`)."""
    from watchfiles import DefaultFilter

    if filter_cls is not None:
        return filter_cls()
    return DefaultFilter(
        ignore_dirs=(*DefaultFilter.ignore_dirs, *ignore_dirs),
        ignore_entity_patterns=(*DefaultFilter.ignore_entity_patterns, *ignore_patterns),
        ignore_paths=[Path(p).resolve() for p in ignore_paths],
    )


class Reloader:
    def __init__(
        self,
        paths: Sequence[str],
        watch_filter: Any,
        tick_ms: int,
        wake: Callable[[], None],
    ) -> None:
        self._paths = [str(Path(p).resolve()) for p in paths]
        self._filter = watch_filter
        self._tick = tick_ms
        self._wake = wake
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._changed: set[str] = set()
        self._thread = threading.Thread(target=self._run, name="granian-reload", daemon=True)

    @classmethod
    def check_available(cls) -> None:
        try:
            import watchfiles  # noqa: F401
        except ImportError:
            raise ConfigurationError(
                "--reload needs the watchfiles package: pip install 'granian[reload]'"
            ) from None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)

    def take(self) -> set[str]:
        """The paths changed since the last call (empty when none)."""
        with self._lock:
            changed, self._changed = self._changed, set()
        return changed

    def _run(self) -> None:
        from watchfiles import watch

        try:
            for changes in watch(
                *self._paths,
                watch_filter=self._filter,
                stop_event=self._stop,
                # `step` is how long watchfiles waits for more events before yielding a batch:
                # Granian's --reload-tick. A short debounce keeps an editor's save-burst together.
                step=self._tick,
                debounce=max(self._tick * 4, 200),
                raise_interrupt=False,
            ):
                with self._lock:
                    self._changed.update(path for _, path in changes)
                self._wake()
        except Exception:
            log.exception("the file watcher stopped; reload is off from now on")
