"""Apps for the HTTP/2 rolling-restart checks (tests/test_h2_roll.py, loadtests/h2_roll.py):
every response is the answering worker's PID, after a short sleep (`?ms=N`, default 30) so that
streams are in flight while the master replaces the workers. ASGI's `?early=1` sends the
response head before the sleep (the stream is then known to be in the app)."""

from __future__ import annotations

import asyncio
import os
from typing import Any
from urllib.parse import parse_qs

_DEFAULT_MS = 30.0


def _delay(query: str) -> float:
    return float(parse_qs(query).get("ms", [_DEFAULT_MS])[0]) / 1000.0


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            msg = await receive()
            await send({"type": msg["type"] + ".complete"})
            if msg["type"] == "lifespan.shutdown":
                return
    query = scope["query_string"].decode()
    start = {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
    early = "early" in parse_qs(query)
    if early:
        await send(start)  # the client then knows the stream reached the app
    await asyncio.sleep(_delay(query))
    if not early:
        await send(start)
    await send({"type": "http.response.body", "body": str(os.getpid()).encode()})


async def rsgi_app(scope: Any, proto: Any) -> None:
    await asyncio.sleep(_delay(scope.query_string))
    proto.response_str(200, [("content-type", "text/plain")], str(os.getpid()))
