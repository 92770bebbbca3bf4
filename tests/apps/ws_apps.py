"""ASGI WebSocket test apps (tests/test_ws_server.py, tests/test_ws_asgi.py), routed by path.

Plain HTTP: `/events` answers the disconnects and misuse errors recorded so far (JSON list),
anything else `plain http` (what an upgrade request gets with --no-ws). Each disconnect is
also printed to stderr (`DISCONNECT path code reason`), for tests that stop the worker.
"""

from __future__ import annotations

import asyncio
import json
import sys

from asgi_bits import serve_lifespan

EVENTS: list[list[object]] = []
RELEASE = asyncio.Event()


def record(*item: object) -> None:
    EVENTS.append(list(item))
    print("DISCONNECT", *item, file=sys.stderr, flush=True)


async def http(scope, receive, send, body: bytes) -> None:
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})


async def app(scope, receive, send):  # noqa: C901 - one route per test scenario
    if scope["type"] == "lifespan":
        await serve_lifespan(receive, send)
        return
    if scope["type"] == "http":
        if scope["path"] == "/events":
            await http(scope, receive, send, json.dumps(EVENTS).encode())
        else:
            await http(scope, receive, send, b"plain http")
        return
    path = scope["path"]
    msg = await receive()
    assert msg["type"] == "websocket.connect"
    if path == "/reject":
        await send({"type": "websocket.close"})
        return
    if path == "/return":
        return
    if path == "/deny":
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 401,
                "headers": [(b"content-type", b"text/plain"), (b"x-denied", b"yes")],
            }
        )
        await send({"type": "websocket.http.response.body", "body": b"go ", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"away"})
        return
    if path == "/boom-before":
        raise ValueError("boom before accept")
    if path == "/misuse-early":
        try:
            await send({"type": "websocket.send", "text": "too early"})
        except RuntimeError as exc:
            EVENTS.append(["misuse-early", str(exc)])
        await send({"type": "websocket.close"})
        return
    offered = scope["subprotocols"]
    await send(
        {
            "type": "websocket.accept",
            "subprotocol": offered[-1] if offered else None,
            "headers": [(b"x-accepted", b"1")],
        }
    )
    if path.startswith("/scope"):
        info = {
            k: scope[k]
            for k in ("scheme", "path", "root_path", "query_string", "subprotocols", "http_version")
        }
        info["query_string"] = info["query_string"].decode()
        info["extensions"] = sorted(scope["extensions"])
        info["raw_path"] = scope["raw_path"].decode()
        info["client_port_is_int"] = isinstance(scope["client"][1], int)
        await send({"type": "websocket.send", "text": json.dumps(info)})
        await send({"type": "websocket.close", "code": 1000})
        return
    if path == "/boom-after":
        raise ValueError("boom after accept")
    if path == "/misuse":
        errors = []
        try:
            await send({"type": "websocket.accept"})
        except RuntimeError as exc:
            errors.append(str(exc))
        await send({"type": "websocket.close", "code": 4001, "reason": "bye"})
        try:
            await send({"type": "websocket.send", "text": "after close"})
        except RuntimeError as exc:
            errors.append(str(exc))
        EVENTS.append(["misuse", *errors])
        return
    if path == "/slow":
        # flow control: read nothing until /release is opened, then count what came
        await RELEASE.wait()
        n = 0
        size = 0
        while True:
            msg = await receive()
            if msg["type"] == "websocket.disconnect":
                return
            data = msg.get("bytes") or b""
            if data == b"done":
                await send({"type": "websocket.send", "text": f"{n} {size}"})
                continue
            n += 1
            size += len(data)
    if path == "/release":
        RELEASE.set()
        await send({"type": "websocket.close"})
        return
    # /echo (and everything else): echo each message; commands in text messages
    while True:
        msg = await receive()
        if msg["type"] == "websocket.disconnect":
            record(path, msg["code"], msg.get("reason", ""))
            return
        text = msg.get("text")
        if text is not None and text.startswith("close:"):
            _, code, reason = text.split(":", 2)
            await send({"type": "websocket.close", "code": int(code), "reason": reason})
            continue
        if text is not None:
            await send({"type": "websocket.send", "text": text})
        else:
            await send({"type": "websocket.send", "bytes": msg["bytes"]})
