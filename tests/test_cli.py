"""The `granian` command: generated from the settings model, forwards only the options the user
typed, reports bad values click-style (exit 2) naming the option and its source, and hands the
resolved Settings to `granian.supervisor.exec_master`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

import granian
from granian.cli import Duration, cli
from granian.settings import NOT_IMPLEMENTED, Settings

ROOT = Path(__file__).resolve().parent.parent
CLI_MD = Path("/work/shared/docs/CLI.md")
GRANIAN_BIN = Path(sys.executable).parent / "granian"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("GRANIAN_"):
            monkeypatch.delenv(name)


class FakeSupervisor:
    def __init__(self, code: int = 0, exc: BaseException | None = None) -> None:
        self.code = code
        self.exc = exc
        self.calls: list[Settings] = []

    def run(self, settings: Settings) -> int:
        self.calls.append(settings)
        if self.exc is not None:
            raise self.exc
        return self.code


@pytest.fixture
def supervisor(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSupervisor]:
    # The real master forks workers; the command's contract is only "call exec_master(settings)
    # (which becomes the master, or returns a status) and exit with its code", so a stand-in
    # module records the call.
    fake = FakeSupervisor()
    module = types.ModuleType("granian.supervisor")
    module.exec_master = fake.run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "granian.supervisor", module)
    yield fake


def invoke(args: list[str], env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(cli, args, env=env, prog_name="granian")


def run_bin(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("GRANIAN_")}
    full_env.update(env or {})
    return subprocess.run(
        [str(GRANIAN_BIN), *args], capture_output=True, text=True, env=full_env, timeout=60, cwd=ROOT
    )


# ---------------------------------------------------------------- Duration (API.md)


def test_duration_converts() -> None:
    assert Duration().convert("10m10s", None, None) == 610
    assert Duration().convert("1d2h3m4s", None, None) == 93784
    assert Duration().convert(42, None, None) == 42
    assert Duration(10, 100).convert("1m", None, None) == 60


@pytest.mark.parametrize(
    ("dtype", "value", "message"),
    [
        (Duration(), "10x", "'10x' is not a valid duration"),
        (Duration(max=100), "1000", "'1000' is greater than the maximum allowed value of 100 seconds"),
        (Duration(min=10), "5", "'5' is less than the minimum allowed value of 10 seconds"),
    ],
)
def test_duration_errors(dtype: Duration, value: str, message: str) -> None:
    with pytest.raises(click.BadParameter) as info:
        dtype.convert(value, None, None)
    assert info.value.message == message


# ---------------------------------------------------------------- --help and --version


def _cli_md_rows() -> list[tuple[list[str], list[str], list[str]]]:
    """(flags, env vars or `PREFIX*` wildcards, defaults) for each row of CLI.md's tables."""
    rows = []
    for line in CLI_MD.read_text().splitlines():
        if not line.startswith("| `--"):
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        flags = [f for f in re.findall(r"--[a-z0-9][a-z0-9-]*", cells[0]) if not f.startswith("--no-")]
        if flags == ["--version"]:
            continue
        envs: list[str] = []
        base = ""
        for token in re.findall(r"GRANIAN_[A-Z0-9_]*\*?|(?<![A-Z0-9])_[A-Z0-9_]+", cells[1]):
            if token.startswith("GRANIAN_"):
                envs.append(token)
                base = token
            else:  # `_CRL` after GRANIAN_SSL_CA: same prefix up to the first differing word
                envs.append(_shorthand(base, token))
        defaults = [cells[2]] if len(cells) > 3 else []
        if len(flags) > 1:  # one default per flag, comma-separated
            defaults = cells[2].split(", ")
        defaults = [d.strip().strip("`") for d in defaults]
        rows.append((flags, envs, defaults))
    return rows


def _shorthand(base: str, suffix: str) -> str:
    # CLI.md writes "GRANIAN_SSL_CA, _CRL" for GRANIAN_SSL_CRL: keep the first two words.
    words = base.split("_")
    return "_".join(words[:2]) + suffix


def _help_blocks(text: str) -> dict[str, str]:
    """Flag -> its help text (declaration line plus wrapped continuation lines, whitespace folded)."""
    blocks: dict[str, str] = {}
    names: list[str] = []
    for line in text.splitlines():
        if line.startswith("  -"):
            decl, _, rest = line.strip().partition("  ")
            names = re.findall(r"--[a-z0-9][a-z0-9-]*", decl)
            for name in names:
                blocks[name] = decl + " " + rest
        elif names and line.startswith("   "):
            for name in names:
                blocks[name] += " " + line.strip()
        else:
            names = []
    return {k: " ".join(v.split()) for k, v in blocks.items()}


@pytest.fixture(scope="module")
def help_text() -> str:
    proc = run_bin("--help")
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_help_lists_every_cli_md_option(help_text: str) -> None:
    blocks = _help_blocks(help_text)
    rows = _cli_md_rows()
    assert len(rows) > 50
    checked = 0
    for flags, envs, defaults in rows:
        for i, flag in enumerate(flags):
            assert flag in blocks, f"{flag} missing from --help"
            block = blocks[flag]
            explicit = [e for e in envs if not e.endswith("*")]
            if len(flags) == len(explicit):
                assert f"{explicit[i]}" in block, (flag, explicit[i], block)
            elif len(explicit) == 1 and len(flags) == 1:
                assert explicit[0] in block, (flag, block)
            else:
                prefixes = [e.rstrip("*") for e in envs if e.endswith("*")] or explicit
                assert any(p in block for p in prefixes), (flag, envs, block)
            # "none / disabled" spans several flags of one row without saying which is which
            ambiguous = len(flags) > 1 and len(defaults) == 1 and " / " in defaults[0]
            if defaults and len(defaults) in (1, len(flags)) and not ambiguous:
                expected = defaults[i] if len(defaults) == len(flags) else defaults[0]
                expected = re.sub(r"\s*\(.*\)$", "", expected)  # "none (off)" -> "none"
                assert f"default: {expected}" in block, (flag, expected, block)
            checked += 1
    assert checked > 60


def test_help_shows_aliases_and_booleans(help_text: str) -> None:
    blocks = _help_blocks(help_text)
    assert blocks["--runtime-threads"] == blocks["--threads"]
    assert "[auto|mt|st]" in blocks["--runtime-mode"] and "GRANIAN_RUNTIME_MODE" in blocks["--runtime-mode"]
    assert "--no-ws" in blocks and "--no-http1-keep-alive" in blocks
    assert "[asgi|asginl|rsgi|wsgi]" in blocks["--interface"]


def test_every_settings_field_is_an_option(help_text: str) -> None:
    blocks = _help_blocks(help_text)
    for name in Settings.model_fields:
        if name != "app":
            assert "--" + name.replace("_", "-") in blocks, name


def test_version_from_console_script() -> None:
    proc = run_bin("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"granian {granian.__version__}"


def test_python_dash_m() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "granian", "--version"], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert proc.stdout.strip() == f"granian {granian.__version__}"


# ---------------------------------------------------------------- bad values exit 2


def test_env_zero_workers_exits_2_from_console_script() -> None:
    proc = run_bin("main:app", env={"GRANIAN_WORKERS": "0"})
    assert proc.returncode == 2
    assert "Invalid value for '--workers'" in proc.stderr and "GRANIAN_WORKERS" in proc.stderr


def test_config_unknown_key_exits_2_from_console_script(tmp_path: Path) -> None:
    cfg = tmp_path / "g.toml"
    cfg.write_text("wrkers = 2\n")
    proc = run_bin("--config", str(cfg), "main:app")
    assert proc.returncode == 2
    assert "'wrkers'" in proc.stderr and str(cfg) in proc.stderr


@pytest.mark.parametrize(
    ("args", "env", "fragments"),
    [
        (["--workers", "0", "m:app"], {}, ["Error: Invalid value for '--workers': "]),
        (["--workers", "x", "m:app"], {}, ["Error: Invalid value for '--workers'"]),
        (["--backlog", "127", "m:app"], {}, ["Invalid value for '--backlog'", "128"]),
        (["m:app"], {"GRANIAN_BACKLOG": "5"}, ["'--backlog'", "GRANIAN_BACKLOG"]),
        (["--interface", "cgi", "m:app"], {}, ["'--interface'"]),
        (
            ["--workers-kill-timeout", "10x", "m:app"],
            {},
            ["'--workers-kill-timeout'", "'10x' is not a valid duration"],
        ),
        (["--workers-lifetime", "30", "m:app"], {}, ["'--workers-lifetime'", "minimum allowed value of 60"]),
        (["m:app"], {"GRANIAN_WORKERS_LIFETIME": "30"}, ["'--workers-lifetime'", "GRANIAN_WORKERS_LIFETIME"]),
        (["--host", "example.com", "m:app"], {}, ["'--host'"]),
        (["--process-name", "web", "m:app"], {}, ["--process-name web", "not implemented yet"]),
        (
            ["m:app"],
            {"GRANIAN_PROCESS_NAME": "w"},
            ["--process-name w", "GRANIAN_PROCESS_NAME", "not implemented"],
        ),
        ([], {}, ["Missing argument 'APP'"]),
    ],
)
def test_bad_values_exit_2(
    supervisor: FakeSupervisor,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    env: dict[str, str],
    fragments: list[str],
) -> None:
    monkeypatch.setitem(NOT_IMPLEMENTED, "process_name", None)  # stands for any unbuilt option
    result = invoke(args, env)
    assert result.exit_code == 2, result.output
    for fragment in fragments:
        assert fragment in result.output
    assert supervisor.calls == []


def test_bad_value_in_config_file_exit_2(supervisor: FakeSupervisor, tmp_path: Path) -> None:
    cfg = tmp_path / "g.yaml"
    cfg.write_text("workers: 0\n")
    result = invoke(["--config", str(cfg), "m:app"])
    assert result.exit_code == 2
    assert "'--workers'" in result.output and "key 'workers'" in result.output and str(cfg) in result.output


# ---------------------------------------------------------------- settings reach the supervisor


def test_only_given_options_are_forwarded(supervisor: FakeSupervisor, tmp_path: Path) -> None:
    # Env and file values survive because the command does not pass click's defaults to load().
    cfg = tmp_path / "g.toml"
    cfg.write_text('interface = "asgi"\nbacklog = 2048\nhttp1_keep_alive = false\n')
    result = invoke(["--config", str(cfg), "--port", "9100", "m:app"], {"GRANIAN_WORKERS": "4"})
    assert result.exit_code == 0, result.output
    (s,) = supervisor.calls
    assert (s.app, s.port, s.workers, s.interface, s.backlog) == ("m:app", 9100, 4, "asgi", 2048)
    assert (s.http1_keep_alive, s.backpressure, s.ws, s.log) == (False, 512, True, True)


def test_cli_beats_env_and_boolean_pairs(supervisor: FakeSupervisor) -> None:
    env = {"GRANIAN_WORKERS": "4", "GRANIAN_WEBSOCKETS": "0", "GRANIAN_LOG_ACCESS_ENABLED": "1"}
    result = invoke(["--workers", "2", "--ws", "--no-access-log", "--opt", "m:app"], env)
    assert result.exit_code == 0, result.output
    (s,) = supervisor.calls
    assert (s.workers, s.ws, s.access_log, s.opt) == (2, True, False, True)


def test_aliases_and_repeatable_options(supervisor: FakeSupervisor, tmp_path: Path) -> None:
    result = invoke(
        [
            "--runtime-threads", "1", "--runtime-mode", "st", "--task-impl", "rust",
            "--static-path-route", "/a", "--static-path-route", "/b",
            "--blocking-threads-idle-timeout", "1m", "--uds", str(tmp_path / "s"), "--uds-permissions", "660",
            "m:app",
        ]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (s,) = supervisor.calls
    assert (s.threads, s.threading_mode, s.opt) == (1, "workers", True)
    assert (s.static_path_route, s.blocking_threads_idle_timeout, s.uds_permissions) == (
        ("/a", "/b"),
        60,
        0o660,
    )


def test_exit_code_is_the_supervisors(supervisor: FakeSupervisor) -> None:
    supervisor.code = 3
    assert invoke(["m:app"]).exit_code == 3


def test_app_load_error_exits_1(supervisor: FakeSupervisor) -> None:
    from granian.errors import AppLoadError

    supervisor.exc = AppLoadError("could not import module 'nope'")
    result = invoke(["nope:app"])
    assert result.exit_code == 1 and "could not import module 'nope'" in result.output


# ---------------------------------------------------------------- end to end through the real script


def test_console_script_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    import selectors
    import signal
    import time
    import urllib.request

    (tmp_path / "e2e_app.py").write_text(
        "async def app(scope, receive, send):\n"
        "    if scope['type'] != 'http':\n"
        "        return\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "    await send({'type': 'http.response.body', 'body': b'cli ok'})\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRANIAN_")}
    env["GRANIAN_INTERFACE"] = "asginl"  # from the environment: proves env reaches the server
    proc = subprocess.Popen(
        [str(GRANIAN_BIN), "--port", "0", "--working-dir", str(tmp_path), "e2e_app:app"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        assert proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + 20
        port = None
        seen = []
        while port is None and time.monotonic() < deadline and proc.poll() is None:
            if sel.select(timeout=0.5):
                line = proc.stdout.readline()
                seen.append(line)
                m = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", line)
                if m:
                    port = int(m.group(1))
        assert port, "".join(seen)
        body = b""
        while not body and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
                    body = resp.read()
            except OSError:
                time.sleep(0.1)  # the worker may still be starting
        assert body == b"cli ok"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
        if proc.stdout is not None:
            proc.stdout.close()
