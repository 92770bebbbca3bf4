"""WebSocket endpoints of real frameworks on a real worker: Starlette and FastAPI (ASGI),
Emmett (RSGI): accept, iterate messages, close (tests/apps/ws_frameworks.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from helpers import ServerProc, start_server
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect


@pytest.fixture(scope="module")
def starlette() -> Iterator[ServerProc]:
    srv = start_server("ws_frameworks:starlette_app")
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def fastapi() -> Iterator[ServerProc]:
    srv = start_server("ws_frameworks:fastapi_app")
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def emmett() -> Iterator[ServerProc]:
    srv = start_server("ws_frameworks:emmett_app", interface="rsgi")
    try:
        yield srv
    finally:
        srv.stop()


def test_starlette_websocket(starlette: ServerProc) -> None:
    with connect(f"ws://127.0.0.1:{starlette.port}/ws", subprotocols=["chat"]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "chat"
        for word in ("one", "two", "three"):
            ws.send(word)
            assert ws.recv() == f"starlette: {word}"
        ws.send("bye")
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
    assert info.value.rcvd is not None
    assert (info.value.rcvd.code, info.value.rcvd.reason) == (4100, "starlette bye")
    # the client leaving mid-iteration ends the endpoint cleanly; the server keeps serving
    with connect(f"ws://127.0.0.1:{starlette.port}/ws") as ws:
        ws.send("x")
        assert ws.recv() == "starlette: x"
    with pytest.raises(InvalidStatus) as refused:
        with connect(f"ws://127.0.0.1:{starlette.port}/nowhere"):
            pass
    assert refused.value.response.status_code == 403


def test_fastapi_websocket(fastapi: ServerProc) -> None:
    with connect(f"ws://127.0.0.1:{fastapi.port}/ws/lobby") as ws:
        for i in range(3):
            ws.send(json.dumps({"n": i}))
            assert json.loads(ws.recv()) == {"room": "lobby", "got": {"n": i}}
        ws.send(json.dumps({"bye": True}))
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
    assert info.value.rcvd is not None and info.value.rcvd.code == 4200


def test_emmett_websocket(emmett: ServerProc) -> None:
    with connect(f"ws://127.0.0.1:{emmett.port}/ws") as ws:
        for word in ("a", "b"):
            ws.send(word)
            assert ws.recv() == f"emmett: {word}"
        ws.send("bye")
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1000
    # an unknown websocket route is refused over HTTP (Emmett closes with 404 before accept)
    with pytest.raises(InvalidStatus) as refused:
        with connect(f"ws://127.0.0.1:{emmett.port}/nowhere"):
            pass
    assert refused.value.response.status_code == 404
