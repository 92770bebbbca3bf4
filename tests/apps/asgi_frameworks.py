"""Starlette and FastAPI apps for the framework tests."""

import asyncio
import os

from fastapi import BackgroundTasks, FastAPI
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route

MARKER = os.environ.get("BG_MARKER", "/dev/null")


def _write_marker(text: str) -> None:
    with open(MARKER, "a") as f:
        f.write(text + "\n")


async def homepage(request: Request) -> PlainTextResponse:
    return PlainTextResponse("starlette home")


async def user(request: Request) -> JSONResponse:
    return JSONResponse({"user": request.path_params["name"], "q": request.query_params.get("q")})


async def echo(request: Request) -> PlainTextResponse:
    return PlainTextResponse(await request.body())


async def stream(request: Request) -> StreamingResponse:
    async def gen():
        for i in range(5):
            yield f"line {i}\n"
            await asyncio.sleep(0)

    return StreamingResponse(gen(), media_type="text/plain")


async def background(request: Request) -> PlainTextResponse:
    return PlainTextResponse("queued", background=BackgroundTask(_write_marker, "starlette-bg"))


starlette_app = Starlette(
    routes=[
        Route("/", homepage),
        Route("/users/{name}", user),
        Route("/echo", echo, methods=["POST"]),
        Route("/stream", stream),
        Route("/bg", background),
    ]
)

fastapi_app = FastAPI()


class Item(BaseModel):
    name: str
    price: float


@fastapi_app.get("/items/{item_id}")
async def read_item(item_id: int, q: str | None = None) -> dict[str, object]:
    return {"item_id": item_id, "q": q}


@fastapi_app.post("/items")
async def create_item(item: Item) -> dict[str, object]:
    return {"name": item.name, "price_with_tax": round(item.price * 1.2, 2)}


@fastapi_app.get("/bg")
async def fastapi_bg(tasks: BackgroundTasks) -> dict[str, str]:
    tasks.add_task(_write_marker, "fastapi-bg")
    return {"status": "queued"}


@fastapi_app.get("/stream")
async def fastapi_stream() -> StreamingResponse:
    async def gen():
        for i in range(3):
            yield b"chunk-%d," % i

    return StreamingResponse(gen(), media_type="application/octet-stream")
