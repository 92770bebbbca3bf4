"""RSGI test app (tests/test_rsgi.py): one route per protocol feature."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from granian.rsgi import HTTPProtocol, ProtocolClosed, ProtocolError, Scope

STATE: dict[str, Any] = {"init": None, "disconnects": 0}


async def _watch(proto: HTTPProtocol) -> None:
    await proto.client_disconnect()
    STATE["disconnects"] += 1


async def app(scope: Scope, proto: HTTPProtocol) -> None:
    path = scope.path
    q = dict(p.split("=", 1) for p in scope.query_string.split("&") if "=" in p)
    if path == "/plain":
        proto.response_str(200, [("content-type", "text/plain")], "Hello, world!")
    elif path == "/bytes":
        proto.response_bytes(201, [("x-a", "1"), ("x-a", "2")], b"\x00\xff")
    elif path == "/empty":
        proto.response_empty(204, [("x-e", "y")])
    elif path == "/echo":
        body = await proto()
        proto.response_bytes(200, [], body)
    elif path == "/iter":
        parts = [c async for c in proto]
        proto.response_str(200, [], json.dumps({"total": sum(map(len, parts)), "n": len(parts)}))
    elif path == "/double":
        await proto()
        try:
            await proto()
        except ProtocolError:
            proto.response_str(200, [], "ProtocolError")
            return
        proto.response_str(200, [], "no error")
    elif path == "/iter_then_whole":
        async for _ in proto:
            break
        try:
            await proto()
        except ProtocolError:
            proto.response_str(200, [], "ProtocolError")
            return
        proto.response_str(200, [], "no error")
    elif path == "/scope":
        h = scope.headers
        proto.response_str(
            200,
            [("content-type", "application/json")],
            json.dumps(
                {
                    "proto": scope.proto,
                    "rsgi_version": scope.rsgi_version,
                    "http_version": scope.http_version,
                    "server": scope.server,
                    "client": scope.client,
                    "scheme": scope.scheme,
                    "method": scope.method,
                    "path": scope.path,
                    "query_string": scope.query_string,
                    "authority": scope.authority,
                    "keys": h.keys(),
                    "multi": h.get_all("x-multi"),
                    "first": h.get("X-Multi"),
                    "items": h.items(),
                    "len": len(h),
                    "in": "x-multi" in h,
                }
            ),
        )
    elif path == "/file":
        proto.response_file(200, [("content-type", "application/octet-stream")], q["p"])
    elif path == "/range":
        proto.response_file_range(206, [("x-r", "1")], q["p"], int(q["s"]), int(q["e"]))
    elif path == "/badrange":
        try:
            proto.response_file_range(206, [], q["p"], 5, 5)
        except ValueError as exc:
            proto.response_str(200, [], str(exc))
    elif path == "/stream":
        tr = proto.response_stream(200, [("content-type", "text/plain")])
        for i in range(5):
            await tr.send_bytes(b"b%d;" % i)
            await tr.send_str(f"s{i};")
    elif path == "/stream_then_error":
        proto.response_str(200, [], "first")
        proto.response_str(500, [], "ignored")
        try:
            proto.response_stream(200, [])
        except ProtocolError:
            STATE["stream_error"] = True
    elif path == "/state":
        proto.response_str(200, [], json.dumps({k: v for k, v in STATE.items()}))
    elif path == "/raise":
        raise RuntimeError("boom")
    elif path == "/stream_raise":
        tr = proto.response_stream(200, [])
        await tr.send_bytes(b"partial")
        raise RuntimeError("boom mid-stream")
    elif path == "/noresp":
        return
    elif path == "/watch":
        asyncio.get_running_loop().create_task(_watch(proto))
        proto.response_str(200, [], "watching")
    elif path == "/stream_gone":
        tr = proto.response_stream(200, [])
        try:
            chunk = b"x" * 65536
            for _ in range(100000):
                await tr.send_bytes(chunk)
                # yield like a real producer would; the loop delivers connection_lost then
                await asyncio.sleep(0)
        except ProtocolClosed:
            STATE["stream_closed"] = True
    elif path == "/stream_gone_tight":
        # A producer that never yields on its own: only the server can tell it the client left.
        tr = proto.response_stream(200, [])
        try:
            for _ in range(200000):
                await tr.send_bytes(b"y" * 1024)
        except ProtocolClosed:
            STATE["tight_closed"] = True
        else:
            STATE["tight_closed"] = False
    else:
        proto.response_empty(404)


class WithHooks:
    """An object with __rsgi__ and the init/del hooks (RSGI.md "Application")."""

    def __init__(self) -> None:
        self.loop_ok = False

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # the loop is not running yet: run_until_complete is allowed (RSGI.md)
        self.loop_ok = loop.run_until_complete(asyncio.sleep(0, result=True))

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        marker = os.environ.get("RSGI_DEL_MARKER")
        if marker:
            with open(marker, "w") as f:
                f.write("deleted")

    async def __rsgi__(self, scope: Scope, proto: HTTPProtocol) -> None:
        proto.response_str(200, [], f"hooked init={self.loop_ok}")

    async def __call__(self, scope: Scope, proto: HTTPProtocol) -> None:
        proto.response_str(200, [], "called instead of __rsgi__")


hooked = WithHooks()
