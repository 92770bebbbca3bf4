"""Minimal apps behind static paths (tests/test_static.py): each answers "app <path>"."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any


async def asgi(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"app " + scope["path"].encode()})


async def rsgi(scope: Any, proto: Any) -> None:
    proto.response_str(200, [], "app " + scope.path)


def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [])
    return [b"app " + environ["PATH_INFO"].encode("latin-1")]
