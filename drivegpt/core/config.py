"""Typed, frozen configuration objects filled from YAML.

Every config is a pydantic model with ``frozen=True`` and ``extra="forbid"``; each field carries a
docstring (read by ``use_attribute_docstrings``). YAML only fills them: an unknown key or a bad value
fails at construction with a one-line message naming the file, the key and the valid choices.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from drivegpt.core.errors import UserError
from drivegpt.core.resources import packaged_configs, resolve_config

__all__ = ["ConfigError", "FrozenConfig", "load_config", "config_from_dict"]

C = TypeVar("C", bound="FrozenConfig")


class ConfigError(UserError):
    """A config file or value is wrong; the message says where and how to fix it."""


class FrozenConfig(BaseModel):
    """Base of every config object: immutable, no unknown keys, field docs from docstrings."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (tuples become lists)."""
        return json.loads(self.model_dump_json())


def _model_at(cls: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The config class that owns the last key of ``loc`` (to list its valid keys)."""
    model: Any = cls
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if hasattr(model, "model_fields") else None
        if field is None:
            return None
        ann = field.annotation
        args = getattr(ann, "__args__", ()) or ()
        candidates = [ann, *args]
        for arg in list(args):
            candidates.extend(getattr(arg, "__args__", ()) or ())
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if model is None:
            return None
    return model


def _format_error(cls: type[BaseModel], err: ValidationError, source: str) -> str:
    lines = []
    for e in err.errors():
        loc = tuple(e["loc"])
        key = ".".join(str(p) for p in loc) or "<root>"
        if e["type"] == "extra_forbidden":
            owner = _model_at(cls, loc)
            valid = sorted(owner.model_fields) if owner else []
            lines.append(f"{source}: unknown key '{key}'; valid keys here: {', '.join(valid)}")
        elif e["type"] == "missing":
            lines.append(f"{source}: missing required key '{key}'")
        elif not loc:  # a check across keys (a model validator): its message names them
            lines.append(f"{source}: {str(e['msg']).removeprefix('Value error, ')}")
        else:
            lines.append(f"{source}: bad value for '{key}': {e['msg']} (got {e.get('input')!r})")
    return "; ".join(lines)


def config_from_dict(cls: type[C], data: dict[str, Any] | None, source: str = "<dict>") -> C:
    """Build ``cls`` from a dict, turning validation errors into a :class:`ConfigError`."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return cls.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_error(cls, err, source)) from None


def load_config(
    cls: type[C],
    path: str | Path,
    overrides: dict[str, Any] | None = None,
    flags: dict[str, str] | None = None,
) -> C:
    """Read a YAML file into ``cls``; ``overrides`` (top-level keys, from the command line) win over the
    file, and a bad one is named by its flag (``flags``: key -> flag where they differ; else ``--key``)."""
    path = resolve_config(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found; the packaged ones are in {packaged_configs()}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    try:
        return config_from_dict(cls, {**data, **given}, source=str(path))
    except ConfigError as err:  # a bad value given on the command line is not the file's
        msg = str(err)

        def flag(key: str) -> str:
            return (flags or {}).get(key, "--" + key.replace("_", "-"))

        for k in given:
            said = f"{path}: bad value for '{k}'"
            if msg.startswith(said):
                raise ConfigError(msg.replace(said, f"bad value for {flag(k)}", 1)) from None
        if given and not any(k in msg for k in ("bad value for '", "unknown key '", "missing required key")):
            # a check across keys failed: the file and the options together
            opts = ", ".join(f"{flag(k)} {v}" for k, v in given.items())
            raise ConfigError(msg.replace(f"{path}: ", f"{path} with {opts}: ", 1)) from None
        raise
