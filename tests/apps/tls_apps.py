"""Apps of tests/test_tls_serving.py and tests/test_tls_wss.py: each reports what its interface
says about the connection (scheme, the ASGI `tls` extension, the WSGI environ's HTTPS) and
echoes request bodies; over WebSockets (wss) `/scope` sends the scope as JSON, `/mutate` edits
its tls extension first, anything else echoes every message."""

from __future__ import annotations

import json
from typing import Any


async def asgi_ws(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    if scope["path"] in ("/scope", "/mutate"):
        extensions = scope["extensions"]
        info = {"scheme": scope["scheme"], "extensions": sorted(extensions), "tls": extensions.get("tls")}
        if scope["path"] == "/mutate":
            extensions["tls"]["server_cert"] = "junk"
        await send({"type": "websocket.send", "text": json.dumps(info)})
        await send({"type": "websocket.close", "code": 1000})
        return
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("bytes") is not None:
            await send({"type": "websocket.send", "bytes": message["bytes"]})
        else:
            await send({"type": "websocket.send", "text": message["text"]})


async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "websocket":
        await asgi_ws(scope, receive, send)
        return
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    path = scope["path"]
    if path == "/pathsend":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.pathsend", "path": scope["query_string"].decode()})
        return
    if path == "/mutate":
        # An app that edits its tls extension must not change the next scope's.
        tls = scope["extensions"]["tls"]
        tls["client_cert_chain"].append("junk")
        tls["server_cert"] = "junk"
    if path == "/echo":
        out = body
    else:
        extensions = scope["extensions"]
        out = json.dumps(
            {
                "scheme": scope["scheme"],
                "extensions": sorted(extensions),
                "tls": extensions.get("tls"),
                "body_len": len(body),
            }
        ).encode()
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": out})


async def rsgi(scope: Any, proto: Any) -> None:
    if scope.proto == "ws":
        transport = await proto.accept()
        await transport.send_str(json.dumps({"scheme": scope.scheme}))
        while True:
            msg = await transport.receive()
            if msg.kind == 0:
                return
            if msg.kind == 2:
                await transport.send_str(msg.data)
            else:
                await transport.send_bytes(msg.data)
    body = await proto()
    if scope.path == "/echo":
        proto.response_bytes(200, [], body)
        return
    proto.response_str(200, [("content-type", "application/json")], json.dumps({"scheme": scope.scheme}))


def wsgi(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    n = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(n) if n else b""
    start_response("200 OK", [("Content-Type", "application/json")])
    if environ["PATH_INFO"] == "/echo":
        return [body]
    return [json.dumps({"url_scheme": environ["wsgi.url_scheme"], "HTTPS": environ.get("HTTPS")}).encode()]
