"""A plain, read-only copy of the resolved settings, for worker processes.

The master resolves `granian.settings.Settings` (pydantic-settings) once; a worker only reads the
resulting values. Importing pydantic costs every worker ~16-25 MiB of RSS for nothing, so the
master hands each worker `settings.model_dump()` (ints, strs, bools, tuples, paths and
`granian.constants` str enums: all picklable without pydantic) and the worker reads it through
this class, which has the same attribute names as `Settings`. Nothing here imports pydantic.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from typing import Any, NoReturn


class SettingsSnapshot(types.SimpleNamespace):
    """Attribute access to a settings dict; frozen like `Settings` (model_config frozen=True), so a
    worker cannot drift from what the master resolved."""

    __slots__ = ()

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> SettingsSnapshot:
        return cls(**values)

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError(f"settings are read-only: cannot set {name!r}")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"settings are read-only: cannot delete {name!r}")

    def model_dump(self) -> dict[str, Any]:
        """The values as a dict (`Settings.model_dump()`'s shape)."""
        return dict(vars(self))
