"""granian: a fast HTTP server for ASGI, RSGI and WSGI apps, with a small C core."""

from __future__ import annotations

from typing import Any

# The Granian 2.x API level we implement; Emmett pins granian~=2.6, so this stays >= 2.6.
__version__ = "2.6.0"
__all__ = ["Granian", "__version__"]


def __getattr__(name: str) -> Any:
    # Lazy: `import granian` in a worker must not pull in the master's modules.
    if name == "Granian":
        from .supervisor.api import Granian

        return Granian
    raise AttributeError(name)
