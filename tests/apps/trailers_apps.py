"""ASGI apps for the response-trailers tests (tests/test_asgi_trailers.py) and the HTTP/2
`100 Continue` tests (tests/test_h2_continue.py).

Trailers (`http.response.start` with `trailers: True`, then `http.response.trailers`):
- `/scope`: the scope's `http_version` and extension names, as JSON;
- `/stream`: three body pieces, then two trailer messages (`more_trailers` True, then False);
- `/big`: 200,000 bytes in four pieces (more than the peer's initial window), then the trailers;
- `/whole`: one final body with the app's own `content-length`, then the trailers;
- `/empty`: a final empty body, then the trailers;
- `/sse`: `text/event-stream` (the head is flushed at start), one event, then the trailers;
- `/file`: this file through `http.response.pathsend`, then the trailers;
- `/status?code=N`: status N with a body, then the trailers (204, 304: no body may follow);
- `/forbidden`: trailers mixing allowed fields with ones that must not be trailers;
- `/bad`: a trailer value with CR LF (refused: the response is aborted);
- `/no-flag`: trailers after a streamed body whose start did not announce them;
- `/early`: trailers before the last body message;
- `/unstarted`: trailers as the first message;
- `/forgot`: the body ends, the app returns without sending the trailers;
- `/gone`: streams a first piece, waits for `http.disconnect`, then ends the body and sends
  the trailers (both ignored: "gone: ignored" in $TRAILERS_EVENTS);
- `/twice`: a second `http.response.trailers` after the last one (the app answers the error in
  $TRAILERS_EVENTS, the response is already complete).

`100 Continue`:
- `/read?key=K`: waits until `/go?key=K` was requested (so the test knows the app has not
  read yet), then reads the body and echoes it;
- `/go?key=K`: releases `/read?key=K`, answers `go`;
- `/noread`: answers without reading the body;
- `/echo`: reads and echoes the body at once.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any
from urllib.parse import parse_qs

from asgi_bits import read_body, serve_lifespan

HERE = os.path.abspath(__file__)
TRAILERS = [(b"x-checksum", b"abc123"), (b"x-count", b"3")]

_GATES: dict[str, asyncio.Event] = {}


def _gate(key: str) -> asyncio.Event:
    event = _GATES.get(key)
    if event is None:
        event = _GATES[key] = asyncio.Event()
    return event


def _event(line: str) -> None:
    path = os.environ.get("TRAILERS_EVENTS")
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


def _start(status: int = 200, headers: list[tuple[bytes, bytes]] | None = None) -> dict[str, Any]:
    return {
        "type": "http.response.start",
        "status": status,
        "headers": headers if headers is not None else [(b"content-type", b"text/plain")],
        "trailers": True,
    }


def _body(data: bytes, more: bool = False) -> dict[str, Any]:
    return {"type": "http.response.body", "body": data, "more_body": more}


def _trailers(headers: list[tuple[bytes, bytes]], more: bool = False) -> dict[str, Any]:
    return {"type": "http.response.trailers", "headers": headers, "more_trailers": more}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await serve_lifespan(receive, send)
        return
    path = scope["path"]
    query = parse_qs(scope["query_string"].decode())
    if path == "/scope":
        body = json.dumps({"http_version": scope["http_version"], "extensions": sorted(scope["extensions"])})
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send(_body(body.encode()))
    elif path == "/stream":
        await send(_start())
        for piece in (b"one,", b"two,", b"three"):
            await send(_body(piece, more=True))
        await send(_body(b""))
        await send(_trailers(TRAILERS[:1], more=True))
        await send(_trailers(TRAILERS[1:]))
    elif path == "/big":
        await send(_start())
        for _ in range(4):
            await send(_body(b"x" * 50000, more=True))
        await send(_body(b""))
        await send(_trailers(TRAILERS))
    elif path == "/whole":
        await send(_start(headers=[(b"content-type", b"text/plain"), (b"content-length", b"5")]))
        await send(_body(b"whole"))
        await send(_trailers(TRAILERS))
    elif path == "/empty":
        await send(_start())
        await send(_body(b""))
        await send(_trailers(TRAILERS))
    elif path == "/sse":
        await send(_start(headers=[(b"content-type", b"text/event-stream")]))
        await send(_body(b"data: hi\n\n"))
        await send(_trailers(TRAILERS))
    elif path == "/file":
        await send(_start())
        await send({"type": "http.response.pathsend", "path": HERE})
        await send(_trailers(TRAILERS))
    elif path == "/status":
        code = int(query.get("code", ["200"])[0])
        await send(_start(code))
        await send(_body(b"" if code in (204, 304) else b"body"))
        await send(_trailers(TRAILERS))
    elif path == "/forbidden":
        await send(_start())
        await send(_body(b"ok"))
        await send(
            _trailers(
                [
                    (b"Content-Length", b"99"),
                    (b"transfer-encoding", b"chunked"),
                    (b"host", b"evil.example"),
                    (b":status", b"500"),
                    (b"set-cookie", b"a=b"),
                    (b"authorization", b"Basic eA=="),
                    (b"content-type", b"text/html"),
                    (b"X-Allowed", b"yes"),
                    ("server-timing", "app;dur=1"),
                ]
            )
        )
    elif path == "/bad":
        await send(_start())
        await send(_body(b"ok"))
        await send(_trailers([(b"x-bad", b"a\r\nx-injected: 1")]))
    elif path == "/no-flag":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send(_body(b"part", more=True))
        await send(_trailers(TRAILERS))
    elif path == "/early":
        await send(_start())
        await send(_body(b"part", more=True))
        await send(_trailers(TRAILERS))
    elif path == "/unstarted":
        await send(_trailers(TRAILERS))
    elif path == "/forgot":
        await send(_start())
        await send(_body(b"body"))
    elif path == "/twice":
        await send(_start())
        await send(_body(b"twice"))
        await send(_trailers(TRAILERS))
        try:
            await send(_trailers(TRAILERS))
        except RuntimeError as exc:
            _event(f"twice: {exc}")
    elif path == "/gone":
        await send(_start())
        await send(_body(b"first", more=True))
        while (await receive())["type"] != "http.disconnect":
            pass
        try:
            await send(_body(b"late"))
            await send(_trailers(TRAILERS))
        except Exception as exc:  # noqa: BLE001 - reported to the test
            _event(f"gone: {exc!r}")
        else:
            _event("gone: ignored")
    # ------------------------------------------------------------ 100 Continue
    elif path == "/read":
        await asyncio.wait_for(_gate(query["key"][0]).wait(), 10)
        data = await read_body(receive)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send(_body(data))
    elif path == "/go":
        _gate(query["key"][0]).set()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send(_body(b"go"))
    elif path == "/noread":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send(_body(b"not read"))
    elif path == "/echo":
        data = await read_body(receive)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send(_body(data))
    else:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send(_body(b"no such path"))
