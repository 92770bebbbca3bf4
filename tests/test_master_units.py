"""The master's decisions, driven through the real `Master` with fork, kill, waitpid and the clock
patched (gunicorn's tests/test_arbiter.py drives its arbiter with mock.patch the same way): no
process is forked, no worker runs, and time only moves when a test moves it.

Each test starts the real loop (`Master.start`), turns it with `Master.tick` (its sleep replaced
by a record of how long it would have slept), raises real signals into the master's real signal
queue, and reads the decisions back from the fake OS: which PIDs were forked, which signals were
sent to which PID, in order.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from granian.errors import EXIT_APP_LOAD, EXIT_STARTUP_FAILED
from granian.settings import load
from granian.supervisor import master as master_mod
from granian.supervisor.bind import Listener
from granian.supervisor.master import (
    CRASH_LOOP_LIMIT,
    MIB,
    RELOAD_KILL_TIMEOUT,
    STARTUP_WINDOW,
    Hooks,
    Master,
)

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the master is POSIX-only")


def exited(code: int) -> int:
    """A wait(2) status for a normal exit with `code` (WEXITSTATUS in bits 8-15)."""
    return code << 8


def killed(sig: int) -> int:
    """A wait(2) status for a death by signal `sig` (WTERMSIG in the low 7 bits)."""
    return int(sig)


class FakeOS:
    """fork/kill/waitpid over a table of fake children. A PID stays alive until `exit()` or a
    SIGKILL; SIGTERM is only recorded (a real worker drains first, the test decides when it ends)."""

    def __init__(self) -> None:
        self.next_pid = 1000
        self.forked: list[int] = []
        self.running: set[int] = set()
        self.statuses: dict[int, int] = {}
        self.sent: list[tuple[int, int]] = []
        self.events: list[tuple[str, int]] = []
        self.fork_error: OSError | None = None

    def fork(self) -> int:
        if self.fork_error is not None:
            raise self.fork_error
        self.next_pid += 1
        pid = self.next_pid
        self.forked.append(pid)
        self.running.add(pid)
        self.events.append(("fork", pid))
        return pid

    def kill(self, pid: int, sig: int) -> None:
        if pid not in self.running and pid not in self.statuses:
            raise ProcessLookupError(pid)
        self.sent.append((pid, sig))
        self.events.append((signal.Signals(sig).name, pid))
        if sig == signal.SIGKILL and pid in self.running:
            self.exit(pid, killed(signal.SIGKILL))

    def waitpid(self, pid: int, options: int) -> tuple[int, int]:
        assert options == os.WNOHANG, "the loop must never block in waitpid"
        if pid in self.statuses:
            return pid, self.statuses.pop(pid)
        if pid in self.running:
            return 0, 0
        raise ChildProcessError(pid)

    def exit(self, pid: int, status: int) -> None:
        self.running.discard(pid)
        self.statuses[pid] = status

    def signals_to(self, pid: int) -> list[int]:
        return [sig for p, sig in self.sent if p == pid]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeReloader:
    """Stands in for the watchfiles thread: `changed` is what the next `take()` returns."""

    instances: list[FakeReloader] = []

    def __init__(self, paths: Any, flt: Any, tick: int, wake: Any) -> None:
        self.changed: set[str] = set()
        FakeReloader.instances.append(self)

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def take(self) -> set[str]:
        changed, self.changed = self.changed, set()
        return changed


class Harness:
    def __init__(self, m: Master, fake: FakeOS, clock: Clock) -> None:
        self.m = m
        self.os = fake
        self.clock = clock
        self.slept: list[float] = []
        m.sig.wait = self._wait  # type: ignore[method-assign]

    def _wait(self, timeout: float | None) -> None:
        assert timeout is not None
        self.slept.append(timeout)

    def tick(self) -> bool:
        return self.m.tick()

    def signal(self, sig: int) -> bool:
        # The real handler, through the real queue (installed by Master.start).
        signal.raise_signal(sig)
        return self.m.tick()

    def live(self) -> dict[int, int]:
        """slot -> PID of the serving (not stopping) worker."""
        return {w.slot: w.pid for w in self.m.workers.values() if not w.stopping}

    def run_out(self, limit: int = 50) -> None:
        """Let every SIGTERM'd worker exit and tick until the master stops."""
        for _ in range(limit):
            for w in list(self.m.workers.values()):
                if w.stopping and w.pid in self.os.running:
                    self.os.exit(w.pid, exited(0))
            if not self.tick():
                return
        raise AssertionError("the master did not stop")


@pytest.fixture
def make(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    made: list[tuple[Master, socket.socket]] = []
    fake = FakeOS()
    clock = Clock()
    monkeypatch.setattr(os, "fork", fake.fork)
    monkeypatch.setattr(os, "kill", fake.kill)
    monkeypatch.setattr(os, "waitpid", fake.waitpid)
    monkeypatch.setattr(master_mod, "monotonic", clock)
    monkeypatch.setattr(master_mod, "Reloader", FakeReloader)
    FakeReloader.instances.clear()

    def _make(hooks: Hooks | None = None, **options: Any) -> Harness:
        over = options.pop("overrides", {})
        settings = load({"app": "m:app", "interface": "asgi", **options}, env={})
        if over:
            settings = settings.model_copy(update=over)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        m = Master(settings, Listener(sock, "http://test"), {}, hooks)
        made.append((m, sock))
        h = Harness(m, fake, clock)
        m.start()
        return h

    yield _make
    for m, sock in reversed(made):
        # close() SIGKILLs what is left (through the fake) and uninstalls the signal handlers.
        m.workers.clear()
        m.close()
        sock.close()


# ---------------------------------------------------------------- start-up and respawn


def test_start_forks_one_worker_per_slot(make: Any) -> None:
    h = make(workers=3)
    assert h.live() == dict(zip([1, 2, 3], h.os.forked, strict=True))
    assert h.os.sent == []


def test_crashed_worker_is_respawned_after_the_interval(make: Any) -> None:
    h = make(workers=2, respawn_failed_workers=True, respawn_interval=2)
    first, second = h.os.forked
    h.clock.advance(STARTUP_WINDOW + 1)  # it served for a while: a crash, not a crash loop
    h.os.exit(first, killed(signal.SIGSEGV))
    assert h.tick()
    assert h.os.forked == [first, second]  # not before --respawn-interval
    assert 0 < h.slept[-1] <= 2  # but the loop will wake up for it
    h.clock.advance(2)
    assert h.tick()
    (new,) = h.os.forked[2:]
    assert h.live() == {1: new, 2: second}
    assert h.os.sent == []  # the healthy worker was left alone


def test_crash_without_respawn_stops_the_master_with_1(make: Any) -> None:
    h = make(workers=2)
    first, second = h.os.forked
    h.os.exit(first, exited(1))
    assert h.tick()
    assert h.m.stopping and h.os.signals_to(second) == [signal.SIGTERM]
    h.run_out()
    assert h.m.exit_code == 1 and h.os.forked == [first, second]


def test_crash_loop_stops_instead_of_respawning_forever(make: Any) -> None:
    h = make(respawn_failed_workers=True, respawn_interval=0)
    for _ in range(CRASH_LOOP_LIMIT):
        h.clock.advance(0.5)  # each dies well inside the start-up window
        h.os.exit(h.os.forked[-1], exited(1))
        h.tick()
    assert len(h.os.forked) == CRASH_LOOP_LIMIT
    assert h.m.stopping and h.m.exit_code == 1
    assert not h.tick()  # nothing left to wait for


def test_a_crash_after_the_start_up_window_resets_the_crash_loop_count(make: Any) -> None:
    h = make(respawn_failed_workers=True, respawn_interval=0)
    for _ in range(CRASH_LOOP_LIMIT - 1):
        h.os.exit(h.os.forked[-1], exited(1))
        h.tick()
    h.clock.advance(STARTUP_WINDOW + 1)
    h.os.exit(h.os.forked[-1], exited(1))
    h.tick()
    assert h.m.early_failures == 0 and not h.m.stopping
    assert len(h.os.forked) == CRASH_LOOP_LIMIT + 1


@pytest.mark.parametrize("respawn", [False, True])
def test_app_load_failure_stops_the_master_with_1(make: Any, respawn: bool) -> None:
    h = make(workers=2, respawn_failed_workers=respawn, respawn_interval=0)
    first, second = h.os.forked
    h.os.exit(first, exited(EXIT_APP_LOAD))
    assert h.tick()
    # Respawning cannot fix an app that does not import: stop, whatever --respawn-failed-workers.
    assert h.m.stopping and h.m.exit_code == 1
    assert h.os.signals_to(second) == [signal.SIGTERM]
    h.run_out()
    assert h.os.forked == [first, second]


def test_startup_failure_without_reload_is_a_crash(make: Any) -> None:
    h = make(respawn_failed_workers=True, respawn_interval=0)
    (first,) = h.os.forked
    h.os.exit(first, exited(EXIT_STARTUP_FAILED))
    h.tick()
    assert not h.m.stopping and len(h.os.forked) == 2 and h.m.early_failures == 1


@pytest.mark.parametrize("status", [EXIT_STARTUP_FAILED, EXIT_APP_LOAD])
def test_under_reload_a_broken_app_waits_for_the_next_change(make: Any, status: int) -> None:
    h = make(workers=2, reload=True, respawn_interval=0)
    (reloader,) = FakeReloader.instances
    first, second = h.os.forked
    h.os.exit(first, exited(status))
    for _ in range(3):
        h.clock.advance(5)
        assert h.tick()
    # Parked: no respawn, no shutdown; the healthy worker keeps serving.
    assert not h.m.stopping and h.os.forked == [first, second] and h.live() == {2: second}
    reloader.changed = {os.path.abspath("app.py")}
    assert h.tick()
    assert h.os.signals_to(second) == [signal.SIGTERM]
    assert h.m.workers[second].kill_at == h.clock.now + RELOAD_KILL_TIMEOUT
    h.os.exit(second, exited(0))
    assert h.tick()
    # Every slot starts again once the old workers are gone.
    assert sorted(h.live()) == [1, 2] and len(h.os.forked) == 4


def test_fork_failure_shuts_down(make: Any) -> None:
    h = make(workers=2, respawn_failed_workers=True, respawn_interval=0)
    first, second = h.os.forked
    h.os.fork_error = OSError(11, "Resource temporarily unavailable")
    h.clock.advance(STARTUP_WINDOW + 1)
    h.os.exit(first, exited(1))
    h.tick()
    assert h.m.stopping and h.m.exit_code == 1 and h.os.signals_to(second) == [signal.SIGTERM]


# ---------------------------------------------------------------- rolling restarts


def test_sighup_rolls_one_slot_at_a_time_new_before_old(make: Any) -> None:
    reloads: list[str] = []
    h = make(hooks=Hooks(on_reload=[lambda: reloads.append("x")]), workers=2, respawn_interval=2)
    old1, old2 = h.os.forked
    h.os.events.clear()
    assert h.signal(signal.SIGHUP)
    assert reloads == ["x"]
    (new1,) = h.os.forked[2:]
    # The replacement serves beside the old worker for --respawn-interval...
    assert h.os.events == [("fork", new1)]
    h.clock.advance(1.9)
    h.tick()
    assert h.os.events == [("fork", new1)]
    # ...then the old one drains; the next slot waits until it is gone.
    h.clock.advance(0.1)
    h.tick()
    assert h.os.events == [("fork", new1), ("SIGTERM", old1)]
    h.os.exit(old1, exited(0))
    h.tick()
    (new2,) = h.os.forked[3:]
    h.clock.advance(2)
    h.tick()
    h.os.exit(old2, exited(0))
    h.tick()
    assert h.os.events == [("fork", new1), ("SIGTERM", old1), ("fork", new2), ("SIGTERM", old2)]
    assert h.live() == {1: new1, 2: new2} and set(h.m.workers) == {new1, new2}
    assert not h.m.stopping and h.m.roll is None


def test_a_replacement_that_dies_during_the_roll_keeps_the_old_worker(make: Any) -> None:
    h = make(workers=2, respawn_interval=2)
    old1, old2 = h.os.forked
    h.signal(signal.SIGHUP)
    (new1,) = h.os.forked[2:]
    h.os.exit(new1, exited(EXIT_APP_LOAD))  # the new code does not import
    h.clock.advance(5)
    h.tick()
    # The roll is abandoned: nobody is stopped, nothing else is forked, the server keeps serving.
    assert h.os.sent == [] and len(h.os.forked) == 3
    assert h.live() == {1: old1, 2: old2} and not h.m.stopping


def test_lifetime_triggers_a_rolling_replacement(make: Any) -> None:
    h = make(respawn_interval=1, workers_lifetime=60)
    (old,) = h.os.forked
    h.clock.advance(59)
    h.tick()
    assert h.os.forked == [old]
    assert 0 < h.slept[-1] <= 1  # the loop wakes for the lifetime deadline
    h.clock.advance(1)
    h.tick()
    (new,) = h.os.forked[1:]
    assert h.os.sent == []  # the old worker serves until its replacement has had the interval
    h.clock.advance(1)
    h.tick()
    assert h.os.signals_to(old) == [signal.SIGTERM]
    h.os.exit(old, exited(0))
    h.tick()
    assert h.live() == {1: new}


def test_rss_over_the_limit_for_n_samples_triggers_a_replacement(
    make: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    rss: dict[int, int] = {}
    monkeypatch.setattr(master_mod.procinfo, "rss", rss.get)
    h = make(workers=2, respawn_interval=1, workers_max_rss=100, rss_sample_interval=10, rss_samples=2)
    fat, lean = h.os.forked
    rss.update({fat: 150 * MIB, lean: 50 * MIB})
    h.clock.advance(10)
    h.tick()  # first sample over the limit: not yet
    assert len(h.os.forked) == 2
    rss[fat] = 90 * MIB  # back under: the count starts again
    h.clock.advance(10)
    h.tick()
    rss[fat] = 150 * MIB
    h.clock.advance(10)
    h.tick()
    assert len(h.os.forked) == 2
    h.clock.advance(10)
    h.tick()  # second consecutive sample over it
    (new,) = h.os.forked[2:]
    assert h.m.workers[new].slot == 1
    h.clock.advance(1)
    h.tick()
    assert h.os.signals_to(fat) == [signal.SIGTERM] and h.os.signals_to(lean) == []


def test_rss_checks_need_no_psutil_without_a_limit(make: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_sampling(pid: int) -> int:
        raise AssertionError("RSS sampled without --workers-max-rss")

    monkeypatch.setattr(master_mod.procinfo, "rss", no_sampling)
    h = make(workers=2)
    for _ in range(3):
        h.clock.advance(60)
        h.tick()
    assert len(h.os.forked) == 2


# ---------------------------------------------------------------- stopping


def test_kill_timeout_escalates_to_sigkill(make: Any) -> None:
    h = make(workers=2, workers_kill_timeout=5)
    first, second = h.os.forked
    assert h.signal(signal.SIGTERM)
    assert h.os.signals_to(first) == [signal.SIGTERM] and h.os.signals_to(second) == [signal.SIGTERM]
    h.os.exit(second, exited(0))  # this one drains in time
    h.clock.advance(4.5)
    assert h.tick()
    assert h.os.signals_to(first) == [signal.SIGTERM]
    assert h.slept[-1] == 0.5  # the loop wakes at the kill deadline
    h.clock.advance(0.5)
    assert h.tick()
    assert h.os.signals_to(first) == [signal.SIGTERM, signal.SIGKILL]
    assert not h.tick()
    assert h.m.exit_code == 0


def test_without_kill_timeout_a_draining_worker_is_never_killed(make: Any) -> None:
    h = make()
    (pid,) = h.os.forked
    h.signal(signal.SIGTERM)
    for _ in range(5):
        h.clock.advance(3600)
        assert h.tick()
    assert h.os.signals_to(pid) == [signal.SIGTERM]


def test_second_sigint_kills_at_once(make: Any) -> None:
    h = make()
    (pid,) = h.os.forked
    h.signal(signal.SIGINT)
    assert h.os.signals_to(pid) == [signal.SIGTERM]
    h.signal(signal.SIGINT)
    assert h.os.signals_to(pid) == [signal.SIGTERM, signal.SIGKILL]
    assert not h.tick() and h.m.exit_code == 0


def test_sigquit_kills_at_once(make: Any) -> None:
    h = make(workers=2)
    first, second = h.os.forked
    assert not h.signal(signal.SIGQUIT)
    assert h.os.signals_to(first) == h.os.signals_to(second) == [signal.SIGTERM, signal.SIGKILL]
    assert h.m.exit_code == 0


def test_sighup_while_stopping_is_ignored(make: Any) -> None:
    h = make(respawn_interval=0)
    (pid,) = h.os.forked
    h.signal(signal.SIGTERM)
    h.signal(signal.SIGHUP)
    assert h.os.forked == [pid] and h.m.roll is None and not h.m.roll_queue


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def records() -> Iterator[Records]:
    # On the master's logger itself: another test may have configured it not to propagate.
    handler = Records()
    logger = logging.getLogger("_granian")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def test_a_worker_exiting_during_shutdown_is_not_respawned(make: Any, records: Records) -> None:
    h = make(workers=2, respawn_failed_workers=True, respawn_interval=0)
    first, second = h.os.forked
    h.signal(signal.SIGTERM)
    h.os.exit(first, killed(signal.SIGKILL))
    h.os.exit(second, exited(0))
    assert not h.tick()
    assert h.os.forked == [first, second] and h.m.exit_code == 0
    assert f"worker-1 (PID {first}) stopped (signal SIGKILL)" in records.lines
    assert f"worker-2 (PID {second}) stopped (exit code 0)" in records.lines


def test_rolling_replacement_reasons_are_logged(make: Any, records: Records) -> None:
    h = make(respawn_interval=1, workers_lifetime=60)
    (old,) = h.os.forked
    h.clock.advance(60)
    h.tick()
    assert f"Replacing worker-1 (PID {old}): lifetime of 60s reached" in records.lines
