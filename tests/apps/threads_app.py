"""Apps for tests/test_threads.py: every response names the thread that served it, as
`<ident> <main|other>`, so a test can tell the worker's loop threads apart."""

import asyncio
import threading

LIFESPAN = {"startups": 0}
RELEASE = threading.Event()


def _me() -> bytes:
    main = threading.current_thread() is threading.main_thread()
    return f"{threading.get_ident()} {'main' if main else 'other'}".encode()


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                LIFESPAN["startups"] += 1
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"]
    if path == "/block":
        # Blocks this loop thread (the wait releases the GIL) until /release, answered by
        # another loop, sets the event; the timeout only bounds a failing test.
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        )
        await send({"type": "http.response.body", "body": _me() + b" ", "more_body": True})
        released = RELEASE.wait(10)
        RELEASE.clear()
        await send({"type": "http.response.body", "body": b"released" if released else b"timeout"})
        return
    if path == "/release":
        RELEASE.set()
    if path == "/stream":
        # Head and a first piece now, the rest after a while: a request in flight at SIGTERM.
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        )
        await send({"type": "http.response.body", "body": _me() + b" ", "more_body": True})
        await asyncio.sleep(1)
        await send({"type": "http.response.body", "body": b"done"})
        return
    if path == "/lifespan":
        body = str(LIFESPAN["startups"]).encode()
    else:
        body = _me()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})


def wsgi(environ, start_response):
    start_response("200 OK", [("content-type", "text/plain")])
    return [_me()]


async def rsgi(scope, proto):
    proto.response_bytes(200, [("content-type", "text/plain")], _me())
