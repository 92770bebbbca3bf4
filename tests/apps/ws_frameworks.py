"""Framework WebSocket endpoints (tests/test_ws_frameworks.py): Starlette, FastAPI (ASGI) and
Emmett (RSGI), each: accept, iterate messages, close."""

from __future__ import annotations

from emmett import App, websocket
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket as StarletteWebSocket


async def starlette_echo(ws: StarletteWebSocket) -> None:
    await ws.accept(subprotocol="chat" if "chat" in ws.scope["subprotocols"] else None)
    async for text in ws.iter_text():
        if text == "bye":
            await ws.close(code=4100, reason="starlette bye")
            return
        await ws.send_text(f"starlette: {text}")


starlette_app = Starlette(routes=[WebSocketRoute("/ws", starlette_echo)])

fastapi_app = FastAPI()


@fastapi_app.websocket("/ws/{room}")
async def fastapi_echo(ws: WebSocket, room: str) -> None:
    await ws.accept()
    try:
        while True:
            data = await ws.receive_json()
            if data.get("bye"):
                await ws.close(code=4200)
                return
            await ws.send_json({"room": room, "got": data})
    except WebSocketDisconnect:
        return


emmett_app = App(__name__)
emmett_app.config.handle_static = False


@emmett_app.route("/")
async def index():
    return "emmett http"


@emmett_app.websocket("/ws")
async def emmett_echo():
    await websocket.accept()
    while True:
        msg = await websocket.receive()
        if msg == "bye":
            return
        await websocket.send(f"emmett: {msg}")
