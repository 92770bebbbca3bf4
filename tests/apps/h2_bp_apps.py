"""The --backpressure test app for HTTP/2 streams (tests/test_h2_backpressure.py): ASGI only,
the parking is below the interface.

- `/run?id=X&s=0.3`: records that request X started (in order) and how many requests ran at
  once, reads the whole body, sleeps `s`, answers `<body length> <most at once so far>`;
- `/started`: the ids of the `/run` requests started so far, comma-separated.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qs

from asgi_bits import serve_lifespan

_STATE: dict[str, Any] = {"running": 0, "most": 0, "started": []}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await serve_lifespan(receive, send)
        return
    query = parse_qs(scope["query_string"].decode())
    if scope["path"] == "/started":
        body = ",".join(_STATE["started"]).encode()
    else:
        _STATE["started"].append(query.get("id", ["?"])[0])
        _STATE["running"] += 1
        _STATE["most"] = max(_STATE["most"], _STATE["running"])
        try:
            size = 0
            while True:
                msg = await receive()
                if msg["type"] == "http.disconnect":
                    return
                size += len(msg.get("body", b""))
                if not msg.get("more_body", False):
                    break
            await asyncio.sleep(float(query.get("s", ["0.3"])[0]))
        finally:
            _STATE["running"] -= 1
        body = f"{size} {_STATE['most']}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})
