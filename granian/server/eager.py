"""`--opt`: start request coroutines eagerly instead of scheduling a Task.

The coroutine is stepped once, synchronously, from the protocol callback that produced the
request. Most simple handlers finish in that one step (their awaits never suspend), so no Task,
no loop round trip. Only a coroutine that really suspends is handed to a Task, which resumes it
exactly where it stopped: the first thing the Task does is wait for the future the coroutine
yielded (or, for a bare `yield`, just reschedule), then it keeps driving the same coroutine.

Trade-off (why it is opt-in, as in Granian): during the first step `asyncio.current_task()` is
None, so code that needs a current task before its first suspension cannot run there: e.g.
`asyncio.timeout()`, and anyio task groups, which Starlette's StreamingResponse and FastAPI's
streaming responses open before they first suspend (they answer 500 under `--opt`).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Coroutine, Generator
from typing import Any

__all__ = ["resume_in_task", "start_eager"]


class _Resume:
    """An awaitable that first re-yields what the coroutine yielded, then forwards to it."""

    __slots__ = ("_coro", "_first")

    def __init__(self, coro: Coroutine[Any, Any, None], first: Any) -> None:
        self._coro = coro
        self._first = first

    def __await__(self) -> Generator[Any, Any, None]:
        return self

    def __iter__(self) -> _Resume:
        return self

    def __next__(self) -> Any:
        return self.send(None)

    def send(self, value: Any) -> Any:
        first = self._first
        if first is not _DONE:
            self._first = _DONE
            return first
        return self._coro.send(value)

    def throw(self, *args: Any) -> Any:
        self._first = _DONE
        return self._coro.throw(*args)

    def close(self) -> None:
        self._coro.close()


_DONE = object()


async def _drive(resume: _Resume) -> None:
    await resume


def start_eager(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, None]) -> None:
    """Step `coro` now; wrap it in a Task only if it suspends (the protocol inlines this).

    The handler contract says request coroutines do not raise; anything that escapes anyway
    propagates to the caller (the protocol), exactly as it would have surfaced from a Task."""
    ctx = contextvars.copy_context()
    try:
        yielded = ctx.run(coro.send, None)
    except StopIteration:
        return
    resume_in_task(loop, coro, yielded, ctx)


def resume_in_task(
    loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, None], yielded: Any, ctx: contextvars.Context
) -> None:
    """Hand a coroutine that suspended after its first step (yielding `yielded`) to a Task."""
    # `context=` exists on both asyncio (3.11+) and uvloop loops; the ABC stub lacks it.
    create_task: Any = loop.create_task
    create_task(_drive(_Resume(coro, yielded)), context=ctx)
