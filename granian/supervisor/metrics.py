"""The Prometheus exporter in the master (`--metrics`).

It runs on one daemon thread of the master with its own selector: the listening socket, the
read ends of the workers' report pipes (one per worker process, opened before fork; see
granian/server/metrics.py for the worker side) and the scrapers' connections. The master's main
loop only calls the `record_*`/channel methods, which take a lock and return at once.

Metric names are Granian's (so dashboards written for it keep working): master counters
`granian_workers_spawns`, `granian_workers_respawns_for_{err,lifetime,rss}`; per worker, label
`worker="N"` (the slot, 1..--workers): `granian_worker_lifetime`, `granian_connections_active`,
`granian_connections_handled`, `granian_connections_err`, `granian_requests_handled`,
`granian_static_requests_handled`, `granian_static_requests_err`, `granian_blocking_threads`,
`granian_blocking_queue`. Ours on top: the histogram `granian_request_duration_seconds` with
labels `worker` and `status` (`1xx`..`5xx`). Counters keep Granian's names without the
`_total` suffix; Prometheus parsers accept that for the text format 0.0.4.
"""

from __future__ import annotations

import logging
import os
import selectors
import socket
import threading
import time
from typing import Any

from ..constants import SERVER_LOGGER
from ..errors import ConfigurationError
from ..server import metrics as wm

log = logging.getLogger(SERVER_LOGGER)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# A scrape request is one small head; more than this is not a scraper (HTTP servers commonly cap
# a head at 8 KiB, e.g. gunicorn's limit_request_field_size).
MAX_HEAD = 8192
# Scrapers that connect and never finish a request are dropped after this (slowloris guard).
CLIENT_TIMEOUT = 10.0
# Respawn causes the master reports, and the metric each one counts in.
RESPAWN_CAUSES = ("err", "lifetime", "rss")

# (name, type, help) for the per-worker series, in the order of wm.FIELDS.
WORKER_METRICS: tuple[tuple[str, str, str, str], ...] = (
    ("lifetime", "granian_worker_lifetime", "counter", "Seconds since the worker started."),
    ("conn_active", "granian_connections_active", "gauge", "Open client connections."),
    ("conn_handled", "granian_connections_handled", "counter", "Client connections accepted."),
    ("conn_err", "granian_connections_err", "counter", "Connections closed on an error."),
    ("req_handled", "granian_requests_handled", "counter", "Requests handled (responses sent)."),
    ("static_handled", "granian_static_requests_handled", "counter", "Requests served from static files."),
    ("static_err", "granian_static_requests_err", "counter", "Static-file requests that failed."),
    ("blocking_threads", "granian_blocking_threads", "gauge", "Threads in the blocking pool."),
    ("blocking_queue", "granian_blocking_queue", "gauge", "Jobs waiting for a blocking thread."),
)
_GAUGES_ZEROED_ON_EXIT = ("conn_active", "blocking_threads", "blocking_queue")


def _fmt_float(v: float) -> str:
    if v == float("inf"):
        return "+Inf"
    return repr(float(v))


class _Channel:
    __slots__ = ("slot", "pid", "buf")

    def __init__(self, slot: int) -> None:
        self.slot = slot
        self.pid = 0
        self.buf = b""


class _Client:
    __slots__ = ("sock", "inbuf", "outbuf", "since")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.inbuf = b""
        self.outbuf = b""
        self.since = time.monotonic()


class MetricsExporter:
    def __init__(self, address: str, port: int) -> None:
        self.address = address
        self.requested_port = port
        self.port = 0
        self._lock = threading.Lock()
        self._spawns = 0
        self._respawns = dict.fromkeys(RESPAWN_CAUSES, 0)
        # Latest snapshot per slot, and the pid whose reports the slot shows (the newest worker;
        # during a rolling restart the old one's late reports are ignored).
        self._data: dict[int, dict[str, Any]] = {}
        self._slot_pid: dict[int, int] = {}
        self._channels: dict[int, _Channel] = {}  # read fd -> channel
        self._pending: list[int] = []  # read fds to register (from the master thread)
        self._clients: dict[int, _Client] = {}
        self._sock: socket.socket | None = None
        self._sel: selectors.BaseSelector | None = None
        self._wake_r = -1
        self._wake_w = -1
        self._thread: threading.Thread | None = None
        self._stop = False

    # ------------------------------------------------------------------ lifecycle (master thread)

    def start(self) -> None:
        family = socket.AF_INET6 if ":" in self.address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.address, self.requested_port))
            sock.listen(64)
        except OSError as exc:
            sock.close()
            raise ConfigurationError(
                f"--metrics-address/--metrics-port {self.address}:{self.requested_port}: "
                f"cannot listen: {exc.strerror or exc}"
            ) from exc
        sock.setblocking(False)
        self._sock = sock
        self.port = sock.getsockname()[1]
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._sel = selectors.DefaultSelector()
        self._sel.register(sock, selectors.EVENT_READ, "listen")
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._thread = threading.Thread(target=self._run, name="metrics-exporter", daemon=True)
        self._thread.start()
        host = f"[{self.address}]" if family == socket.AF_INET6 else self.address
        log.info("Metrics exporter listening at: http://%s:%d", host, self.port)

    def close(self) -> None:
        self._stop = True
        self._wake()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None
        self._release()

    def _release(self, keep: int = -1) -> None:
        """Close everything the exporter holds except `keep` (objects own their descriptors:
        each is closed through its owner so no stale number is closed twice)."""
        if self._sel is not None:
            self._sel.close()
            self._sel = None
        for c in self._clients.values():
            c.sock.close()
        self._clients.clear()
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        with self._lock:
            fds = [*self._channels, *self._pending, self._wake_r, self._wake_w]
            self._channels.clear()
            self._pending.clear()
        self._wake_r = self._wake_w = -1
        for fd in fds:
            if fd != keep:
                _close_fd(fd)

    # ------------------------------------------------------------------ master events

    def record_spawn(self) -> None:
        with self._lock:
            self._spawns += 1

    def record_respawn(self, cause: str) -> None:
        """`cause`: "err" (a failed worker replaced), "lifetime" or "rss" (rolling respawns)."""
        with self._lock:
            self._respawns[cause] = self._respawns.get(cause, 0) + 1

    def open_channel(self) -> tuple[int, int]:
        """Before fork: a pipe for the next worker's reports. Returns (read fd, write fd)."""
        return os.pipe()

    def child_setup(self, channel: tuple[int, int]) -> None:
        """In the new worker, right after fork: drop every descriptor the exporter holds (the
        thread that served them does not exist here) and keep only this worker's write end."""
        r, w = channel
        # No lock here: the lock may have been held by the exporter thread at fork time, and
        # that thread is not in this process to release it.
        self._lock = threading.Lock()
        self._release(keep=w)
        _close_fd(r)
        wm.set_report_fd(w)

    def attach(self, channel: tuple[int, int], slot: int, pid: int | None) -> None:
        """In the master after fork (pid None: the fork failed)."""
        r, w = channel
        _close_fd(w)
        if pid is None:
            _close_fd(r)
            return
        os.set_blocking(r, False)
        ch = _Channel(slot)
        ch.pid = pid
        with self._lock:
            self._slot_pid[slot] = pid
            self._channels[r] = ch
            self._pending.append(r)
        self._wake()

    def _wake(self) -> None:
        if self._wake_w >= 0:
            try:
                os.write(self._wake_w, b"\0")
            except OSError:
                pass

    # ------------------------------------------------------------------ exposition

    def render(self) -> str:
        with self._lock:
            spawns = self._spawns
            respawns = dict(self._respawns)
            data = {slot: dict(d) for slot, d in sorted(self._data.items())}
        out: list[str] = []

        def family(name: str, kind: str, help_: str) -> None:
            out.append(f"# HELP {name} {help_}")
            out.append(f"# TYPE {name} {kind}")

        family("granian_workers_spawns", "counter", "Workers spawned by the master.")
        out.append(f"granian_workers_spawns {spawns}")
        for cause, text in (("err", "failure"), ("lifetime", "lifetime"), ("rss", "RSS limit")):
            name = f"granian_workers_respawns_for_{cause}"
            family(name, "counter", f"Workers respawned because of {text}.")
            out.append(f"{name} {respawns.get(cause, 0)}")
        for key, name, kind, help_ in WORKER_METRICS:
            family(name, kind, help_)
            for slot, d in data.items():
                out.append(f'{name}{{worker="{slot}"}} {int(d.get(key, 0))}')
        name = "granian_request_duration_seconds"
        family(name, "histogram", "Request duration from head received to response end.")
        bounds = [*wm.BUCKETS, float("inf")]
        for slot, d in data.items():
            hist = d.get("hist") or {}
            sums = d.get("hist_sum") or {}
            for cls in wm.STATUS_CLASSES:
                counts = hist.get(cls)
                if not isinstance(counts, list) or len(counts) != len(bounds):
                    continue
                labels = f'worker="{slot}",status="{cls}"'
                total = 0
                for bound, n in zip(bounds, counts, strict=True):
                    total += int(n)
                    out.append(f'{name}_bucket{{{labels},le="{_fmt_float(bound)}"}} {total}')
                out.append(f"{name}_sum{{{labels}}} {_fmt_float(float(sums.get(cls, 0.0)))}")
                out.append(f"{name}_count{{{labels}}} {total}")
        return "\n".join(out) + "\n"

    # ------------------------------------------------------------------ the exporter thread

    def _run(self) -> None:
        sel = self._sel
        assert sel is not None
        while not self._stop:
            self._register_pending(sel)
            try:
                events = sel.select(1.0)
            except OSError:
                return
            for key, mask in events:
                tag = key.data
                try:
                    if tag == "listen":
                        self._accept(sel)
                    elif tag == "wake":
                        _drain(self._wake_r)
                    elif tag == "chan":
                        self._read_channel(sel, int(key.fd))
                    else:
                        self._serve(sel, int(key.fd), mask)
                except Exception:
                    # The exporter must never take the master down; log and carry on.
                    log.exception("metrics exporter error")
            self._expire_clients(sel)

    def _register_pending(self, sel: selectors.BaseSelector) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        for fd in pending:
            sel.register(fd, selectors.EVENT_READ, "chan")

    def _read_channel(self, sel: selectors.BaseSelector, fd: int) -> None:
        ch = self._channels.get(fd)
        if ch is None:
            return
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            # The worker exited: its last counts stay, its gauges drop to zero.
            sel.unregister(fd)
            _close_fd(fd)
            del self._channels[fd]
            with self._lock:
                d = self._data.get(ch.slot)
                if d is not None and self._slot_pid.get(ch.slot) == ch.pid:
                    for key in _GAUGES_ZEROED_ON_EXIT:
                        d[key] = 0
            return
        ch.buf += chunk
        *lines, ch.buf = ch.buf.split(b"\n")
        snap = None
        for line in lines:
            snap = wm.decode(line) or snap
        if snap is not None:
            with self._lock:
                if self._slot_pid.get(ch.slot) == ch.pid:
                    self._data[ch.slot] = snap

    def _accept(self, sel: selectors.BaseSelector) -> None:
        assert self._sock is not None
        try:
            conn, _ = self._sock.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        conn.setblocking(False)
        self._clients[conn.fileno()] = _Client(conn)
        sel.register(conn, selectors.EVENT_READ, "client")

    def _serve(self, sel: selectors.BaseSelector, fd: int, mask: int) -> None:
        c = self._clients.get(fd)
        if c is None:
            return
        if mask & selectors.EVENT_READ and not c.outbuf:
            try:
                chunk = c.sock.recv(4096)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if not chunk:
                self._drop(sel, fd)
                return
            c.inbuf += chunk
            end = c.inbuf.find(b"\r\n\r\n")
            if end > MAX_HEAD or (end < 0 and len(c.inbuf) > MAX_HEAD):
                c.outbuf = _response(431, "Request Header Fields Too Large", b"")
                self._start_write(sel, c)
                return
            if end < 0:
                return
            c.outbuf = self._answer(c.inbuf[:end])
            self._start_write(sel, c)
            return
        if mask & selectors.EVENT_WRITE:
            self._write(sel, c)

    def _answer(self, head: bytes) -> bytes:
        method = head.split(b" ", 1)[0]
        if method == b"GET":
            return _response(200, "OK", self.render().encode())
        if method == b"HEAD":
            body = self.render().encode()
            return _response(200, "OK", b"", length=len(body))
        return _response(405, "Method Not Allowed", b"", extra="Allow: GET, HEAD\r\n")

    def _start_write(self, sel: selectors.BaseSelector, c: _Client) -> None:
        sel.modify(c.sock, selectors.EVENT_WRITE, "client")
        self._write(sel, c)

    def _write(self, sel: selectors.BaseSelector, c: _Client) -> None:
        try:
            n = c.sock.send(c.outbuf)
        except BlockingIOError:
            return
        except OSError:
            self._drop(sel, c.sock.fileno())
            return
        c.outbuf = c.outbuf[n:]
        if not c.outbuf:
            # One response per connection (`Connection: close`): scrapers reconnect each time.
            self._drop(sel, c.sock.fileno())

    def _drop(self, sel: selectors.BaseSelector, fd: int) -> None:
        c = self._clients.pop(fd, None)
        if c is None:
            return
        try:
            sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        c.sock.close()

    def _expire_clients(self, sel: selectors.BaseSelector) -> None:
        if not self._clients:
            return
        limit = time.monotonic() - CLIENT_TIMEOUT
        for fd, c in list(self._clients.items()):
            if c.since < limit:
                self._drop(sel, fd)


def _response(status: int, reason: str, body: bytes, length: int | None = None, extra: str = "") -> bytes:
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        f"Content-Type: {CONTENT_TYPE}\r\n"
        f"Content-Length: {len(body) if length is None else length}\r\n"
        f"{extra}Connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except OSError:
        pass


def _close_fd(fd: int) -> None:
    if fd < 0:
        return
    try:
        os.close(fd)
    except OSError:
        pass
