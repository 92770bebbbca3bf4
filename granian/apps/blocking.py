"""The worker's blocking pool (`--blocking-threads`): where WSGI apps run.

Leaner than `loop.run_in_executor(ThreadPoolExecutor)`, which per call builds a
concurrent.futures.Future, a work item and an asyncio future chained to it, and takes a lock
and a condition: here a call is one tuple on a C `SimpleQueue` and one `call_soon_threadsafe`
back to the loop with the result.

Threads start on demand, up to the limit, and exit after `idle_timeout` seconds without work
(CLI.md: "started on demand, reaped when idle"). A thread counts as idle from its start until it
holds the GIL again with an item: while the loop thread is busy queueing a burst of requests
(holding the GIL), the waiting threads still look idle, so a burst starts at most one thread
instead of one per request; on a GIL build more threads than the app's blocking calls need
only add lock convoys. A thread that takes a call while others are still queued and none is
idle starts one more, so calls that block (I/O) never wait for a later submit to get a thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from queue import Empty, SimpleQueue
from typing import Any

__all__ = ["BlockingPool"]

# (done, loop, fn, args): `done(result, None)` or `done(None, exception)` is called on the loop.
_Item = tuple["Done", asyncio.AbstractEventLoop, Callable[..., Any], tuple[Any, ...]]
Done = Callable[[Any, "BaseException | None"], None]


def _set_result(fut: asyncio.Future[Any], value: Any) -> None:
    if not fut.done():
        fut.set_result(value)


def _set_exception(fut: asyncio.Future[Any], exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)


class BlockingPool:
    __slots__ = (
        "_queue",
        "_max",
        "_idle_timeout",
        "_name",
        "_threads",
        "_idle",
        "_starting",
        "_lock",
        "_closed",
    )

    def __init__(self, max_threads: int, idle_timeout: float = 30.0, name: str = "granian-blocking") -> None:
        self._queue: SimpleQueue[_Item | None] = SimpleQueue()
        self._max = max(1, max_threads)
        self._idle_timeout = idle_timeout
        self._name = name
        self._threads = 0
        self._idle = 0  # threads waiting for an item
        self._starting = 0  # threads started that have not yet run
        self._lock = threading.Lock()
        self._closed = False

    @property
    def threads(self) -> int:
        return self._threads

    def probe(self) -> tuple[int, int]:
        """(started threads, queued calls), for --metrics (granian.server.metrics)."""
        return self._threads, self._queue.qsize()

    def run(self, loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        """Call `fn(*args)` on a pool thread; the returned loop future gets its result."""
        fut: asyncio.Future[Any] = loop.create_future()

        def done(result: Any, exc: BaseException | None) -> None:
            if exc is not None:
                _set_exception(fut, exc)
            else:
                _set_result(fut, result)

        self.call(loop, done, fn, *args)
        return fut

    def call(self, loop: asyncio.AbstractEventLoop, done: Done, fn: Callable[..., Any], *args: Any) -> None:
        """Call `fn(*args)` on a pool thread, then `done(result, None)` or `done(None, exc)` on
        the loop: no future and no task wake-up in between (the WSGI hot path)."""
        if self._closed:
            raise RuntimeError("blocking pool is shut down")
        queue = self._queue
        queue.put((done, loop, fn, args))
        if self._starting == 0 and self._threads < self._max and queue.qsize() > self._idle:
            self._spawn()

    def _spawn(self) -> None:
        with self._lock:
            if self._threads >= self._max:
                return
            self._threads += 1
            self._starting += 1
            n = self._threads
        t = threading.Thread(target=self._work, name=f"{self._name}-{n}", daemon=True)
        t.start()

    def _work(self) -> None:
        queue = self._queue
        timeout = self._idle_timeout
        lock = self._lock
        with lock:
            self._starting -= 1
            self._idle += 1
        while True:
            try:
                item = queue.get(timeout=timeout)
            except Empty:
                with lock:
                    # Re-check under the lock: a submit may have counted on this thread.
                    if queue.empty():
                        self._threads -= 1
                        self._idle -= 1
                        return
                continue
            if item is None:
                with lock:
                    self._threads -= 1
                    self._idle -= 1
                return
            with lock:
                self._idle -= 1
            if self._starting == 0 and self._threads < self._max and queue.qsize() > self._idle:
                # Calls still queued and nobody free: this thread may block for long (a slow
                # query), so bring up one more now rather than wait for the next submit.
                self._spawn()
            done, loop, fn, args = item
            try:
                result = fn(*args)
            except BaseException as exc:  # noqa: BLE001 - handed to the loop
                with lock:
                    self._idle += 1
                try:
                    loop.call_soon_threadsafe(done, None, exc)
                except RuntimeError:
                    pass  # the loop is closed: nobody waits for this any more
                del exc
                continue
            with lock:
                self._idle += 1
            try:
                loop.call_soon_threadsafe(done, result, None)
            except RuntimeError:
                pass
            del result, item, done, args

    def shutdown(self) -> None:
        """Let every thread exit once the queue is empty; does not wait for them."""
        self._closed = True
        for _ in range(self._threads):
            self._queue.put(None)
