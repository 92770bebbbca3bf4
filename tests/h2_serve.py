"""What the HTTP/2 server tests share: the engine parameter (both engines; nghttp2 skipped only
where libnghttp2 cannot be loaded), a `serve` fixture factory that starts real `serve_worker`
subprocesses (tests/helpers.py) and stops them by PID, and `wait_h2` for a worker's SETTINGS."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from helpers import ServerProc, start_server

from granian.http2 import engine_status

NG_OK, NG_WHY = engine_status()
ENGINES = ["nghttp2", "h2"]
APPS = {"asgi": "h2_apps:app", "rsgi": "h2_apps:rsgi_app", "wsgi": "h2_apps:wsgi_app"}
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
MiB = 1 << 20


@pytest.fixture(params=ENGINES)
def engine(request: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    name: str = request.param
    if name == "nghttp2" and not NG_OK:
        pytest.skip(f"libnghttp2 is not loadable here: {NG_WHY}")
    # read by granian.server.h2 in the worker (start_server passes the environment on)
    monkeypatch.setenv("GRANIAN_HTTP2_ENGINE", name)
    return name


def serve_fixture(app: str | None = None, no_traceback: bool = False) -> Callable[..., Any]:
    """A `serve` fixture: `serve(iface="asgi", **options)` starts `app` (default: h2_apps'
    app for `iface`) and waits for HTTP/2; every server is stopped at the test's end, and with
    `no_traceback` its stderr must hold no traceback."""

    @pytest.fixture
    def serve() -> Iterator[Any]:
        started: list[ServerProc] = []

        def run(iface: str = "asgi", **options: Any) -> ServerProc:
            proc = start_server(app or APPS[iface], interface=iface, **options)
            started.append(proc)
            wait_h2(proc)
            return proc

        yield run
        for proc in started:
            _code, err = proc.stop()
            if no_traceback:
                assert "Traceback" not in err, err[-3000:]

    return serve


def wait_h2(srv: ServerProc, timeout: float = 15.0) -> None:
    """Until the worker answers (its port is bound before the app is loaded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", srv.port), timeout=1) as s:
                s.sendall(PREFACE + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
                s.settimeout(1)
                if s.recv(9)[3:4] == b"\x04":  # the server's SETTINGS frame
                    return
        except OSError:
            pass
        if srv.proc.poll() is not None:
            raise RuntimeError(f"server exited: {srv.stop()[1]}")
        time.sleep(0.1)
    raise RuntimeError("server not ready")
