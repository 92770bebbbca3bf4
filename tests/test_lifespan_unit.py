"""granian.apps.lifespan.Lifespan driven in-process: every answer an app can give to startup and
shutdown (ASGI.md "Lifespan"), without a worker."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from granian.apps import lifespan as lifespan_mod
from granian.apps.lifespan import Lifespan
from granian.constants import SERVER_LOGGER

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


class Records:
    """The server logger's records during the test (it may not propagate once configured, so
    the handler goes on it directly)."""

    def __init__(self) -> None:
        self.handler = logging.Handler()
        self.items: list[logging.LogRecord] = []
        self.handler.emit = self.items.append  # type: ignore[method-assign]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.items)


@pytest.fixture
def records() -> Any:
    rec = Records()
    lg = logging.getLogger(SERVER_LOGGER)
    old = lg.level
    lg.setLevel(logging.DEBUG)
    lg.addHandler(rec.handler)
    try:
        yield rec
    finally:
        lg.removeHandler(rec.handler)
        lg.setLevel(old)


def messages(records: Records) -> list[tuple[str, str]]:
    return [(r.levelname, r.getMessage()) for r in records]


def test_startup_and_shutdown_complete_share_state() -> None:
    seen: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "lifespan" and scope["asgi"]["version"] == "3.0"
        scope["state"]["db"] = "connected"
        while True:
            msg = await receive()
            seen.append(msg["type"])
            if msg["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def main() -> tuple[bool, dict[str, Any]]:
        ls = Lifespan(app)
        ok = await ls.startup()
        await ls.shutdown()
        return ok, ls.state

    ok, state = run(main())
    assert ok is True and state == {"db": "connected"}
    assert seen == ["lifespan.startup", "lifespan.shutdown"]


def test_startup_failed_stops_the_worker_and_logs_the_message(records: Records) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})
        await asyncio.sleep(3600)  # the worker cancels it

    async def main() -> bool:
        return await Lifespan(app).startup()

    assert run(main()) is False
    assert ("ERROR", "Lifespan startup failed: no database") in messages(records)


@pytest.mark.parametrize("second", ["lifespan.startup.complete", "lifespan.startup.failed"])
def test_a_second_startup_answer_is_a_flow_error(second: str, records: Records) -> None:
    errors: list[BaseException] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        try:
            await send({"type": second})
        except RuntimeError as exc:
            errors.append(exc)
            raise

    async def main() -> tuple[bool, Lifespan]:
        ls = Lifespan(app)
        ok = await ls.startup()
        await asyncio.sleep(0)
        await ls.shutdown()
        return ok, ls

    ok, _ = run(main())
    assert ok is True
    assert [str(e) for e in errors] == ["ASGI flow error: lifespan startup already answered"]
    # Raised after startup answered: logged as such, not taken for "unsupported".
    assert ("ERROR", "Lifespan task raised after startup") in messages(records)


def test_an_unknown_message_type_raises_in_the_app() -> None:
    raised: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        try:
            await send({"type": "lifespan.startup.maybe"})
        except RuntimeError as exc:
            raised.append(str(exc))
        await send({"type": "lifespan.startup.complete"})

    assert run(Lifespan(app).startup()) is True
    assert raised == ["Unsupported ASGI message"]


def test_app_raising_before_taking_startup_does_not_speak_lifespan(records: Records) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        raise ValueError("only http")

    async def main() -> tuple[bool, bool]:
        ls = Lifespan(app)
        ok = await ls.startup()
        await ls.shutdown()  # unsupported: nothing is sent, returns at once
        return ok, ls.supported

    assert run(main()) == (True, False)
    assert ("WARNING", "ASGI lifespan protocol appears unsupported: ValueError('only http')") in messages(
        records
    )


def test_app_raising_after_taking_startup_fails_the_worker(records: Records) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        raise RuntimeError("boom in startup")

    assert run(Lifespan(app).startup()) is False
    logged = [r for r in records if r.getMessage() == "Exception in lifespan startup"]
    assert logged and logged[0].exc_info is not None and "boom in startup" in str(logged[0].exc_info[1])


def test_app_returning_without_an_answer_counts_as_unsupported(records: Records) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()

    async def main() -> tuple[bool, bool]:
        ls = Lifespan(app)
        return await ls.startup(), ls.supported

    assert run(main()) == (True, False)
    assert ("WARNING", "ASGI lifespan protocol appears unsupported: app returned") in messages(records)


def test_shutdown_failed_and_shutdown_exception_are_logged(records: Records) -> None:
    def make(kind: str) -> App:
        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await receive()
            await send({"type": "lifespan.startup.complete"})
            await receive()
            if kind == "failed":
                await send({"type": "lifespan.shutdown.failed", "message": "flush failed"})
            else:
                raise OSError("disk gone")

        return app

    async def main(kind: str) -> None:
        ls = Lifespan(make(kind))
        assert await ls.startup() is True
        await ls.shutdown()

    run(main("failed"))
    run(main("raise"))
    got = messages(records)
    assert ("ERROR", "Lifespan shutdown failed: flush failed") in got
    assert ("ERROR", "Exception in lifespan shutdown") in got


def test_a_stuck_shutdown_is_bounded(monkeypatch: pytest.MonkeyPatch, records: Records) -> None:
    monkeypatch.setattr(lifespan_mod, "SHUTDOWN_TIMEOUT", 0.05)
    cancelled: list[bool] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        try:
            await asyncio.sleep(3600)  # never answers shutdown
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    async def main() -> None:
        ls = Lifespan(app)
        await ls.startup()
        await ls.shutdown()

    run(main())
    assert cancelled == [True]  # the task was reaped, not left running
    assert any(m.startswith("Lifespan shutdown timed out") for _, m in messages(records))


def test_shutdown_without_startup_is_a_no_op() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:  # pragma: no cover - never run
        raise AssertionError("not started")

    run(Lifespan(app).shutdown())
