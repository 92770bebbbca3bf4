"""granian.apps.loader.load_target (docs/internals.md §3): module:attr resolution, factories and
distinct, clear errors for a missing module, an error inside the module and a missing attribute."""

from __future__ import annotations

import itertools
import os
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from granian.apps.loader import load_target, split_target
from granian.errors import AppLoadError

_counter = itertools.count()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, str], str]]:
    """Writes modules under a fresh directory (the cwd) with unique names; cleans up after."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    created: list[str] = []

    def make(name: str, source: str) -> str:
        parts = name.split(".")
        parts[0] += f"_{os.getpid()}_{next(_counter)}"  # the top-level name is what can collide
        unique = ".".join(parts)
        directory = tmp_path
        for pkg in parts[:-1]:
            directory = directory / pkg
            directory.mkdir(exist_ok=True)
            (directory / "__init__.py").touch()
        (directory / f"{parts[-1]}.py").write_text(textwrap.dedent(source))
        created.append(parts[0])
        return unique

    yield make
    for mod in list(sys.modules):
        if any(mod == c or mod.startswith(c + ".") for c in created):
            del sys.modules[mod]


def test_default_attribute_is_app(project: Callable[[str, str], str]) -> None:
    mod = project("appmod", "app = object()\nother = 1\n")
    assert load_target(mod) is sys.modules[mod].app  # type: ignore[attr-defined]
    assert load_target(f"{mod}:other") == 1


def test_found_from_the_current_directory(project: Callable[[str, str], str]) -> None:
    mod = project("cwdmod", "app = 'here'\n")
    sys.path[:] = [p for p in sys.path if p not in ("", os.getcwd())]
    assert load_target(f"{mod}:app") == "here"


def test_dotted_attributes_and_packages(project: Callable[[str, str], str]) -> None:
    mod = project(
        "pkg.sub.mod",
        """
        class Holder:
            class Inner:
                app = "inner"
        """,
    )
    assert load_target(f"{mod}:Holder.Inner.app") == "inner"


def test_factory_is_called(project: Callable[[str, str], str]) -> None:
    mod = project("factmod", "def create():\n    return ['built']\n")
    assert load_target(f"{mod}:create", factory=True) == ["built"]
    assert callable(load_target(f"{mod}:create", factory=False))


def test_factory_error_keeps_traceback(project: Callable[[str, str], str]) -> None:
    mod = project("badfact", "def create():\n    raise ValueError('no config')\n")
    with pytest.raises(AppLoadError) as info:
        load_target(f"{mod}:create", factory=True)
    msg = str(info.value)
    assert f"{mod}:create()" in msg and "ValueError: no config" in msg and "Traceback" in msg


def test_factory_not_callable(project: Callable[[str, str], str]) -> None:
    mod = project("notcall", "app = 3\n")
    with pytest.raises(AppLoadError, match="not callable"):
        load_target(mod, factory=True)


def test_missing_module(project: Callable[[str, str], str]) -> None:
    with pytest.raises(AppLoadError) as info:
        load_target("no_such_module_xyz:app")
    msg = str(info.value)
    assert "could not import module 'no_such_module_xyz'" in msg and "Traceback" not in msg


def test_missing_submodule_of_existing_package(project: Callable[[str, str], str]) -> None:
    mod = project("pkgonly.present", "app = 1\n")
    package = mod.rsplit(".", 1)[0]
    with pytest.raises(AppLoadError, match=f"could not import module '{package}.absent'"):
        load_target(f"{package}.absent:app")


def test_missing_dependency_inside_module_is_an_import_error_of_the_app(
    project: Callable[[str, str], str],
) -> None:
    mod = project("needsdep", "import definitely_not_installed_dep\napp = 1\n")
    with pytest.raises(AppLoadError) as info:
        load_target(mod)
    msg = str(info.value)
    assert f"error while importing module '{mod}'" in msg
    assert "definitely_not_installed_dep" in msg and "Traceback" in msg


def test_exception_inside_module_keeps_original_traceback(project: Callable[[str, str], str]) -> None:
    mod = project("boom", "x = 1\nraise RuntimeError('boom at import')\n")
    with pytest.raises(AppLoadError) as info:
        load_target(mod)
    msg = str(info.value)
    assert f"error while importing module '{mod}'" in msg
    assert "RuntimeError: boom at import" in msg and "line 2" in msg
    assert isinstance(info.value.__cause__, RuntimeError)


def test_syntax_error_inside_module(project: Callable[[str, str], str]) -> None:
    mod = project("syntax", "def broken(:\n")
    with pytest.raises(AppLoadError, match="SyntaxError"):
        load_target(mod)


def test_system_exit_at_import_is_reported(project: Callable[[str, str], str]) -> None:
    mod = project("exits", "import sys\nsys.exit(4)\n")
    with pytest.raises(AppLoadError, match="SystemExit"):
        load_target(mod)


def test_missing_attribute(project: Callable[[str, str], str]) -> None:
    mod = project("noattr", "application = 1\n")
    with pytest.raises(AppLoadError) as info:
        load_target(mod)
    assert f"module '{mod}' has no attribute 'app'" in str(info.value)
    with pytest.raises(AppLoadError, match=f"'{mod}:application' has no 'inner'"):
        load_target(f"{mod}:application.inner")


@pytest.mark.parametrize("target", ["", ":app", "mod:", "mod:a:b", "mod:a..b"])
def test_bad_targets(target: str) -> None:
    with pytest.raises(AppLoadError, match="bad APP target"):
        load_target(target)


def test_split_target() -> None:
    assert split_target("a.b") == ("a.b", "app")
    assert split_target("a.b:c.d") == ("a.b", "c.d")


def test_working_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    other = tmp_path / "elsewhere"
    other.mkdir()
    name = f"wdmod_{os.getpid()}"
    (other / f"{name}.py").write_text("app = 'from working dir'\n")
    try:
        assert load_target(name, working_dir=str(other)) == "from working dir"
        assert Path.cwd() == other and sys.path[0] == str(other)
    finally:
        sys.modules.pop(name, None)


def test_relative_working_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `--working-dir examples` names ./examples, before and after the chdir into it
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    (tmp_path / "examples").mkdir()
    name = f"wdrel_{os.getpid()}"
    (tmp_path / "examples" / f"{name}.py").write_text("app = 'relative'\n")
    try:
        assert load_target(name, working_dir="examples") == "relative"
        assert Path.cwd() == tmp_path / "examples" and sys.path[0] == str(tmp_path / "examples")
    finally:
        sys.modules.pop(name, None)


def test_bad_working_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AppLoadError, match="working directory"):
        load_target("x:app", working_dir=str(tmp_path / "missing"))
