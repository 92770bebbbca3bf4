"""Names Granian 2.x exposes from its native `granian._granian` module, for code that imports them.

Nothing here touches psutil at import time: apps import this module for the RSGI exception types,
and only the supervisor imports psutil (ProcInfoCollector loads it on first use).
"""

from __future__ import annotations

import sysconfig
from collections.abc import Iterable

# True on a regular CPython build; False on a free-threaded (PEP 703, `Py_GIL_DISABLED`) build.
BUILD_GIL: bool = not bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


class RSGIProtocolError(RuntimeError):
    """An RSGI call made in a state that does not allow it (e.g. a second response)."""


class RSGIProtocolClosed(RuntimeError):
    """The RSGI transport (HTTP stream or WebSocket) is closed."""


class ProcInfoCollector:
    """Memory of processes, as Granian's collector: `memory()` -> `{pid: rss_bytes}`."""

    def memory(self, pids: Iterable[int] | None = None) -> dict[int, int]:
        """RSS in bytes of the calling process plus `pids` (default: all its descendants)."""
        from .supervisor.procinfo import memory

        return memory(None if pids is None else list(pids))


__all__ = ["BUILD_GIL", "ProcInfoCollector", "RSGIProtocolClosed", "RSGIProtocolError"]
