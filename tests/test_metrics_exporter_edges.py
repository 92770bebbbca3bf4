"""The master's Prometheus exporter (granian.supervisor.metrics) against scrapers that misbehave
and workers whose reports end or are partial, over real sockets and pipes."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator

import pytest

from granian.server import metrics as wm
from granian.supervisor import metrics as sm
from granian.supervisor.metrics import MetricsExporter


@pytest.fixture
def exporter() -> Iterator[MetricsExporter]:
    exp = MetricsExporter("127.0.0.1", 0)
    exp.start()
    try:
        yield exp
    finally:
        exp.close()


def scrape(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), head
    return body.decode()


def until(pred: object, what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def test_a_scraper_that_leaves_without_asking_is_dropped(exporter: MetricsExporter) -> None:
    for _ in range(3):
        socket.create_connection(("127.0.0.1", exporter.port), timeout=5).close()
    until(lambda: not exporter._clients, "closed scrapers were never dropped")
    assert "granian_workers_spawns 0" in scrape(exporter.port)


def test_a_scraper_that_never_finishes_its_head_is_cut_off(
    exporter: MetricsExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sm, "CLIENT_TIMEOUT", 0.1)
    with socket.create_connection(("127.0.0.1", exporter.port), timeout=10) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\n")  # and nothing more (slowloris)
        # The exporter closes it: EOF, no response. The selector wakes at least once a second.
        assert s.recv(1024) == b""
    assert "granian_workers_spawns 0" in scrape(exporter.port)


def test_a_failed_fork_closes_the_channel(exporter: MetricsExporter) -> None:
    r, w = exporter.open_channel()
    exporter.attach((r, w), 1, None)
    assert not is_open(r) and not is_open(w)


def test_partial_reports_wait_for_their_line_bad_histograms_are_dropped(exporter: MetricsExporter) -> None:
    chan = exporter.open_channel()
    w = os.dup(chan[1])
    exporter.attach(chan, 2, 4242)
    try:
        m = wm.WorkerMetrics()
        m.observe(200, 0.002)
        snap = m.snapshot()
        snap["hist"]["5xx"] = [1, 2]  # wrong length: not a histogram of ours
        line = json.dumps(snap).encode() + b"\n"
        os.write(w, line[:10])  # half a report: nothing shown yet
        time.sleep(0.05)
        assert 'granian_requests_handled{worker="2"}' not in scrape(exporter.port)
        os.write(w, line[10:])
        until(
            lambda: 'granian_requests_handled{worker="2"} 1' in scrape(exporter.port),
            "the completed report never showed",
        )
        text = scrape(exporter.port)
        assert 'status="2xx"' in text and 'status="5xx"' not in text
    finally:
        os.close(w)
    # The worker exits (EOF): its counts stay, its gauges drop to 0, the channel is closed.
    until(lambda: not exporter._channels, "the ended channel was never closed")
    text = scrape(exporter.port)
    assert 'granian_requests_handled{worker="2"} 1' in text
    assert 'granian_connections_active{worker="2"} 0' in text


def test_close_releases_clients_still_connected() -> None:
    exp = MetricsExporter("127.0.0.1", 0)
    exp.start()
    s = socket.create_connection(("127.0.0.1", exp.port), timeout=5)
    try:
        until(lambda: bool(exp._clients), "the connection was never accepted")
        exp.close()
        s.settimeout(5)
        assert s.recv(1024) == b""  # closed by the exporter on its way out
    finally:
        s.close()
    exp.close()  # twice: nothing left to release


def test_worker_counts_odd_statuses_apart_and_survives_a_failing_probe() -> None:
    m = wm.WorkerMetrics()
    m.observe(600, 0.001)  # outside 1xx..5xx: its own class, never mixed into 5xx
    m.observe(503, 0.001)

    def probe() -> tuple[int, int]:
        raise RuntimeError("pool gone")

    m.blocking_probe = probe
    snap = m.snapshot()
    assert sorted(snap["hist"]) == sorted([wm.STATUS_CLASSES[0], "5xx"])
    assert sum(snap["hist"]["5xx"]) == 1 and sum(snap["hist"][wm.STATUS_CLASSES[0]]) == 1
    assert (snap["blocking_threads"], snap["blocking_queue"]) == (0, 0)
