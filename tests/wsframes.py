"""WebSocket frames written and read in plain Python (RFC 6455 5.2), independently of csrc/ws.c:
the oracle the WebSocket tests build client frames with and read server frames back with."""

from __future__ import annotations

import struct

KEY = b"\x37\xfa\x21\x3d"


def ref_mask(data: bytes, key: bytes, phase: int = 0) -> bytes:
    return bytes(b ^ key[(phase + i) % 4] for i, b in enumerate(data))


def client_frame(b0: int, payload: bytes, key: bytes | None = KEY) -> bytes:
    """A client frame (masked unless key is None), minimal length encoding."""
    n = len(payload)
    m = 0x80 if key is not None else 0
    if n < 126:
        head = bytes((b0, m | n))
    elif n < 65536:
        head = bytes((b0, m | 126)) + struct.pack("!H", n)
    else:
        head = bytes((b0, m | 127)) + struct.pack("!Q", n)
    if key is None:
        return head + payload
    return head + key + ref_mask(payload, key)


def text(s: str | bytes, fin: bool = True) -> bytes:
    return client_frame((0x80 if fin else 0) | 0x1, s.encode() if isinstance(s, str) else s)


def binary(b: bytes, fin: bool = True) -> bytes:
    return client_frame((0x80 if fin else 0) | 0x2, b)


def cont(b: bytes, fin: bool = True) -> bytes:
    return client_frame((0x80 if fin else 0), b)


def close(code: int | None = None, reason: bytes = b"") -> bytes:
    payload = b"" if code is None else struct.pack("!H", code) + reason
    return client_frame(0x88, payload)


def ping(b: bytes = b"") -> bytes:
    return client_frame(0x89, b)


def pong(b: bytes = b"") -> bytes:
    return client_frame(0x8A, b)


def server_frames(data: bytes) -> list[tuple[int, bytes]]:
    """Parse server frames (unmasked, 5.1): [(first byte, payload)]; the data must end on a
    frame boundary."""
    frames = []
    pos = 0
    while pos < len(data):
        b0, b1 = data[pos], data[pos + 1]
        assert not b1 & 0x80, "a server frame is masked"
        n = b1 & 0x7F
        pos += 2
        if n == 126:
            (n,) = struct.unpack_from("!H", data, pos)
            assert n >= 126, "not the minimal length encoding"
            pos += 2
        elif n == 127:
            (n,) = struct.unpack_from("!Q", data, pos)
            assert n >= 65536, "not the minimal length encoding"
            pos += 8
        frames.append((b0, data[pos : pos + n]))
        pos += n
        assert pos <= len(data), "truncated frame"
    return frames


def close_of(data: bytes) -> tuple[int | None, bytes]:
    """The (code, reason) of the single close frame in `data`."""
    ((b0, payload),) = server_frames(data)
    assert b0 == 0x88
    if not payload:
        return None, b""
    return struct.unpack("!H", payload[:2])[0], payload[2:]
