"""Unit tests of the metrics pieces: worker counters, the report pipe, the master's exporter
(over a real socket, parsed by prometheus_client's text parser)."""

from __future__ import annotations

import asyncio
import os
import socket
import time
import warnings
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from granian.server import metrics as wm
from granian.supervisor.metrics import MetricsExporter


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def families(text: str) -> dict[str, str]:
    return {fam.name: fam.type for fam in text_string_to_metric_families(text)}


def http_get(port: int, method: str = "GET", head_extra: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"{method} /metrics HTTP/1.1\r\nHost: x\r\n".encode() + head_extra + b"\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    return status, headers, body


@pytest.fixture
def exporter() -> Iterator[MetricsExporter]:
    exp = MetricsExporter("127.0.0.1", 0)
    exp.start()
    try:
        yield exp
    finally:
        exp.close()


def fake_worker(exp: MetricsExporter, slot: int, pid: int) -> int:
    """What the master does around fork, with the child's write end kept here (dup'd before the
    master-side close) so the test can play the worker."""
    chan = exp.open_channel()
    w = os.dup(chan[1])
    exp.attach(chan, slot, pid)
    return w


def scrape_until(port: int, pred: object, what: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    # The exporter thread reads the pipe asynchronously: poll (bounded) until the value shows.
    deadline = time.monotonic() + 5
    while True:
        status, _, body = http_get(port)
        assert status == 200
        got = samples(body.decode())
        if pred(got):  # type: ignore[operator]
            return got
        assert time.monotonic() < deadline, f"{what} never showed up in:\n{body.decode()}"
        time.sleep(0.02)


def test_observe_buckets_and_classes() -> None:
    m = wm.WorkerMetrics()
    m.observe(200, 0.001)  # exactly on a bound: counted in that bucket (le is inclusive)
    m.observe(204, 0.0011)
    m.observe(404, 20.0)  # past the last bound: +Inf only
    m.observe(101, 0.0)
    snap = m.snapshot()
    assert snap["req_handled"] == 4
    assert snap["hist"]["2xx"][wm.BUCKETS.index(0.001)] == 1
    assert snap["hist"]["2xx"][wm.BUCKETS.index(0.0025)] == 1
    assert snap["hist"]["4xx"][-1] == 1 and sum(snap["hist"]["4xx"]) == 1
    assert sum(snap["hist"]["1xx"]) == 1
    assert set(snap["hist"]) == {"1xx", "2xx", "4xx"}
    assert snap["hist_sum"]["4xx"] == pytest.approx(20.0)


def test_snapshot_roundtrip_and_probe() -> None:
    m = wm.WorkerMetrics()
    m.conn_active, m.conn_handled, m.conn_err = 2, 7, 1
    m.static_handled, m.static_err = 3, 1
    m.blocking_probe = lambda: (4, 9)
    snap = wm.decode(wm.encode(m.snapshot()).rstrip(b"\n"))
    assert snap is not None
    assert (snap["conn_active"], snap["conn_handled"], snap["conn_err"]) == (2, 7, 1)
    assert (snap["static_handled"], snap["static_err"]) == (3, 1)
    assert (snap["blocking_threads"], snap["blocking_queue"]) == (4, 9)


def test_decode_rejects_garbage() -> None:
    assert wm.decode(b'{"req_handled": 1') is None  # half a line from a killed worker
    assert wm.decode(b"[1, 2]") is None
    assert wm.decode(b'{"req_handled": "x"}') is None


def test_reporter_sends_on_start_and_on_stop() -> None:
    r, w = os.pipe()
    m = wm.WorkerMetrics()
    rep = wm.MetricsReporter(m, w, interval=3600)

    async def main() -> None:
        rep.start(asyncio.get_running_loop())
        await asyncio.sleep(0)
        m.req_handled = 5
        rep.stop()

    try:
        asyncio.run(main())
        data = b""
        while chunk := os.read(r, 65536):  # EOF: stop() closed the write end
            data += chunk
        lines = data.splitlines()
        assert len(lines) == 2
        first, last = (wm.decode(ln) for ln in lines)
        assert first is not None and first["req_handled"] == 0
        assert last is not None and last["req_handled"] == 5
        assert rep.fd == -1
    finally:
        os.close(r)


def test_reporter_never_blocks_on_a_full_pipe() -> None:
    r, w = os.pipe()
    m = wm.WorkerMetrics()
    rep = wm.MetricsReporter(m, w, interval=1)  # makes the write end non-blocking
    try:
        filler = 0
        for size in (4096, 1):  # to the last byte
            while True:
                try:
                    filler += os.write(w, b"x" * size)
                except BlockingIOError:
                    break
        assert rep.send() is False  # dropped, not blocked
        m.req_handled = 42
        assert rep.send() is False
        drained = b""
        while len(drained) < filler:
            drained += os.read(r, 65536)
        assert drained == b"x" * filler  # nothing half-written behind the filler
        assert rep.send() is True
        data = os.read(r, 65536)
        assert data.endswith(b"\n") and data.count(b"\n") == 1
        snap = wm.decode(data)
        assert snap is not None and snap["req_handled"] == 42
    finally:
        os.close(r)
        rep._close()


def test_reporter_stops_when_master_is_gone() -> None:
    r, w = os.pipe()
    os.close(r)
    rep = wm.MetricsReporter(wm.WorkerMetrics(), w, interval=1)
    assert rep.send() is False  # EPIPE (SIGPIPE is ignored by Python)
    assert rep.fd == -1
    assert rep.send() is False


def test_exporter_text_parses_and_follows_reports(exporter: MetricsExporter) -> None:
    status, headers, body = http_get(exporter.port)
    assert status == 200
    assert headers["content-type"].startswith("text/plain; version=0.0.4")
    assert int(headers["content-length"]) == len(body)
    types = families(body.decode())
    assert types["granian_workers_spawns"] == "counter"
    assert types["granian_connections_active"] == "gauge"
    assert types["granian_request_duration_seconds"] == "histogram"

    exporter.record_spawn()
    exporter.record_spawn()
    exporter.record_respawn("err")
    exporter.record_respawn("rss")
    w1 = fake_worker(exporter, 1, 1001)
    w2 = fake_worker(exporter, 2, 1002)
    try:
        m1, m2 = wm.WorkerMetrics(), wm.WorkerMetrics()
        for _ in range(3):
            m1.observe(200, 0.002)
        m1.observe(500, 0.3)
        m1.conn_active, m1.conn_handled = 1, 2
        m2.observe(404, 0.01)
        m2.static_handled = 1
        os.write(w1, wm.encode(m1.snapshot()))
        os.write(w2, wm.encode(m2.snapshot()))
        got = scrape_until(
            exporter.port,
            lambda s: ("granian_requests_handled_total", (("worker", "2"),)) in s,
            "worker 2",
        )
        assert got[("granian_workers_spawns_total", ())] == 2
        assert got[("granian_workers_respawns_for_err_total", ())] == 1
        assert got[("granian_workers_respawns_for_rss_total", ())] == 1
        assert got[("granian_workers_respawns_for_lifetime_total", ())] == 0
        assert got[("granian_requests_handled_total", (("worker", "1"),))] == 4
        assert got[("granian_requests_handled_total", (("worker", "2"),))] == 1
        assert got[("granian_connections_active", (("worker", "1"),))] == 1
        assert got[("granian_connections_handled_total", (("worker", "1"),))] == 2
        assert got[("granian_static_requests_handled_total", (("worker", "2"),))] == 1
        h = "granian_request_duration_seconds"
        ok = (("status", "2xx"), ("worker", "1"))
        assert got[(f"{h}_count", ok)] == 3
        assert got[(f"{h}_sum", ok)] == pytest.approx(0.006)
        assert got[(f"{h}_bucket", (("le", "0.001"), *ok))] == 0
        assert got[(f"{h}_bucket", (("le", "0.0025"), *ok))] == 3
        assert got[(f"{h}_bucket", (("le", "+Inf"), *ok))] == 3
        assert got[(f"{h}_count", (("status", "5xx"), ("worker", "1")))] == 1
        assert got[(f"{h}_bucket", (("le", "0.25"), ("status", "5xx"), ("worker", "1")))] == 0

        # Counters move with later reports (split across writes, as a pipe may deliver them).
        m1.observe(200, 0.002)
        line = wm.encode(m1.snapshot())
        os.write(w1, line[:10])
        os.write(w1, line[10:])
        scrape_until(
            exporter.port,
            lambda s: s.get(("granian_requests_handled_total", (("worker", "1"),))) == 5,
            "5 requests on worker 1",
        )
        # A worker that exits keeps its counters; its gauges drop to zero.
        os.close(w1)
        w1 = -1
        got = scrape_until(
            exporter.port,
            lambda s: s.get(("granian_connections_active", (("worker", "1"),))) == 0,
            "worker 1's gauge reset",
        )
        assert got[("granian_requests_handled_total", (("worker", "1"),))] == 5
    finally:
        for fd in (w1, w2):
            if fd >= 0:
                os.close(fd)


def test_exporter_ignores_replaced_worker(exporter: MetricsExporter) -> None:
    old = fake_worker(exporter, 1, 2001)
    new = fake_worker(exporter, 1, 2002)  # rolling restart: same slot, newer pid
    try:
        m_new = wm.WorkerMetrics()
        m_new.req_handled = 7
        os.write(new, wm.encode(m_new.snapshot()))
        scrape_until(
            exporter.port,
            lambda s: s.get(("granian_requests_handled_total", (("worker", "1"),))) == 7,
            "the new worker's count",
        )
        m_old = wm.WorkerMetrics()
        m_old.req_handled = 100
        os.write(old, wm.encode(m_old.snapshot()))
        m_new.req_handled = 8
        os.write(new, wm.encode(m_new.snapshot()))
        got = scrape_until(
            exporter.port,
            lambda s: s.get(("granian_requests_handled_total", (("worker", "1"),))) != 7,
            "a change",
        )
        assert got[("granian_requests_handled_total", (("worker", "1"),))] == 8
    finally:
        os.close(old)
        os.close(new)


def test_exporter_http_edges(exporter: MetricsExporter) -> None:
    status, headers, body = http_get(exporter.port, "HEAD")
    assert status == 200 and body == b"" and int(headers["content-length"]) > 0
    status, headers, _ = http_get(exporter.port, "POST")
    assert status == 405 and headers["allow"] == "GET, HEAD"
    status, _, _ = http_get(exporter.port, "GET", b"X-Big: " + b"a" * 10000 + b"\r\n")
    assert status == 431


def test_exporter_bind_failure_names_the_option() -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        exp = MetricsExporter("127.0.0.1", taken.getsockname()[1])
        with pytest.raises(Exception, match="--metrics-address/--metrics-port 127.0.0.1:"):
            exp.start()
    finally:
        taken.close()


def test_child_setup_keeps_only_its_write_end(exporter: MetricsExporter) -> None:
    chan = exporter.open_channel()
    with warnings.catch_warnings():
        # 3.12+ warns about fork with threads alive (the exporter's); the child only closes fds.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 1
        try:
            exporter.child_setup(chan)
            ok = wm.report_fd() == chan[1] and exporter._sock is None and not exporter._channels
            os.write(chan[1], wm.encode(wm.WorkerMetrics().snapshot()))
            code = 0 if ok else 3
        finally:
            os._exit(code)
    exporter.attach(chan, 1, pid)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    scrape_until(
        exporter.port,
        lambda s: ("granian_requests_handled_total", (("worker", "1"),)) in s,
        "the forked worker's report",
    )


def test_thread_pool_probe() -> None:
    from concurrent.futures import ThreadPoolExecutor
    from threading import Event

    assert wm.thread_pool_probe(object()) is None  # type: ignore[arg-type]
    pool = ThreadPoolExecutor(max_workers=1)
    release = Event()
    try:
        probe = wm.thread_pool_probe(pool)
        assert probe is not None and probe() == (0, 0)
        started = Event()
        first = pool.submit(lambda: (started.set(), release.wait()))
        assert started.wait(5)  # the one thread holds the first job; the next one queues
        queued = pool.submit(release.wait)
        assert probe() == (1, 1)
        release.set()
        first.result(5)
        queued.result(5)
        assert probe() == (1, 0)
    finally:
        release.set()
        pool.shutdown()
