"""Error types shared by every layer (the bottom of the import graph)."""

from __future__ import annotations


class ConfigurationError(Exception):
    """A bad option value; the message names the option and where it came from."""


class AppLoadError(Exception):
    """The APP target could not be imported or resolved; the message names module and reason."""


class ProtocolError(Exception):
    """The peer broke the protocol. `status_hint` is the HTTP status to answer with before closing
    (h11's split: the peer's errors get their status, ours or the app's get a 500)."""

    def __init__(self, msg: str, status_hint: int = 400) -> None:
        super().__init__(msg)
        self.status_hint = status_hint
