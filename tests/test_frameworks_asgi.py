"""Starlette and FastAPI on a real worker: routing, JSON, streaming, background tasks."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from helpers import ServerProc, start_server


@pytest.fixture(scope="module")
def marker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("bg") / "marker.txt"
    os.environ["BG_MARKER"] = str(path)
    try:
        yield path
    finally:
        os.environ.pop("BG_MARKER", None)


@pytest.fixture(scope="module")
def starlette(marker: Path) -> Iterator[ServerProc]:
    server = start_server("asgi_frameworks:starlette_app")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def fastapi(marker: Path) -> Iterator[ServerProc]:
    server = start_server("asgi_frameworks:fastapi_app")
    try:
        yield server
    finally:
        server.stop()


def _wait_for(path: Path, text: str) -> bool:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text():
            return True
        time.sleep(0.05)
    return False


def test_starlette_routes(starlette: ServerProc) -> None:
    with httpx.Client(base_url=starlette.url) as c:
        assert c.get("/").text == "starlette home"
        assert c.get("/users/ann", params={"q": "x y"}).json() == {"user": "ann", "q": "x y"}
        assert c.get("/missing").status_code == 404
        assert c.post("/echo", content=b"payload" * 1000).content == b"payload" * 1000
        assert c.get("/echo").status_code == 405


def test_starlette_streaming(starlette: ServerProc) -> None:
    r = httpx.get(starlette.url + "/stream")
    assert r.text == "".join(f"line {i}\n" for i in range(5))
    assert r.headers["transfer-encoding"] == "chunked"


def test_starlette_background_task(starlette: ServerProc, marker: Path) -> None:
    assert httpx.get(starlette.url + "/bg").text == "queued"
    assert _wait_for(marker, "starlette-bg")


def test_fastapi_json(fastapi: ServerProc) -> None:
    with httpx.Client(base_url=fastapi.url) as c:
        assert c.get("/items/5", params={"q": "a"}).json() == {"item_id": 5, "q": "a"}
        assert c.get("/items/notanint").status_code == 422
        r = c.post("/items", json={"name": "pen", "price": 10})
        assert r.json() == {"name": "pen", "price_with_tax": 12.0}
        assert c.post("/items", json={"name": "pen"}).status_code == 422
        assert c.get("/openapi.json").json()["openapi"].startswith("3.")


def test_fastapi_streaming_and_background(fastapi: ServerProc, marker: Path) -> None:
    with httpx.Client(base_url=fastapi.url) as c:
        assert c.get("/stream").content == b"chunk-0,chunk-1,chunk-2,"
        assert c.get("/bg").json() == {"status": "queued"}
    assert _wait_for(marker, "fastapi-bg")
