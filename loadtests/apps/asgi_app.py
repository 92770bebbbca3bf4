"""ASGI 3 benchmark app (see apps/__init__.py for the routes).

Bodies carry an explicit content-length so every server frames them the same
way (uvicorn would otherwise switch to chunked encoding). ``/file`` uses the
``http.response.pathsend`` extension, which uvicorn does not implement, so the
harness only runs that route on the two granians.
"""

import os

HELLO = b"Hello, world!"
BIG = b"x" * 65536
FILE = os.environ.get("LOADTEST_FILE", "")

_TEXT = [(b"content-type", b"text/plain"), (b"content-length", str(len(HELLO)).encode())]
_BIG = [(b"content-type", b"application/octet-stream"), (b"content-length", b"65536")]
_FILE = [(b"content-type", b"application/octet-stream")]

START_TEXT = {"type": "http.response.start", "status": 200, "headers": _TEXT}
BODY_TEXT = {"type": "http.response.body", "body": HELLO}
START_BIG = {"type": "http.response.start", "status": 200, "headers": _BIG}
BODY_BIG = {"type": "http.response.body", "body": BIG}


async def _lifespan(receive, send):
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope, receive, send):
    kind = scope["type"]
    if kind == "lifespan":
        await _lifespan(receive, send)
        return
    if kind != "http":
        return
    path = scope["path"]
    if path == "/echo":
        chunks = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        await send({
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/octet-stream"),
                (b"content-length", str(len(body)).encode()),
            ],
        })
        await send({"type": "http.response.body", "body": body})
    elif path == "/64k":
        await send(START_BIG)
        await send(BODY_BIG)
    elif path == "/file":
        await send({"type": "http.response.start", "status": 200, "headers": _FILE})
        await send({"type": "http.response.pathsend", "path": FILE})
    else:
        await send(START_TEXT)
        await send(BODY_TEXT)
