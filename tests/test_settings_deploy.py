"""The deployment options of CLI.md §3: --health-path, --shutdown-delay, --proxy-headers and
--forwarded-allow-ips through load() (CLI > env > file > default) and the console script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from granian.errors import ConfigurationError
from granian.settings import NOT_IMPLEMENTED, OptionError, load

APP = {"app": "main:app"}
GRANIAN_BIN = Path(sys.executable).parent / "granian"


def test_defaults() -> None:
    s = load(APP, env={})
    assert (s.health_path, s.shutdown_delay, s.proxy_headers, s.forwarded_allow_ips) == (
        (),
        0,
        False,
        "127.0.0.1",
    )


def test_from_environment() -> None:
    env = {
        "GRANIAN_HEALTH_PATH": "/healthz /readyz",  # repeatable: whitespace-separated
        "GRANIAN_SHUTDOWN_DELAY": "1m5s",
        "GRANIAN_PROXY_HEADERS": "true",
        "GRANIAN_FORWARDED_ALLOW_IPS": "10.0.0.0/8, 127.0.0.1",
    }
    s = load(APP, env=env)
    assert s.health_path == ("/healthz", "/readyz")
    assert (s.shutdown_delay, s.proxy_headers, s.forwarded_allow_ips) == (65, True, "10.0.0.0/8,127.0.0.1")


def test_from_config_file_and_precedence(tmp_path: Path) -> None:
    cfg = tmp_path / "g.toml"
    cfg.write_text(
        'health_path = "/healthz"\nshutdown_delay = 5\nproxy_headers = true\n'
        'forwarded_allow_ips = ["10.0.0.0/8", "::1"]\n'
    )
    s = load({**APP, "config": str(cfg)}, env={})
    assert (s.health_path, s.shutdown_delay, s.proxy_headers) == (("/healthz",), 5, True)
    assert s.forwarded_allow_ips == "10.0.0.0/8,::1"
    s = load({**APP, "config": str(cfg), "shutdown_delay": "10s"}, env={"GRANIAN_FORWARDED_ALLOW_IPS": "*"})
    assert (s.shutdown_delay, s.forwarded_allow_ips) == (10, "*")


def test_options_are_accepted_not_refused() -> None:
    # They are built (settings + granian.proxy / granian.health); the worker wiring is separate.
    for name in ("health_path", "shutdown_delay", "proxy_headers", "forwarded_allow_ips"):
        assert name not in NOT_IMPLEMENTED
    s = load({**APP, "health_path": ["/h"], "proxy_headers": True, "shutdown_delay": 3}, env={})
    assert s.health_path == ("/h",)


@pytest.mark.parametrize(
    ("cli", "env", "flag", "fragment"),
    [
        ({"health_path": ["healthz"]}, {}, "--health-path", "'healthz' must start with '/'"),
        ({"health_path": ["/a?b=1"]}, {}, "--health-path", "no '?'"),
        ({}, {"GRANIAN_HEALTH_PATH": "/ok nope"}, "--health-path", "GRANIAN_HEALTH_PATH"),
        ({"forwarded_allow_ips": "10.0.0.0/33"}, {}, "--forwarded-allow-ips", "'10.0.0.0/33'"),
        ({"forwarded_allow_ips": "10.0.0.1/8"}, {}, "--forwarded-allow-ips", "host bits set"),
        ({}, {"GRANIAN_FORWARDED_ALLOW_IPS": "proxy.local"}, "--forwarded-allow-ips", "GRANIAN_FORWARDED"),
        ({"shutdown_delay": "soon"}, {}, "--shutdown-delay", "not a valid duration"),
    ],
)
def test_bad_values_name_the_option(
    cli: dict[str, object], env: dict[str, str], flag: str, fragment: str
) -> None:
    with pytest.raises(OptionError) as info:
        load({**APP, **cli}, env=env)
    assert info.value.option == flag and fragment in str(info.value)
    assert isinstance(info.value, ConfigurationError)


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--health-path", "healthz"], "--health-path"),
        (["--forwarded-allow-ips", "10.0.0.0/40"], "--forwarded-allow-ips"),
    ],
)
def test_console_script_exits_2_naming_the_option(args: list[str], flag: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRANIAN_")}
    proc = subprocess.run(
        [str(GRANIAN_BIN), *args, "main:app"], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 2, proc.stderr
    assert f"Invalid value for '{flag}'" in proc.stderr
