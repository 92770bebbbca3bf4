"""ASGI apps that need asyncio's task contract (issue 10 item 2): a current Task for the whole
app call, sniffio, anyio task groups, asyncio.timeout() and a FastAPI StreamingResponse."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import sniffio
from fastapi import FastAPI
from fastapi.responses import StreamingResponse


async def _json(send: Any, obj: object) -> None:
    body = json.dumps(obj).encode()
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": body})


async def plain(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    path = scope["path"]
    first = asyncio.current_task()  # in the app's very first step
    if path == "/task":
        await asyncio.sleep(0.01)  # a real suspension: the same Task must resume it
        later = asyncio.current_task()
        await _json(
            send,
            {
                "first_is_task": isinstance(first, asyncio.Future) and hasattr(first, "get_coro"),
                "same": first is later and first is not None,
                "sniffio": sniffio.current_async_library(),
                "in_all_tasks": first in asyncio.all_tasks(),
            },
        )
    elif path == "/taskgroup":
        results: list[int] = []

        async def child(i: int) -> None:
            await anyio.sleep(0.001 * i)
            results.append(i)

        async with anyio.create_task_group() as tg:
            for i in range(3):
                tg.start_soon(child, i)
        await _json(send, {"children": sorted(results)})
    elif path == "/timeout-ok":
        async with asyncio.timeout(5):
            await asyncio.sleep(0.001)
        await _json(send, {"timeout": "not expired"})
    elif path == "/timeout-expires":
        try:
            async with asyncio.timeout(0.01):
                await asyncio.sleep(5)
            outcome = "not expired"
        except TimeoutError:
            outcome = "expired"
        await _json(send, {"timeout": outcome})
    else:
        await _json(send, {"path": path})


fastapi_app = FastAPI()


@fastapi_app.get("/stream")
async def stream() -> StreamingResponse:
    async def gen() -> AsyncIterator[bytes]:
        for i in range(5):
            await asyncio.sleep(0)
            yield f"part{i};".encode()

    return StreamingResponse(gen(), media_type="text/plain")


@fastapi_app.get("/sniff")
async def sniff() -> dict[str, str]:
    return {"lib": sniffio.current_async_library()}
