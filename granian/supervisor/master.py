"""The master process: forks the workers, supervises them, and acts on signals.

Everything happens in one loop (`Master.loop`): sleep until a signal, a file change or the next
deadline; then reap exited workers and act. Signal handlers only enqueue (see signals.py).

Worker slots are numbered 1..N (`worker-N` in logs and process titles). A slot normally has one
live worker; during a rolling restart it briefly has two (the new one starts, and
`--respawn-interval` later the old one drains), so the listening socket is always served.
"""

from __future__ import annotations

import logging
import os
import signal
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from time import monotonic
from typing import TYPE_CHECKING

from ..constants import SERVER_LOGGER
from ..errors import EXIT_APP_LOAD, EXIT_STARTUP_FAILED
from . import procinfo
from .bind import Listener
from .child import encode_static, worker_main
from .reload import Reloader
from .signals import HANDLED, SignalQueue

if TYPE_CHECKING:
    from ..settings import Settings
    from .metrics import MetricsExporter

log = logging.getLogger(SERVER_LOGGER)

Hook = Callable[[], object]

# How long after its start a worker's death counts as "failed at start-up"; that many in a row
# is a crash loop (e.g. the app fails at import or in lifespan startup every time), which
# respawning cannot fix, so the master stops instead of forking forever.
STARTUP_WINDOW = 10.0
CRASH_LOOP_LIMIT = 5
# Under --reload, a restart must not hang on a long-lived stream when no kill timeout is given:
# a development restart is expected to take about a second.
RELOAD_KILL_TIMEOUT = 5.0
# Upper bound on one sleep of the main loop: deadlines are computed exactly, this only limits
# the cost of a missed wake-up (there should be none: SIGCHLD wakes the loop).
MAX_SLEEP = 1.0
# Seconds between repeats of the drain notice during --shutdown-delay (see notify_draining).
NOTICE_INTERVAL = 0.5
MIB = 1024 * 1024


@dataclass
class WorkerHandle:
    """The master's record of one worker process it forked (the process itself runs
    `granian.server.worker`): its slot, PID, start time and where its stop stands."""

    slot: int
    pid: int
    started: float
    stopping: bool = False
    kill_at: float | None = None
    retire_queued: bool = False
    rss: deque[int] = field(default_factory=deque)


@dataclass
class RollStep:
    """One step of a rolling restart: `new` serves beside `old` until `stop_old_at`."""

    slot: int
    old: int
    new: int
    stop_old_at: float
    draining: bool = False


@dataclass
class Hooks:
    on_startup: list[Hook] = field(default_factory=list)
    on_reload: list[Hook] = field(default_factory=list)
    on_shutdown: list[Hook] = field(default_factory=list)
    # watchfiles filter class for --reload (Python API's `reload_filter`).
    reload_filter: object = None


def respawn_cause(reason: str) -> str | None:
    """The metrics cause of a rolling replacement, from the reasons check_lifetime/check_rss give
    (granian_workers_respawns_for_{lifetime,rss}); None for SIGHUP and reload restarts."""
    if reason.startswith("lifetime"):
        return "lifetime"
    if reason.startswith("memory"):
        return "rss"
    return None


def describe_status(status: int) -> str:
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


class Master:
    def __init__(
        self, settings: Settings, listener: Listener, env: Mapping[str, str], hooks: Hooks | None = None
    ) -> None:
        self.s = settings
        self.listener = listener
        self.env = env
        self.hooks = hooks or Hooks()
        self.pid = os.getpid()
        self.sig = SignalQueue()
        self.death_pipe = os.pipe()
        self.workers: dict[int, WorkerHandle] = {}
        self.spawn_at: dict[int, float] = {}
        self.roll_queue: deque[tuple[int, int, str]] = deque()
        self.roll: RollStep | None = None
        # --shutdown-delay: when the graceful stop begins after the delay (None: not delaying)
        self.notice_at = 0.0  # the next repeat of the drain notice during the delay
        self.delay_until: float | None = None
        self.stopping = False
        self.exit_code = 0
        self.early_failures = 0
        self.next_rss = 0.0
        self.reloader: Reloader | None = None
        # Under --reload: restart every slot once all workers are gone; slots parked after a
        # failure wait for the next change.
        self.restart_all = False
        self.parked: set[int] = set()
        # --metrics: the Prometheus exporter (granian.supervisor.metrics), started in start().
        self.metrics: MetricsExporter | None = None
        # What every worker gets (child.worker_main): the resolved settings as plain values, so
        # the worker interpreter never imports pydantic, and the --env-files values.
        self.snapshot = encode_static(settings.model_dump(), env)

    # ------------------------------------------------------------------ process management

    def spawn(self, slot: int, respawn_cause: str | None = None) -> WorkerHandle | None:
        metrics = self.metrics
        chan = metrics.open_channel() if metrics is not None else None
        # Block the handled signals across fork: a SIGTERM that reached the child before it reset
        # the master's handlers would be queued into the child's copy of the master's queue and
        # lost, leaving a worker that never stops. The child unblocks them in close_in_child(), before
        # it execs the worker interpreter (child.py).
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED)
        try:
            pid = os.fork()
        except OSError as exc:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            if metrics is not None and chan is not None:
                metrics.attach(chan, slot, None)
            # EAGAIN/ENOMEM: out of processes or memory. Stop rather than run short-handed silently.
            log.error("Cannot fork worker-%d: %s; shutting down", slot, exc)
            self.shutdown(1)
            return None
        if pid == 0:
            report_fd = None
            if metrics is not None and chan is not None:
                metrics.child_setup(chan)
                report_fd = chan[1]
            worker_main(
                self.snapshot, self.listener.sock, slot, self.pid, self.death_pipe, self.sig, report_fd
            )
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        if metrics is not None and chan is not None:
            metrics.attach(chan, slot, pid)
            metrics.record_spawn()
            if respawn_cause is not None:
                metrics.record_respawn(respawn_cause)
        w = WorkerHandle(slot, pid, monotonic())
        self.workers[pid] = w
        log.info("Spawned worker-%d with PID: %d", slot, pid)
        return w

    def stop_worker(self, w: WorkerHandle, timeout: float | None) -> None:
        if w.stopping:
            return
        w.stopping = True
        w.kill_at = None if timeout is None else monotonic() + timeout
        self._signal(w.pid, signal.SIGTERM)

    def _signal(self, pid: int, sig: int) -> None:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass

    def slot_worker(self, slot: int) -> WorkerHandle | None:
        """The live, non-stopping worker of a slot (the newest one during a roll)."""
        found = [w for w in self.workers.values() if w.slot == slot and not w.stopping]
        return max(found, key=lambda w: w.started) if found else None

    # ------------------------------------------------------------------ the loop

    def start(self) -> None:
        self.sig.install()
        if self.s.metrics:
            from .metrics import MetricsExporter

            self.metrics = MetricsExporter(str(self.s.metrics_address), int(self.s.metrics_port))
            self.metrics.start()
        if self.s.reload:
            from .reload import build_filter

            paths = [str(p) for p in self.s.reload_paths] or [str(self.s.working_dir or os.getcwd())]
            flt = build_filter(
                list(self.s.reload_ignore_dirs),
                list(self.s.reload_ignore_patterns),
                [str(p) for p in self.s.reload_ignore_paths],
                self.hooks.reload_filter,
            )
            self.reloader = Reloader(paths, flt, int(self.s.reload_tick), self.sig.wake)
            self.reloader.start()
            log.info("Watching for file changes in: %s", ", ".join(str(p) for p in paths))
        for slot in range(1, self.s.workers + 1):
            self.spawn(slot)
        self.next_rss = monotonic() + float(self.s.rss_sample_interval)

    def loop(self) -> int:
        try:
            self.start()
            while self.tick():
                pass
        finally:
            self.close()
        return self.exit_code

    def tick(self) -> bool:
        """One turn of the loop: sleep until a signal or the next deadline, then act on what is
        due. False once the master has stopped and every worker is reaped."""
        self.sig.wait(self._sleep_for())
        while (signum := self.sig.pop()) is not None:
            self.on_signal(signum)
        self.reap()
        if self.delay_until is not None and not self.stopping:
            now = monotonic()
            if now >= self.delay_until:
                log.info("Shutdown delay over: shutting down gracefully")
                self.shutdown(0)
            elif now >= self.notice_at:
                self.notify_draining()
        if self.stopping:
            if not self.workers:
                return False
            self.kill_overdue()
            return True
        self.kill_overdue()
        now = monotonic()
        self.check_reload()
        self.spawn_due(now)
        self.check_lifetime(now)
        self.check_rss(now)
        self.advance_roll(now)
        return True

    def close(self) -> None:
        for w in list(self.workers.values()):
            # Only reached with workers left if the loop itself failed: never leave orphans.
            self._signal(w.pid, signal.SIGKILL)
            try:
                os.waitpid(w.pid, 0)
            except ChildProcessError:
                pass
        self.workers.clear()
        if self.reloader is not None:
            self.reloader.stop()
        self.sig.uninstall()
        self.sig.close()
        os.close(self.death_pipe[0])
        os.close(self.death_pipe[1])
        if self.metrics is not None:
            self.metrics.close()
            self.metrics = None

    def _sleep_for(self) -> float:
        # Only deadlines that something will act on: a past deadline nobody clears would turn
        # the loop into a busy spin (e.g. RSS sampling while stopping, an already-queued retire).
        deadlines = [w.kill_at for w in self.workers.values() if w.kill_at is not None]
        if not self.stopping:
            if self.delay_until is not None:
                deadlines += (self.delay_until, self.notice_at)
            deadlines += self.spawn_at.values()
            if self.roll is not None and not self.roll.draining:
                deadlines.append(self.roll.stop_old_at)
            if self.s.workers_max_rss:
                deadlines.append(self.next_rss)
            if self.s.workers_lifetime:
                deadlines += [
                    w.started + float(self.s.workers_lifetime)
                    for w in self.workers.values()
                    if not (w.stopping or w.retire_queued)
                ]
        now = monotonic()
        return max(0.0, min([now + MAX_SLEEP, *deadlines]) - now)

    # ------------------------------------------------------------------ signals

    def on_signal(self, signum: int) -> None:
        if signum == signal.SIGCHLD:
            return
        if signum in (signal.SIGINT, signal.SIGTERM):
            name = signal.Signals(signum).name
            delay = float(getattr(self.s, "shutdown_delay", 0) or 0)
            if not self.stopping and delay > 0 and self.delay_until is None:
                # Kubernetes removes a terminating pod from its endpoints while the kubelet
                # already sends SIGTERM: keep serving so nothing in flight towards us is refused,
                # with health paths already answering 503 (CLI.md --shutdown-delay).
                log.info("Received %s: health paths report draining; shutting down in %gs", name, delay)
                self.delay_until = monotonic() + delay
                self.notify_draining()
            elif not self.stopping:
                log.info("Received %s: shutting down gracefully", name)
                self.shutdown(0)
            elif signum == signal.SIGINT:
                # A second Ctrl-C: the user does not want to wait for in-flight requests.
                log.info("Received SIGINT again: stopping immediately")
                self.kill_all()
        elif signum == signal.SIGQUIT:
            log.info("Received SIGQUIT: stopping immediately")
            self.shutdown(0)
            self.kill_all()
        elif signum == signal.SIGHUP and not self.stopping:
            log.info("Received SIGHUP: rolling restart of the workers")
            self.run_hooks(self.hooks.on_reload, "on_reload")
            self.roll_all("SIGHUP")

    def notify_draining(self) -> None:
        """--shutdown-delay: tell every worker that health paths answer 503 (SIGUSR2). Repeated
        every NOTICE_INTERVAL during the delay: a worker still starting ignores the signal
        until its handler is installed (supervisor.child), and a respawned one needs it too."""
        for w in self.workers.values():
            self._signal(w.pid, signal.SIGUSR2)
        self.notice_at = monotonic() + NOTICE_INTERVAL

    def shutdown(self, code: int) -> None:
        """Begin a graceful stop: every worker drains (bounded by --workers-kill-timeout)."""
        if not self.stopping:
            self.stopping = True
            self.exit_code = code
        self.spawn_at.clear()
        self.roll_queue.clear()
        self.roll = None
        for w in list(self.workers.values()):
            self.stop_worker(w, self.s.workers_kill_timeout)

    def kill_all(self) -> None:
        for w in self.workers.values():
            self._signal(w.pid, signal.SIGKILL)

    def kill_overdue(self) -> None:
        now = monotonic()
        for w in self.workers.values():
            if w.kill_at is not None and now >= w.kill_at:
                log.warning("worker-%d (PID %d) did not stop in time: killing it", w.slot, w.pid)
                w.kill_at = None
                self._signal(w.pid, signal.SIGKILL)

    # ------------------------------------------------------------------ reaping

    def reap(self) -> None:
        for pid in list(self.workers):
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done, status = pid, 0
            if done == pid:
                self.on_exit(self.workers.pop(pid), status)

    def on_exit(self, w: WorkerHandle, status: int) -> None:
        how = describe_status(status)
        if w.stopping:
            log.info("worker-%d (PID %d) stopped (%s)", w.slot, w.pid, how)
            if self.roll is not None and self.roll.old == w.pid:
                self.roll = None
            return
        if self.roll is not None and self.roll.new == w.pid:
            # The replacement could not serve (e.g. the new code is broken): keep the old worker.
            log.error(
                "new worker-%d (PID %d) exited during the rolling restart (%s); keeping PID %d",
                w.slot, w.pid, how, self.roll.old,
            )  # fmt: skip
            self.roll = None
            self.roll_queue.clear()
            self.early_failures += 1
            return
        if self.stopping:
            log.info("worker-%d (PID %d) exited (%s)", w.slot, w.pid, how)
            return
        if self.roll is not None and self.roll.old == w.pid:
            # Its replacement is already serving the slot: nothing to respawn.
            log.warning("worker-%d (PID %d) exited (%s) while being replaced", w.slot, w.pid, how)
            self.roll = None
            return
        log.error("worker-%d (PID %d) exited unexpectedly (%s)", w.slot, w.pid, how)
        code = os.waitstatus_to_exitcode(status)
        app_failed = code == EXIT_APP_LOAD
        # Under --reload a broken app (import or startup) is the normal state between two
        # saves: wait for the fix instead of stopping the developer's server.
        startup_failed = app_failed or code == EXIT_STARTUP_FAILED
        if self.s.reload and (startup_failed or self.s.reload_ignore_worker_failure):
            log.warning("worker-%d will start again after the next file change", w.slot)
            self.parked.add(w.slot)
            return
        if app_failed:
            log.error("The application could not be loaded (see the error above): shutting down")
            self.shutdown(1)
            return
        if not self.s.respawn_failed_workers:
            log.error("Shutting down (pass --respawn-failed-workers to replace failed workers)")
            self.shutdown(1)
            return
        if monotonic() - w.started < STARTUP_WINDOW:
            self.early_failures += 1
            if self.early_failures >= CRASH_LOOP_LIMIT:
                log.error(
                    "Workers failed right after start %d times in a row: shutting down instead of "
                    "respawning forever",
                    self.early_failures,
                )
                self.shutdown(1)
                return
        else:
            self.early_failures = 0
        interval = float(self.s.respawn_interval)
        log.info("Respawning worker-%d in %.1fs (it exited unexpectedly)", w.slot, interval)
        self.spawn_at[w.slot] = monotonic() + interval

    def spawn_due(self, now: float) -> None:
        for slot, at in sorted(self.spawn_at.items()):
            if now >= at:
                del self.spawn_at[slot]
                self.spawn(slot, "err")

    # ------------------------------------------------------------------ rolling restarts

    def roll_all(self, reason: str) -> None:
        queued = {slot for slot, _, _ in self.roll_queue}
        for slot in range(1, self.s.workers + 1):
            w = self.slot_worker(slot)
            if w is not None and slot not in queued and not (self.roll and self.roll.new == w.pid):
                w.retire_queued = True
                self.roll_queue.append((slot, w.pid, reason))

    def retire(self, w: WorkerHandle, reason: str) -> None:
        if w.retire_queued or w.stopping:
            return
        w.retire_queued = True
        self.roll_queue.append((w.slot, w.pid, reason))

    def advance_roll(self, now: float) -> None:
        if self.roll is None:
            while self.roll_queue:
                slot, old_pid, reason = self.roll_queue.popleft()
                old = self.workers.get(old_pid)
                if old is None or old.stopping:
                    continue
                log.info("Replacing worker-%d (PID %d): %s", slot, old_pid, reason)
                new = self.spawn(slot, respawn_cause(reason))
                if new is None:
                    continue
                interval = float(self.s.respawn_interval)
                self.roll = RollStep(slot, old_pid, new.pid, now + interval)
                break
            return
        step = self.roll
        if not step.draining and now >= step.stop_old_at:
            step.draining = True
            old = self.workers.get(step.old)
            if old is None:
                self.roll = None
                return
            self.stop_worker(old, self.s.workers_kill_timeout)

    def check_lifetime(self, now: float) -> None:
        lifetime = self.s.workers_lifetime
        if not lifetime:
            return
        for w in list(self.workers.values()):
            if not w.stopping and now - w.started >= float(lifetime):
                self.retire(w, f"lifetime of {lifetime}s reached")

    def check_rss(self, now: float) -> None:
        limit = self.s.workers_max_rss
        if not limit or now < self.next_rss:
            return
        self.next_rss = now + float(self.s.rss_sample_interval)
        samples = max(1, int(self.s.rss_samples))
        for w in list(self.workers.values()):
            if w.stopping or w.retire_queued:
                continue
            value = procinfo.rss(w.pid)
            if value is None:
                continue
            if value <= limit * MIB:
                w.rss.clear()
                continue
            w.rss.append(value)
            if len(w.rss) >= samples:
                self.retire(w, f"memory {value / MIB:.1f} MiB above --workers-max-rss {limit} MiB")

    # ------------------------------------------------------------------ reload

    def check_reload(self) -> None:
        if self.reloader is None:
            return
        changed = self.reloader.take()
        if changed:
            shown = sorted(os.path.relpath(p) for p in changed)
            log.info("Changes detected in %s: reloading workers", ", ".join(shown[:5]))
            self.run_hooks(self.hooks.on_reload, "on_reload")
            self.restart_all = True
            self.roll_queue.clear()
            self.roll = None
            self.spawn_at.clear()
            timeout = self.s.workers_kill_timeout or RELOAD_KILL_TIMEOUT
            for w in list(self.workers.values()):
                self.stop_worker(w, timeout)
        if self.restart_all and not self.workers:
            self.restart_all = False
            self.parked.clear()
            self.early_failures = 0
            for slot in range(1, self.s.workers + 1):
                self.spawn(slot)

    # ------------------------------------------------------------------ hooks

    def run_hooks(self, hooks: Sequence[Hook], name: str) -> None:
        self.run_hooks_static(hooks, name)

    @staticmethod
    def run_hooks_static(hooks: Sequence[Hook], name: str) -> None:
        for hook in hooks:
            try:
                hook()
            except Exception:
                log.exception("%s hook %r failed", name, hook)
