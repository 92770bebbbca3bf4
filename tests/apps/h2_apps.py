"""HTTP/2 serving test apps (tests/test_h2_*.py): one per interface, the same paths on each.

- `/`: `hello`; `/scope`: what the app saw, as JSON; `/echo`: the request body back, in one
  response (ASGI reads it piece by piece); `/slow?s=0.5`: answers after a sleep;
  `/big?n=N`: N bytes streamed in 64 KiB pieces; `/stream`: three pieces with a flush;
  `/file`: this file through pathsend / response_file / wsgi.file_wrapper;
  `/wait-disconnect`: waits for the disconnect and writes a line to $H2_EVENTS;
  `/hold?n=N`: reads nothing, answers after N bytes arrived... never reads the body (for
  the body backpressure test: it sleeps then answers the byte count it then reads).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any
from urllib.parse import parse_qs

from asgi_bits import read_body, serve_lifespan

HERE = os.path.abspath(__file__)


def _event(line: str) -> None:
    path = os.environ.get("H2_EVENTS")
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


def _arg(query: str, name: str, default: str) -> str:
    return parse_qs(query).get(name, [default])[0]


_BARRIER: dict[str, Any] = {"n": 0, "event": None}


async def _barrier(n: int) -> bool:
    """True once `n` requests are waiting here together (10 s bound): proves they run at once."""
    if _BARRIER["event"] is None:
        _BARRIER["event"] = asyncio.Event()
    event = _BARRIER["event"]
    _BARRIER["n"] += 1
    if _BARRIER["n"] >= n:
        event.set()
    try:
        await asyncio.wait_for(event.wait(), 10)
    except asyncio.TimeoutError:
        return False
    return True


# ---------------------------------------------------------------- ASGI


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await serve_lifespan(receive, send)
        return
    path = scope["path"]
    query = scope["query_string"].decode()
    ct = [(b"content-type", b"text/plain")]
    if path == "/scope":
        body = json.dumps(
            {
                "http_version": scope["http_version"],
                "scheme": scope["scheme"],
                "method": scope["method"],
                "path": path,
                "query": query,
                "headers": [[n.decode(), v.decode()] for n, v in scope["headers"]],
                "tls": "tls" in scope.get("extensions", {}),
            }
        ).encode()
    elif path == "/echo":
        body = await read_body(receive)
    elif path == "/slow":
        await asyncio.sleep(float(_arg(query, "s", "0.5")))
        body = b"slow"
    elif path == "/big":
        n = int(_arg(query, "n", "1048576"))
        await send({"type": "http.response.start", "status": 200, "headers": ct})
        piece = b"x" * 65536
        while n > 0:
            chunk = piece[: min(n, len(piece))]
            n -= len(chunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": n > 0})
        return
    elif path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": ct})
        for part in (b"one,", b"two,", b"three"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
            await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    elif path == "/file":
        await send({"type": "http.response.start", "status": 200, "headers": ct})
        await send({"type": "http.response.pathsend", "path": HERE})
        return
    elif path == "/wait-disconnect":
        await send({"type": "http.response.start", "status": 200, "headers": ct})
        await send({"type": "http.response.body", "body": b"started", "more_body": True})
        msg = await receive()
        while msg["type"] != "http.disconnect":
            msg = await receive()
        _event("asgi disconnect " + query)
        return
    elif path == "/hold":
        # Reads nothing for a while: the request body's credit is held (backpressure).
        await asyncio.sleep(float(_arg(query, "s", "1")))
        body = str(len(await read_body(receive))).encode()
    elif path == "/fail":
        raise RuntimeError("boom")
    elif path == "/barrier":
        together = await _barrier(int(_arg(query, "n", "9")))
        await asyncio.sleep(0.2)  # a slow stream: each holds its response a while
        body = b"together" if together else b"alone"
    elif path == "/push":
        # Streams until the client stops reading; each piece it managed to hand over is logged
        # (the send buffer bound: --http2-max-send-buffer-size).
        await send({"type": "http.response.start", "status": 200, "headers": ct})
        piece = b"p" * 16384
        sent = 0
        for _ in range(4096):
            await send({"type": "http.response.body", "body": piece, "more_body": True})
            sent += len(piece)
            _event(f"push {sent}")
        await send({"type": "http.response.body", "body": b""})
        return
    else:
        body = b"hello"
    await send({"type": "http.response.start", "status": 200, "headers": ct})
    await send({"type": "http.response.body", "body": body})


# ---------------------------------------------------------------- RSGI


async def rsgi_app(scope: Any, proto: Any) -> None:
    path = scope.path
    query = scope.query_string
    ct = [("content-type", "text/plain")]
    if path == "/scope":
        proto.response_str(
            200,
            ct,
            json.dumps(
                {
                    "http_version": scope.http_version,
                    "scheme": scope.scheme,
                    "method": scope.method,
                    "authority": scope.authority,
                    "headers": [[n, v] for n, v in scope.headers.items()],
                }
            ),
        )
    elif path == "/echo":
        proto.response_bytes(200, ct, await proto())
    elif path == "/slow":
        await asyncio.sleep(float(_arg(query, "s", "0.5")))
        proto.response_str(200, ct, "slow")
    elif path == "/big":
        n = int(_arg(query, "n", "1048576"))
        tx = proto.response_stream(200, ct)
        piece = b"x" * 65536
        while n > 0:
            chunk = piece[: min(n, len(piece))]
            n -= len(chunk)
            await tx.send_bytes(chunk)
    elif path == "/file":
        proto.response_file(200, ct, HERE)
    elif path == "/barrier":
        together = await _barrier(int(_arg(query, "n", "9")))
        await asyncio.sleep(0.2)
        proto.response_str(200, ct, "together" if together else "alone")
    elif path == "/wait-disconnect":
        tx = proto.response_stream(200, ct)
        await tx.send_bytes(b"started")
        await proto.client_disconnect()
        _event("rsgi disconnect " + query)
    else:
        proto.response_str(200, ct, "hello")


# ---------------------------------------------------------------- WSGI


def wsgi_app(environ: dict[str, Any], start_response: Any) -> Any:
    path = environ["PATH_INFO"]
    query = environ.get("QUERY_STRING", "")
    ct = [("Content-Type", "text/plain")]
    if path == "/scope":
        body = json.dumps(
            {
                "SERVER_PROTOCOL": environ["SERVER_PROTOCOL"],
                "HTTP_HOST": environ.get("HTTP_HOST"),
                "HTTP_COOKIE": environ.get("HTTP_COOKIE"),
                "wsgi.url_scheme": environ["wsgi.url_scheme"],
            }
        ).encode()
    elif path == "/echo":
        body = environ["wsgi.input"].read()
    elif path == "/slow":
        time.sleep(float(_arg(query, "s", "0.5")))
        body = b"slow"
    elif path == "/file":
        start_response("200 OK", ct)
        f = open(HERE, "rb")  # noqa: SIM115 - the server closes it (PEP 3333 file_wrapper)
        return environ["wsgi.file_wrapper"](f, 8192)
    else:
        body = b"hello"
    start_response("200 OK", [*ct, ("Content-Length", str(len(body)))])
    return [body]
