"""Micro-benchmark: request heads parsed per second on one core, granian's `parse_head` next to
httptools' `HttpRequestParser` (llhttp) measured in the same run.

Both produce the same data: method, target/URL and the list of (name, value) header pairs
(ours also lower-cases the names and decides the framing). httptools is driven the way an
httptools-based server drives it: one parser per connection fed request after request
(keep-alive), with `on_url` / `on_header` callbacks collecting into a list.

    .venv/bin/python loadtests/parser_bench.py [--seconds 1.0] [--rounds 5] [--cpu N] [--wall]

Times are process CPU time by default (the machine is shared; `--wall` for wall-clock) and the
best of `--rounds` rounds is reported.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

from granian.http1.parser import H1Limits, parse_head

BROWSER = (
    b"GET /articles/2024/11/how-we-parse-http?ref=home&utm_source=newsletter HTTP/1.1\r\n"
    b"Host: www.example.org\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8\r\n"
    b"Accept-Language: en-US,en;q=0.5\r\n"
    b"Accept-Encoding: gzip, deflate, br, zstd\r\n"
    b"Referer: https://www.example.org/\r\n"
    b"Connection: keep-alive\r\n"
    b"Cookie: session=7f3a9c2b1e8d4a6f; theme=dark; _ga=GA1.2.1234567890.1700000000\r\n"
    b"Upgrade-Insecure-Requests: 1\r\n"
    b"Sec-Fetch-Dest: document\r\n"
    b"Sec-Fetch-Mode: navigate\r\n"
    b"Sec-Fetch-Site: same-origin\r\n"
    b"Sec-Fetch-User: ?1\r\n"
    b"Priority: u=0, i\r\n"
    b"\r\n"
)
MINIMAL = b"GET / HTTP/1.1\r\nHost: localhost:8000\r\n\r\n"


def granian_runner(head: bytes) -> Callable[[int], None]:
    limits = H1Limits()

    def run(n: int) -> None:
        for _ in range(n):
            res = parse_head(head, 0, limits)
            assert res is not None

    return run


def httptools_runner(head: bytes) -> Callable[[int], None]:
    import httptools

    class Collector:
        __slots__ = ("url", "headers", "done")

        def __init__(self) -> None:
            self.url = b""
            self.headers: list[tuple[bytes, bytes]] = []
            self.done = 0

        def on_message_begin(self) -> None:
            self.headers = []

        def on_url(self, url: bytes) -> None:
            self.url = url

        def on_header(self, name: bytes, value: bytes) -> None:
            self.headers.append((name, value))

        def on_message_complete(self) -> None:
            self.done += 1

    proto = Collector()
    p = httptools.HttpRequestParser(proto)

    def run(n: int) -> None:
        feed = p.feed_data
        for _ in range(n):
            feed(head)
        assert proto.done >= n and len(proto.headers) == head.count(b"\r\n") - 2

    return run


def calibrate(run: Callable[[int], None], seconds: float, clock: Callable[[], float]) -> int:
    """How many calls make one round of about `seconds`."""
    n = 1000
    while True:
        t0 = clock()
        run(n)
        dt = clock() - t0
        if dt > 0.2 * seconds:
            return max(1, int(n * seconds / dt))
        n *= 4


def measure_pair(
    runs: tuple[Callable[[int], None], Callable[[int], None]],
    seconds: float,
    rounds: int,
    clock: Callable[[], float],
) -> tuple[float, float]:
    """Best rate of each runner, their rounds interleaved so both see the same machine load."""
    counts = [calibrate(run, seconds, clock) for run in runs]
    best = [0.0, 0.0]
    for _ in range(rounds):
        for i, run in enumerate(runs):
            t0 = clock()
            run(counts[i])
            best[i] = max(best[i], counts[i] / (clock() - t0))
    return best[0], best[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--seconds", type=float, default=1.0, help="length of one round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--cpu", type=int, default=None, help="core to pin to (default: the last allowed)")
    ap.add_argument("--wall", action="store_true", help="wall-clock instead of process CPU time")
    args = ap.parse_args()

    cpu = args.cpu if args.cpu is not None else max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    clock = time.perf_counter if args.wall else time.process_time
    print(f"pinned to CPU {cpu}; clock: {'wall' if args.wall else 'process CPU'}; best of {args.rounds}")
    print(f"{'head':<30} {'granian req/s':>14} {'httptools req/s':>16} {'ratio':>7}")
    for label, head in (
        (f"browser ({BROWSER.count(b': ')} headers, {len(BROWSER)} B)", BROWSER),
        (f"minimal (1 header, {len(MINIMAL)} B)", MINIMAL),
    ):
        ours, theirs = measure_pair(
            (granian_runner(head), httptools_runner(head)), args.seconds, args.rounds, clock
        )
        print(f"{label:<30} {ours:>14,.0f} {theirs:>16,.0f} {ours / theirs:>6.2f}x")


if __name__ == "__main__":
    main()
