"""The Python API: `Granian(target, **kwargs).serve()` and `granian._granian`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from test_supervisor_support import Server, alive, pids_seen, wait_until, write_app

import granian
from granian import _granian
from granian.constants import Interfaces, ThreadModes
from granian.errors import ConfigurationError
from granian.http import HTTP1Settings
from granian.supervisor.api import Granian


def test_exported_from_package() -> None:
    assert granian.Granian is Granian


def test_keywords_map_onto_settings(tmp_path: Path) -> None:
    server = Granian(
        "mod:app",
        address="::1",
        port=0,
        interface="asgi",
        websockets=False,
        runtime_mode="st",
        log_enabled=False,
        log_access=True,
        http1_settings=HTTP1Settings(keep_alive=False, header_read_timeout=5000),
        workers=2,
        respawn_interval=0.5,
        workers_kill_timeout=3,
        working_dir=str(tmp_path),
        process_name="svc",
    )
    s = server.build_settings()
    assert s.host == "::1" and s.port == 0 and s.workers == 2
    assert s.interface is Interfaces.ASGI
    assert s.ws is False and s.log is False and s.access_log is True
    assert s.threading_mode is ThreadModes.workers
    assert s.http1_keep_alive is False and s.http1_header_read_timeout == 5000
    assert s.respawn_interval == 0.5 and s.workers_kill_timeout == 3
    assert s.process_name == "svc" and s.app == "mod:app"


def test_unknown_keyword_and_bad_value() -> None:
    with pytest.raises(TypeError, match="no_such_option"):
        Granian("mod:app", no_such_option=1)
    with pytest.raises(ConfigurationError, match="workers"):
        Granian("mod:app", workers=0).build_settings()


def test_granian_module_names() -> None:
    assert isinstance(_granian.BUILD_GIL, bool)
    assert issubclass(_granian.RSGIProtocolError, RuntimeError)
    assert issubclass(_granian.RSGIProtocolClosed, RuntimeError)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        mem = _granian.ProcInfoCollector().memory()
        assert mem[os.getpid()] > 0 and mem[child.pid] > 0
        only = _granian.ProcInfoCollector().memory([child.pid])
        assert set(only) == {os.getpid(), child.pid}
    finally:
        child.kill()
        child.wait()


SERVE = textwrap.dedent(
    """
    import sys
    from granian import Granian

    server = Granian("app_sup:app", interface="asgi", address="127.0.0.1", port=0, workers=2,
                     working_dir=sys.argv[1], respawn_interval=0.2,
                     log_dictconfig={"version": 1, "loggers": {"_granian": {
                         "handlers": ["console"], "level": "INFO", "propagate": False}}})

    @server.on_startup
    def started():
        print("HOOK startup", flush=True)

    @server.on_reload
    def reloaded():
        print("HOOK reload", flush=True)

    @server.on_shutdown
    def stopped():
        print("HOOK shutdown", flush=True)

    server.serve()
    print("SERVE RETURNED", flush=True)
    """
)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_stops_on_signal_with_hooks(tmp_path: Path, sig: int) -> None:
    write_app(tmp_path)
    srv = Server([sys.executable, "-c", SERVE, str(tmp_path)], tmp_path)
    try:
        srv.ready(2)
        workers = srv.worker_pids()
        assert len(workers) == 2
        # both serve before the roll: a worker still importing when its SIGTERM comes dies of
        # the default action (supervisor.child), which is not what this test is about
        assert pids_seen(srv.port, 2) == workers
        assert srv.text.index("HOOK startup") < srv.text.index("Spawned worker-1")
        srv.signal(signal.SIGHUP)
        srv.wait_for("HOOK reload", 5)
        assert wait_until(lambda: srv.count(r"stopped \(exit code 0\)") == 2, 15), srv.text
        workers = srv.worker_pids()
        assert pids_seen(srv.port, 2) == workers
        srv.signal(sig)
        assert srv.wait(5) == 0
        assert wait_until(lambda: not any(alive(p) for p in workers), 2)
        srv.wait_for("SERVE RETURNED", 2)
        assert srv.text.index("HOOK shutdown") < srv.text.index("SERVE RETURNED")
    finally:
        srv.stop()


def test_granian_and_embed_map_keywords_the_same_way() -> None:
    from granian._apikw import settings_options
    from granian.http import HTTP1Settings, HTTP2Settings
    from granian.server.embed import Server

    kwargs = {
        "address": "::1",
        "port": 0,
        "interface": "asgi",
        "metrics_enabled": True,
        "log_access": True,
        "websockets": False,
        "backpressure": None,  # None = "the default": left out
        "http1_settings": HTTP1Settings(keep_alive=False),
        "http2_settings": HTTP2Settings(max_frame_size=32768),
    }
    options = settings_options(kwargs)
    assert options["host"] == "::1" and options["metrics"] is True and options["access_log"] is True
    assert options["ws"] is False and "backpressure" not in options
    assert options["http1_keep_alive"] is False and options["http1_buffer_size"] == 417792
    # only the HTTP/2 knobs that differ from the defaults are passed on
    assert options["http2_max_frame_size"] == 32768 and "http2_adaptive_window" not in options
    from granian import Granian

    assert Granian("main:app", **kwargs).options == options
    assert Server(object(), **kwargs).options == options
