"""The ``granian`` command, generated from the settings model so each option is declared once
(granian/settings.py). Only the options the user actually typed are passed to
``settings.load()``, which resolves them against the environment and the config file."""

from __future__ import annotations

import enum
import types
import typing
from typing import TYPE_CHECKING, Any

import click

from . import __version__
from .errors import AppLoadError, ConfigurationError
from .settings import OptionError, Settings, option_meta, option_names, parse_duration

__all__ = ["Duration", "build_command", "cli", "entrypoint"]

if TYPE_CHECKING:
    # Recent click makes ParamType generic; older releases (>= 8.1 is supported) are not
    # subscriptable at run time, so the parameters exist for the type checker only.
    _DurationBase = click.ParamType[int, Any]
    _AnyType = click.ParamType[Any, Any]
else:
    _DurationBase = _AnyType = click.ParamType


class Duration(_DurationBase):
    """A DURATION option: an integer number of seconds or a ``1d2h3m4s``-style combination."""

    name = "duration"

    def __init__(self, min: int | None = None, max: int | None = None) -> None:
        self.min = min
        self.max = max

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        try:
            return parse_duration(value, self.min, self.max)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "DURATION"


def _unwrap_optional(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _bounds(name: str) -> tuple[Any, Any]:
    ge = le = None
    for item in Settings.model_fields[name].metadata:
        ge = getattr(item, "ge", ge)
        le = getattr(item, "le", le)
    return ge, le


def _show(value: Any) -> str:
    if value is None or value == ():
        return "none"
    if isinstance(value, bool):
        return "enabled" if value else "disabled"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, tuple):
        return " ".join(map(str, value))
    return str(value)


def _param_type(name: str, annotation: Any) -> _AnyType:
    meta = option_meta(name)
    ge, le = _bounds(name)
    if meta.duration:
        return Duration(ge, le)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return click.Choice([str(m.value) for m in annotation], case_sensitive=False)
    if meta.metavar == "OCTAL":
        return click.STRING  # parsed as octal by the model
    if annotation is int:
        return click.INT
    if annotation is float:
        return click.FLOAT
    return click.STRING


def _help(name: str) -> str:
    info = Settings.model_fields[name]
    meta = option_meta(name)
    default = meta.default_help or _show(info.default)
    parts = [f"env var: {', '.join(meta.envs)}", f"default: {default}"]
    ge, le = _bounds(name)
    if meta.metavar == "OCTAL":
        parts.append(f"range: {ge:o}..{le:o} (octal)")
    elif ge is not None or le is not None:
        lo = "" if ge is None else f"{ge}<="
        hi = "" if le is None else f"<={le}"
        parts.append(f"range: {lo}x{hi}")
    return f"{info.description} [{'; '.join(parts)}]"


def _option(name: str) -> click.Option:
    meta = option_meta(name)
    annotation = _unwrap_optional(Settings.model_fields[name].annotation)
    helptext = _help(name)
    # default=None everywhere: the command forwards only options whose ParameterSource is the
    # command line, and --help shows the model's default (from the help text), not click's.
    if annotation is bool:
        decls = [f"{flag}/--no-{flag[2:]}" for flag in meta.flags]
        return click.Option([*decls, name], default=None, help=helptext)
    multiple = typing.get_origin(annotation) is tuple
    if multiple:
        ptype: _AnyType = click.STRING
    else:
        ptype = _param_type(name, annotation)
    metavar = meta.metavar
    if metavar is None and not isinstance(ptype, click.Choice) and not isinstance(ptype, Duration):
        metavar = ptype.name.upper()
    return click.Option(
        [*meta.flags, name],
        type=ptype,
        default=None,
        multiple=multiple,
        metavar=metavar,
        help=helptext,
    )


def _run(**params: Any) -> None:
    ctx = click.get_current_context()
    given: dict[str, Any] = {}
    for name, value in params.items():
        if ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE:
            given[name] = list(value) if isinstance(value, tuple) else value
    try:
        from .settings import load

        settings = load(given)
    except OptionError as exc:
        if exc.option == "APP" and exc.source is None:
            raise click.UsageError("Missing argument 'APP'.", ctx) from None
        raise click.BadParameter(exc.reason, ctx=ctx, param_hint=exc.param_hint) from None
    except ConfigurationError as exc:
        raise click.UsageError(str(exc), ctx) from None

    # Imported here: the master's machinery is not needed for --help, --version or bad options.
    # exec_master replaces this process by the slim master (supervisor/masterproc.py): it
    # returns only when the server could not start, or ran in this process after all.
    from .supervisor import exec_master

    try:
        code = exec_master(settings)
    except AppLoadError as exc:
        click.echo(f"Error: {exc}", err=True)
        code = 1
    ctx.exit(code)


def build_command() -> click.Command:
    """The click command, one option per settings field (plus APP and --version)."""
    params: list[click.Parameter] = [click.Argument(["app"], required=False, metavar="APP")]
    params.extend(_option(name) for name in option_names())
    command = click.Command(
        name="granian",
        callback=_run,
        params=params,
        help="Serve APP (module.path:attr; attr defaults to 'app') over HTTP.\n\n"
        "Every option also reads the environment variable shown and a key of the --config file; "
        "precedence is command line > environment > config file > default.",
        context_settings={
            "max_content_width": 120,
            "terminal_width": 120,
            "help_option_names": ["-h", "--help"],
        },
    )
    return click.version_option(
        __version__, "--version", prog_name="granian", message="%(prog)s %(version)s"
    )(command)


cli = build_command()


def entrypoint() -> None:
    """Console-script entry point (`granian`, `python -m granian`)."""
    cli(prog_name="granian")
