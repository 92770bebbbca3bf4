"""Server logging set-up.

Logger names are Granian's (``_granian`` for the server, ``granian.access`` for the access log;
both defined in granian.constants), so ``--log-config`` files written for Granian keep working.
`configure(settings)` is called by the master and again by every worker after fork (dictConfig
is idempotent, and a worker may be started alone).

The access-log compiler and its batches live in granian.access_log; the names re-exported below
keep `from granian.log import AccessLog` (the worker's, the tests') working.
"""

from __future__ import annotations

import copy
import json
import logging
import logging.config
import os
from collections.abc import Mapping
from typing import Any, Protocol

# The access-log names were granian.log's before the access log got its own module: re-exported
# (listed in __all__) so existing imports keep working.
from .access_log import (
    ACCESS_FLUSH_INTERVAL,
    ACCESS_FLUSH_LINES,
    AccessBatch,
    AccessHandler,
    AccessLog,
    check_access_format,
    make_access_log,
    scan_format,
)
from .constants import ACCESS_LOGGER, DEFAULT_ACCESS_LOG_FMT, SERVER_LOGGER
from .errors import ConfigurationError

__all__ = [
    "ACCESS_FLUSH_INTERVAL",
    "ACCESS_FLUSH_LINES",
    "ACCESS_LOGGER",
    "DEFAULT_ACCESS_LOG_FMT",
    "LOGGING_CONFIG",
    "SERVER_LOGGER",
    "AccessBatch",
    "AccessHandler",
    "AccessLog",
    "build_config",
    "check_access_format",
    "configure",
    "configure_logging",
    "level_number",
    "load_config_file",
    "make_access_log",
    "scan_format",
]

logger = logging.getLogger(SERVER_LOGGER)
access_logger = logging.getLogger(ACCESS_LOGGER)

LOG_LEVELS: dict[str, int] = {
    "critical": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "notset": logging.NOTSET,
}

# Granian's default document: same formatter and handler names, so a user file that references
# `console`/`access`/`generic` keeps resolving.
LOGGING_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "generic": {
            "()": "logging.Formatter",
            "fmt": "[%(levelname)s] %(message)s",
            "datefmt": "[%Y-%m-%d %H:%M:%S %z]",
        },
        "access": {
            "()": "logging.Formatter",
            "fmt": "%(message)s",
            "datefmt": "[%Y-%m-%d %H:%M:%S %z]",
        },
    },
    "handlers": {
        "console": {"formatter": "generic", "class": "logging.StreamHandler", "stream": "ext://sys.stdout"},
        "access": {
            "formatter": "access",
            "class": "granian.access_log.AccessHandler",
            "stream": "ext://sys.stdout",
        },
    },
    "loggers": {
        SERVER_LOGGER: {"handlers": ["console"], "level": "INFO", "propagate": False},
        ACCESS_LOGGER: {"handlers": ["access"], "level": "INFO", "propagate": False},
    },
}

# Above CRITICAL: `--no-log` silences the server logger without touching handlers a user file set up.
_SILENT = logging.CRITICAL + 1


class LogSettings(Protocol):
    """The part of `granian.settings.Settings` this module reads (kept structural so that the
    bottom layers never import the settings model)."""

    @property
    def log(self) -> bool: ...
    @property
    def log_level(self) -> Any: ...
    @property
    def log_config(self) -> Any: ...


def level_number(level: Any) -> int:
    """`--log-level` value (a str or a str enum) to a logging level number."""
    name = str(getattr(level, "value", level)).lower()
    try:
        return LOG_LEVELS[name]
    except KeyError:
        raise ConfigurationError(
            f"--log-level: {name!r} is not one of {', '.join(k for k in LOG_LEVELS if k != 'notset')}"
        ) from None


def load_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a `--log-config` JSON document; errors name the file and the reason."""
    where = f"--log-config {os.fspath(path)}"
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as exc:
        raise ConfigurationError(f"{where}: cannot read: {exc.strerror or exc}") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"{where}: invalid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigurationError(
            f"{where}: expected a JSON object (a logging.config.dictConfig document), "
            f"got {type(data).__name__}"
        )
    return data


def build_config(level: Any = "info", user: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The dictConfig document: Granian's defaults with the user's document applied over them.

    Sections (`formatters`, `handlers`, `filters`, `loggers`) merge per entry, so a file that only
    redefines `granian.access` keeps the default server logger; other top-level keys replace. The
    `--log-level` goes on `_granian` unless the user's own entry for it sets a level (the file is
    the more specific statement)."""
    cfg = copy.deepcopy(LOGGING_CONFIG)
    if user:
        for key, value in user.items():
            if key in ("formatters", "handlers", "filters", "loggers") and isinstance(value, Mapping):
                section = cfg.setdefault(key, {})
                for name, entry in value.items():
                    section[name] = copy.deepcopy(entry)
            else:
                cfg[key] = copy.deepcopy(value)
    server = cfg.setdefault("loggers", {}).setdefault(SERVER_LOGGER, {})
    user_server = ((user or {}).get("loggers") or {}).get(SERVER_LOGGER)
    if not (isinstance(user_server, Mapping) and "level" in user_server):
        server["level"] = level_number(level)
    return cfg


def configure_logging(
    level: Any = "info",
    config: Mapping[str, Any] | str | os.PathLike[str] | None = None,
    enabled: bool = True,
) -> None:
    """Apply the logging setup. `config` is a dictConfig mapping or the path of a JSON file."""
    source = None
    if config is not None and not isinstance(config, Mapping):
        source = os.fspath(config)
        config = load_config_file(source)
    cfg = build_config(level, config)
    try:
        logging.config.dictConfig(cfg)
    except (ValueError, TypeError, AttributeError, ImportError) as exc:
        where = f" {source}" if source else ""
        # dictConfig wraps the real reason ("No module named ...") as the cause: show both.
        reason = f"{exc}: {exc.__cause__}" if exc.__cause__ is not None else str(exc)
        raise ConfigurationError(f"--log-config{where}: invalid logging configuration: {reason}") from exc
    if not enabled:
        logger.setLevel(_SILENT)


def configure(settings: LogSettings) -> None:
    """Configure logging from the settings; called by the master and by each worker."""
    configure_logging(settings.log_level, settings.log_config, settings.log)
