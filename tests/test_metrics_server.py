"""The exporter end to end: a real master with workers, requests over real sockets, and the
scrape parsed with prometheus_client's text parser; the counters must follow the requests."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from test_access_log_server import Server, request, run_server

GET = b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int) -> tuple[str, Samples]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    text = body.decode()
    out: Samples = {}
    for fam in text_string_to_metric_families(text):
        for smp in fam.samples:
            out[(smp.name, tuple(sorted(smp.labels.items())))] = smp.value
    return text, out


def total(samples: Samples, name: str, **labels: str) -> float:
    want = set(labels.items())
    return sum(v for (n, lab), v in samples.items() if n == name and want <= set(lab))


def scrape_until(port: int, pred: Callable[[Samples], bool], what: str, timeout: float = 30.0) -> Samples:
    # Workers report every --metrics-scrape-interval (1 s here): poll, bounded, until it shows.
    deadline = time.monotonic() + timeout
    while True:
        text, got = scrape(port)
        if pred(got):
            return got
        assert time.monotonic() < deadline, f"{what} never showed up in:\n{text}"
        time.sleep(0.2)


def metrics_port(srv: Server) -> int:
    return int(srv.wait_for(r"Metrics exporter listening at: http://127\.0\.0\.1:(\d+)").group(1))


def test_counters_follow_requests(tmp_path: Path) -> None:
    with run_server(
        tmp_path, "--interface", "asgi", "--workers", "2", "--metrics", "--metrics-port", "0",
        "--metrics-scrape-interval", "1", "obs_apps:asgi",
    ) as srv:  # fmt: skip
        port = metrics_port(srv)
        n = 12
        for i in range(n):
            assert request(srv.port, f"GET /r{i} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
        # Two requests on one keep-alive connection, and one malformed request (a connection error).
        pipelined = (
            b"GET /a HTTP/1.1\r\nHost: t\r\n\r\nGET /b HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        )
        both = request(srv.port, pipelined)
        assert both.count(b"HTTP/1.1 200") == 2
        assert request(srv.port, b"BAD\x01 / HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 400")
        got = scrape_until(
            port,
            lambda s: (
                total(s, "granian_requests_handled_total") == n + 2
                and total(s, "granian_connections_err_total") == 1
            ),
            f"{n + 2} requests",
        )
    assert got[("granian_workers_spawns_total", ())] == 2
    assert got[("granian_workers_respawns_for_err_total", ())] == 0
    workers = {dict(lab)["worker"] for (name, lab) in got if name == "granian_requests_handled_total"}
    assert workers == {"1", "2"}
    assert total(got, "granian_connections_handled_total") == n + 2
    assert total(got, "granian_connections_active") == 0
    assert total(got, "granian_request_duration_seconds_count", status="2xx") == n + 2
    assert total(got, "granian_request_duration_seconds_bucket", status="2xx", le="+Inf") == n + 2
    assert total(got, "granian_request_duration_seconds_sum") > 0
    assert all(v >= 0 for (name, _), v in got.items() if name == "granian_worker_lifetime_total")


def test_respawn_is_counted(tmp_path: Path) -> None:
    with run_server(
        tmp_path, "--interface", "asgi", "--metrics", "--metrics-port", "0", "--metrics-scrape-interval", "1",
        "--respawn-failed-workers", "--respawn-interval", "0", "obs_apps:asgi",
    ) as srv:  # fmt: skip
        port = metrics_port(srv)
        pid = int(srv.wait_for(r"Spawned worker-1 with PID: (\d+)").group(1))
        os.kill(pid, signal.SIGKILL)
        srv.wait_for(r"Respawning worker-1")
        got = scrape_until(
            port,
            lambda s: s.get(("granian_workers_respawns_for_err_total", ())) == 1,
            "the respawn",
        )
        assert got[("granian_workers_spawns_total", ())] == 2
        # The new worker serves and reports under the same slot.
        request(srv.port, b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        scrape_until(
            port,
            lambda s: total(s, "granian_requests_handled_total", worker="1") == 1,
            "the new worker's request",
        )


def test_static_and_blocking_pool(tmp_path: Path) -> None:
    mount = tmp_path / "public"
    mount.mkdir()
    (mount / "f.txt").write_bytes(b"0123456789")
    with run_server(
        tmp_path, "--interface", "wsgi", "--metrics", "--metrics-port", "0", "--metrics-scrape-interval", "1",
        "--static-path-route", "/static", "--static-path-mount", str(mount), "obs_apps:wsgi",
    ) as srv:  # fmt: skip
        port = metrics_port(srv)
        assert request(srv.port, GET.replace(b"/", b"/static/f.txt", 1)).startswith(b"HTTP/1.1 200")
        assert request(srv.port, GET.replace(b"/", b"/static/no.txt", 1)).startswith(b"HTTP/1.1 404")
        assert request(srv.port, GET).startswith(b"HTTP/1.1 200")  # the WSGI app, in the pool
        got = scrape_until(
            port,
            lambda s: (
                total(s, "granian_requests_handled_total") == 3 and total(s, "granian_blocking_threads") >= 1
            ),
            "3 requests and a pool thread",
        )
    assert total(got, "granian_static_requests_handled_total") == 2
    assert total(got, "granian_static_requests_err_total") == 1
    assert total(got, "granian_blocking_queue") == 0
    assert total(got, "granian_request_duration_seconds_count", status="4xx") == 1
