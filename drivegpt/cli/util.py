"""Shared pieces of the ``drivegpt`` subcommands: reproducible command lines and one-line user errors.

Every CLI module (``app`` and the modules it registers) decorates its commands with
:func:`friendly_errors` and saves :func:`command_line` next to its outputs.
"""

from __future__ import annotations

import functools
import shlex
from collections.abc import Callable
from typing import Any, TypeVar

import typer

F = TypeVar("F", bound=Callable[..., Any])
C = TypeVar("C")


def command_line(ctx: typer.Context) -> str:
    """The running subcommand with every resolved option, as a reproducible command line."""
    args = ["drivegpt", *ctx.command_path.split()[1:]]
    for name, value in ctx.params.items():
        if value is None:
            continue
        param = next(p for p in ctx.command.params if p.name == name)
        flag = f"--{name.replace('_', '-')}"
        if param.param_type_name == "argument":
            args.append(str(value))
        elif isinstance(value, bool):
            args.append(flag if value else f"--no-{name.replace('_', '-')}")
        elif isinstance(value, (list, tuple)):
            for v in value:
                args += [flag, str(v)]
        else:
            args += [flag, str(value)]
    return shlex.join(args)


def options_config(
    cls: type[C], options: dict[str, Any], what: str, flags: dict[str, str] | None = None
) -> C:
    """``config_from_dict(cls, options, what)``, its error naming the command-line option (``flags``:
    field -> flag where the two differ; otherwise ``--field-name``), not the config field."""
    from drivegpt.core.config import config_from_dict
    from drivegpt.core.errors import UserError

    try:
        return config_from_dict(cls, options, what)
    except UserError as err:
        msg = str(err)
        for field in options:
            msg = msg.replace(f"'{field}'", (flags or {}).get(field, "--" + field.replace("_", "-")))
        raise UserError(msg) from None


def _user_errors() -> tuple[type[BaseException], ...]:
    """The project's own user errors (``drivegpt.core.errors.UserError`` and its subclasses, and the
    scenario families' parameter errors); anything else is a bug and keeps its traceback."""
    from drivegpt.core.errors import UserError
    from drivegpt_envs.families.spec import FamilyParamError

    return (UserError, FamilyParamError)


def friendly_errors(fn: F) -> F:
    """Turn expected user errors into one clear line on stderr and exit code 2 (bugs keep their traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as err:
            if not isinstance(err, _user_errors()):
                raise
            typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


_command_line = command_line
