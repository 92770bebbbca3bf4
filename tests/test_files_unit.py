"""Validators, conditional requests, ranges and the MIME table (granian/apps/files.py, mime.py)."""

from __future__ import annotations

import os
import time

import pytest

from granian.apps import files
from granian.apps.mime import guess_type


@pytest.mark.parametrize(
    ("name", "ctype"),
    [
        ("cert.pem", "application/x-x509-ca-cert"),
        ("a/b/c.HTML", "text/html"),
        ("app.js", "text/javascript"),
        ("mod.mjs", "application/javascript"),
        ("style.css", "text/css"),
        ("data.json", "application/json"),
        ("pic.JPG", "image/jpeg"),
        ("icon.svg", "image/svg+xml"),
        ("feed.xml", "text/xml"),
        ("font.woff", "application/font-woff"),
        ("font.woff2", "font/woff2"),
        ("arch.tar.gz", "application/gzip"),
        ("movie.mp4", "video/mp4"),
        ("doc.pdf", "application/pdf"),
        ("prog.wasm", "application/wasm"),
        ("notes.txt", "text/plain"),
    ],
)
def test_mime_matches_mime_guess(name: str, ctype: str) -> None:
    assert guess_type(name) == ctype


@pytest.mark.parametrize("name", ["README", ".png", "dir.png/noext", "x.unknownext", "trailing."])
def test_mime_unknown_gives_none(name: str) -> None:
    assert guess_type(name) is None


def test_etag_changes_with_size_and_mtime(tmp_path: os.PathLike[str]) -> None:
    p = os.path.join(tmp_path, "f")
    with open(p, "wb") as f:
        f.write(b"abc")
    e1 = files.etag_for(os.stat(p))
    with open(p, "ab") as f:
        f.write(b"d")
    e2 = files.etag_for(os.stat(p))
    os.utime(p, ns=(1, 1))
    e3 = files.etag_for(os.stat(p))
    assert len({e1, e2, e3}) == 3
    assert all(e.startswith('"') and e.endswith('"') for e in (e1, e2, e3))


def test_http_date_roundtrip() -> None:
    now = int(time.time())
    s = files.http_date(now)
    assert s.endswith(" GMT")
    assert files.parse_http_date(s) == now
    # the two obsolete formats a recipient must accept (RFC 9110 §5.6.7)
    assert files.parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT") == 784111777
    assert files.parse_http_date("Sun Nov  6 08:49:37 1994") == 784111777
    assert files.parse_http_date("not a date") is None


def test_not_modified_rules() -> None:
    etag, mtime = '"abc-3"', 784111777.5
    date = "Sun, 06 Nov 1994 08:49:37 GMT"
    assert files.is_not_modified(etag, None, etag, mtime)
    assert files.is_not_modified('"x", W/"abc-3"', None, etag, mtime)  # weak comparison
    assert files.is_not_modified("*", None, etag, mtime)
    assert not files.is_not_modified('"other"', None, etag, mtime)
    # If-None-Match wins over If-Modified-Since even when the date alone would give 304
    assert not files.is_not_modified('"other"', date, etag, mtime)
    assert files.is_not_modified(None, date, etag, mtime)
    assert not files.is_not_modified(None, "Sun, 06 Nov 1994 08:49:36 GMT", etag, mtime)
    assert not files.is_not_modified(None, "garbage", etag, mtime)
    assert not files.is_not_modified(None, None, etag, mtime)


def test_preconditions() -> None:
    etag, mtime = '"abc-3"', 100.0
    assert not files.precondition_failed(etag, None, etag, mtime)
    assert files.precondition_failed('W/"abc-3"', None, etag, mtime)  # strong comparison
    assert files.precondition_failed('"nope"', None, etag, mtime)
    assert files.precondition_failed(None, files.http_date(50), etag, mtime)
    assert not files.precondition_failed(None, files.http_date(100), etag, mtime)


def test_if_range() -> None:
    etag, mtime = '"abc-3"', 100.0
    assert files.if_range_allows(None, etag, mtime)
    assert files.if_range_allows(etag, etag, mtime)
    assert not files.if_range_allows('"old"', etag, mtime)
    assert not files.if_range_allows('W/"abc-3"', etag, mtime)
    assert files.if_range_allows(files.http_date(100), etag, mtime)
    assert not files.if_range_allows(files.http_date(99), etag, mtime)


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        ("bytes=0-0", 10, (0, 1)),
        ("bytes=0-9", 10, (0, 10)),
        ("bytes=2-", 10, (2, 10)),
        ("bytes=5-100", 10, (5, 10)),
        ("bytes=-3", 10, (7, 10)),
        ("bytes=-30", 10, (0, 10)),
        ("Bytes = 1-2", 10, (1, 3)),
        ("bytes=10-", 10, files.RANGE_UNSATISFIABLE),
        ("bytes=10-20", 10, files.RANGE_UNSATISFIABLE),
        ("bytes=-0", 10, files.RANGE_UNSATISFIABLE),
        ("bytes=0-", 0, files.RANGE_UNSATISFIABLE),
        ("bytes=5-2", 10, files.RANGE_NONE),
        ("bytes=0-1,3-4", 10, files.RANGE_NONE),
        ("items=0-1", 10, files.RANGE_NONE),
        ("bytes=a-b", 10, files.RANGE_NONE),
        ("bytes=-", 10, files.RANGE_NONE),
        ("bytes", 10, files.RANGE_NONE),
        ("bytes=1", 10, files.RANGE_NONE),
    ],
)
def test_evaluate_range(header: str, size: int, expected: object) -> None:
    assert files.evaluate_range(header, size) == expected
