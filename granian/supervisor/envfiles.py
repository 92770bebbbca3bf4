"""`--env-files`: dotenv files read once by the master, applied in each worker after fork.

Reading in the master reports a missing or unreadable file at start-up (once), and keeps the
master's own environment untouched; python-dotenv (already a pydantic-settings dependency) does
the parsing so quoting and `export` rules match what users know from other tools.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from dotenv import dotenv_values

from ..errors import ConfigurationError


def read(paths: Sequence[str]) -> dict[str, str]:
    """Merge the files in order (later files win); ConfigurationError naming a missing file."""
    merged: dict[str, str] = {}
    for path in paths:
        if not os.path.isfile(path):
            raise ConfigurationError(f"--env-files {path}: no such file")
        for key, value in dotenv_values(path).items():
            # A bare `KEY` line has no value: dotenv yields None, there is nothing to set.
            if value is not None:
                merged[key] = value
    return merged


def apply(values: Mapping[str, str]) -> None:
    # python-dotenv's `load_dotenv` default: a variable already set in the real environment wins,
    # so an operator can override one value without editing the file.
    for key, value in values.items():
        os.environ.setdefault(key, value)
