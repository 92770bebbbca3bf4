"""WSGI test app (tests/test_wsgi.py): one route per PEP 3333 feature."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

CLOSED: list[str] = []
# Two requests meet here only if the blocking pool runs them at the same time.
BARRIER = threading.Barrier(2, timeout=5)


class Closing:
    """An iterable whose close() is recorded (PEP 3333: the server must always call it)."""

    def __init__(self, name: str, items: list[bytes], fail_at: int = -1) -> None:
        self.name = name
        self.items = items
        self.fail_at = fail_at

    def __iter__(self) -> Iterator[bytes]:
        for i, item in enumerate(self.items):
            if i == self.fail_at:
                raise RuntimeError("iteration failed")
            yield item

    def close(self) -> None:
        CLOSED.append(self.name)


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    if path == "/barrier":
        try:
            BARRIER.wait()
        except threading.BrokenBarrierError:
            start_response("500 Internal Server Error", [])
            return [b"alone"]
        start_response("200 OK", [])
        return [b"met"]
    if path == "/sleep":
        time.sleep(float(environ["QUERY_STRING"] or "0.5"))
        start_response("200 OK", [])
        return [b"slept"]
    if path == "/plain":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"Hello, ", b"world!"]
    if path.startswith("/environ"):
        env = {k: v for k, v in environ.items() if isinstance(v, (str, bool, tuple, int))}
        env["input_type"] = type(environ["wsgi.input"]).__name__
        env["errors_is_stderr"] = environ["wsgi.errors"] is sys.stderr
        env["thread"] = threading.current_thread().name
        env["has_file_wrapper"] = callable(environ.get("wsgi.file_wrapper"))
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(env).encode()]
    if path == "/echo":
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]
    if path == "/lines":
        inp = environ["wsgi.input"]
        first = inp.readline()
        limited = inp.readline(3)
        rest = list(inp)
        out = json.dumps(
            {"first": first.decode(), "limited": limited.decode(), "rest": [r.decode() for r in rest]}
        )
        start_response("200 OK", [])
        return [out.encode()]
    if path == "/readn":
        inp = environ["wsgi.input"]
        parts = []
        while True:
            part = inp.read(7)
            if not part:
                break
            parts.append(part)
        start_response("200 OK", [])
        return [
            json.dumps(
                {"n": len(parts), "total": sum(map(len, parts)), "ok": all(len(p) == 7 for p in parts[:-1])}
            ).encode()
        ]
    if path == "/gen":

        def gen() -> Iterator[bytes]:
            for i in range(5):
                yield b"piece%d;" % i

        start_response("200 OK", [("Content-Type", "text/plain")])
        return gen()
    if path == "/lazy_start":

        def lazy() -> Iterator[bytes]:
            start_response("202 Accepted", [("X-Lazy", "1")])
            yield b"late"

        return lazy()
    if path == "/write":
        write = start_response("200 OK", [])
        write(b"written;")
        write(b"again;")
        return [b"returned"]
    if path == "/closing":
        start_response("200 OK", [])
        return Closing("closing", [b"a", b"b", b"c"])
    if path == "/closing_fail":
        start_response("200 OK", [])
        return Closing("closing_fail", [b"a", b"b"], fail_at=1)
    if path == "/closed":
        start_response("200 OK", [])
        return [json.dumps(CLOSED).encode()]
    if path == "/exc_info":
        try:
            raise ValueError("oops")
        except ValueError:
            start_response("200 OK", [("X-First", "1")])
            start_response("500 Internal Server Error", [("X-Second", "1")], sys.exc_info())
        return [b"recovered"]
    if path == "/exc_info_late":
        write = start_response("200 OK", [])
        write(b"sent")
        try:
            raise ValueError("too late")
        except ValueError:
            start_response("500 Internal Server Error", [], sys.exc_info())
        return [b"never"]
    if path == "/raise":
        raise RuntimeError("boom")
    if path == "/file":
        f = open(environ["QUERY_STRING"], "rb")  # noqa: SIM115 - the server closes it
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](f, 8192)
    if path == "/file_offset":
        f = open(environ["QUERY_STRING"], "rb")  # noqa: SIM115 - the server closes it
        f.seek(100)
        start_response("200 OK", [])
        return environ["wsgi.file_wrapper"](f)
    if path == "/empty":
        start_response("204 No Content", [])
        return []
    if path == "/big":
        n = int(environ["QUERY_STRING"])

        def big() -> Iterator[bytes]:
            for _ in range(n):
                yield b"x" * 65536

        start_response("200 OK", [])
        return big()
    start_response("404 Not Found", [])
    return [b"not found"]
