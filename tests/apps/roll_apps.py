"""Apps for the HTTP/2 rolling-restart checks (tests/test_h2_roll.py, loadtests/h2_roll.py):
every response is the answering worker's PID, after a short sleep (`?ms=N`, default 30) so that
streams are in flight while the master replaces the workers. ASGI's `?early=1` sends the
head and a first piece `<` before the sleep (the stream is then known to be in the app); `?size=N` answers
N bytes instead of the PID."""

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
    args = parse_qs(query)
    delay = _delay(query)
    start = {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
    if "early" in args:
        # A first piece before the sleep: the head goes out with it (a head alone may wait
        # for the body), so the client knows the stream reached the app.
        await send(start)
        await send({"type": "http.response.body", "body": b"<", "more_body": True})
        await asyncio.sleep(delay)
    else:
        await asyncio.sleep(delay)
        await send(start)
    size = args.get("size")
    body = b"x" * int(size[0]) if size else str(os.getpid()).encode()
    await send({"type": "http.response.body", "body": body})


async def rsgi_app(scope: Any, proto: Any) -> None:
    await asyncio.sleep(_delay(scope.query_string))
    proto.response_str(200, [("content-type", "text/plain")], str(os.getpid()))
