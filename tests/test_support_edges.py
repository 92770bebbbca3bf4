"""The error and fallback paths of the support modules (supervisor helpers, worker/master
entry points, event-loop choice, proxy middleware, access log, blocking pool, WSGI environ,
static paths, loader): each case drives the real function and checks what it does.

Anything that would signal, exit or close descriptors runs in a child interpreter."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from granian import constants
from granian.access_log import AccessHandler, AccessLog, check_access_format, make_access_log
from granian.apps.blocking import BlockingPool
from granian.apps.loader import load_target
from granian.apps.static_paths import NOT_FOUND, StaticPaths
from granian.apps.wsgi_io import EnvironBuilder, WSGIInput
from granian.constants import SERVER_LOGGER
from granian.errors import ConfigurationError
from granian.server.eager import start_eager
from granian.server.loop import new_event_loop
from granian.supervisor import api, bind, child, masterproc, pidfile, procinfo, reload
from granian.supervisor.signals import SignalQueue
from granian.utils.proxies import TrustedHosts, wrap_asgi_with_proxy_headers

ROOT = Path(__file__).resolve().parent.parent


def run_child(source: str, timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
    """Run `source` in a fresh interpreter of this venv, from the repository root."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(source)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class Records:
    def __init__(self) -> None:
        self.items: list[logging.LogRecord] = []
        self.handler = logging.Handler()
        self.handler.emit = self.items.append  # type: ignore[method-assign]

    def messages(self) -> list[str]:
        return [r.getMessage() for r in self.items]


@pytest.fixture
def server_log() -> Any:
    rec = Records()
    lg = logging.getLogger(SERVER_LOGGER)
    old = lg.level
    lg.setLevel(logging.DEBUG)
    lg.addHandler(rec.handler)
    try:
        yield rec
    finally:
        lg.removeHandler(rec.handler)
        lg.setLevel(old)


# ------------------------------------------------------------------ supervisor helpers


def test_procinfo_reports_a_gone_process_as_absent() -> None:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    assert procinfo.rss(p.pid) is None
    got = procinfo.memory([p.pid])
    assert list(got) == [os.getpid()] and got[os.getpid()] > 0
    assert procinfo.pid_exists(os.getpid()) and not procinfo.pid_exists(p.pid)
    # kill(2): 0 and negative numbers name process groups, never one process.
    assert not procinfo.pid_exists(0) and not procinfo.pid_exists(-1)


def test_pid_exists_counts_a_process_we_may_not_signal(monkeypatch: pytest.MonkeyPatch) -> None:
    def eperm(pid: int, sig: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(procinfo.os, "kill", eperm)
    assert procinfo.pid_exists(12345) is True


def test_pidfile_refuses_an_unreadable_file_and_leaves_foreign_ones(tmp_path: Path) -> None:
    path = tmp_path / "app.pid"
    path.write_bytes(b"\xff\xfe not ascii")
    with pytest.raises(ConfigurationError, match="cannot read it"):
        pidfile.create(str(path))
    # remove() only deletes our own PID file: a foreign or unreadable one stays.
    pidfile.remove(str(path))
    assert path.exists()
    path.write_text("1\n")
    pidfile.remove(str(path))
    assert path.read_text() == "1\n"
    pidfile.create(str(tmp_path / "ours.pid"))
    pidfile.remove(str(tmp_path / "ours.pid"))
    assert not (tmp_path / "ours.pid").exists()


def test_reload_filter_class_and_missing_watchfiles(monkeypatch: pytest.MonkeyPatch) -> None:
    class Everything:
        def __call__(self, change: object, path: str) -> bool:
            return True

    assert isinstance(reload.build_filter([], [], [], Everything), Everything)
    reload.Reloader.check_available()  # installed in the test extra
    monkeypatch.setitem(sys.modules, "watchfiles", None)  # import now raises ImportError
    with pytest.raises(ConfigurationError, match=r"pip install 'granian\[reload\]'"):
        reload.Reloader.check_available()


def test_reloader_logs_a_watcher_that_stops(tmp_path: Path, server_log: Records) -> None:
    missing = tmp_path / "not-there"
    r = reload.Reloader([str(missing)], None, 50, lambda: None)
    r.start()
    r.stop()
    assert "the file watcher stopped; reload is off from now on" in server_log.messages()
    assert r.take() == set()


def test_signal_queue_wait_returns_at_once_with_a_queued_signal() -> None:
    import signal

    q = SignalQueue()
    q.install()
    try:
        signal.raise_signal(signal.SIGHUP)
        q.wait(30.0)  # a signal is queued: no sleep at all
        assert q.pop() == signal.SIGHUP and q.pop() is None
        q.wake()
        q.wait(30.0)  # the self-pipe wakes it
        for _ in range(70000):  # far past the pipe's capacity: a full pipe is not an error
            q.wake()
        q.wait(0)
    finally:
        q.uninstall()
        q.close()


def test_bind_uds_errors_name_the_path(tmp_path: Path) -> None:
    where = str(tmp_path / "no-such-dir" / "app.sock")
    with pytest.raises(bind.BindError, match=r"cannot listen at unix:.*app\.sock"):
        bind.bind_uds(where, 16)
    listener = bind.bind_uds(str(tmp_path / "app.sock"), 16, 0o600)
    try:
        assert (os.stat(tmp_path / "app.sock").st_mode & 0o777) == 0o600
    finally:
        listener.close()
    bind.unlink_uds(listener)
    bind.unlink_uds(listener)  # already gone: not an error
    assert not (tmp_path / "app.sock").exists()


def test_snapshot_file_without_memfd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "memfd_create", raising=False)
    with child.snapshot_file() as f:
        f.write(b"abc")
        f.seek(0)
        assert f.read() == b"abc"


def test_close_all_but_without_proc_closes_every_other_descriptor() -> None:
    res = run_child(
        """
        import os
        from granian.supervisor import child
        fds = [os.open(os.devnull, os.O_RDONLY) for _ in range(4)]
        keep = fds[1]
        def no_proc(path):
            raise OSError("no /proc")
        os.listdir = no_proc
        child._close_all_but([keep])
        def is_open(fd):
            try:
                os.fstat(fd)
                return True
            except OSError:
                return False
        print([is_open(fd) for fd in fds], is_open(0), is_open(2))
        """
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.split("\n")[0] == "[False, True, False, False] True True"


def test_comm_round_trip() -> None:
    old = masterproc._read_comm()
    assert old
    try:
        masterproc._write_comm("granian-test")
        assert masterproc._read_comm() == "granian-test"
        masterproc._write_comm(None)  # nothing to restore: left as it is
        assert masterproc._read_comm() == "granian-test"
    finally:
        masterproc._write_comm(old)


# ------------------------------------------------------------------ process entry points

_WORKER_MAIN = """
import io, os, pickle, socket, sys
import granian.server.worker as w
def fake(settings, sock, worker_id):
    print("serving", worker_id, os.environ.get("EDGE_ENV"), sys.argv, flush=True)
    {action}
w.serve_worker = fake
r, wr = os.pipe()
s = socket.socket()
me = {{"worker_id": 3, "master_pid": {master_pid}, "armed": True, "death_fd": r,
       "report_fd": None, "sock_fd": s.fileno()}}
shared = {{"settings": {{"workers_kill_timeout": None, "process_name": None}},
           "env": {{"EDGE_ENV": "from-env-file"}}, "argv": ["granian", "app:app"]}}
from granian.supervisor.workerproc import main
main(io.BytesIO(pickle.dumps(me) + pickle.dumps(shared)))
"""


@pytest.mark.parametrize(
    ("action", "code", "logged"),
    [
        ("return 0", 0, None),
        ("raise SystemExit(7)", 7, None),
        ("raise SystemExit('bye')", 1, None),
        ("raise KeyboardInterrupt", 0, None),
        ("raise ZeroDivisionError('worker bug')", 1, "worker-3 crashed"),
    ],
)
def test_worker_main_exit_statuses(action: str, code: int, logged: str | None) -> None:
    res = run_child(_WORKER_MAIN.format(action=action, master_pid="os.getppid()"))
    assert res.returncode == code, res.stderr
    assert res.stdout == "serving 3 from-env-file ['granian', 'app:app']\n"
    if logged is not None:
        assert logged in res.stderr and "ZeroDivisionError: worker bug" in res.stderr


def test_worker_main_exits_when_the_master_is_already_gone() -> None:
    # The exec'd worker finds another parent than the master that forked it: it must not serve.
    res = run_child(_WORKER_MAIN.format(action="return 0", master_pid="1"))
    assert res.returncode == 1 and res.stdout == ""


def test_watch_master_stops_the_worker_then_exits_after_the_grace() -> None:
    res = run_child(
        """
        import os, signal, threading, time
        from granian.supervisor.workerproc import _watch_master
        signal.signal(signal.SIGTERM, lambda *a: print("SIGTERM", flush=True))
        r, w = os.pipe()
        threading.Thread(target=_watch_master, args=(r, False, 0.2), daemon=True).start()
        os.close(w)  # the master's end: EOF
        while True:
            time.sleep(0.05)
        """
    )
    assert res.returncode == 1
    assert res.stdout == "SIGTERM\n"
    assert "master is gone and the worker did not stop within 0.2s; exiting" in res.stderr


def test_master_main_reports_a_crash() -> None:
    res = run_child(
        """
        import io, pickle
        import granian.supervisor as sup
        def boom(settings, env=None):
            raise RuntimeError("master bug")
        sup.run = boom
        from granian.supervisor.masterproc import main
        main(io.BytesIO(pickle.dumps({"argv": ["granian"], "comm": None, "settings": {}, "env": {}})))
        """
    )
    assert res.returncode == 1
    assert "the master failed" in res.stderr and "RuntimeError: master bug" in res.stderr


def test_run_refuses_a_bad_log_config_and_a_missing_setproctitle(tmp_path: Path) -> None:
    bad = tmp_path / "log.json"
    bad.write_text("[1, 2]")
    res = run_child(
        f"""
        import sys
        from granian.settings import Settings
        from granian.supervisor import Hooks, run
        from granian.supervisor.master import Hooks as MasterHooks
        assert Hooks is MasterHooks
        print(run(Settings(app="x:app", log_config={str(bad)!r})))
        sys.modules["setproctitle"] = None
        print(run(Settings(app="x:app", process_name="edge")))
        """
    )
    assert res.returncode == 0, res.stderr
    # The statuses (the log lines go to stdout too, configured by the first run).
    assert [line for line in res.stdout.splitlines() if line.isdigit()] == ["1", "1"]
    assert "expected a JSON object" in res.stdout + res.stderr
    assert "--process-name needs the setproctitle package" in res.stdout + res.stderr


def test_api_log_dictconfig_travels_as_a_file_and_a_failed_run_exits(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str | None, str | None]] = []

    def fake_run(settings: Any, hooks: Any) -> int:
        path = settings.log_config
        seen.append((str(path) if path else None, Path(path).read_text() if path else None))
        return 3

    monkeypatch.setattr(api, "run", fake_run)
    server = api.Granian("x:app", log_dictconfig={"version": 1})
    with pytest.raises(SystemExit) as exc:
        server.serve()
    assert exc.value.code == 3 and server.exit_code == 3
    ((path, text),) = seen
    assert text == '{"version": 1}' and path is not None and not os.path.exists(path)

    monkeypatch.setattr(api, "run", lambda settings, hooks: seen.append((settings.log_config, None)) or 0)
    api.Granian("x:app").serve()
    assert seen[-1] == (None, None)

    with pytest.raises(ConfigurationError, match="log_dictconfig must be JSON-serialisable"):
        api.Granian("x:app", log_dictconfig={"version": 1, "x": object()}).serve()


# ------------------------------------------------------------------ worker-side helpers


def test_event_loop_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError, match="unknown event loop 'tokio'"):
        new_event_loop("tokio")
    monkeypatch.setitem(sys.modules, "uvloop", None)
    with pytest.raises(ConfigurationError, match="uvloop is not installed"):
        new_event_loop("uvloop")
    loop = new_event_loop("auto")  # falls back to asyncio's own loop
    try:
        assert type(loop).__module__.startswith("asyncio")
    finally:
        loop.close()


def test_start_eager_runs_the_coroutine_to_completion() -> None:
    steps: list[str] = []

    async def handler() -> None:
        steps.append("first")
        await asyncio.sleep(0)
        steps.append("second")

    async def main() -> None:
        start_eager(asyncio.get_running_loop(), handler())
        for _ in range(5):
            await asyncio.sleep(0)

    asyncio.run(main())
    assert steps == ["first", "second"]


def test_build_gil_without_abiflags_asks_sysconfig(monkeypatch: pytest.MonkeyPatch) -> None:
    import sysconfig

    expected = not bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    assert constants._build_gil() is expected
    monkeypatch.delattr(sys, "abiflags", raising=False)
    assert constants._build_gil() is expected


def test_trusted_hosts_literals_wildcard_and_chains() -> None:
    th = TrustedHosts(["10.0.0.0/8, unix:/run/proxy.sock", ""])
    assert "unix:/run/proxy.sock" in th and "10.1.2.3" in th
    assert "11.0.0.1" not in th and "not-an-ip" not in th and None not in th
    assert th.client_from_chain(" , ") is None
    # Every hop a trusted proxy: the leftmost is the client.
    assert th.client_from_chain("10.0.0.1, 10.0.0.2") == "10.0.0.1"
    anyone = TrustedHosts("*")
    assert "203.0.113.9" in anyone and anyone.client_from_chain("1.2.3.4, 10.0.0.1") == "1.2.3.4"


def test_proxy_middleware_leaves_untrusted_peers_alone() -> None:
    got: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        got.append(scope)

    wrapped = wrap_asgi_with_proxy_headers(app, "10.0.0.1")
    headers = [(b"x-forwarded-for", b"1.2.3.4"), (b"x-forwarded-proto", b"https")]
    untrusted = {"type": "http", "client": ("192.0.2.1", 5000), "scheme": "http", "headers": headers}
    asyncio.run(wrapped(untrusted, None, None))
    ws = {"type": "websocket", "client": ("10.0.0.1", 5000), "scheme": "ws", "headers": headers}
    asyncio.run(wrapped(ws, None, None))
    assert got[0] is untrusted
    assert got[1]["client"] == ("1.2.3.4", 0) and got[1]["scheme"] == "wss"


class _Req:
    method = "GET"
    raw_path = b"/x"
    query = b""
    headers: list[tuple[bytes, bytes]] = []
    scheme = "http"
    client = ("127.0.0.1", 1)
    status = 200
    bytes_sent = 0
    t0 = 0.0

    def __init__(self, version: str) -> None:
        self.http_version = version


def test_access_log_edges(server_log: Records) -> None:
    buf = io.StringIO()
    lg = logging.getLogger("test.edges.access")
    lg.propagate = False
    h = AccessHandler(buf)
    h.setFormatter(logging.Formatter("%(message)s"))
    lg.handlers[:] = [h]
    lg.setLevel(logging.INFO)
    try:
        alog = AccessLog("%(protocol)s %(status)d", "test.edges.access")
        alog.log(_Req("3"), 0.0)  # a version with no cached name
        assert buf.getvalue() == "HTTP/3 200\n"
        h.write_lines([])
        assert buf.getvalue() == "HTTP/3 200\n"
        buf.close()
        h.write_lines(["after close"])  # a broken stream must not raise into the worker
    finally:
        lg.handlers[:] = []
    with pytest.raises(ValueError, match="not a %-style format"):
        check_access_format("%(status)d %s")

    class S:
        access_log = True
        access_log_fmt = "%(status)d %(nope)s"

    assert make_access_log(S()) is not None
    assert "Access log format uses unknown atoms (printed as '-'): nope" in server_log.messages()


def test_blocking_pool_refuses_calls_after_shutdown_and_isolates_bad_callbacks() -> None:
    pool = BlockingPool(2, idle_timeout=5.0)
    contexts: list[dict[str, Any]] = []

    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, ctx: contexts.append(ctx))
        results: list[Any] = []
        done = loop.create_future()

        def bad(result: Any, exc: BaseException | None) -> None:
            raise ValueError("callback bug")

        def good(result: Any, exc: BaseException | None) -> None:
            results.append(result)
            if len(results) == 2:
                done.set_result(None)

        pool.call(loop, bad, int, "1")
        pool.call(loop, good, int, "2")
        pool.call(loop, good, int, "3")
        await asyncio.wait_for(done, 10)
        return results

    try:
        assert asyncio.run(main()) == [2, 3]
    finally:
        pool.shutdown()
    assert [c["message"] for c in contexts] == ["blocking pool completion callback failed"]
    assert isinstance(contexts[0]["exception"], ValueError)
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(RuntimeError, match="shut down"):
            pool.call(loop, lambda r, e: None, int, "4")
    finally:
        loop.close()


def _environ(host: bytes | None, server: tuple[str, int] | None, scheme: str = "http") -> dict[str, Any]:
    headers = [(b"host", host)] if host is not None else []
    return EnvironBuilder(scheme, "", False).build(
        "GET", b"/", b"", "1.1", headers, server, None, WSGIInput(lambda: b"", complete=True)
    )


def test_wsgi_server_name_and_port_without_a_tcp_server() -> None:
    # A Unix socket has no port: SERVER_NAME/PORT come from Host, else the scheme's default.
    env = _environ(b"[::1]:8443", None)
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("[::1]", "8443")
    env = _environ(b"[::1]", None, "https")
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("[::1]", "443")
    env = _environ(None, None, "https")
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("localhost", "443")
    env = _environ(None, ("10.0.0.5", 8123))
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("10.0.0.5", "8123")


def test_static_index_file_may_not_point_out_of_the_mount(tmp_path: Path) -> None:
    mount = tmp_path / "static"
    (mount / "docs").mkdir(parents=True)
    secret = tmp_path / "secret.txt"
    secret.write_text("no")
    (mount / "docs" / "index.html").symlink_to(secret)
    (mount / "ok").mkdir()
    (mount / "ok" / "index.html").write_text("yes")
    paths = StaticPaths(["/static"], [str(mount)], "index.html")
    assert paths.match(b"/static/docs") == NOT_FOUND
    assert paths.match(b"/static/ok") == os.path.realpath(mount / "ok" / "index.html")


def test_keyboard_interrupt_while_importing_the_app_is_not_an_app_error(tmp_path: Path) -> None:
    (tmp_path / "ctrlc_app.py").write_text("raise KeyboardInterrupt\n")
    sys.path.insert(0, str(tmp_path))
    try:
        with pytest.raises(KeyboardInterrupt):
            load_target("ctrlc_app:app")
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("ctrlc_app", None)
