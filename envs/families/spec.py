"""Typed parameter specs and the ``FamilyEnv`` mixin every scenario family is built on.

A family is a small highway-env subclass with a ``PARAMS`` table of named, ranged, unit-carrying
parameters. They arrive through ``reset(options={"params": {...}})``, are validated by
:meth:`FamilyEnv.check_params` (missing ones default to the range midpoint) and are echoed in every
``info["params"]``. Same parameters + seed → the same episode, exactly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar, NamedTuple

import numpy as np

from drivegpt_envs.observation import FastKinematicsEnv


class ParamSpec(NamedTuple):
    """One scenario parameter: the closed range ``[low, high]`` it may take, its unit and meaning."""

    low: float
    high: float
    unit: str
    doc: str

    @property
    def mid(self) -> float:
        return 0.5 * (self.low + self.high)


class FamilyParamError(ValueError):
    """A scenario parameter that does not exist or is out of its range."""


class FamilyEnv(FastKinematicsEnv):
    """Mixin placed before a highway-env ``AbstractEnv`` subclass: parameters through ``reset`` options."""

    FAMILY: ClassVar[str]
    """snake_case family name, e.g. ``"stalled_car"``."""
    PARAMS: ClassVar[dict[str, ParamSpec]]
    """parameter name → its spec; the draw order of :meth:`sample_params` is this order."""

    params: dict[str, float]

    @classmethod
    def check_params(cls, params: Mapping[str, float] | None) -> dict[str, float]:
        """Validated parameters, every name filled in (missing → range midpoint)."""
        valid = ", ".join(cls.PARAMS)
        out = {name: spec.mid for name, spec in cls.PARAMS.items()}
        for name, value in (params or {}).items():
            spec = cls.PARAMS.get(name)
            if spec is None:
                raise FamilyParamError(
                    f"scenario family '{cls.FAMILY}' has no parameter {name!r}; valid parameters: {valid}"
                )
            try:
                number = float(value)
            except (TypeError, ValueError):
                number = math.nan
            if not (spec.low <= number <= spec.high):  # also rejects NaN
                raise FamilyParamError(
                    f"scenario family '{cls.FAMILY}': parameter '{name}' = {value!r} is out of its range "
                    f"[{spec.low:g}, {spec.high:g}] {spec.unit} ({spec.doc}); valid parameters: {valid}"
                )
            out[name] = number
        return out

    @classmethod
    def sample_params(cls, rng: np.random.Generator) -> dict[str, float]:
        """Parameters drawn uniformly in their ranges, in ``PARAMS`` order."""
        return {name: float(rng.uniform(spec.low, spec.high)) for name, spec in cls.PARAMS.items()}

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        """``options["params"]`` (validated) sets the scenario; other options go to highway-env."""
        options = dict(options or {})
        self.params = self.check_params(options.pop("params", None))
        obs, _ = super().reset(seed=seed, options=options)  # type: ignore[misc]
        # highway-env's reset info holds a random action sample (unseeded): report no action instead.
        return obs, self._info(obs, action=None)

    def _info(self, obs: Any, action: Any = None) -> dict:
        info = super()._info(obs, action)  # type: ignore[misc]
        info["params"] = dict(self.params)
        return info
