"""The compiled access-log format: every atom, the fast and the standard logging paths, the
batching handler, and the completion hook that feeds it."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from granian.access_log import (
    ACCESS_FLUSH_INTERVAL,
    ACCESS_FLUSH_LINES,
    DEFAULT_ACCESS_LOG_FMT,
    AccessHandler,
    AccessLog,
    make_access_log,
    scan_format,
)
from granian.errors import ConfigurationError
from granian.server.metrics import WorkerMetrics, make_completion_hook

LOGGER = "test.granian.access"


@dataclass
class FakeCycle:
    method: str = "GET"
    raw_path: bytes = b"/items/1"
    query: bytes = b"a=1&b=2"
    http_version: str = "1.1"
    headers: list[tuple[bytes, bytes]] = field(
        default_factory=lambda: [
            (b"host", b"example.org"),
            (b"user-agent", b"curl/8.5"),
            (b"referer", b"http://ref.example/"),
            (b"x-request-id", b"abc123"),
            (b"x-multi", b"one"),
            (b"x-multi", b"two"),
        ]
    )
    scheme: str = "http"
    client: tuple[str, int] | None = ("10.1.2.3", 51234)
    status: int = 200
    bytes_sent: int = 1234
    t0: float = 0.0


def install() -> io.StringIO:
    """A private logger with one AccessHandler on a StringIO (the default setup's shape).

    Called from the test body: pytest attaches its capture handlers to non-propagating loggers
    when each test phase starts, which would (correctly) turn the fast path off."""
    lg = logging.getLogger(LOGGER)
    buf = io.StringIO()
    h = AccessHandler(buf)
    h.setFormatter(logging.Formatter("%(message)s"))
    lg.handlers[:] = [h]
    lg.propagate = False
    lg.setLevel(logging.INFO)
    return buf


@pytest.fixture
def sink() -> Iterator[None]:
    try:
        yield
    finally:
        lg = logging.getLogger(LOGGER)
        lg.handlers[:] = []
        lg.propagate = True
        lg.setLevel(logging.NOTSET)


def line(fmt: str, cycle: FakeCycle | None = None, dt: float = 0.0125) -> str:
    buf = install()
    AccessLog(fmt, LOGGER).log(cycle or FakeCycle(), dt)
    out = buf.getvalue()
    assert out.endswith("\n") and out.count("\n") == 1
    return out[:-1]


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("%(addr)s", "10.1.2.3"),
        ("%(status)d", "200"),
        ("%(path)s", "/items/1"),
        ("%(query_string)s", "a=1&b=2"),
        ("%(method)s", "GET"),
        ("%(scheme)s", "http"),
        ("%(protocol)s", "HTTP/1.1"),
        ("%(size)d", "1234"),
        ("%(rbl)d", "1234"),
        ("%(referer)s", "http://ref.example/"),
        ("%(user_agent)s", "curl/8.5"),
        ("%(header{X-Request-Id})s", "abc123"),
        ("%(header{x-request-id})s", "abc123"),
        ("%(header{Host})s", "example.org"),
        # Repeated field lines combine with ", " (RFC 9110 §5.3).
        ("%(header{X-Multi})s", "one, two"),
        ("%(header{X-Absent})s", "-"),
        ("%(dt_ms).3f", "12.500"),
        ("%%(path)s %(path)s 100%%", "%(path)s /items/1 100%"),
    ],
)
def test_each_atom(sink: None, fmt: str, expected: str) -> None:
    assert line(fmt) == expected


def test_time_atom_is_request_start_local_time(sink: None) -> None:
    dt = 3600.0  # an hour-long request: its start is an hour before now
    text = line("%(time)s", dt=dt)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}", text)
    expected = time.time() - dt
    parsed = time.mktime(time.strptime(text[:19], "%Y-%m-%d %H:%M:%S"))
    assert abs(parsed - expected) < 3


def test_default_format(sink: None) -> None:
    text = line(DEFAULT_ACCESS_LOG_FMT)
    m = re.fullmatch(r'\[(.+)\] 10\.1\.2\.3 - "GET /items/1 HTTP/1\.1" 200 12\.500', text)
    assert m, text


def test_other_values(sink: None) -> None:
    c = FakeCycle(
        method="POST", raw_path=b"/", query=b"", http_version="1.0", scheme="https", client=None,
        status=404, bytes_sent=0, headers=[],
    )  # fmt: skip
    fmt = "%(addr)s|%(method)s|%(path)s|%(query_string)s|%(protocol)s|%(scheme)s|%(status)d|%(size)d"
    assert line(fmt, c) == "-|POST|/||HTTP/1.0|https|404|0"
    assert line("%(referer)s %(user_agent)s", c) == "- -"


def test_client_text_cannot_break_quoted_fields(sink: None) -> None:
    c = FakeCycle(raw_path=b'/a"b', query=b'q="x"', headers=[(b"user-agent", b'evil" 200 0')])
    assert line('"%(path)s" "%(query_string)s" "%(user_agent)s"', c) == (
        '"/a\\"b" "q=\\"x\\"" "evil\\" 200 0"'
    )


def test_scan_format() -> None:
    assert scan_format("%(a)s %%(b)s %(header{X-Y})s %d%%") == ["a", "header{X-Y}"]
    with pytest.raises(ConfigurationError, match="unterminated"):
        scan_format("%(addr")


def test_only_used_atoms_are_known_up_front() -> None:
    al = AccessLog("%(status)d %(header{X-Id})s %(nope)s")
    assert al.keys == {"status", "header{X-Id}", "nope"}
    assert al.unknown == ["nope"]


def test_unknown_atom_prints_dash(sink: None) -> None:
    assert line("%(status)d %(nope)s") == "200 -"


def test_bad_conversion_fails_at_startup() -> None:
    with pytest.raises(ConfigurationError, match="--access-log-fmt"):
        AccessLog("%(path)d")


def test_standard_handlers_get_a_full_record(sink: None) -> None:
    """A user handler with its own formatter takes the standard path: a real LogRecord whose
    args are the atoms (Granian passes them the same way)."""
    lg = logging.getLogger(LOGGER)
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    buf = io.StringIO()
    h = logging.StreamHandler(buf)
    h.setFormatter(logging.Formatter("%(name)s %(levelname)s %(process)d %(message)s"))
    lg.handlers[:] = [h, Keep()]
    lg.propagate = False
    lg.setLevel(logging.INFO)
    AccessLog("%(method)s %(status)d", LOGGER).log(FakeCycle(), 0.001)

    assert buf.getvalue() == f"{LOGGER} INFO {os.getpid()} GET 200\n"
    (rec,) = records
    assert isinstance(rec.args, dict) and rec.args["status"] == 200
    assert rec.levelno == logging.INFO and abs(rec.created - time.time()) < 5


def test_silenced_logger_does_no_work(sink: None) -> None:
    buf = install()
    logging.getLogger(LOGGER).setLevel(logging.WARNING)
    AccessLog("%(path)s", LOGGER).log(FakeCycle(), 0.0)
    assert buf.getvalue() == ""


def test_completion_hook_batches_lines(sink: None) -> None:
    """The hook only queues the finished request; its line is rendered and written with the
    others of its batch, in one write, within the flush interval."""

    class CountingIO(io.StringIO):
        writes = 0

        def write(self, s: str) -> int:
            self.writes += 1
            return super().write(s)

    install()
    stream = CountingIO()
    h = logging.getLogger(LOGGER).handlers[0]
    assert isinstance(h, AccessHandler)
    h.setStream(stream)
    al = AccessLog("%(path)s %(status)d", LOGGER)
    hook = make_completion_hook(al, None)
    assert hook is not None

    async def main() -> None:
        for i in range(3):
            hook(FakeCycle(raw_path=f"/line{i}".encode(), t0=time.perf_counter()))  # type: ignore[arg-type]
        await asyncio.sleep(0)
        assert stream.getvalue() == ""  # held for the batch
        # Bounded: the batch goes out within the flush interval (no timing assertion: the
        # wait below only has to be long enough, it measures nothing).
        for _ in range(200):
            if stream.getvalue():
                break
            await asyncio.sleep(ACCESS_FLUSH_INTERVAL)
        assert stream.getvalue() == "/line0 200\n/line1 200\n/line2 200\n"
        assert stream.writes == 1
        # A burst is written as soon as the batch is full, without waiting for the timer.
        for i in range(ACCESS_FLUSH_LINES):
            hook(FakeCycle(raw_path=f"/burst{i}".encode(), t0=time.perf_counter()))  # type: ignore[arg-type]
        assert stream.getvalue().count("/burst") == ACCESS_FLUSH_LINES
        assert stream.writes == 2
        # Pending lines are written by AccessLog.flush() (the worker's exit does this).
        hook(FakeCycle(raw_path=b"/pending", t0=time.perf_counter()))  # type: ignore[arg-type]
        assert "/pending" not in stream.getvalue()
        al.flush()
        assert stream.getvalue().endswith("/pending 200\n")

    asyncio.run(main())
    hook(FakeCycle(raw_path=b"/outside", t0=time.perf_counter()))  # type: ignore[arg-type]
    assert stream.getvalue().endswith("/outside 200\n")  # no loop: written through at once


def test_batched_lines_keep_each_request_time(sink: None) -> None:
    """A batch renders each request's own start time and duration, not the flush time."""
    buf = install()
    al = AccessLog("%(time)s|%(dt_ms).0f", LOGGER)
    now = time.perf_counter()
    wall = time.time()
    batch = al.batch()
    # one request started an hour ago and took 2 s, one started now and took 5 ms
    batch.items.append((FakeCycle(t0=now - 3600.0), 2.0))
    batch.items.append((FakeCycle(t0=now), 0.005))
    batch.flush()
    (old, new) = buf.getvalue().splitlines()
    for text, start, ms in ((old, wall - 3600.0, "2000"), (new, wall, "5")):
        stamp, dt_ms = text.split("|")
        assert dt_ms == ms
        parsed = time.mktime(time.strptime(stamp[:19], "%Y-%m-%d %H:%M:%S"))
        assert abs(parsed - start) < 3


def test_batched_records_for_custom_handlers(sink: None) -> None:
    """With a non-default handler each batched request becomes a LogRecord whose `created` is
    when that request ended."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    lg = logging.getLogger(LOGGER)
    lg.handlers[:] = [Keep()]
    lg.propagate = False
    lg.setLevel(logging.INFO)
    al = AccessLog("%(status)d", LOGGER)
    batch = al.batch()
    now = time.perf_counter()
    batch.items.append((FakeCycle(status=201, t0=now - 100.0), 40.0))
    batch.flush()
    (rec,) = records
    assert isinstance(rec.args, dict) and rec.args["status"] == 201
    assert rec.getMessage() == "201"
    assert abs(rec.created - (time.time() - 60.0)) < 5


def test_make_access_log() -> None:
    class S:
        access_log = False
        access_log_fmt = DEFAULT_ACCESS_LOG_FMT

    assert make_access_log(S()) is None
    S.access_log = True
    al = make_access_log(S())
    assert al is not None and al.fmt == DEFAULT_ACCESS_LOG_FMT


def test_completion_hook_composition(sink: None) -> None:
    buf = install()
    assert make_completion_hook(None, None) is None
    m = WorkerMetrics()
    al = AccessLog("%(status)d %(dt_ms).0f", LOGGER)
    c = FakeCycle(status=503, t0=time.perf_counter() - 0.05)
    hook = make_completion_hook(al, m)
    assert hook is not None
    hook(c)  # type: ignore[arg-type]
    status, ms = buf.getvalue().split()
    assert status == "503" and 50 <= int(ms) < 5000
    assert m.req_handled == 1 and sum(m.hist[5]) == 1 and m.hist_sum[5] >= 0.05
    only_metrics = make_completion_hook(None, m)
    assert only_metrics is not None
    only_metrics(c)  # type: ignore[arg-type]
    assert m.req_handled == 2 and buf.getvalue().count("\n") == 1
    only_log = make_completion_hook(al, None)
    assert only_log is not None
    only_log(c)  # type: ignore[arg-type]
    assert m.req_handled == 2 and buf.getvalue().count("\n") == 2


def test_default_setup_builds_no_log_record(sink: None, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_record(self: AccessLog, atoms: object) -> None:
        raise AssertionError("the fast path must not build a LogRecord")

    monkeypatch.setattr(AccessLog, "_record", no_record)
    assert line("%(method)s %(status)d") == "GET 200"


def test_positional_rendering_matches_named() -> None:
    fmt = '%%(x)s [%(time)s] %(status)03d %(status)d "%(header{A})s" %(dt_ms)08.2f %(nope)s%%'
    al = AccessLog(fmt)
    c = FakeCycle(headers=[(b"a", b"1")])
    values = al._values(c, 0.5, 0.0)  # type: ignore[arg-type]
    named = dict(zip(al._order, values, strict=True))
    assert al._positional % values == fmt % named
    assert named["header{A}"] == "1" and named["nope"] == "-" and named["dt_ms"] == 500.0


def test_mixed_specs_rejected() -> None:
    with pytest.raises(ConfigurationError, match="not a %-style format"):
        AccessLog("%(status)d %s")
