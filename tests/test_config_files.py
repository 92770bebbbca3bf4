"""config/granian.toml and config/granian.yaml are complete references: they name every option
of the settings model exactly once (read from the model at run time, so a new option without a
config line fails here), each with its default, and they load through the real `--config` path.

File conventions (stated at the top of each file):
- `#key = value` / `#key: value` (no space after `#`) is an option at its default;
- `key = value` / `key: value` is the example's own choice;
- the comment block right above each option says what it does and ends with its default;
- `# cli-only: NAME -- reason` names an option that cannot be a config-file key.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

if sys.version_info >= (3, 11):
    import tomllib
else:  # pydantic-settings[toml] installs tomli on Python 3.10
    import tomli as tomllib

from granian.errors import ConfigurationError
from granian.settings import Settings, load, option_names

ROOT = Path(__file__).resolve().parent.parent
FILES = {
    "toml": ROOT / "config" / "granian.toml",
    "yaml": ROOT / "config" / "granian.yaml",
}
OPTION_LINE = {
    "toml": re.compile(r"^(#?)([a-z][a-z0-9_]*) = (.+)$"),
    "yaml": re.compile(r"^(#?)([a-z][a-z0-9_]*): (.+)$"),
}
CLI_ONLY = re.compile(r"^# cli-only: ([a-z][a-z0-9_]*) -- (\S.*)$")


@dataclass
class Entry:
    key: str
    commented: bool
    raw: str  # the value as written
    doc: str  # the comment block right above the line


def scan(kind: str) -> tuple[list[Entry], dict[str, str]]:
    entries: list[Entry] = []
    cli_only: dict[str, str] = {}
    block: list[str] = []
    for line in FILES[kind].read_text().splitlines():
        only = CLI_ONLY.match(line)
        if only:
            cli_only[only.group(1)] = only.group(2)
            block = []
            continue
        m = OPTION_LINE[kind].match(line)
        if m:
            entries.append(Entry(m.group(2), m.group(1) == "#", m.group(3), " ".join(block)))
            block = []
        elif line.startswith("# "):
            block.append(line[2:].strip())
        else:
            block = []
    return entries, cli_only


def parse_value(kind: str, raw: str) -> object:
    if kind == "toml":
        return tomllib.loads(f"v = {raw}")["v"]
    return yaml.safe_load(f"v: {raw}")["v"]


def write_options(kind: str, path: Path, values: dict[str, str]) -> Path:
    sep = " = " if kind == "toml" else ": "
    path.write_text("".join(f"{key}{sep}{raw}\n" for key, raw in values.items()))
    return path


KINDS = sorted(FILES)


@pytest.mark.parametrize("kind", KINDS)
def test_names_every_option_exactly_once(kind: str) -> None:
    entries, cli_only = scan(kind)
    keys = [e.key for e in entries]
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    assert not dupes, f"{FILES[kind].name} names these twice: {dupes}"
    expected = (set(option_names()) - set(cli_only)) | {"app"}
    missing = sorted(expected - set(keys))
    extra = sorted(set(keys) - expected)
    assert not missing, f"{FILES[kind].name} lacks a line for: {missing}"
    assert not extra, f"{FILES[kind].name} names what is not an option: {extra}"


@pytest.mark.parametrize("kind", KINDS)
def test_cli_only_options_really_cannot_be_file_keys(kind: str, tmp_path: Path) -> None:
    _, cli_only = scan(kind)
    assert cli_only, "the file must say which options are left out and why"
    for name, reason in cli_only.items():
        assert name in option_names() and len(reason) > 20, (name, reason)
        cfg = write_options(kind, tmp_path / f"only.{kind}", {"app": '"main:app"', name: '"x.toml"'})
        with pytest.raises(ConfigurationError, match=name):
            load({"config": str(cfg)}, env={})


@pytest.mark.parametrize("kind", KINDS)
def test_loads_through_config_with_only_the_active_lines(kind: str) -> None:
    entries, _ = scan(kind)
    settings = load({"config": str(FILES[kind])}, env={})
    active = {e.key for e in entries if not e.commented}
    # Exactly the uncommented keys reached the model: commented lines are really comments.
    assert settings.model_fields_set - {"config"} == active
    for entry in entries:
        if not entry.commented and entry.key != "app":
            assert not settings.option_is_default(entry.key) or "Default" in entry.doc, entry.key


@pytest.mark.parametrize("kind", KINDS)
def test_every_option_says_what_it_does_and_its_default(kind: str) -> None:
    entries, _ = scan(kind)
    for entry in entries:
        if entry.key == "app":
            continue
        assert re.search(r"Default: \S", entry.doc), f"{entry.key}: no 'Default:' in {entry.doc!r}"
        assert len(entry.doc) > len("Default: x.") + 10, f"{entry.key}: says nothing else"


@pytest.mark.parametrize("kind", KINDS)
def test_commented_values_are_the_model_defaults(kind: str, tmp_path: Path) -> None:
    entries, _ = scan(kind)
    # Uncommented, every line must at least parse (examples of "none" defaults included).
    for entry in entries:
        parse_value(kind, entry.raw)
    shown: dict[str, str] = {"app": '"main:app"'}
    for entry in entries:
        if entry.key == "app":
            continue
        default = Settings.model_fields[entry.key].default
        if default is None:
            # No null to show (TOML): the comment says so and the line is an example.
            assert "Default: none" in entry.doc, entry.key
        elif entry.commented:
            shown[entry.key] = entry.raw
    cfg = write_options(kind, tmp_path / f"defaults.{kind}", shown)
    settings = load({"config": str(cfg)}, env={})  # the real --config path, every value validated
    wrong = [k for k in shown if k != "app" and not settings.option_is_default(k)]
    assert not wrong, f"{FILES[kind].name}: these commented values are not the defaults: {wrong}"
    assert set(shown) <= settings.model_fields_set


def test_toml_and_yaml_list_the_options_in_the_same_order() -> None:
    toml_entries, toml_only = scan("toml")
    yaml_entries, yaml_only = scan("yaml")
    assert [e.key for e in toml_entries] == [e.key for e in yaml_entries]
    assert toml_only.keys() == yaml_only.keys()
    for t, y in zip(toml_entries, yaml_entries, strict=True):
        if t.commented and y.commented:
            assert parse_value("toml", t.raw) == parse_value("yaml", y.raw), t.key


def test_production_example_loads() -> None:
    path = ROOT / "config" / "production.toml"
    settings = load({"config": str(path), "app": "main:app"}, env={"GRANIAN_WORKERS": "3"})
    # Workers come from the environment (the CPU limit, see the file); the rest from the file.
    assert settings.workers == 3
    assert settings.access_log and settings.metrics
    assert settings.workers_kill_timeout is not None and settings.health_path
    assert settings.host in ("0.0.0.0", "::")
