"""Shared fixtures: a real worker in a subprocess (see tests/helpers.py)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fakes import FakeCycle, FakeTransport  # noqa: E402
from helpers import ServerProc, start_server  # noqa: E402


@pytest.fixture
def fake_transport() -> FakeTransport:
    """A transport that records writes, reading pauses and closes (tests/fakes.py)."""
    return FakeTransport()


@pytest.fixture
def fake_cycle() -> type[FakeCycle]:
    """A factory of in-memory request cycles (tests/fakes.py): `fake_cycle("POST", b"/p",
    body=b"...", script=[...])` scripts the client and records the response."""
    return FakeCycle


@pytest.fixture(scope="module")
def asgi_server() -> Iterator[ServerProc]:
    """One ASGI worker serving tests/apps/asgi_app.py for a whole test module."""
    server = start_server("asgi_app:app")
    try:
        yield server
    finally:
        server.stop()
