"""The master's signal queue: handlers only record the signal; the main loop acts on it.

Acting inside a handler would run arbitrary code (fork, kill, logging) re-entrantly at any
bytecode boundary of the main loop; gunicorn's arbiter avoids that the same way: the handler
appends to a queue and wakes the loop through a self-pipe (`signal.set_wakeup_fd`).
"""

from __future__ import annotations

import os
import select
import signal
from collections import deque
from types import FrameType

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGCHLD)
# Bound on the queue: repeated identical signals carry no extra meaning past a few (gunicorn: 5).
_QUEUE_MAX = 16


class SignalQueue:
    def __init__(self) -> None:
        self._queue: deque[int] = deque()
        self._rfd, self._wfd = os.pipe()
        os.set_blocking(self._rfd, False)
        os.set_blocking(self._wfd, False)
        self._old_wakeup = -1
        self._old_handlers: dict[int, object] = {}

    def install(self) -> None:
        self._old_wakeup = signal.set_wakeup_fd(self._wfd)
        for sig in HANDLED:
            self._old_handlers[sig] = signal.signal(sig, self._handler)

    def uninstall(self) -> None:
        for sig, old in self._old_handlers.items():
            signal.signal(sig, old)  # type: ignore[arg-type]
        self._old_handlers.clear()
        signal.set_wakeup_fd(self._old_wakeup)

    def close(self) -> None:
        os.close(self._rfd)
        os.close(self._wfd)

    def close_in_child(self) -> None:
        """After fork: the worker gets default dispositions and none of the master's plumbing."""
        signal.set_wakeup_fd(-1)
        for sig in HANDLED:
            signal.signal(sig, signal.SIG_DFL)
        self.close()
        # The master blocked these around fork (Master.spawn); a signal that arrived meanwhile is
        # delivered now, to the default disposition, before the worker installs its own.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED)

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if len(self._queue) < _QUEUE_MAX:
            self._queue.append(signum)

    def wait(self, timeout: float | None) -> None:
        """Sleep until a signal arrives or `timeout` seconds pass."""
        if self._queue:
            return
        try:
            ready, _, _ = select.select([self._rfd], [], [], timeout)
        except InterruptedError:
            return
        if ready:
            try:
                while os.read(self._rfd, 512):
                    pass
            except BlockingIOError:
                pass

    def wake(self) -> None:
        """Wake `wait()` from another thread (the file watcher)."""
        try:
            os.write(self._wfd, b"\0")
        except (BlockingIOError, OSError):
            # Pipe full: a wake-up is already pending. Closed: the master is stopping.
            pass

    def pop(self) -> int | None:
        return self._queue.popleft() if self._queue else None
