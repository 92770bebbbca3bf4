"""The settings model and load(): precedence, validation with sources, config files,
cross-field rules and the refusal of options that are not built yet (CLI.md, internals.md §2)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from granian import settings as settings_mod
from granian.constants import HTTPModes, Interfaces, LogLevels, Loops, SSLProtocols, TaskImpl, ThreadModes
from granian.errors import ConfigurationError
from granian.settings import NOT_IMPLEMENTED, OptionError, Settings, load, option_meta, parse_duration

APP = {"app": "main:app"}
ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# ---------------------------------------------------------------- defaults (CLI.md tables)


def test_defaults_match_cli_md() -> None:
    s = load(APP, env={})
    assert (s.host, s.port, s.interface, s.http, s.ws) == (
        "127.0.0.1",
        8000,
        Interfaces.RSGI,
        HTTPModes.auto,
        True,
    )
    assert (s.workers, s.threads, s.blocking_threads, s.threading_mode) == (1, 1, 1, ThreadModes.workers)
    assert (s.loop, s.opt, s.backlog, s.backpressure) == (Loops.auto, False, 1024, 1024)
    assert (s.http1_buffer_size, s.http1_keep_alive, s.http1_pipeline_flush) == (417792, True, False)
    assert s.http1_header_read_timeout == 30000
    assert (s.log, s.log_level, s.log_config, s.access_log) == (True, LogLevels.info, None, False)
    assert (
        s.access_log_fmt == '[%(time)s] %(addr)s - "%(method)s %(path)s %(protocol)s" %(status)d %(dt_ms).3f'
    )
    assert (s.respawn_failed_workers, s.respawn_interval, s.reload, s.process_name) == (
        False,
        3.5,
        False,
        None,
    )
    assert (s.blocking_threads_idle_timeout, s.task_impl, s.ssl_protocol_min) == (
        30,
        TaskImpl.asyncio,
        SSLProtocols.tls13,
    )
    assert (s.rss_sample_interval, s.rss_samples, s.workers_kill_timeout) == (30, 1, None)
    assert (s.static_path_route, s.static_path_mount, s.static_path_expires) == (("/static",), (), 86400)
    assert (s.metrics, s.metrics_address, s.metrics_port, s.metrics_scrape_interval) == (
        False,
        "127.0.0.1",
        9090,
        15,
    )
    assert (s.reload_paths, s.reload_tick, s.reload_ignore_worker_failure) == ((), 50, False)
    assert (s.http2_initial_connection_window_size, s.http2_initial_stream_window_size) == (1048576, 1048576)
    assert (s.http2_keep_alive_interval, s.http2_keep_alive_timeout) == (None, 20)
    assert (s.http2_max_concurrent_streams, s.http2_max_frame_size) == (200, 16384)
    assert (s.http2_max_headers_size, s.http2_max_send_buffer_size) == (16777216, 409600)


def test_model_is_frozen() -> None:
    s = load(APP, env={})
    with pytest.raises(ValidationError):
        s.workers = 4  # type: ignore[misc]


def test_direct_construction_ignores_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRANIAN_WORKERS", "7")
    assert Settings(app="m:app").workers == 1
    assert load(APP).workers == 7  # env=None reads os.environ


# ---------------------------------------------------------------- precedence, every pair


@pytest.fixture
def toml_workers(tmp_path: Path) -> Path:
    return write(tmp_path, "g.toml", "workers = 2\nport = 9001\n")


def test_file_beats_default(toml_workers: Path) -> None:
    s = load({**APP, "config": str(toml_workers)}, env={})
    assert (s.workers, s.port) == (2, 9001)


def test_env_beats_default() -> None:
    assert load(APP, env={"GRANIAN_WORKERS": "3"}).workers == 3


def test_cli_beats_default() -> None:
    assert load({**APP, "workers": 4}, env={}).workers == 4


def test_env_beats_file(toml_workers: Path) -> None:
    s = load({**APP, "config": str(toml_workers)}, env={"GRANIAN_WORKERS": "3"})
    assert (s.workers, s.port) == (3, 9001)


def test_cli_beats_file(toml_workers: Path) -> None:
    s = load({**APP, "config": str(toml_workers), "workers": 4}, env={})
    assert (s.workers, s.port) == (4, 9001)


def test_cli_beats_env() -> None:
    s = load({**APP, "workers": 4, "ws": True}, env={"GRANIAN_WORKERS": "3", "GRANIAN_WEBSOCKETS": "false"})
    assert (s.workers, s.ws) == (4, True)


def test_config_path_from_env(toml_workers: Path) -> None:
    s = load(APP, env={"GRANIAN_CONFIG": str(toml_workers)})
    assert (s.workers, s.config) == (2, toml_workers)


def test_cli_config_beats_env_config(tmp_path: Path, toml_workers: Path) -> None:
    other = write(tmp_path, "other.toml", "workers = 5\n")
    assert load({**APP, "config": str(other)}, env={"GRANIAN_CONFIG": str(toml_workers)}).workers == 5


def test_none_in_cli_mapping_means_not_given() -> None:
    assert load({**APP, "workers": None}, env={"GRANIAN_WORKERS": "3"}).workers == 3


def test_empty_env_var_counts_as_unset() -> None:
    assert load(APP, env={"GRANIAN_WORKERS": ""}).workers == 1


@pytest.mark.parametrize(
    ("field", "var"),
    [
        ("ws", "GRANIAN_WEBSOCKETS"),
        ("opt", "GRANIAN_LOOP_OPT"),
        ("log", "GRANIAN_LOG_ENABLED"),
        ("access_log", "GRANIAN_LOG_ACCESS_ENABLED"),
        ("http1_keep_alive", "GRANIAN_HTTP1_KEEP_ALIVE"),
        ("respawn_failed_workers", "GRANIAN_RESPAWN_FAILED_WORKERS"),
        ("factory", "GRANIAN_FACTORY"),
    ],
)
@pytest.mark.parametrize(("raw", "expected"), [("true", True), ("1", True), ("no", False), ("false", False)])
def test_boolean_env_vars(field: str, var: str, raw: str, expected: bool) -> None:
    assert getattr(load(APP, env={var: raw}), field) is expected


def test_env_names_of_renamed_options() -> None:
    s = load(APP, env={"GRANIAN_LOG_ACCESS_FMT": "%(addr)s %(status)d", "GRANIAN_LOG_LEVEL": "debug"})
    assert (s.access_log_fmt, s.log_level) == ("%(addr)s %(status)d", LogLevels.debug)
    assert option_meta("metrics").envs == ("GRANIAN_METRICS_ENABLED",)


def test_repeatable_option_from_env_is_whitespace_split(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delitem(NOT_IMPLEMENTED, "env_files", raising=False)
    a, b = write(tmp_path, "a.env", ""), write(tmp_path, "b.env", "")
    assert load(APP, env={"GRANIAN_STATIC_PATH_ROUTE": "/a  /b"}).static_path_route == ("/a", "/b")
    assert load(APP, env={"GRANIAN_ENV_FILES": f"{a} {b}"}).env_files == (a, b)
    assert Settings(app="m:app", env_files=[a, b]).env_files == (a, b)
    assert Settings(app="m:app", env_files=str(a)).env_files == (a,)


# ---------------------------------------------------------------- config files


def test_toml_and_yaml_give_the_same_settings(tmp_path: Path) -> None:
    toml = write(
        tmp_path, "g.toml", 'interface = "wsgi"\nhttp1_keep_alive = false\nstatic_path_route = ["/s"]\n'
    )
    yaml = write(tmp_path, "g.yml", "interface: wsgi\nhttp1_keep_alive: false\nstatic_path_route: [/s]\n")
    for path in (toml, yaml):
        s = load({**APP, "config": str(path)}, env={})
        assert (s.interface, s.http1_keep_alive, s.static_path_route) == (Interfaces.WSGI, False, ("/s",))


def test_yaml_extension(tmp_path: Path) -> None:
    assert load({**APP, "config": str(write(tmp_path, "g.yaml", "workers: 6\n"))}, env={}).workers == 6


def test_config_file_may_name_the_app(tmp_path: Path) -> None:
    path = write(tmp_path, "g.toml", 'app = "pkg.mod:application"\n')
    assert load({"config": str(path)}, env={}).app == "pkg.mod:application"
    assert load({"config": str(path), "app": "x:y"}, env={}).app == "x:y"


@pytest.mark.parametrize("name", ["g.toml", "g.yaml"])
def test_unknown_key_names_key_and_file(tmp_path: Path, name: str) -> None:
    path = write(tmp_path, name, "wrokers = 2\n" if name.endswith("toml") else "wrokers: 2\n")
    with pytest.raises(ConfigurationError) as info:
        load({**APP, "config": str(path)}, env={})
    assert "'wrokers'" in str(info.value) and str(path) in str(info.value)
    assert "did you mean 'workers'" in str(info.value)


def test_dashed_key_is_unknown_with_hint(tmp_path: Path) -> None:
    path = write(tmp_path, "g.toml", "http1-keep-alive = false\n")
    with pytest.raises(ConfigurationError, match="did you mean 'http1_keep_alive'"):
        load({**APP, "config": str(path)}, env={})


def test_config_key_inside_config_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "g.toml", 'config = "other.toml"\n')
    with pytest.raises(ConfigurationError, match="unknown option 'config'"):
        load({**APP, "config": str(path)}, env={})


def test_bad_value_in_file_names_file_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, "g.toml", "backlog = 10\n")
    with pytest.raises(OptionError) as info:
        load({**APP, "config": str(path)}, env={})
    msg = str(info.value)
    assert "'--backlog'" in msg and "key 'backlog'" in msg and str(path) in msg and "128" in msg


@pytest.mark.parametrize(
    ("name", "text", "fragment"),
    [
        ("g.ini", "workers = 2\n", "neither .toml nor .yaml"),
        ("g.toml", "workers = = 2\n", "cannot parse"),
        ("g.yaml", "workers: [1\n", "cannot parse"),
        ("g.yaml", "- 1\n- 2\n", "table/mapping"),
    ],
)
def test_bad_config_files(tmp_path: Path, name: str, text: str, fragment: str) -> None:
    path = write(tmp_path, name, text)
    with pytest.raises(OptionError) as info:
        load({**APP, "config": str(path)}, env={})
    assert info.value.option == "--config" and fragment in str(info.value)


def test_missing_config_file_names_its_source(tmp_path: Path) -> None:
    with pytest.raises(OptionError) as info:
        load(APP, env={"GRANIAN_CONFIG": str(tmp_path / "nope.toml")})
    assert "GRANIAN_CONFIG" in str(info.value) and "cannot read" in str(info.value)


def test_example_config_files_load() -> None:
    toml = load({"config": str(ROOT / "config" / "granian.toml")}, env={})
    yaml = load({"config": str(ROOT / "config" / "granian.yaml")}, env={})
    assert toml.interface == Interfaces.ASGI and toml.workers_kill_timeout == 30
    assert yaml.interface == Interfaces.WSGI and yaml.ws is False and yaml.url_path_prefix == "/api"


# ---------------------------------------------------------------- validation: option + source

# CLI.md's stated ranges: (field, lowest valid, highest valid or None).
SPEC_RANGES = [
    ("port", 0, 65535),
    ("workers", 1, None),
    ("threads", 1, None),
    ("blocking_threads", 1, None),
    ("backlog", 128, None),
    ("backpressure", 1, None),
    ("http1_buffer_size", 8192, None),
    ("workers_lifetime", 60, None),
    ("metrics_port", 0, 65535),
    ("http2_max_frame_size", 16384, 16777215),  # RFC 9113 §6.5.2
]


def _all_bounds() -> list[tuple[str, Any, Any]]:
    out = []
    for name, info in Settings.model_fields.items():
        ge = le = None
        for item in info.metadata:
            ge = getattr(item, "ge", ge)
            le = getattr(item, "le", le)
        if ge is not None or le is not None:
            out.append((name, ge, le))
    return out


def test_spec_ranges_are_declared() -> None:
    declared = {name: (ge, le) for name, ge, le in _all_bounds()}
    for name, lo, hi in SPEC_RANGES:
        assert declared[name] == (lo, hi), name


@pytest.mark.parametrize(("name", "ge", "le"), _all_bounds())
def test_every_range_is_enforced_and_named(name: str, ge: Any, le: Any) -> None:
    meta = option_meta(name)
    bad = [
        v
        for v in ((ge - 1) if ge is not None else None, (le + 1) if le is not None else None)
        if v is not None
    ]
    for value in bad:
        raw = oct(value)[2:] if name == "uds_permissions" and value >= 0 else str(value)
        if name == "uds_permissions" and value < 0:
            raw = "-1"
        extra = {"uds": "/tmp/x.sock"} if name == "uds_permissions" else {}
        # from the environment: names the flag and the variable
        with pytest.raises(OptionError) as info:
            load({**APP, **extra}, env={meta.envs[0]: raw})
        assert info.value.option == meta.flags[0]
        assert f"'{meta.flags[0]}'" in str(info.value) and meta.envs[0] in str(info.value)
        # from the command line: names the flag only
        with pytest.raises(OptionError) as info:
            load({**APP, **extra, name: raw}, env={})
        assert str(info.value).startswith(f"Invalid value for '{meta.flags[0]}': ")
    # the bounds themselves are valid (model only: some options are refused as not built yet)
    for value in (ge, le):
        if value is not None:
            extra = {"uds": "/tmp/x.sock"} if name == "uds_permissions" else {}
            assert getattr(Settings(app="m:app", **extra, **{name: value}), name) == value


@pytest.mark.parametrize(
    ("cli", "flag", "fragment"),
    [
        ({"host": "localhost"}, "--host", "not an IPv4 or IPv6 address"),
        ({"interface": "cgi"}, "--interface", "asgi"),
        ({"http": "3"}, "--http", "'auto'"),
        ({"loop": "trio"}, "--loop", "uvloop"),
        ({"log_level": "loud"}, "--log-level", "critical"),
        ({"access_log_fmt": "%(nope)s"}, "--access-log-fmt", "unknown atom 'nope'"),
        ({"access_log_fmt": "%(addr)"}, "--access-log-fmt", "not a %-style format"),
        ({"url_path_prefix": "api"}, "--url-path-prefix", "must start with '/'"),
        ({"workers_kill_timeout": "10x"}, "--workers-kill-timeout", "'10x' is not a valid duration"),
        ({"uds": "/tmp/s", "uds_permissions": "9"}, "--uds-permissions", "octal"),
        ({"uds_permissions": "600"}, "--uds-permissions", "needs --uds"),
        ({"log_config": "/nonexistent/log.json"}, "--log-config", "file"),
        ({"working_dir": "/nonexistent/dir"}, "--working-dir", "directory"),
        ({"workers": "many"}, "--workers", "integer"),
        ({"respawn_interval": -1}, "--respawn-interval", "0"),
        ({"ws": "maybe"}, "--ws", "boolean"),
    ],
)
def test_bad_values_name_the_option(cli: dict[str, Any], flag: str, fragment: str) -> None:
    with pytest.raises(OptionError) as info:
        load({**APP, **cli}, env={})
    assert info.value.option == flag and fragment in str(info.value)


def test_runtime_threads_alias_error_names_its_variable() -> None:
    with pytest.raises(OptionError) as info:
        load(APP, env={"GRANIAN_RUNTIME_THREADS": "0"})
    assert info.value.option == "--threads" and "GRANIAN_RUNTIME_THREADS" in str(info.value)


@pytest.mark.parametrize("app", ["", ":app", "m:", "m:a:b", "m:a..b", "m:.a"])
def test_bad_app_target(app: str) -> None:
    with pytest.raises(OptionError) as info:
        load({"app": app}, env={})
    assert info.value.option == "APP"


def test_missing_app() -> None:
    with pytest.raises(OptionError, match="APP"):
        load({}, env={})


def test_unknown_cli_key() -> None:
    with pytest.raises(ConfigurationError, match="unknown option 'wrokers'"):
        load({**APP, "wrokers": 2}, env={})


def test_value_conversions(tmp_path: Path) -> None:
    s = load(
        {**APP, "uds": str(tmp_path / "s.sock"), "uds_permissions": "660", "url_path_prefix": "/api/"},
        env={"GRANIAN_HOST": "[::1]", "GRANIAN_WORKERS_KILL_TIMEOUT": "1m30s"},
    )
    assert (s.uds_permissions, s.url_path_prefix, s.host, s.workers_kill_timeout) == (
        0o660,
        "/api",
        "::1",
        90,
    )
    assert load({**APP, "interface": Interfaces.ASGINL}, env={}).interface is Interfaces.ASGINL


# ---------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0", 0), ("45", 45), (45, 45), ("1d2h3m4s", 93784), ("10m10s", 610), ("2h", 7200), ("1d", 86400)],
)
def test_parse_duration(text: Any, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "10x", "1s2m", "m", "-5", "1.5", "1 d"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="is not a valid duration"):
        parse_duration(text)


# ---------------------------------------------------------------- cross-field rules


@pytest.mark.parametrize(("backlog", "workers", "expected"), [(1024, 1, 1024), (2048, 4, 512), (128, 200, 1)])
def test_backpressure_defaults_to_backlog_per_worker(backlog: int, workers: int, expected: int) -> None:
    assert load({**APP, "backlog": backlog, "workers": workers}, env={}).backpressure == expected


def test_explicit_backpressure_is_kept() -> None:
    assert load({**APP, "workers": 4}, env={"GRANIAN_BACKPRESSURE": "7"}).backpressure == 7
    assert Settings(app="m:app", backpressure=None).backpressure == 1024  # the Python API's None


@pytest.mark.parametrize(
    ("interface", "backlog", "workers", "expected"),
    [
        ("wsgi", 1024, 1, 512),
        ("wsgi", 1024, 4, 128),
        ("wsgi", 128, 128, 1),
        ("asgi", 1024, 1, 1),
        ("rsgi", 2048, 1, 1),
    ],
)
def test_blocking_threads_default(interface: str, backlog: int, workers: int, expected: int) -> None:
    s = load({**APP, "interface": interface, "backlog": backlog, "workers": workers}, env={})
    assert s.blocking_threads == expected


def test_blocking_threads_follows_explicit_backpressure() -> None:
    s = load({**APP, "interface": "wsgi", "backpressure": 10}, env={})
    assert (s.backpressure, s.blocking_threads) == (10, 5)
    assert load({**APP, "interface": "wsgi", "blocking_threads": 3}, env={}).blocking_threads == 3


def test_wsgi_turns_websockets_off() -> None:
    assert load({**APP, "interface": "wsgi", "ws": True}, env={}).ws is False
    assert load({**APP, "interface": "asgi"}, env={}).ws is True


def test_ssl_key_and_certificate_go_together(tmp_path: Path) -> None:
    key = write(tmp_path, "k.pem", "x")
    with pytest.raises(OptionError) as info:
        load({**APP, "ssl_keyfile": str(key)}, env={})
    assert info.value.option == "--ssl-keyfile" and "--ssl-certificate" in str(info.value)


def test_static_routes_pair_with_mounts(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="one --static-path-route per --static-path-mount"):
        Settings(app="m:app", static_path_route=["/a"], static_path_mount=[tmp_path, tmp_path])
    s = Settings(app="m:app", static_path_route=["/a", "/b"], static_path_mount=[tmp_path, tmp_path])
    assert s.static_path_mount == (tmp_path, tmp_path)


# ---------------------------------------------------------------- aliases of Granian 2.x


def test_runtime_threads_is_threads() -> None:
    assert load({**APP, "runtime_threads": 3}, env={}).threads == 3
    assert load(APP, env={"GRANIAN_RUNTIME_THREADS": "2"}).threads == 2
    assert load(APP, env={"GRANIAN_RUNTIME_THREADS": "2", "GRANIAN_THREADS": "4"}).threads == 4


@pytest.mark.parametrize(("mode", "expected"), [("mt", "runtime"), ("st", "workers"), ("auto", "workers")])
def test_runtime_mode_maps_to_threading_mode(mode: str, expected: str) -> None:
    assert load({**APP, "runtime_mode": mode}, env={}).threading_mode == expected
    # an alias on a higher layer beats the canonical option on a lower one
    assert (
        load({**APP, "runtime_mode": mode}, env={"GRANIAN_THREADING_MODE": "runtime"}).threading_mode
        == expected
    )


def test_runtime_mode_refusal_names_the_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(NOT_IMPLEMENTED, "threading_mode", lambda v: v == ThreadModes.runtime)
    with pytest.raises(
        ConfigurationError, match="--threading-mode runtime .*--runtime-mode.*not implemented"
    ):
        load({**APP, "runtime_mode": "mt"}, env={})


def test_task_impl_rust_is_opt() -> None:
    assert load({**APP, "task_impl": "rust"}, env={}).opt is True
    assert load(APP, env={"GRANIAN_TASK_IMPL": "rust"}).opt is True
    assert load({**APP, "task_impl": "asyncio"}, env={}).opt is False
    assert load({**APP, "task_impl": "rust", "opt": False}, env={}).opt is False


# ---------------------------------------------------------------- NOT_IMPLEMENTED


def test_not_implemented_entries_are_fields() -> None:
    assert set(NOT_IMPLEMENTED) <= set(Settings.model_fields)


@pytest.mark.parametrize(
    ("cli", "env", "flag"),
    [
        ({"http": "2"}, {}, "--http"),
        ({}, {"GRANIAN_HTTP2_MAX_FRAME_SIZE": "32768"}, "--http2-max-frame-size"),
        ({"http2_keep_alive_timeout": 5}, {}, "--http2-keep-alive-timeout"),
        ({"metrics": True}, {}, "--metrics"),
        ({"reload": True}, {}, "--reload"),
        ({"process_name": "web"}, {}, "--process-name"),
        ({"workers_lifetime": "1h"}, {}, "--workers-lifetime"),
        ({"http2_max_concurrent_streams": 10}, {}, "--http2-max-concurrent-streams"),
        ({"ssl_protocol_min": "tls1.2"}, {}, "--ssl-protocol-min"),
    ],
)
def test_unbuilt_options_are_refused(
    monkeypatch: pytest.MonkeyPatch, cli: dict[str, Any], env: dict[str, str], flag: str
) -> None:
    # The mapping shrinks as features land; keep (or put back) the entry under test so this
    # exercises the refusal mechanism whatever today's list is.
    name = flag[2:].replace("-", "_")
    monkeypatch.setitem(NOT_IMPLEMENTED, name, NOT_IMPLEMENTED.get(name))
    with pytest.raises(ConfigurationError) as info:
        load({**APP, **cli}, env=env)
    assert not isinstance(info.value, OptionError)
    assert str(info.value).startswith(flag + " ") and str(info.value).endswith("not implemented yet")
    if env:
        assert next(iter(env)) in str(info.value)


def test_ssl_options_are_checked_at_load(tmp_path: Path) -> None:
    # TLS is built (issue 13): load() reads and matches the files as a worker will
    # (granian.server.tls.check_config), so a bad one is refused before anything listens.
    import trustme

    for name in ("ssl_keyfile", "ssl_certificate", "ssl_ca", "ssl_crl", "ssl_client_verify"):
        assert name not in NOT_IMPLEMENTED
    key, cert = write(tmp_path, "k.pem", "k"), write(tmp_path, "c.pem", "c")
    with pytest.raises(ConfigurationError, match=r"--ssl-certificate .*c\.pem: bad PEM"):
        load({**APP, "ssl_keyfile": str(key), "ssl_certificate": str(cert)}, env={})
    server = trustme.CA().issue_cert("127.0.0.1")
    server.cert_chain_pems[0].write_to_path(str(cert))
    server.private_key_pem.write_to_path(str(key))
    tls = {**APP, "ssl_keyfile": str(key), "ssl_certificate": str(cert)}
    assert load(tls, env={}).ssl_certificate == cert
    with pytest.raises(ConfigurationError, match="--ssl-client-verify needs --ssl-ca"):
        load({**tls, "ssl_client_verify": True}, env={})
    with pytest.raises(ConfigurationError, match="--ssl-client-verify: needs --ssl-certificate"):
        load({**APP, "ssl_client_verify": True}, env={})
    with pytest.raises(ConfigurationError) as info:
        load({**APP, "ssl_keyfile_password": "hunter2"}, env={})
    assert "--ssl-keyfile-password" in str(info.value) and "hunter2" not in str(info.value)


def test_secrets_are_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(NOT_IMPLEMENTED, "ssl_keyfile_password", None)
    for cli, env in (
        ({"ssl_keyfile_password": "hunter2"}, {}),
        ({}, {"GRANIAN_SSL_KEYFILE_PASSWORD": "hunter2"}),
    ):
        with pytest.raises(ConfigurationError) as info:
            load({**APP, **cli}, env=env)
        assert "hunter2" not in str(info.value) and "--ssl-keyfile-password" in str(info.value)


def test_built_values_of_listed_options_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(NOT_IMPLEMENTED, "http", lambda v: v == HTTPModes.http2)
    monkeypatch.setitem(NOT_IMPLEMENTED, "metrics", None)
    monkeypatch.setitem(NOT_IMPLEMENTED, "process_name", None)
    # http=1 is built even though http=2 is not; defaults of listed options are always fine.
    assert load({**APP, "http": "1", "metrics": False}, env={}).http is HTTPModes.http1
    with pytest.raises(ConfigurationError, match="--process-name web: not implemented yet"):
        load({**APP, "process_name": "web"}, env={})
    # deleting an entry is all it takes to accept the option
    monkeypatch.delitem(NOT_IMPLEMENTED, "process_name")
    assert load({**APP, "process_name": "web"}, env={}).process_name == "web"


def test_interfaces_are_not_refused() -> None:
    for interface in ("asgi", "asginl", "rsgi", "wsgi"):
        assert load({**APP, "interface": interface}, env={}).interface == interface


def test_module_exports() -> None:
    assert callable(settings_mod.load) and settings_mod.Settings is Settings


# ---------------------------------------------------------------- granian.http and granian.constants


def test_http_settings_defaults_match_the_options() -> None:
    from dataclasses import asdict

    from granian.http import HTTP1Settings, HTTP2Settings

    s = Settings(app="m:app")
    h1 = asdict(HTTP1Settings())
    assert h1 == {
        "header_read_timeout": s.http1_header_read_timeout,
        "keep_alive": s.http1_keep_alive,
        "max_buffer_size": s.http1_buffer_size,
        "pipeline_flush": s.http1_pipeline_flush,
    }
    assert asdict(HTTP2Settings()) == {k: getattr(s, f"http2_{k}") for k in asdict(HTTP2Settings())}
    assert HTTP1Settings(keep_alive=False).keep_alive is False


def test_constants_are_str_enums_with_the_documented_values() -> None:
    assert [m.value for m in Interfaces] == ["asgi", "asginl", "rsgi", "wsgi"]
    assert (HTTPModes.auto, HTTPModes.http1, HTTPModes.http2) == ("auto", "1", "2")
    assert [m.value for m in SSLProtocols] == ["tls1.2", "tls1.3"]
    assert Interfaces("wsgi") is Interfaces.WSGI and str(Interfaces.ASGI) == "asgi"
    assert f"{TaskImpl.rust}" == "rust" and Loops.uvloop == "uvloop"


def test_missing_file_option_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(OptionError) as info:
        load({**APP, "log_config": str(missing)}, env={})
    assert info.value.option == "--log-config" and str(missing) in str(info.value)
