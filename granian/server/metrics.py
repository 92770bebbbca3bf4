"""Worker-side metrics: plain counters on one object, reported to the master over a pipe; and
the request-completion hook shared with the access log (`make_completion_hook`).

Nothing here runs unless `--metrics` is on: the worker creates a `WorkerMetrics` only then, and
the protocol and the request cycle touch it behind a single `is not None` check. Counters are
plain ints (one event loop per worker thread updates them; no locks on the request path).

Every `--metrics-scrape-interval` seconds (and once at start and at stop) the worker writes a
snapshot, one JSON object per line, to the write end of a pipe the master opened for it before
fork (`set_report_fd`). Snapshots are cumulative, so one that cannot be written right away (the
master is slow to read) is simply skipped: the next carries the same counts and more.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from bisect import bisect_left
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..access_log import AccessLog
    from .cycle import Cycle

# Request-duration histogram bounds, seconds (Prometheus client libraries' default ladder, which
# spans a fast in-memory response to a slow upstream call). `+Inf` is implicit.
BUCKETS: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Status classes of RFC 9110 §15; index 0 collects anything outside 100-599 (should not happen).
STATUS_CLASSES: tuple[str, ...] = ("other", "1xx", "2xx", "3xx", "4xx", "5xx")

# Fields of a snapshot, in Granian's metric order (see granian/supervisor/metrics.py for names).
FIELDS: tuple[str, ...] = (
    "lifetime",
    "conn_active",
    "conn_handled",
    "conn_err",
    "req_handled",
    "static_handled",
    "static_err",
    "blocking_threads",
    "blocking_queue",
)

_report_fd: int | None = None


def set_report_fd(fd: int | None) -> None:
    """Called in the worker process after fork with the pipe the master reads (None: no metrics)."""
    global _report_fd
    _report_fd = fd


def report_fd() -> int | None:
    return _report_fd


class WorkerMetrics:
    """The counters of one worker process. Hot-path users increment attributes directly."""

    __slots__ = (
        "birth",
        "conn_active",
        "conn_handled",
        "conn_err",
        "req_handled",
        "static_handled",
        "static_err",
        "hist",
        "hist_sum",
        "blocking_probe",
    )

    def __init__(self) -> None:
        self.birth = time.monotonic()
        self.conn_active = 0
        self.conn_handled = 0
        self.conn_err = 0
        self.req_handled = 0
        self.static_handled = 0
        self.static_err = 0
        # Per status class: observation counts per bucket (not cumulative; the exporter sums).
        self.hist: list[list[int]] = [[0] * (len(BUCKETS) + 1) for _ in STATUS_CLASSES]
        self.hist_sum: list[float] = [0.0] * len(STATUS_CLASSES)
        # Set by the owner of the blocking pool: returns (threads, queued jobs). Read only when a
        # snapshot is taken, so the pool pays nothing per job.
        self.blocking_probe: Callable[[], tuple[int, int]] | None = None

    def observe(self, status: int, dt: float) -> None:
        """One response finished: `dt` seconds after the request head was read."""
        self.req_handled += 1
        c = status // 100
        if c > 5 or c < 1:
            c = 0
        # bisect_left: a duration equal to a bound falls in that bucket (Prometheus `le`).
        self.hist[c][bisect_left(BUCKETS, dt)] += 1
        self.hist_sum[c] += dt

    def snapshot(self) -> dict[str, Any]:
        threads, queue = (0, 0)
        probe = self.blocking_probe
        if probe is not None:
            try:
                threads, queue = probe()
            except Exception:
                threads, queue = (0, 0)
        return {
            "lifetime": int(time.monotonic() - self.birth),
            "conn_active": self.conn_active,
            "conn_handled": self.conn_handled,
            "conn_err": self.conn_err,
            "req_handled": self.req_handled,
            "static_handled": self.static_handled,
            "static_err": self.static_err,
            "blocking_threads": threads,
            "blocking_queue": queue,
            # Only the status classes seen so far (a series appears with its first observation).
            "hist": {STATUS_CLASSES[i]: list(c) for i, c in enumerate(self.hist) if any(c)},
            "hist_sum": {STATUS_CLASSES[i]: s for i, s in enumerate(self.hist_sum) if any(self.hist[i])},
        }


class MetricsGroup:
    """The counters of a worker with several loop threads (`--threads`): each loop increments its
    own `WorkerMetrics` (no locks on the request path, no update lost to a racing `+=`); a
    snapshot sums them. The first one owns the lifetime and the blocking-pool probe."""

    __slots__ = ("main", "others")

    def __init__(self, main: WorkerMetrics, others: list[WorkerMetrics]) -> None:
        self.main = main
        self.others = others  # may grow after construction (threads start after the reporter)

    def snapshot(self) -> dict[str, Any]:
        snap = self.main.snapshot()
        members = [self.main, *self.others]
        if len(members) == 1:
            return snap
        for key in ("conn_active", "conn_handled", "conn_err", "req_handled", "static_handled", "static_err"):
            snap[key] = sum(getattr(m, key) for m in members)
        hist = [
            [sum(col) for col in zip(*(m.hist[i] for m in members), strict=True)]
            for i in range(len(STATUS_CLASSES))
        ]
        hist_sum = [sum(m.hist_sum[i] for m in members) for i in range(len(STATUS_CLASSES))]
        snap["hist"] = {STATUS_CLASSES[i]: c for i, c in enumerate(hist) if any(c)}
        snap["hist_sum"] = {STATUS_CLASSES[i]: s for i, s in enumerate(hist_sum) if any(hist[i])}
        return snap


def encode(snapshot: dict[str, Any]) -> bytes:
    return json.dumps(snapshot, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> dict[str, Any] | None:
    """One snapshot line back to a dict; None for anything malformed (never trust a pipe blindly:
    a worker killed mid-write leaves half a line)."""
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    for key in FIELDS:
        if not isinstance(data.get(key, 0), int):
            return None
    return data


class MetricsReporter:
    """Writes snapshots of `metrics` to `fd` every `interval` seconds on the worker's loop."""

    def __init__(self, metrics: WorkerMetrics | MetricsGroup, fd: int, interval: float) -> None:
        self.metrics = metrics
        self.fd = fd
        self.interval = max(0.05, float(interval))
        self._pending = b""
        self._handle: asyncio.TimerHandle | asyncio.Handle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        os.set_blocking(fd, False)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._handle = loop.call_soon(self._tick)

    def _tick(self) -> None:
        self.send()
        if self._loop is not None:
            self._handle = self._loop.call_later(self.interval, self._tick)

    def send(self) -> bool:
        """Write one snapshot; False when the pipe is full or gone (the snapshot is dropped)."""
        if self.fd < 0:
            return False
        if self._pending and not self._write(self._pending):
            return False
        return self._write(encode(self.metrics.snapshot()))

    def _write(self, data: bytes) -> bool:
        try:
            n = os.write(self.fd, data)
        except BlockingIOError:
            # Nothing of `data` went out: drop it, unless it is the tail of a line already begun.
            self._pending = data if data is self._pending else b""
            return False
        except OSError:
            # EPIPE: the master is gone; stop reporting.
            self._close()
            return False
        # A partial write keeps the rest, so the line is completed before any other begins (the
        # reader splits on newlines).
        self._pending = data[n:]
        return not self._pending

    def stop(self) -> None:
        """Cancel the timer and send a last snapshot, so the final counts reach the master."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._loop = None
        self.send()
        self._close()

    def _close(self) -> None:
        if self.fd >= 0:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = -1


def thread_pool_probe(pool: Executor) -> Callable[[], tuple[int, int]] | None:
    """A `blocking_probe` for a ThreadPoolExecutor (the WSGI blocking pool): its started threads
    and queued jobs, read only when a snapshot is taken. None for any other executor."""
    own = getattr(pool, "probe", None)
    if callable(own):
        # granian.apps.blocking.BlockingPool (the WSGI pool) reports (threads, queued) itself
        return own  # type: ignore[no-any-return]
    if not isinstance(pool, ThreadPoolExecutor):
        return None

    def probe() -> tuple[int, int]:
        # CPython's ThreadPoolExecutor keeps these two (private but long-stable) attributes.
        threads = getattr(pool, "_threads", ())
        queue = getattr(pool, "_work_queue", None)
        return len(threads), (queue.qsize() if queue is not None else 0)

    return probe


def make_completion_hook(
    access_log: AccessLog | None, metrics: WorkerMetrics | None
) -> Callable[[Cycle], None] | None:
    """The `ServerContext.on_complete` callback for what is enabled; None when neither is (then
    the connection installs nothing and skips even the request-start timestamp). Build one per
    event loop: the access log part only queues `(cycle, dt)` on this hook's own batch, and the
    lines are rendered and written once per batch (granian.access_log.AccessBatch)."""
    clock = time.perf_counter
    if access_log is not None:
        from ..access_log import ACCESS_FLUSH_LINES

        batch = access_log.batch()
        items = batch.items
        put = items.append
        arm = batch.arm
        flush = batch.flush
        cap = ACCESS_FLUSH_LINES
        # The queueing tail is written out in both hooks rather than shared: a shared helper is
        # one more Python call on every request, which is what this batching exists to avoid.
        if metrics is not None:
            observe = metrics.observe

            def both(c: Cycle) -> None:
                dt = clock() - c.t0
                observe(c.status, dt)
                put((c, dt))
                n = len(items)
                if n == 1:
                    arm()
                elif n >= cap:
                    flush()

            return both

        def access_only(c: Cycle) -> None:
            put((c, clock() - c.t0))
            n = len(items)
            if n == 1:
                arm()
            elif n >= cap:
                flush()

        return access_only
    if metrics is not None:
        observe = metrics.observe

        def metrics_only(c: Cycle) -> None:
            observe(c.status, clock() - c.t0)

        return metrics_only
    return None
