"""The embedded Server (granian.server.embed) inside the test's own event loop."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from granian.server.embed import Server

EVENTS: list[str] = []


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            msg = await receive()
            EVENTS.append(msg["type"])
            if msg["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"x-embedded", b"1")]})
    await send({"type": "http.response.body", "body": scope["path"].encode()})


def test_embedded_server_serves_until_stopped() -> None:
    async def main() -> None:
        server = Server(app, address="127.0.0.1", port=0, interface="asgi")
        task = asyncio.create_task(server.serve())
        await asyncio.wait_for(server.wait_started(), 10)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as c:
            r = await c.get("/embedded/path")
            assert r.text == "/embedded/path" and r.headers["x-embedded"] == "1"
        server.stop()
        await asyncio.wait_for(task, 10)
        assert task.done() and task.exception() is None

    EVENTS.clear()
    asyncio.run(main())
    assert EVENTS == ["lifespan.startup", "lifespan.shutdown"]
