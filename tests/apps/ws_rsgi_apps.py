"""RSGI WebSocket test apps (tests/test_ws_rsgi.py), routed by path. Plain HTTP `/events`
answers what was recorded (JSON list)."""

from __future__ import annotations

import json

from granian.rsgi import ProtocolClosed, ProtocolError

EVENTS: list[list[object]] = []


async def app(scope, protocol):  # noqa: C901 - one route per test scenario
    if scope.proto == "http":
        body = json.dumps(EVENTS) if scope.path == "/events" else "plain http"
        protocol.response_str(200, [("content-type", "text/plain")], body)
        return
    assert scope.proto == "ws"
    path = scope.path
    if path == "/reject":
        protocol.close(403)
        return
    if path == "/teapot":
        protocol.close(418)
        return
    if path == "/return":
        return
    if path == "/boom-before":
        raise ValueError("boom before accept")
    transport = await protocol.accept()
    if path == "/scope":
        info = {
            "proto": scope.proto,
            "scheme": scope.scheme,
            "method": scope.method,
            "path": scope.path,
            "query_string": scope.query_string,
            "http_version": scope.http_version,
            "rsgi_version": scope.rsgi_version,
            "upgrade": scope.headers.get("upgrade"),
        }
        await transport.send_str(json.dumps(info))
        protocol.close(1000)
        return
    if path == "/boom-after":
        raise ValueError("boom after accept")
    if path == "/after-close":
        protocol.close(4002)
        try:
            await transport.send_str("after close")
        except ProtocolError as exc:
            EVENTS.append(["after-close", type(exc).__name__])
        return
    # /echo: echo each message until the client closes; record how the session ended
    while True:
        msg = await transport.receive()
        if msg.kind == 0:
            try:
                await transport.receive()
            except ProtocolClosed:
                EVENTS.append([path, "closed", "ProtocolClosed on the next receive"])
            try:
                await transport.send_str("to nobody")
            except ProtocolClosed:
                EVENTS.append([path, "send", "ProtocolClosed"])
            return
        if msg.kind == 2:
            if msg.data == "close":
                protocol.close(4000)
                continue
            await transport.send_str(msg.data)
        else:
            await transport.send_bytes(msg.data)
