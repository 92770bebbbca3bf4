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
