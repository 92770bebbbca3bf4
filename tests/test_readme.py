"""README.md's two set-up commands are what CI runs; this keeps them from drifting apart."""

from __future__ import annotations

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```sh\n(.+?)\n```", text)


def test_readme_has_exactly_two_setup_commands_at_the_top() -> None:
    commands = _readme_commands()
    assert len(commands) >= 2
    first, second = commands[:2]
    assert "pip install" in first and "granian" in first.split("&&")[-1]
    assert "pip install" in second and "pytest" in second
    # Both come before any second-level section.
    text = (ROOT / "README.md").read_text()
    assert text.index(second) < text.index("\n## ")


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert _readme_commands()[1] in ci


def test_ci_serves_the_readme_example_command_verbatim() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    serve = _readme_commands()[0].split("&&")[-1].strip()
    assert serve in ci
