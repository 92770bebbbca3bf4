"""granian.server.flow.FlowControl with the shared fake transport (no sockets)."""

from __future__ import annotations

import asyncio

from fakes import FakeTransport

from granian.server.flow import FlowControl


def test_reading_resumes_only_when_no_reason_holds() -> None:
    t = FakeTransport()
    f = FlowControl(t)
    f.pause_reading(1)
    f.pause_reading(4)
    assert not t.reading and f.reasons == 5
    f.resume_reading(1)
    assert not t.reading  # 4 still holds
    f.resume_reading(2)  # never set: no effect
    assert not t.reading
    f.resume_reading(4)
    assert t.reading and f.reasons == 0


def test_a_lost_connection_is_never_paused_or_resumed() -> None:
    t = FakeTransport()
    f = FlowControl(t)
    f.connection_lost()
    t.reading = "untouched"  # type: ignore[assignment]
    f.pause_reading(1)
    f.resume_reading(1)
    assert t.reading == "untouched"


def test_drain_waits_for_resume_writing_and_not_after_loss() -> None:
    async def main() -> None:
        f = FlowControl(FakeTransport())
        await asyncio.wait_for(f.drain(), 1)  # not paused: returns at once
        f.pause_writing()
        task = asyncio.ensure_future(f.drain())
        await asyncio.sleep(0.01)
        assert not task.done()
        f.resume_writing()
        await asyncio.wait_for(task, 1)
        f.pause_writing()
        task = asyncio.ensure_future(f.drain())
        await asyncio.sleep(0)
        f.connection_lost()  # a peer that went away must not leave a writer waiting
        await asyncio.wait_for(task, 1)
        await asyncio.wait_for(f.drain(), 1)

    asyncio.run(main())
