"""Event-loop selection (`--loop auto|asyncio|uvloop`; auto = uvloop when importable)."""

from __future__ import annotations

import asyncio

from ..errors import ConfigurationError

__all__ = ["new_event_loop"]


def new_event_loop(kind: str = "auto") -> asyncio.AbstractEventLoop:
    """A fresh loop of the requested kind; `uvloop` when it cannot be imported is an error,
    `auto` silently falls back to asyncio."""
    kind = str(kind)
    if kind in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if kind == "uvloop":
                raise ConfigurationError("--loop uvloop: uvloop is not installed") from None
        else:
            loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
            return loop
    elif kind != "asyncio":
        raise ConfigurationError(f"--loop: unknown event loop {kind!r}")
    return asyncio.new_event_loop()
