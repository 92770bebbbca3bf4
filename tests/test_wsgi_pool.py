"""The blocking pool behind WSGI (granian/apps/blocking.py)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from granian.apps.blocking import BlockingPool


def test_runs_on_threads_and_returns_results() -> None:
    pool = BlockingPool(4, idle_timeout=5, name="t-pool")

    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        futs = [pool.run(loop, lambda i=i: f"{i}:{threading.current_thread().name}") for i in range(20)]
        return list(await asyncio.gather(*futs))

    try:
        out = asyncio.run(main())
    finally:
        pool.shutdown()
    assert [o.split(":")[0] for o in out] == [str(i) for i in range(20)]
    assert all(o.split(":")[1].startswith("t-pool-") for o in out)
    assert 1 <= pool.threads <= 4


def test_exceptions_reach_the_awaiter() -> None:
    pool = BlockingPool(1)

    def boom() -> None:
        raise KeyError("x")

    async def main() -> None:
        with pytest.raises(KeyError):
            await pool.run(asyncio.get_running_loop(), boom)
        assert await pool.run(asyncio.get_running_loop(), lambda: 5) == 5

    try:
        asyncio.run(main())
    finally:
        pool.shutdown()


def test_grows_for_blocking_calls_up_to_the_limit() -> None:
    pool = BlockingPool(3)
    barrier = threading.Barrier(3, timeout=5)

    async def main() -> list[int]:
        loop = asyncio.get_running_loop()
        # queued in one burst: the pool must still grow to three threads on its own
        futs = [pool.run(loop, barrier.wait) for _ in range(3)]
        return list(await asyncio.gather(*futs))

    try:
        # three calls that block until all three run at once: needs three threads
        assert sorted(asyncio.run(main())) == [0, 1, 2]
    finally:
        pool.shutdown()
    assert pool.threads <= 3


def test_idle_threads_are_reaped() -> None:
    pool = BlockingPool(2, idle_timeout=0.05)

    async def main() -> None:
        await pool.run(asyncio.get_running_loop(), lambda: None)

    asyncio.run(main())
    for _ in range(200):
        if pool.threads == 0:
            break
        threading.Event().wait(0.01)
    assert pool.threads == 0


def test_a_burst_of_quick_calls_keeps_one_hot_thread() -> None:
    """Calls that never block are taken by the thread already running: a burst does not start a
    thread per queued call (on a GIL build extra threads only take turns on the GIL). The limit
    leaves room for scheduling jitter (a thread not yet running when the 1 ms watchdog looks
    gets one helper), far below the 64 a thread-per-queued-call policy reaches."""
    pool = BlockingPool(64, idle_timeout=5, name="t-hot")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for _ in range(5):
            futs = [pool.run(loop, lambda i=i: i * 2) for i in range(200)]
            assert await asyncio.gather(*futs) == [i * 2 for i in range(200)]

    try:
        asyncio.run(main())
    finally:
        pool.shutdown()
    assert 1 <= pool.threads <= 3


def test_calls_from_two_loops_complete_on_their_own_loop() -> None:
    pool = BlockingPool(4, idle_timeout=5)
    seen: dict[str, set[int]] = {}

    def run_loop(name: str) -> None:
        async def main() -> None:
            loop = asyncio.get_running_loop()
            ident = threading.get_ident()
            got: set[int] = set()

            def done_on(i: int) -> None:
                assert threading.get_ident() == ident  # `done` runs on the caller's loop
                got.add(i)

            futs = [pool.run(loop, lambda i=i: i) for i in range(100)]
            for f in asyncio.as_completed(futs):
                done_on(await f)
            seen[name] = got

        asyncio.run(main())

    threads = [threading.Thread(target=run_loop, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    pool.shutdown()
    assert seen == {"a": set(range(100)), "b": set(range(100))}
