"""Test doubles shared by the protocol tests (no sockets): one fake transport for every
connection-level unit test, as uvicorn's tests/protocols use one mock transport."""

from __future__ import annotations

from typing import Any

__all__ = ["FakeTransport"]


class FakeTransport:
    def __init__(self) -> None:
        self.protocol: Any = None  # set_protocol() target (the dispatch seam's hand-off)
        self.out: list[bytes] = []
        self.writes = 0
        self.reading = True
        self.closed = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.writes += 1
        self.out.append(bytes(data))

    def writelines(self, data: Any) -> None:
        self.writes += 1
        self.out.append(b"".join(data))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("10.0.0.1", 4321), "sockname": ("10.0.0.2", 80)}.get(name, default)

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def get_protocol(self) -> Any:
        return self.protocol

    @property
    def data(self) -> bytes:
        return b"".join(self.out)
