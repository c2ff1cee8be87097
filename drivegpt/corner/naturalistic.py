"""Naturalistic parameter distributions: how often each corner-case parameter occurs on real roads.

A family's search box is where failures are common; this module says how likely each point of it is
in ordinary driving. Each parameter gets an independent normal (``normal``) or log-normal
(``lognormal``: a normal of ``log x``) truncated to the family's box, so an estimate under it is a
failure probability *given that the scenario happens*. Where the project's human-driving logs show a
parameter it is fitted from them (moments of per-step statistics of highway episodes); where they do
not, the marginal is a documented prior. :mod:`drivegpt.corner.naturalistic_fit` fits the model and
says which parameter is fitted from what, and why each prior is what it is.

The model is stored as JSON (``drivegpt-naturalistic`` v1, no pickle) with the command that fitted
it; ``drivegpt/suites/naturalistic.json`` is the shipped default. Estimation works in the *standard
space* of a family: ``z ~ N(0, I_d)`` maps to parameters through each marginal's truncated inverse
CDF (:meth:`FamilyDistribution.to_params`), so the naturalistic distribution is exactly ``N(0, I)``
there and proposals are plain Gaussian mixtures with full support. :class:`WithHumanTraits` adds the
simulated human's seven personality traits as further standard-normal coordinates (uniform on their
``PersonalityRanges``, as the human draws them), so an estimate can sample the driver with the scene.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from statistics import NormalDist
from typing import Any, Literal

import numpy as np
from pydantic import Field

from drivegpt.core.atomic import write_json
from drivegpt.core.config import FrozenConfig, config_from_dict
from drivegpt.core.errors import MissingInputError, UserError
from drivegpt.core.resources import SUITES
from drivegpt.sim.personality import PersonalityRanges

FORMAT = "drivegpt-naturalistic"
VERSION = 1
DEFAULT_PATH = SUITES / "naturalistic.json"  #: the shipped default model

Kind = Literal["normal", "lognormal"]


class Marginal(FrozenConfig):
    """One parameter's naturalistic distribution: a normal of ``x`` (or of ``log x``) truncated to the box."""

    kind: Kind
    """normal: ``x ~ N(mu, sigma)``; lognormal: ``log x ~ N(mu, sigma)``; both truncated to [low, high]."""
    mu: float
    """Mean of the underlying normal (of ``x``, or of ``log x``)."""
    sigma: float = Field(gt=0)
    """Standard deviation of the underlying normal."""
    low: float
    """The family's lower bound (the unit of the family's parameter)."""
    high: float
    """The family's upper bound."""
    source: str
    """Where it comes from: ``logs: <statistic> (n=...)`` or ``prior: <reason>``."""

    def _bounds(self) -> tuple[float, float]:
        """Truncation bounds in standard units of the underlying normal."""
        f = math.log if self.kind == "lognormal" else float
        return (f(self.low) - self.mu) / self.sigma, (f(self.high) - self.mu) / self.sigma

    @property
    def box_mass(self) -> float:
        """Probability that the untruncated distribution falls inside the family's box."""
        a, b = self._bounds()
        return _ndtr(-a) - _ndtr(-b) if a > 0 else _ndtr(b) - _ndtr(a)

    def from_standard(self, z: np.ndarray) -> np.ndarray:
        """Parameter values at standard-normal ``z`` (quantile transform onto the truncated marginal)."""
        a, b = self._bounds()
        u = _ndtr_v(z)
        if a > 0:  # both bounds in the upper tail: work with the mirrored lower tail (precision)
            t = -_ndtri_v(_ndtr(-a) - u * (_ndtr(-a) - _ndtr(-b)))
        else:
            t = _ndtri_v(_ndtr(a) + u * (_ndtr(b) - _ndtr(a)))
        x = self.mu + self.sigma * np.clip(t, a, b)
        return np.clip(np.exp(x) if self.kind == "lognormal" else x, self.low, self.high)


class NaturalisticModel(FrozenConfig):
    """``naturalistic.json``: every family's marginals and how they were made."""

    format: Literal["drivegpt-naturalistic"] = FORMAT
    """File format name."""
    version: Literal[1] = VERSION
    """File format version."""
    created_by: str
    """The command that fitted it."""
    logs: dict[str, Any] = {}
    """The log dataset the fitted marginals read: path, episodes, steps used."""
    families: dict[str, dict[str, Marginal]]
    """family -> parameter -> marginal, in the family's ``PARAMS`` order."""


class FamilyDistribution:
    """The naturalistic distribution of one family, as a map from standard space to parameters."""

    def __init__(self, family: str, marginals: dict[str, Marginal]):
        self.family, self.marginals = family, marginals
        self.names = list(marginals)

    @property
    def dim(self) -> int:
        return len(self.names)

    def to_params(self, z: np.ndarray) -> np.ndarray:
        """(n, d) standard-normal points -> (n, d) parameter values in ``names`` order."""
        z = np.atleast_2d(z)
        return np.stack([m.from_standard(z[:, i]) for i, m in enumerate(self.marginals.values())], 1)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """(n, d) parameter values drawn from the naturalistic distribution."""
        return self.to_params(rng.standard_normal((n, self.dim)))


TRAIT_PREFIX = "human."  #: parameter-name prefix of the simulated human's personality traits


class WithHumanTraits(FamilyDistribution):
    """A family's distribution joined with the simulated human's personality, as extra dimensions.

    The human draws each trait uniformly from its ``PersonalityRanges`` range; here the draw is
    ``lo + (hi - lo) Phi(z)`` of a standard-normal coordinate, the same distribution, so an estimate
    over the joint space is the same failure probability. Importance sampling can then lean on the
    traits a failure depends on (a short time headway, a late reaction) instead of leaving them to the
    scenario seed. Names: the family's, then ``human.<trait>`` in ``PersonalityRanges`` order.
    """

    def __init__(self, base: FamilyDistribution, ranges: PersonalityRanges | None = None):
        super().__init__(base.family, base.marginals)
        ranges = ranges or PersonalityRanges()
        self.traits = list(type(ranges).model_fields)
        self.names = base.names + [TRAIT_PREFIX + t for t in self.traits]
        self._lo, self._hi = (np.array([getattr(ranges, t)[i] for t in self.traits], float) for i in (0, 1))

    def to_params(self, z: np.ndarray) -> np.ndarray:
        z = np.atleast_2d(z)
        k = len(self.marginals)
        traits = self._lo + (self._hi - self._lo) * _ndtr_v(z[:, k:])  # (n, 7) uniform on each range
        return np.concatenate([super().to_params(z[:, :k]), traits.reshape(len(z), -1)], 1)


def box_of(spec: Any) -> dict[str, float]:
    """A family parameter's box as a marginal's ``low`` and ``high``."""
    return {"low": float(spec.low), "high": float(spec.high)}


def save_naturalistic(model: NaturalisticModel, out: str | Path) -> Path:
    """Write the model as JSON (atomically), with each marginal's box mass for the reader."""
    data = model.to_dict()
    for family, marginals in model.families.items():
        for name, m in marginals.items():
            data["families"][family][name]["box_mass"] = round(m.box_mass, 6)
    write_json(out, data)
    return Path(out)


def load_naturalistic(path: str | Path | None = None) -> NaturalisticModel:
    """A naturalistic model file (default: the shipped one); a bad file is a :class:`UserError`."""
    path = Path(path) if path is not None else DEFAULT_PATH
    if not path.is_file():
        raise MissingInputError(
            f"{path}: no such file; fit one with `drivegpt corner-cases fit-naturalistic`"
        )
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise UserError(f"{path}: not JSON ({err}); fit it again with `fit-naturalistic`") from None
    for marginals in (data.get("families") or {}).values():
        for m in marginals.values():
            m.pop("box_mass", None)  # derived, written for the reader only
    return config_from_dict(NaturalisticModel, data, str(path))


def family_distribution(family: str, model: NaturalisticModel | None = None) -> FamilyDistribution:
    """The naturalistic distribution of ``family``, truncated to the family's *current* box.

    A marginal describes the parameter on the road, so a changed box only moves the truncation; a
    parameter the model does not know (a new or renamed one) needs a new fit."""
    from drivegpt_envs.families import family_class

    model = model or load_naturalistic()
    specs = family_class(family).PARAMS
    marginals = model.families.get(family, {})
    missing = [name for name in specs if name not in marginals]
    if missing:
        raise UserError(
            f"naturalistic model has no marginal for {family}.{', '.join(missing)}; fit it again with "
            "`drivegpt corner-cases fit-naturalistic`"
        )
    boxed = {name: marginals[name].model_copy(update=box_of(spec)) for name, spec in specs.items()}
    return FamilyDistribution(family, boxed)


_NORMAL = NormalDist()


def _ndtr(z: float) -> float:
    """Standard normal CDF."""
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def _ndtri(u: float) -> float:
    """Standard normal quantile (clipped away from 0 and 1)."""
    return _NORMAL.inv_cdf(min(max(u, 1e-300), 1.0 - 1e-16))


_ndtr_v = np.vectorize(_ndtr, otypes=[float])
_ndtri_v = np.vectorize(_ndtri, otypes=[float])
