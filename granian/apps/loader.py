"""Import the APP target (``module.path:attr``) in a worker, after fork (docs/internals.md §3).

Three failures are told apart because they need different fixes: the module does not exist
(a typo or a missing --working-dir), the module raised while importing (a bug in the app; the
original traceback is kept), and the attribute is missing (a typo after the colon)."""

from __future__ import annotations

import importlib
import os
import sys
import traceback

from ..errors import AppLoadError

__all__ = ["load_target", "split_target"]

DEFAULT_ATTR = "app"


def split_target(target: str) -> tuple[str, str]:
    """``'pkg.mod:obj.attr'`` -> ``('pkg.mod', 'obj.attr')``; the attribute defaults to ``app``."""
    module, sep, attr = target.partition(":")
    if sep and not attr:
        raise AppLoadError(f"bad APP target {target!r}: nothing after ':' (expected module.path:attr)")
    attr = attr or DEFAULT_ATTR
    if not module or ":" in attr or any(not part for part in attr.split(".")):
        raise AppLoadError(f"bad APP target {target!r} (expected module.path:attr)")
    return module, attr


def _missing_is_target(exc: ModuleNotFoundError, module: str) -> bool:
    # ModuleNotFoundError names the module that was missing. When it is the target or one of
    # its parent packages, the target does not exist; anything else is an import that failed
    # inside the app's own code (a missing dependency) and deserves its traceback.
    missing = exc.name or ""
    return bool(missing) and (module == missing or module.startswith(missing + "."))


def _traceback_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip()


def load_target(target: str, factory: bool = False, working_dir: str | None = None) -> object:
    """Import ``module.path:attr`` and return the app (the factory's result when ``factory``).

    ``working_dir`` is made the current directory and put first on ``sys.path``; without it the
    current directory is, so ``granian main:app`` finds ``./main.py`` as ``python -m`` would."""
    module_name, attr = split_target(target)
    if working_dir is not None:
        # Resolved before the chdir: a relative --working-dir names a folder of the current one.
        search_dir = os.path.abspath(working_dir)
        try:
            os.chdir(search_dir)
        except OSError as exc:
            raise AppLoadError(f"cannot change to working directory {working_dir!r}: {exc}") from exc
    else:
        search_dir = os.getcwd()
    if search_dir not in sys.path:
        sys.path.insert(0, search_dir)

    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if _missing_is_target(exc, module_name):
            raise AppLoadError(
                f"could not import module {module_name!r}: no module named {exc.name!r} "
                f"(searched from {search_dir})"
            ) from exc
        raise AppLoadError(f"error while importing module {module_name!r}:\n{_traceback_text(exc)}") from exc
    except BaseException as exc:  # SystemExit/KeyboardInterrupt at import time are app errors too
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise AppLoadError(f"error while importing module {module_name!r}:\n{_traceback_text(exc)}") from exc

    obj: object = module
    walked = module_name
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AppLoadError(
                f"module {module_name!r} has no attribute {attr!r} ({walked!r} has no {part!r})"
            ) from None
        walked = f"{walked}.{part}" if walked != module_name else f"{module_name}:{part}"

    if factory:
        if not callable(obj):
            raise AppLoadError(f"--factory: {module_name}:{attr} is not callable")
        try:
            obj = obj()
        except Exception as exc:
            raise AppLoadError(f"factory {module_name}:{attr}() raised:\n{_traceback_text(exc)}") from exc
    return obj
