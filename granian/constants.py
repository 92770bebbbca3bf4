"""Option enums shared by the settings model, the CLI and the Python API, and the values that
several layers must agree on (logger names, shared defaults): each is written here once.

Each enum is a ``str`` enum so that a member compares equal to the plain string a user writes
(``Interfaces.ASGI == 'asgi'``), which is what Granian 2.x callers rely on.
"""

from __future__ import annotations

import sys
from enum import Enum

# Granian's logger names, so that `--log-config` files written for Granian keep working: the
# server's own messages, and the access log.
SERVER_LOGGER = "_granian"
ACCESS_LOGGER = "granian.access"

# `--http1-buffer-size`'s default (CLI.md; Granian's): hyper's DEFAULT_MAX_BUFFER_SIZE, 8192 +
# 4096 * 100 bytes, the most a connection buffers while a request head is incomplete.
HTTP1_BUFFER_SIZE = 8192 + 4096 * 100


def _build_gil() -> bool:
    # POSIX builds spell the free-threaded ABI with a "t" in sys.abiflags (PEP 703, "Build
    # Configuration Changes"); that needs no sysconfig, whose data module the master and the
    # workers would otherwise load only for this one bit.
    flags = getattr(sys, "abiflags", None)
    if flags is not None:
        return "t" not in flags
    import sysconfig

    return not bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


# True on a regular CPython build; False on a free-threaded (PEP 703, `Py_GIL_DISABLED`) build.
BUILD_GIL: bool = _build_gil()


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
    # beyond Granian (granian.access_log): response body bytes and two common request headers; any
    # request header is `header{Name}`
    | {"size", "referer", "user_agent"}
)

# `--access-log-fmt`'s default (CLI.md; Granian's too).
DEFAULT_ACCESS_LOG_FMT = '[%(time)s] %(addr)s - "%(method)s %(path)s %(protocol)s" %(status)d %(dt_ms).3f'
