"""`--threads N` / `--threading-mode`: several event-loop threads in one worker, over real sockets
(a real `serve_worker` in a subprocess, tests/apps/threads_app.py answering `<ident> <main|other>`)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from helpers import ServerProc, start_server
from test_access_log_server import request, run_server
from test_metrics_server import metrics_port, scrape_until, total
from wire import Conn

from granian.server.metrics import MetricsGroup, WorkerMetrics

pytestmark = pytest.mark.timeout(60)

MODES = ["workers", "runtime"]


@pytest.fixture(params=MODES)
def server(request: pytest.FixtureRequest) -> Iterator[ServerProc]:
    srv = start_server("threads_app:app", threads=2, threading_mode=request.param)
    try:
        yield srv
    finally:
        srv.stop()


def ident(body: bytes) -> tuple[str, str]:
    who, where = body.decode().split()[:2]
    return who, where


def head_and_first_chunk(conn: Conn) -> bytes:
    resp = conn.response(head_only=True)
    assert resp.status == 200 and resp.headers.get("transfer-encoding") == "chunked"
    return next_chunk(conn)


def next_chunk(conn: Conn) -> bytes:
    size = int(conn._until(b"\r\n").split(b";")[0], 16)
    return conn._exact(size + 2)[:-2]


def rest_of_body(conn: Conn) -> bytes:
    out = b""
    while chunk := next_chunk(conn):
        out += chunk
    return out


def test_concurrent_keepalive_requests_use_both_loops(server: ServerProc) -> None:
    # Which loop accepts is up to the kernel in workers mode: hold 20 connections open at once
    # and look at the set of threads over them, on a few fresh rounds if one loop took them all.
    seen: set[tuple[str, str]] = set()
    for _ in range(5):
        conns = [Conn(server.port) for _ in range(20)]
        try:

            def exchange(c: Conn) -> list[tuple[str, str]]:
                out = []
                for _ in range(5):  # keep-alive: several requests per connection
                    r = c.request("GET", "/")
                    assert r.status == 200
                    out.append(ident(r.body))
                # every request of one connection is served by the loop that owns it
                assert len(set(out)) == 1
                return out

            with ThreadPoolExecutor(20) as pool:
                for result in pool.map(exchange, conns):
                    seen.update(result)
        finally:
            for c in conns:
                c.close()
        if len({who for who, _ in seen}) >= 2:
            break
    assert len({who for who, _ in seen}) >= 2, seen
    assert server.stop()[0] == 0


def test_runtime_mode_deals_round_robin_to_loop_threads() -> None:
    srv = start_server("threads_app:app", threads=2, threading_mode="runtime")
    try:
        conns = [Conn(srv.port) for _ in range(4)]
        try:
            who = [ident(c.request("GET", "/").body) for c in conns]
        finally:
            for c in conns:
                c.close()
        # the main loop only accepts: every request runs on a loop thread, alternately
        assert all(where == "other" for _, where in who), who
        assert who[0] != who[1] and who[0] == who[2] and who[1] == who[3], who
    finally:
        assert srv.stop()[0] == 0


def test_blocked_loop_does_not_stop_the_other(server: ServerProc) -> None:
    with Conn(server.port) as blocked:
        blocked.send(b"GET /block HTTP/1.1\r\nhost: t\r\n\r\n")
        # its head and first piece are out: that loop thread now blocks in the app
        blocked_by = ident(head_and_first_chunk(blocked))
        with Conn(server.port) as other:
            r = other.request("GET", "/release")
            assert r.status == 200
            # answered while the first loop was blocked, so by another loop thread
            assert ident(r.body) != blocked_by
        assert rest_of_body(blocked) == b"released"
    assert server.stop()[0] == 0


def test_lifespan_runs_once_per_worker(server: ServerProc) -> None:
    for _ in range(4):
        with Conn(server.port) as c:
            assert c.request("GET", "/lifespan").body == b"1"


@pytest.mark.parametrize("mode", MODES)
def test_sigterm_lets_in_flight_requests_finish(mode: str) -> None:
    srv = start_server("threads_app:app", threads=2, threading_mode=mode)
    try:
        conns = [Conn(srv.port) for _ in range(4)]
        try:
            for c in conns:
                c.send(b"GET /stream HTTP/1.1\r\nhost: t\r\n\r\n")
            firsts = [ident(head_and_first_chunk(c)) for c in conns]
            srv.proc.send_signal(signal.SIGTERM)
            for c in conns:
                assert rest_of_body(c) == b"done"
                assert c.closed_by_peer()  # drained: no keep-alive after the stop
        finally:
            for c in conns:
                c.close()
        if mode == "runtime":
            # round-robin over the loop threads: these were in flight on non-main threads
            assert {where for _, where in firsts} == {"other"}
            assert len({who for who, _ in firsts}) == 2
        code, err = srv.stop()
        assert code == 0, err
    finally:
        srv.stop()


def test_startup_line_names_the_gil() -> None:
    from granian._granian import BUILD_GIL

    srv = start_server("threads_app:app", threads=2)
    try:
        with Conn(srv.port) as c:
            assert c.request("GET", "/").status == 200
    finally:
        code, err = srv.stop()
    assert code == 0
    out = srv.stdout.decode(errors="replace") + err  # the log goes to stdout by default
    lines = [line for line in out.splitlines() if "event-loop threads" in line]
    assert len(lines) == 1, out
    assert ("concurrency, not parallelism" in lines[0]) == BUILD_GIL


def test_single_thread_says_nothing_about_threads() -> None:
    srv = start_server("threads_app:app")
    try:
        with Conn(srv.port) as c:
            assert ident(c.request("GET", "/").body)[1] == "main"
    finally:
        code, err = srv.stop()
    out = srv.stdout.decode(errors="replace") + err
    assert code == 0 and "event-loop threads" not in out


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("target", "interface"), [("threads_app:wsgi", "wsgi"), ("threads_app:rsgi", "rsgi")]
)
def test_wsgi_and_rsgi_with_threads(target: str, interface: str, mode: str) -> None:
    srv = start_server(target, interface=interface, threads=2, threading_mode=mode, blocking_threads=2)
    try:
        conns = [Conn(srv.port) for _ in range(8)]
        try:

            def exchange(c: Conn) -> int:
                return sum(c.request("GET", "/").status == 200 for _ in range(5))

            with ThreadPoolExecutor(8) as pool:
                assert sum(pool.map(exchange, conns)) == 40
        finally:
            for c in conns:
                c.close()
    finally:
        code, err = srv.stop()
    assert code == 0, err


def test_idle_connection_on_thread_closed_at_stop(server: ServerProc) -> None:
    conns = [Conn(server.port) for _ in range(6)]
    try:
        for c in conns:
            assert c.request("GET", "/").status == 200
        server.proc.send_signal(signal.SIGTERM)
        # idle keep-alive connections on every loop are closed by the drain
        for c in conns:
            assert c.closed_by_peer()
    finally:
        for c in conns:
            c.close()
    assert server.stop()[0] == 0


@pytest.mark.parametrize("mode", MODES)
def test_asyncio_loop_threads(mode: str) -> None:
    # The hand-off and the per-thread loops with the selector loop too (`--loop asyncio`).
    srv = start_server("threads_app:app", threads=2, threading_mode=mode, loop="asyncio")
    try:
        conns = [Conn(srv.port) for _ in range(6)]
        try:
            who = {ident(c.request("GET", "/").body) for c in conns for _ in range(3)}
        finally:
            for c in conns:
                c.close()
        if mode == "runtime":
            assert len(who) == 2 and {w for _, w in who} == {"other"}, who
    finally:
        code, err = srv.stop()
    assert code == 0, err


@pytest.mark.parametrize("mode", MODES)
def test_metrics_count_every_loop(tmp_path: Path, mode: str) -> None:
    # Each loop counts into its own counters (static routes included); the totals are their sums.
    mount = tmp_path / "public"
    mount.mkdir()
    (mount / "f.txt").write_bytes(b"0123456789")
    with run_server(
        tmp_path, "--interface", "asgi", "--threads", "2", "--threading-mode", mode, "--metrics",
        "--metrics-port", "0", "--metrics-scrape-interval", "1",
        "--static-path-route", "/static", "--static-path-mount", str(mount), "obs_apps:asgi",
    ) as srv:  # fmt: skip
        port = metrics_port(srv)
        paths = [f"/r{i}" for i in range(8)] + ["/static/f.txt"] * 6 + ["/static/no.txt"] * 2

        def get(path: str) -> bytes:
            return request(srv.port, f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())

        with ThreadPoolExecutor(8) as pool:
            statuses = [r.split(b" ", 2)[1] for r in pool.map(get, paths)]
        assert statuses.count(b"200") == 14 and statuses.count(b"404") == 2
        got = scrape_until(
            port,
            lambda s: (
                total(s, "granian_requests_handled_total") == len(paths)
                and total(s, "granian_connections_handled_total") == len(paths)
            ),
            f"{len(paths)} requests on as many connections",
        )
    assert total(got, "granian_static_requests_handled_total") == 8
    assert total(got, "granian_static_requests_err_total") == 2


def test_metrics_group_sums_loop_counters() -> None:
    a, b = WorkerMetrics(), WorkerMetrics()
    a.conn_handled, b.conn_handled = 3, 4
    a.static_handled, b.static_err = 1, 2
    a.observe(200, 0.002)
    b.observe(200, 0.002)
    b.observe(503, 7.0)
    a.blocking_probe = lambda: (5, 6)
    snap = MetricsGroup(a, [b]).snapshot()
    assert (snap["conn_handled"], snap["req_handled"], snap["static_handled"], snap["static_err"]) == (
        7,
        3,
        1,
        2,
    )
    assert snap["hist"]["2xx"] == [sum(x) for x in zip(a.hist[2], b.hist[2], strict=True)]
    assert sum(snap["hist"]["2xx"]) == 2 and sum(snap["hist"]["5xx"]) == 1
    assert snap["hist_sum"]["5xx"] == 7.0
    assert (snap["blocking_threads"], snap["blocking_queue"]) == (5, 6)
    alone = MetricsGroup(a, []).snapshot()
    assert {k: v for k, v in alone.items() if k != "lifetime"} == {
        k: v for k, v in a.snapshot().items() if k != "lifetime"
    }
