"""Lifespan edge cases."""


async def failing(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "db is down"})
        return


async def raising_after(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive()
        raise RuntimeError("startup crashed")


async def unsupported(scope, receive, send):
    assert scope["type"] == "http", "no lifespan here"
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"no-lifespan"})
