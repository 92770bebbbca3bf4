"""In-process driver for exact per-request instruction counts (no sockets, no wall clock).

Pushes N wrk-style plaintext requests through the real `H1Protocol`, `ServerContext`, `Cycle`,
C parser and interface adapter (the loadtests apps), with a fake transport, on uvloop. Each
request is one `data_received` call, made from a loop callback the fake transport schedules
once the previous response is written (as a socket read would arrive), so ASGI's default mode
really creates and runs one Task per request and WSGI really hops to its blocking-pool thread
and back.

Wall-clock numbers from a shared machine are noise; instruction counts are not. Run it twice
under callgrind with two request counts and divide the difference, which cancels start-up
(imports, loop creation) exactly:

    cd /work/main
    for n in 2000 12000; do
      valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.asgi.$n \\
        .venv/bin/python loadtests/callgrind_driver.py asgi $n 2>&1 | grep -E "Collected"
    done
    # instructions/request = (Ir[12000] - Ir[2000]) / 10000

or let the driver do both runs and the arithmetic:

    .venv/bin/python loadtests/callgrind_driver.py --callgrind asgi   # also: asgi-opt, wsgi, rsgi, asgi-log

`GRANIAN_SRC=/some/dir` measures the `granian` package found there instead of this checkout
(copy the tree and put the old modules in to compare before and after).

Modes: `asgi` (default Task per request), `asgi-opt` (`--opt` eager), `asgi-echo` (a 16 KiB
POST echoed back, as the harness's asgi-echo16k), `rsgi`, `wsgi`; `-health` appended sets a
`--health-path` (the requests still go to `/`); any of
them with `-log` appended also runs the default access log (lines written to /dev/null).
Without `--callgrind` it just serves N requests and checks every response (a smoke test).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import subprocess
import sys
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
# GRANIAN_SRC: measure another copy of the package (e.g. a pristine one, for before/after).
sys.path.insert(0, os.environ.get("GRANIAN_SRC") or os.path.dirname(HERE))
sys.path.insert(0, HERE)

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n\r\n"  # what wrk sends
EXPECT_BODY = b"\r\n\r\nHello, world!"
# `asgi-echo`: what loadtests/post16k.lua sends, a 16 KiB POST to /echo, echoed back whole.
ECHO_BODY = b"x" * 16384
ECHO_REQUEST = (
    b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nContent-Type: application/octet-stream\r\n"
    b"Content-Length: 16384\r\n\r\n" + ECHO_BODY
)


class FakeTransport:
    """The transport surface H1Protocol uses. Every response write schedules the next request
    with `call_soon` (as a socket read callback would arrive on a later loop turn) until `n`
    requests were served, then resolves `done`."""

    def __init__(self, loop: asyncio.AbstractEventLoop, n: int, echo: bool = False) -> None:
        self.loop = loop
        self.left = n
        self.request = ECHO_REQUEST if echo else REQUEST
        self.expect = ECHO_BODY if echo else EXPECT_BODY
        self.done: asyncio.Future[None] = loop.create_future()
        self.proto: Any = None

    def feed(self) -> None:
        self.proto.data_received(self.request)

    def _wrote(self, data: bytes) -> None:
        if not data.endswith(self.expect):
            raise SystemExit(f"bad response: {data!r}")
        self.left -= 1
        if self.left:
            self.loop.call_soon(self.feed)
        else:
            self.done.set_result(None)

    def write(self, data: bytes) -> None:
        self._wrote(data)

    def writelines(self, data: Any) -> None:
        self._wrote(b"".join(data))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        raise AssertionError("connection closed")

    def abort(self) -> None:
        raise AssertionError("connection aborted")

    def is_closing(self) -> bool:
        return False


def _adapter(mode: str) -> Any:
    mode = mode.removesuffix("-health").removesuffix("-log")
    if mode.startswith("asgi"):
        from apps.asgi_app import app as asgi_app

        from granian.apps.asgi import ASGIAdapter

        return ASGIAdapter(asgi_app)
    if mode == "rsgi":
        from apps.rsgi_app import app as rsgi_app

        from granian.apps.rsgi import RSGIAdapter

        return RSGIAdapter(rsgi_app)
    if mode == "wsgi":
        from apps.wsgi_app import app as wsgi_app

        from granian.apps.wsgi import WSGIAdapter

        class _Settings:
            blocking_threads = 1

        return WSGIAdapter(wsgi_app, _Settings())
    raise SystemExit(f"unknown mode {mode!r}")


async def _serve(mode: str, n: int) -> None:
    from granian.server.context import ServerContext

    try:
        # a tree from before the cycle-core refactor (GRANIAN_SRC). Tried first: an editable
        # install's finder would serve this checkout's server/h1 to an older tree.
        from granian.server.protocol import H1Protocol  # type: ignore[import-not-found]
    except ImportError:
        from granian.server.h1 import H1Protocol

    loop = asyncio.get_running_loop()
    adapter = _adapter(mode)
    if not await adapter.startup():
        raise SystemExit("startup failed")
    ctx = ServerContext(loop, adapter.handler, eager=mode.startswith("asgi-opt"))
    if mode.endswith("-log"):
        # the default access log, as `--access-log` installs it, written to /dev/null
        from granian.log import configure_logging, make_access_log
        from granian.server.metrics import make_completion_hook

        configure_logging("info")
        for h in logging.getLogger("granian.access").handlers:
            h.setStream(open(os.devnull, "w"))  # type: ignore[attr-defined]

        class _LogSettings:
            access_log = True
            access_log_fmt = None

        ctx.on_complete = make_completion_hook(make_access_log(_LogSettings()), None)
    if mode.endswith("-health"):
        # --health-path /healthz set (requests go to `/`): what the path check costs them
        from granian.health import Health

        ctx.health_routes = Health(["/healthz"]).routes
    proto = H1Protocol(ctx)
    transport = FakeTransport(loop, n, echo=mode.startswith("asgi-echo"))
    transport.proto = proto
    proto.connection_made(transport)  # type: ignore[arg-type]
    loop.call_soon(transport.feed)
    await transport.done
    # let the connection settle into idle keep-alive, then close it as the client would
    await asyncio.sleep(0)
    proto.connection_lost(None)
    await adapter.shutdown()


def serve(mode: str, n: int) -> None:
    import uvloop

    uvloop.run(_serve(mode, n))


def instructions(script: str, mode: str, n: int) -> int:
    """Instructions callgrind counts for `script mode n` (the whole process)."""
    out = f"/tmp/callgrind.{mode}.{n}.{os.getpid()}"
    cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
    proc = subprocess.run([*cmd, sys.executable, script, mode, str(n)], capture_output=True, text=True)
    if os.path.exists(out):
        os.unlink(out)
    m = re.search(r"Collected : (\d+)", proc.stderr)
    if proc.returncode != 0 or m is None:
        raise SystemExit(proc.stderr[-2000:])
    return int(m.group(1))


def per_request(script: str, mode: str, lo: int = 2000, hi: int = 12000) -> str:
    """Two runs and the difference: start-up (imports, loop creation) cancels exactly."""
    a, b = instructions(script, mode, lo), instructions(script, mode, hi)
    return f"{mode}: {(b - a) / (hi - lo):,.0f} instructions/request"


def main(argv: list[str]) -> None:
    if argv and argv[0] == "--callgrind":
        print(per_request(__file__, argv[1] if len(argv) > 1 else "asgi"))
        return
    mode = argv[0] if argv else "asgi"
    n = int(argv[1]) if len(argv) > 1 else 10000
    serve(mode, n)


if __name__ == "__main__":
    main(sys.argv[1:])
