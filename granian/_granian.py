"""Names Granian 2.x exposes from its native `granian._granian` module, for code that imports them.

Nothing here touches psutil at import time: apps import this module for the RSGI exception types,
and only the supervisor imports psutil (ProcInfoCollector loads it on first use). granian's own
modules import the definitions from granian.errors and granian.constants instead (this module
sits above the supervisor, which it calls: tests/test_layering.py).
"""

from __future__ import annotations

from collections.abc import Iterable

# Defined in the bottom layer (errors, constants), which granian's own modules import; this
# module is the facade that keeps Granian's import paths working for apps.
from .constants import BUILD_GIL
from .errors import RSGIProtocolClosed, RSGIProtocolError


class ProcInfoCollector:
    """Memory of processes, as Granian's collector: `memory()` -> `{pid: rss_bytes}`."""

    def memory(self, pids: Iterable[int] | None = None) -> dict[int, int]:
        """RSS in bytes of the calling process plus `pids` (default: all its descendants)."""
        from .supervisor.procinfo import memory

        return memory(None if pids is None else list(pids))


__all__ = ["BUILD_GIL", "ProcInfoCollector", "RSGIProtocolClosed", "RSGIProtocolError"]
