"""Option enums shared by the settings model, the CLI and the Python API.

Each is a ``str`` enum so that a member compares equal to the plain string a user writes
(``Interfaces.ASGI == 'asgi'``), which is what Granian 2.x callers rely on.
"""

from __future__ import annotations

from enum import Enum


class StrEnum(str, Enum):
    """A str enum whose ``str()`` is its value (the stdlib ``StrEnum`` needs Python 3.11)."""

    def __str__(self) -> str:
        return str(self.value)


class Interfaces(StrEnum):
    ASGI = "asgi"
    ASGINL = "asginl"  # ASGI without the lifespan protocol
    RSGI = "rsgi"
    WSGI = "wsgi"


class HTTPModes(StrEnum):
    auto = "auto"
    http1 = "1"
    http2 = "2"


class RuntimeModes(StrEnum):
    """Granian 2.x's ``--runtime-mode``; an alias of ``--threading-mode`` (mt -> runtime, st -> workers)."""

    auto = "auto"
    mt = "mt"
    st = "st"


class ThreadModes(StrEnum):
    runtime = "runtime"
    workers = "workers"


class Loops(StrEnum):
    auto = "auto"
    asyncio = "asyncio"
    uvloop = "uvloop"


class TaskImpl(StrEnum):
    """Accepted for compatibility: ``rust`` selects the eager-start path of ``--opt``."""

    asyncio = "asyncio"
    rust = "rust"


class SSLProtocols(StrEnum):
    tls12 = "tls1.2"
    tls13 = "tls1.3"


class LogLevels(StrEnum):
    critical = "critical"
    error = "error"
    warning = "warning"
    warn = "warn"  # alias of warning, kept because Granian accepts it
    info = "info"
    debug = "debug"


# The %-style atoms the access-log format may use (CLI.md, --access-log-fmt).
ACCESS_LOG_ATOMS = frozenset(
    {"addr", "time", "dt_ms", "status", "path", "query_string", "method", "scheme", "protocol"}
    # beyond Granian (granian.log): response body bytes and two common request headers; any
    # request header is `header{Name}`
    | {"size", "referer", "user_agent"}
)
