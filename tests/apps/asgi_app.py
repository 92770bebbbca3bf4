"""ASGI test app: each path exercises one behaviour of the server."""

import asyncio
import json
import os

STARTED = {"lifespan": False}
DISCONNECTS: list[str] = []


async def _body(receive):
    chunks = []
    n = 0
    while True:
        msg = await receive()
        assert msg["type"] == "http.request", msg
        chunks.append(msg["body"])
        n += 1
        if not msg.get("more_body", False):
            return b"".join(chunks), n


async def _send_text(send, status, text, headers=()):
    body = text.encode() if isinstance(text, str) else text
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain"), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                scope["state"]["counter"] = "from-lifespan"
                STARTED["lifespan"] = True
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                print("LIFESPAN SHUTDOWN", flush=True)
                await send({"type": "lifespan.shutdown.complete"})
                return
    assert scope["type"] == "http"
    path = scope["path"]
    if path == "/scope":
        out = {
            k: v
            for k, v in scope.items()
            if k not in ("headers", "raw_path", "query_string", "state", "asgi")
        }
        out["headers"] = [[k.decode(), v.decode()] for k, v in scope["headers"]]
        out["raw_path"] = scope["raw_path"].decode("latin-1")
        out["query_string"] = scope["query_string"].decode("latin-1")
        out["asgi"] = scope["asgi"]
        out["state"] = dict(scope["state"])
        out["client"] = list(scope["client"])
        out["server"] = list(scope["server"])
        return await _send_text(send, 200, json.dumps(out), [(b"x-kind", b"json")])
    if path == "/echo":
        body, n = await _body(receive)
        return await _send_text(send, 200, body, [(b"x-chunks", str(n).encode())])
    if path == "/stream":
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        )
        for i in range(3):
            await send({"type": "http.response.body", "body": b"part%d;" % i, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    if path == "/big":
        n = int(scope["query_string"] or b"65536")
        return await _send_text(send, 200, b"x" * n)
    if path == "/status":
        code = int(scope["query_string"])
        await send({"type": "http.response.start", "status": code, "headers": []})
        await send(
            {"type": "http.response.body", "body": b"should-not-appear" if code in (204, 304) else b"ok"}
        )
        return
    if path == "/raise-before":
        raise ValueError("boom before start")
    if path == "/raise-after":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"100")]})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise ValueError("boom after start")
    if path == "/return-early":
        return
    if path == "/misuse":
        errors = []
        for msg in (
            {"type": "http.response.body", "body": b"x"},
            {"type": "nope"},
            {"type": "http.response.start", "status": "200"},
        ):
            try:
                await send(msg)
            except RuntimeError as exc:
                errors.append(str(exc))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            await send({"type": "http.response.start", "status": 200, "headers": []})
        except RuntimeError as exc:
            errors.append(str(exc))
        await send({"type": "http.response.body", "body": json.dumps(errors).encode()})
        try:
            await send({"type": "http.response.body", "body": b"again"})
        except RuntimeError as exc:
            print("AFTER-FINISH", str(exc), flush=True)
        return
    if path == "/bad-header":
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"x-evil", b"a\r\nset-cookie: x")],
                }
            )
            await send({"type": "http.response.body", "body": b"leaked"})
        except RuntimeError as exc:
            return await _send_text(send, 200, "rejected: " + str(exc))
        return
    if path == "/wait-disconnect":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"waiting", "more_body": True})
        msg = await receive()
        msg = await receive()
        with open(os.environ.get("DISCONNECT_FILE", "/dev/null"), "a") as f:
            f.write(msg["type"] + "\n")
        return
    if path == "/after-response":
        await _send_text(send, 200, "done")
        first = await receive()
        second = await receive()
        assert first["type"] == second["type"] == "http.disconnect", (first, second)
        return
    if path == "/slow":
        await asyncio.sleep(float(scope["query_string"] or b"0.5"))
        return await _send_text(send, 200, "slow")
    if path == "/pathsend":
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        )
        await send({"type": "http.response.pathsend", "path": scope["query_string"].decode()})
        return
    if path == "/sse":
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        await asyncio.sleep(0.3)
        await send({"type": "http.response.body", "body": b"data: 1\n\n"})
        return
    if path == "/no-read":
        return await _send_text(send, 200, "ignored body")
    await _send_text(send, 200, "Hello, world!")
