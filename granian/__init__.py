"""granian: a fast HTTP server for ASGI, RSGI and WSGI apps, with a small C core."""

from __future__ import annotations

from typing import Any

__version__ = "2.5.0"
__all__ = ["Granian", "__version__"]


def __getattr__(name: str) -> Any:
    # Lazy: `import granian` in a worker must not pull in the master's modules.
    if name == "Granian":
        from .supervisor.api import Granian

        return Granian
    raise AttributeError(name)
