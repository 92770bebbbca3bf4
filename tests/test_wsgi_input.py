"""`wsgi.input` and the environ builder (granian/apps/wsgi_io.py), against io.BytesIO as oracle."""

from __future__ import annotations

import io
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from granian.apps.wsgi_io import FileWrapper, WSGIInput, build_environ


def _chunked_input(data: bytes, cuts: list[int]) -> WSGIInput:
    pieces: list[bytes] = []
    last = 0
    for c in sorted({min(c, len(data)) for c in cuts}):
        pieces.append(data[last:c])
        last = c
    pieces.append(data[last:])
    pieces = [p for p in pieces if p]
    it = iter(pieces)
    return WSGIInput(lambda: next(it, b""))


ops = st.lists(
    st.one_of(
        st.tuples(st.just("read"), st.integers(-1, 12)),
        st.tuples(st.just("readline"), st.integers(-1, 12)),
        st.tuples(st.just("readlines"), st.just(-1)),
        st.tuples(st.just("next"), st.just(0)),
    ),
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(
    data=st.binary(max_size=60).map(lambda b: b.replace(b"\x01", b"\n")),
    cuts=st.lists(st.integers(0, 60), max_size=8),
    script=ops,
)
def test_input_matches_bytesio(data: bytes, cuts: list[int], script: list[tuple[str, int]]) -> None:
    ref = io.BytesIO(data)
    inp = _chunked_input(data, cuts)
    for op, arg in script:
        if op == "read":
            assert inp.read(arg) == ref.read(arg)
        elif op == "readline":
            assert inp.readline(arg) == ref.readline(arg)
        elif op == "readlines":
            assert inp.readlines() == ref.readlines()
        else:
            assert next(inp, None) == next(ref, None)
    # nothing lost between calls: the rest is exactly what remains
    assert inp.read() == ref.read()


def test_input_iteration_keeps_newlines() -> None:
    inp = _chunked_input(b"a\nbb\r\nccc", [1, 3, 5])
    assert list(inp) == [b"a\n", b"bb\r\n", b"ccc"]
    assert inp.read() == b""


def test_input_size_none_and_readlines_hint() -> None:
    inp = _chunked_input(b"x\ny\nz\n", [2])
    assert inp.readline(None) == b"x\n"
    assert inp.readlines(1) == [b"y\n"]
    assert inp.read(None) == b"z\n"


def test_input_pulls_lazily() -> None:
    pulled: list[int] = []
    chunks = [b"abc", b"def", b""]

    def pull() -> bytes:
        pulled.append(1)
        return chunks.pop(0)

    inp = WSGIInput(pull)
    assert inp.read(2) == b"ab"
    assert len(pulled) == 1  # backpressure: no chunk is read before the app asks for it
    assert inp.read(2) == b"cd"
    assert len(pulled) == 2


def test_file_wrapper_iterates_blocks() -> None:
    f = io.BytesIO(b"0123456789")
    w = FileWrapper(f, 4)
    assert list(w) == [b"0123", b"4567", b"89"]
    w.close()
    assert f.closed


def _env(target: bytes, headers: list[tuple[bytes, bytes]], prefix: str = "") -> dict[str, object]:
    return build_environ(
        "POST",
        target,
        "1.1",
        headers,
        ("127.0.0.1", 8000),
        ("10.0.0.9", 51234),
        "http",
        prefix,
        WSGIInput(lambda: b""),
        False,
    )


def test_environ_cgi_keys() -> None:
    env = _env(
        b"/caf%C3%A9/x%2Fy?a=%20b&c",
        [
            (b"host", b"example.com:8080"),
            (b"content-type", b"text/plain"),
            (b"content-length", b"3"),
            (b"x-multi", b"1"),
            (b"x-multi", b"2"),
            (b"x_sneaky", b"no"),
        ],
    )
    assert env["REQUEST_METHOD"] == "POST"
    assert env["SCRIPT_NAME"] == ""
    # percent-decoded, then each octet one latin-1 code point (PEP 3333 native strings)
    assert env["PATH_INFO"] == "/caf\xc3\xa9/x/y"
    assert env["QUERY_STRING"] == "a=%20b&c"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    # the port the request came in on (RFC 3875 §4.1.15), not Host's
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("example.com", "8000")
    assert (env["REMOTE_ADDR"], env["REMOTE_PORT"]) == ("10.0.0.9", "51234")
    assert env["CONTENT_TYPE"] == "text/plain"
    assert env["CONTENT_LENGTH"] == "3"
    assert "HTTP_CONTENT_TYPE" not in env and "HTTP_CONTENT_LENGTH" not in env
    assert env["HTTP_X_MULTI"] == "1,2"
    assert "HTTP_X_SNEAKY" not in env
    assert env["HTTP_HOST"] == "example.com:8080"
    assert env["wsgi.version"] == (1, 0)
    assert env["wsgi.url_scheme"] == "http"
    assert env["wsgi.errors"] is sys.stderr
    assert env["wsgi.multithread"] is True
    assert env["wsgi.run_once"] is False
    assert env["wsgi.file_wrapper"] is FileWrapper


def test_environ_prefix_and_host_defaults() -> None:
    env = _env(b"/api/items", [(b"host", b"[::1]")], prefix="/api")
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/api", "/items")
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("[::1]", "8000")
    env = _env(b"/apix", [], prefix="/api")
    assert env["PATH_INFO"] == "/apix"
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("127.0.0.1", "8000")
    assert "CONTENT_TYPE" not in env
    env = _env(b"/api", [(b"host", b"h:1")], prefix="/api")
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/api", "")


def test_builder_reuse_does_not_leak_between_requests() -> None:
    from granian.apps.wsgi_io import EnvironBuilder

    b = EnvironBuilder("https", "", True)
    inp = WSGIInput(lambda: b"")
    e1 = b.build("GET", b"/a", b"x=1", "1.1", [(b"host", b"h1"), (b"x-one", b"1")], None, None, inp)
    e2 = b.build("POST", b"/b", b"", "1.0", [(b"host", b"h2:99"), (b"content-type", b"t")], None, None, inp)
    assert e1["HTTP_X_ONE"] == "1" and "HTTP_X_ONE" not in e2
    assert "CONTENT_TYPE" not in e1 and e2["CONTENT_TYPE"] == "t"
    # no server address (a Unix socket): the port comes from Host, or the scheme's default
    assert (e1["SERVER_NAME"], e1["SERVER_PORT"]) == ("h1", "443")  # https default port
    assert (e2["SERVER_NAME"], e2["SERVER_PORT"]) == ("h2", "99")
    assert (e1["PATH_INFO"], e2["PATH_INFO"], e2["SERVER_PROTOCOL"]) == ("/a", "/b", "HTTP/1.0")
    assert e1["wsgi.multiprocess"] is True and e1["wsgi.url_scheme"] == "https"
    assert (e1["REMOTE_ADDR"], e1["REMOTE_PORT"]) == ("", "")
