"""The worker's blocking pool (`--blocking-threads`): where WSGI apps run.

Leaner than `loop.run_in_executor(ThreadPoolExecutor)`, which per call builds a
concurrent.futures.Future, a work item and an asyncio future chained to it, and takes a lock
and a condition: here a call is one tuple on a deque, and its result one tuple on its loop's
outbox.

How threads are woken is what decides the speed on a GIL build. Waking a parked thread per call
costs about three context switches per request (the woken thread preempts the loop, finds the
GIL held, sleeps again, and is switched back in later), which measured as a third of a plaintext
WSGI request's time. So a call only wakes a thread when no thread is busy; a busy thread keeps
taking calls from the deque until it is empty, and results go back through one loop wake-up per
burst (a loop callback drains the outbox), not one per call. Calls queued behind busy threads get
more threads from a watchdog on the loop: when WATCH_INTERVAL passes with calls waiting and no
thread taking any (they all block: I/O, sleeps, locks), it wakes or starts one more thread, up
to the limit. A CPU-bound app therefore keeps one hot thread (more would only take turns on the
GIL), and an app that blocks grows the pool as far as its waits need.

Threads start on demand, up to the limit, and exit after `idle_timeout` seconds without work
(CLI.md: "started on demand, reaped when idle"); the most recently parked thread is woken first,
so a light load keeps reusing one thread and the others are reaped.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from ..constants import SERVER_LOGGER

__all__ = ["BlockingPool", "WATCH_INTERVAL"]

logger = logging.getLogger(SERVER_LOGGER)

# How long calls may wait behind busy threads that take nothing before one more thread is put
# on them. 1 ms is libuv's timer resolution, and below the scheduling noise of a request that
# waits on a database; Go's scheduler makes the same call for threads stuck in syscalls (its
# sysmon retakes them after 20 us to 10 ms).
WATCH_INTERVAL = 0.001

# (done, loop, fn, args): `done(result, None)` or `done(None, exception)` is called on the loop.
Done = Callable[[Any, "BaseException | None"], None]
_Item = tuple[Done, asyncio.AbstractEventLoop, Callable[..., Any], tuple[Any, ...]]


def _set_result(fut: asyncio.Future[Any], value: Any) -> None:
    if not fut.done():
        fut.set_result(value)


def _set_exception(fut: asyncio.Future[Any], exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)


class _Outbox:
    """One loop's side of the pool: its finished calls (`drain` runs on that loop and calls their
    `done`), and whether a kick is already scheduled on it."""

    __slots__ = ("loop", "items", "scheduled", "kicking", "kick", "watching")

    def __init__(self, loop: asyncio.AbstractEventLoop, kick: Callable[[_Outbox], None]) -> None:
        self.loop = loop
        self.items: deque[tuple[Done, Any, BaseException | None]] = deque()
        self.scheduled = False
        self.kicking = False
        self.kick = lambda: kick(self)
        self.watching = False  # this loop runs the pool's watchdog (each loop its own)

    def post(self, done: Done, result: Any, exc: BaseException | None) -> None:
        """From a pool thread. Only the first result since the last drain wakes the loop."""
        self.items.append((done, result, exc))
        if not self.scheduled:
            self.scheduled = True
            try:
                self.loop.call_soon_threadsafe(self.drain)
            except RuntimeError:
                pass  # the loop is closed: nobody waits for these any more

    def drain(self) -> None:
        # Reset first: a result posted while this runs either is popped below or schedules
        # another drain, never neither.
        self.scheduled = False
        items = self.items
        while items:
            done, result, exc = items.popleft()
            try:
                done(result, exc)
            except Exception as err:  # noqa: BLE001 - one bad callback must not strand the rest
                self.loop.call_exception_handler(
                    {"message": "blocking pool completion callback failed", "exception": err}
                )


class BlockingPool:
    __slots__ = (
        "_queue",
        "_max",
        "_idle_timeout",
        "_name",
        "_threads",
        "_busy",
        "_parked",
        "_taken",
        "_lock",
        "_closed",
        "_outboxes",
        "_spawned",
    )

    def __init__(self, max_threads: int, idle_timeout: float = 30.0, name: str = "granian-blocking") -> None:
        self._queue: deque[_Item] = deque()
        self._max = max(1, max_threads)
        self._idle_timeout = idle_timeout
        self._name = name
        self._threads = 0
        self._busy = 0  # threads running calls, or woken to (they drain the queue before parking)
        self._parked: list[threading.Lock] = []  # wake locks of parked threads, last parked last
        self._taken = 0  # calls picked up so far: the watchdog's sign of progress
        self._lock = threading.Lock()
        self._closed = False
        self._outboxes: dict[asyncio.AbstractEventLoop, _Outbox] = {}
        self._spawned = 0

    @property
    def threads(self) -> int:
        return self._threads

    def probe(self) -> tuple[int, int]:
        """(started threads, queued calls), for --metrics (granian.server.metrics)."""
        return self._threads, len(self._queue)

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
        `loop` (the running loop of the caller): no future and no task wake-up in between (the
        WSGI hot path)."""
        if self._closed:
            raise RuntimeError("blocking pool is shut down")
        self._queue.append((done, loop, fn, args))
        box = self._outboxes.get(loop) or self._outbox(loop)
        if not box.kicking:
            # Threads are woken once the loop has queued everything this iteration brought
            # (call_soon runs after the iteration's I/O callbacks): a thread woken now would
            # take the GIL at the next callback boundary to run just this one call.
            box.kicking = True
            loop.call_soon(box.kick)

    def _kick(self, box: _Outbox) -> None:
        box.kicking = False
        # Under the lock: a thread parks only after seeing the queue empty under it, so either
        # it took these calls or this sees it parked (no call is left with nobody to take it).
        with self._lock:
            if not self._queue or self._closed:
                return
            if self._busy == 0:
                self._wake()
            if not box.watching:  # whoever takes these calls may block on one of them
                box.watching = True
                box.loop.call_later(WATCH_INTERVAL, self._watch, box, self._taken)

    def _wake(self) -> None:
        """Put one more thread on the queue (lock held): the last parked one, or a new one."""
        if self._parked:
            self._busy += 1
            self._parked.pop().release()
        elif self._threads < self._max:
            self._busy += 1
            self._threads += 1
            self._spawned += 1
            t = threading.Thread(target=self._work, name=f"{self._name}-{self._spawned}", daemon=True)
            t.start()

    def _watch(self, box: _Outbox, taken: int) -> None:
        """On a loop, WATCH_INTERVAL after it queued calls."""
        with self._lock:
            if not self._queue or self._closed:
                box.watching = False
                return
            if self._taken == taken or self._busy == 0:
                self._wake()  # nothing was taken meanwhile: every busy thread is blocked
            taken = self._taken
        try:
            box.loop.call_later(WATCH_INTERVAL, self._watch, box, taken)
        except RuntimeError:  # the loop is closing
            box.watching = False

    def _outbox(self, loop: asyncio.AbstractEventLoop) -> _Outbox:
        with self._lock:
            box = self._outboxes.get(loop)
            if box is None:
                box = self._outboxes[loop] = _Outbox(loop, self._kick)
            return box

    def _work(self) -> None:
        queue = self._queue
        lock = self._lock
        outboxes = self._outboxes
        wake = threading.Lock()
        wake.acquire()
        while True:
            try:
                done, loop, fn, args = queue.popleft()
            except IndexError:
                with lock:
                    if queue:
                        continue
                    self._busy -= 1
                    if self._closed:
                        self._threads -= 1
                        return
                    self._parked.append(wake)
                if wake.acquire(timeout=self._idle_timeout):
                    continue  # woken (the waker counted this thread busy again)
                with lock:
                    if wake in self._parked:  # not woken: retire
                        self._parked.remove(wake)
                        self._threads -= 1
                        return
                wake.acquire()  # a waker popped this thread as the timeout hit: take its release
                continue
            self._taken += 1
            try:
                result = fn(*args)
            except BaseException as exc:  # noqa: BLE001 - handed to the loop
                box = outboxes.get(loop) or self._outbox(loop)
                box.post(done, None, exc)
                del exc
            else:
                box = outboxes.get(loop) or self._outbox(loop)
                box.post(done, result, None)
                del result
            del done, args, fn

    def shutdown(self) -> None:
        """Let every thread exit once the queue is empty; does not wait for them."""
        with self._lock:
            self._closed = True
            parked, self._parked = self._parked, []
            self._busy += len(parked)
        for wake in parked:
            wake.release()
