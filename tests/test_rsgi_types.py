"""RSGI scope and headers objects (granian/apps/rsgi_types.py)."""

from __future__ import annotations

import pytest

from granian.apps.rsgi_types import Headers, decode_path, split_target


def test_headers_object() -> None:
    h = Headers([(b"host", b"a"), (b"x-a", b"1"), (b"x-a", b"2"), (b"x-lat", b"caf\xe9")])
    assert h.keys() == ["host", "x-a", "x-lat"]
    assert h.values() == ["a", "1", "2", "caf\xe9"]
    assert h.items() == [("host", "a"), ("x-a", "1"), ("x-a", "2"), ("x-lat", "caf\xe9")]
    assert h.get("X-A") == "1"
    assert h.get("missing") is None
    assert h.get("missing", "d") == "d"
    assert h.get_all("x-a") == ["1", "2"]
    assert h.get_all("nope") == []
    assert "HOST" in h and "nope" not in h and 3 not in h
    assert h["x-a"] == "1"
    with pytest.raises(KeyError):
        h["nope"]
    assert list(h) == ["host", "x-a", "x-lat"]
    assert len(h) == 3


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        (b"/", "/"),
        (b"/a%20b", "/a b"),
        (b"/caf%C3%A9", "/caf\u00e9"),
        (b"/%c0", "/\ufffd"),
        (b"/a%2Fb", "/a/b"),
    ],
)
def test_decode_path(raw: bytes, path: str) -> None:
    assert decode_path(raw) == path


def test_split_target() -> None:
    assert split_target(b"/p%20q?x=%20&y") == ("/p q", "x=%20&y")
    assert split_target(b"/p") == ("/p", "")
    assert split_target(b"/p?") == ("/p", "")
