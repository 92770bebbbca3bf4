"""The supervisor's small modules, without forking: binding, pid file, env files, exit statuses."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from granian.errors import ConfigurationError
from granian.supervisor import envfiles, pidfile
from granian.supervisor.bind import BindError, bind_tcp, bind_uds, unlink_uds
from granian.supervisor.master import describe_status


def test_port_zero_resolves_once_and_accepts() -> None:
    lst = bind_tcp("127.0.0.1", 0, 128)
    try:
        port = lst.sock.getsockname()[1]
        assert port != 0 and lst.display == f"http://127.0.0.1:{port}"
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            conn, _ = lst.sock.accept()
            conn.close()
    finally:
        lst.close()


def test_ipv6_display_is_bracketed() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        lst = bind_tcp("::1", 0, 128)
    except BindError:
        pytest.skip("::1 not configured")
    try:
        assert lst.display == f"http://[::1]:{lst.sock.getsockname()[1]}"
        assert lst.sock.family == socket.AF_INET6
    finally:
        lst.close()


def test_busy_port_is_an_error_naming_the_address() -> None:
    first = bind_tcp("127.0.0.1", 0, 128)
    try:
        port = first.sock.getsockname()[1]
        with pytest.raises(BindError, match=rf"http://127\.0\.0\.1:{port}"):
            bind_tcp("127.0.0.1", port, 128)
    finally:
        first.close()


def test_uds_stale_file_replaced_live_one_refused(tmp_path: Path) -> None:
    path = str(tmp_path / "a.sock")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()  # the file stays, nobody listens: a crashed server's leftover
    lst = bind_uds(path, 128, 0o660)
    try:
        assert (os.stat(path).st_mode & 0o777) == 0o660
        with pytest.raises(BindError, match="another server is listening"):
            bind_uds(path, 128)
    finally:
        lst.close()
        unlink_uds(lst)
    assert not os.path.exists(path)
    (tmp_path / "plain").write_text("x")
    with pytest.raises(BindError, match="not a socket"):
        bind_uds(str(tmp_path / "plain"), 128)


def test_pidfile(tmp_path: Path) -> None:
    path = str(tmp_path / "p.pid")
    pidfile.create(path)
    assert Path(path).read_text().strip() == str(os.getpid())
    pidfile.remove(path)
    assert not os.path.exists(path)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        Path(path).write_text(f"{live.pid}\n")
        with pytest.raises(ConfigurationError, match=f"PID {live.pid}"):
            pidfile.create(path)
        pidfile.remove(path)  # not ours: left alone
        assert Path(path).read_text().strip() == str(live.pid)
    finally:
        live.kill()
        live.wait()
    Path(path).write_text("garbage")
    with pytest.raises(ConfigurationError, match="does not hold a PID"):
        pidfile.create(path)


def test_envfiles_merge_in_order_and_keep_real_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = tmp_path / "a.env"
    b = tmp_path / "b.env"
    a.write_text('ONE=1\nTWO=from-a\nexport QUOTED="x y"\nBARE\n')
    b.write_text("TWO=from-b\nSUP_REAL=file\n")
    values = envfiles.read([str(a), str(b)])
    assert values == {"ONE": "1", "TWO": "from-b", "QUOTED": "x y", "SUP_REAL": "file"}
    # Recorded as absent first, so monkeypatch's undo removes what apply() sets.
    for key in ("ONE", "TWO", "QUOTED"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("SUP_REAL", "real")
    envfiles.apply(values)
    assert os.environ["ONE"] == "1" and os.environ["SUP_REAL"] == "real"
    with pytest.raises(ConfigurationError, match="missing.env"):
        envfiles.read([str(tmp_path / "missing.env")])


def test_describe_status() -> None:
    p = subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(7)"])
    _, status = os.waitpid(p.pid, 0)
    p.returncode = 7
    assert describe_status(status) == "exit code 7"
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    os.kill(p.pid, signal.SIGKILL)
    _, status = os.waitpid(p.pid, 0)
    p.returncode = -9
    assert describe_status(status) == "signal SIGKILL"


def test_reload_filter_extends_watchfiles_defaults(tmp_path: Path) -> None:
    from watchfiles import Change

    from granian.supervisor.reload import build_filter

    flt = build_filter(["skipdir"], [r".*\.tmp$"], [str(tmp_path / "private")])

    def watched(rel: str) -> bool:
        return bool(flt(Change.modified, str(tmp_path / rel)))

    assert watched("app.py")
    assert not watched("skipdir/app.py")  # --reload-ignore-dirs
    assert not watched("notes.tmp")  # --reload-ignore-patterns
    assert not watched("private/app.py")  # --reload-ignore-paths
    assert not watched("__pycache__/app.cpython-311.pyc")  # watchfiles' own defaults still apply
