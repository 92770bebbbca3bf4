"""ASGI WebSocket echo app for loadtests/autobahn.py and loadtests/ws_bench.py.

Every text or bytes message is sent back as it came (the Autobahn cases expect
the echo of each message, of the same type), until the client disconnects.
Any plain HTTP request answers 200 `Hello, world!`, the body run.py's
wait_ready expects on `/`, so the harness's readiness check works unchanged.
"""


async def app(scope, receive, send):
    kind = scope["type"]
    if kind == "websocket":
        msg = await receive()
        if msg["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        while True:
            msg = await receive()
            t = msg["type"]
            if t == "websocket.receive":
                text = msg.get("text")
                if text is not None:
                    await send({"type": "websocket.send", "text": text})
                else:
                    await send({"type": "websocket.send", "bytes": msg.get("bytes") or b""})
            elif t == "websocket.disconnect":
                return
    elif kind == "http":
        # Drain the body so a keep-alive client is never left mid-request.
        while (await receive()).get("more_body"):
            pass
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"13")],
            }
        )
        await send({"type": "http.response.body", "body": b"Hello, world!"})
    elif kind == "lifespan":
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
