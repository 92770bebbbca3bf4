"""`--opt`: start each request coroutine eagerly, as a real Task whose first step runs now.

The contract an eager start must keep (asyncio's, which sniffio, anyio task groups,
`asyncio.timeout()` and Starlette/FastAPI streaming responses rely on): `asyncio.current_task()`
is a Task for the whole app call, the first step included, and that same Task drives the
coroutine to the end. An earlier version stepped the bare coroutine before any Task existed,
which broke all four (issue 10).

- Python 3.12+: `asyncio.Task(..., eager_start=True)` is exactly that, in C
  (`asyncio.eager_task_factory` uses it). `--opt` starts tasks that way.
- Python 3.10/3.11 have no eager start, and no correct eager mode measured faster than the
  default here (callgrind driver, instructions per ASGI plaintext request: default 65.5k; the
  stdlib's pure-Python Task stepped at once 73.3k; a C Task whose first step is taken from its
  constructor's `call_soon` and run at once 66.7k; the old Task-less step 56.1k, which is the
  one that broke the contract). The whole gap is the Task itself (creation, the `all_tasks`
  weak set, its wake-up), which the contract requires. So there `--opt` is the default mode:
  `EAGER` is False and the worker schedules a Task per request either way.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from typing import Any

__all__ = ["EAGER", "start_eager"]

# Whether `--opt` changes anything on this Python (see the module docstring).
EAGER = sys.version_info >= (3, 12)


def start_eager(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, None]) -> None:
    """Run `coro`'s first step now inside a real Task (3.12's eager start); elsewhere a plain
    Task, whose first step waits for the loop."""
    if EAGER:
        # 3.12's eager start swaps the current task when called from inside another one.
        asyncio.Task(coro, loop=loop, eager_start=True)  # type: ignore[call-arg,unused-ignore]
    else:
        loop.create_task(coro)
