"""Server logging setup: levels, --no-log, --log-config merging and errors.

`configure` rewires process-wide logging, so the end-to-end cases run it in a child Python and
read what it prints; the pure pieces (document building, file loading) are tested in-process."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from granian.errors import ConfigurationError
from granian.log import (
    ACCESS_LOGGER,
    LOGGING_CONFIG,
    SERVER_LOGGER,
    build_config,
    level_number,
    load_config_file,
)

EMIT = """
import logging, sys
from types import SimpleNamespace
from granian.errors import ConfigurationError
from granian.log import configure
s = SimpleNamespace(log={log}, log_level={level!r}, log_config={config!r})
try:
    configure(s)
except ConfigurationError as exc:
    print("ERROR:", exc, file=sys.stderr)
    sys.exit(3)
srv = logging.getLogger("_granian")
acc = logging.getLogger("granian.access")
srv.debug("dbg-line")
srv.info("info-line")
srv.warning("warn-line")
srv.error("error-line")
srv.critical("crit-line")
acc.info("access-line")
"""


def run_configure(
    log: bool = True, level: str = "info", config: str | None = None
) -> subprocess.CompletedProcess[str]:
    code = EMIT.format(log=log, level=level, config=config)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=30
    )


def test_defaults_print_level_and_message_to_stdout() -> None:
    p = run_configure()
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == [
        "[INFO] info-line",
        "[WARNING] warn-line",
        "[ERROR] error-line",
        "[CRITICAL] crit-line",
        "access-line",
    ]
    assert p.stderr == ""


@pytest.mark.parametrize(
    ("level", "first"),
    [
        ("debug", "[DEBUG] dbg-line"),
        ("info", "[INFO] info-line"),
        ("warning", "[WARNING] warn-line"),
        ("warn", "[WARNING] warn-line"),
        ("error", "[ERROR] error-line"),
        ("critical", "[CRITICAL] crit-line"),
    ],
)
def test_log_level(level: str, first: str) -> None:
    p = run_configure(level=level)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == first
    # The access log is its own logger: --log-level does not touch it (as in Granian).
    assert lines[-1] == "access-line"


def test_no_log_silences_the_server_logger_only() -> None:
    p = run_configure(log=False)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == ["access-line"]


def test_config_file_renames_and_reformats(tmp_path: Path) -> None:
    cfg = {
        "version": 1,
        "formatters": {"named": {"format": "%(name)s|%(levelname)s|%(message)s"}},
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": "named", "stream": "ext://sys.stderr"}
        },
        "loggers": {
            "granian.access": {"handlers": ["console"], "level": "INFO", "propagate": False},
        },
    }
    path = tmp_path / "log.json"
    path.write_text(json.dumps(cfg))
    p = run_configure(level="warning", config=str(path))
    assert p.returncode == 0, p.stderr
    # Both loggers now go through the user's `console` handler (the default `_granian` entry
    # references it by name), to stderr, with the logger name shown; --log-level still applies.
    assert p.stdout == ""
    assert p.stderr.splitlines() == [
        "_granian|WARNING|warn-line",
        "_granian|ERROR|error-line",
        "_granian|CRITICAL|crit-line",
        "granian.access|INFO|access-line",
    ]


def test_config_file_silences_loggers(tmp_path: Path) -> None:
    cfg = {
        "version": 1,
        "loggers": {
            "_granian": {"level": "CRITICAL", "handlers": ["console"], "propagate": False},
            "granian.access": {"handlers": [], "propagate": False},
        },
    }
    path = tmp_path / "quiet.json"
    path.write_text(json.dumps(cfg))
    p = run_configure(level="debug", config=str(path))
    assert p.returncode == 0, p.stderr
    # The file's own level for `_granian` wins over --log-level.
    assert p.stdout.splitlines() == ["[CRITICAL] crit-line"]
    assert p.stderr == ""


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("{not json", "invalid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"version": 1, "handlers": {"h": {"class": "no.such.Handler"}}}', "No module named 'no'"),
        ('{"version": 99}', "invalid logging configuration"),
    ],
)
def test_invalid_config_file_names_file_and_reason(tmp_path: Path, content: str, reason: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    p = run_configure(config=str(path))
    assert p.returncode == 3
    assert f"--log-config {path}" in p.stderr
    assert reason in p.stderr


def test_unreadable_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"--log-config .*missing\.json: cannot read"):
        load_config_file(tmp_path / "missing.json")
    path = tmp_path / "dir.json"
    path.mkdir()
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_config_file(path)


def test_build_config_merges_per_entry() -> None:
    user = {"loggers": {ACCESS_LOGGER: {"level": "WARNING"}}, "formatters": {"x": {"format": "%(message)s"}}}
    cfg = build_config("debug", user)
    assert cfg["loggers"][ACCESS_LOGGER] == {"level": "WARNING"}
    assert cfg["loggers"][SERVER_LOGGER]["level"] == logging.DEBUG
    assert set(cfg["formatters"]) == {"generic", "access", "x"}
    assert cfg["handlers"] == LOGGING_CONFIG["handlers"]
    # The module default is never mutated.
    assert LOGGING_CONFIG["loggers"][SERVER_LOGGER]["level"] == "INFO"


def test_level_names() -> None:
    assert [level_number(x) for x in ("critical", "error", "warning", "warn", "info", "debug")] == [
        50, 40, 30, 30, 20, 10,
    ]  # fmt: skip
    with pytest.raises(ConfigurationError, match="--log-level"):
        level_number("loud")
