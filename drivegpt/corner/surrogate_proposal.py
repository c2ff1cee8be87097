"""The importance-sampling proposal built on a family's physics surrogate (:mod:`drivegpt.corner.surrogate`).

    q(z, s) = p(z) p(s) (δ + (1 − δ) g(z, s) / Z),
    g = Φ(−margin(z) / σ) + ρ wide(z) Φ(−margin(z) / σ_wide) + w traffic(z, s),

``Φ(−margin / σ)`` read as the chance that the true margin is negative when the surrogate's is off by
N(0, σ²); ``wide`` where a family's margin is least sure, with a wider scale; ``traffic`` a family's
term over the scenario seed ``s`` (uniform on [0, ``SEEDS``) under p) for failures the margin does not
see. The last two where the family has them (``Surrogate``). ``Z = E_p[g]`` comes from ``z_draws``
nominal draws of their own; the weights divide by that estimate, which scales the estimate by about
``Ẑ / Z`` (unbiased to first order; its relative standard error ``z_rel_se`` is added to the
estimate's interval). A draw from ``q`` is a nominal one with probability δ, else a nominal one
accepted with probability ``g / max g``. It needs no pilot, so an estimate's first use costs only the
simulations of the estimate itself.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from drivegpt.core.errors import UserError
from drivegpt.corner.mixture import nominal
from drivegpt.corner.naturalistic import FamilyDistribution, _ndtr_v
from drivegpt.corner.surrogate import SURROGATES

__all__ = ["SEEDS", "Z_DRAWS", "SurrogateProposal"]

#: nominal points behind Z (on one core about 13 s for a margin, Z's relative error about 1.3%; about
#: 25 s and 1.1% for ``stalled_car``'s, with its wide scale and traffic term)
Z_DRAWS = 2**20
SEEDS = 2**31  #: a proposal that draws scenario seeds draws them uniformly from [0, SEEDS)


class SurrogateProposal:
    """``q(z, s) = p(z) p(s) (δ + (1 − δ) g(z, s) / Z)``, ``g = Φ(−margin(z) / σ) + ρ wide(z)
    Φ(−margin(z) / σ_wide) + w traffic(z, s)``, over a family's standard space and, where its
    surrogate has a traffic term (``seeded``), the scenario seed ``s``, uniform on [0, ``SEEDS``) under
    p. Without one it is a Proposal on ``z`` alone (``sample``, ``logpdf``); with one the estimator
    draws ``sample_seeded`` and weighs each simulation by ``1 / ratio(z, s)``."""

    def __init__(
        self,
        dist: FamilyDistribution,
        defensive: float | None = None,
        sigma: float | None = None,
        z_draws: int | None = None,
        seed: int = 0,
        traffic: bool = True,
    ) -> None:
        """``defensive`` and ``sigma``: None takes the family's own (``SURROGATES``); ``traffic``: the
        family's term over the scenario seed, where it has one (False: the margin's terms alone)."""
        z_draws = Z_DRAWS if z_draws is None else z_draws
        if dist.family not in SURROGATES:
            raise UserError(
                f"{dist.family} has no physics surrogate; --surrogate works on: {', '.join(SURROGATES)}"
            )
        own = SURROGATES[dist.family]
        defensive = own.defensive if defensive is None else defensive
        sigma = own.sigma if sigma is None else sigma
        if not (0 < defensive < 1 and sigma > 0 and z_draws >= 1):
            raise ValueError(
                f"need 0 < defensive < 1, sigma > 0, z_draws >= 1: {defensive}, {sigma}, {z_draws}"
            )
        if own.wide is not None and not (own.wide_sigma > 0 and own.wide_weight >= 0):
            raise ValueError(f"{dist.family}: a wide scale needs wide_sigma > 0 and wide_weight >= 0")
        self.dist, self.defensive, self.sigma = dist, defensive, sigma
        self.margin_of, self.wide, self.wide_sigma = own.margin, own.wide, own.wide_sigma
        self.wide_weight = own.wide_weight if own.wide is not None else 0.0
        self.traffic = own.traffic if traffic else None
        self.seeded = self.traffic is not None
        self.weight = own.traffic_weight if self.seeded else 0.0
        rng = np.random.default_rng([seed, 0x5A])  # Z's own draws: one stream, in chunks (small arrays)
        g = np.concatenate([self.g(*self._nominal(rng, min(2**16, z_draws - lo)))
                            for lo in range(0, z_draws, 2**16)])  # fmt: skip
        self.z = float(g.mean())
        if not (math.isfinite(self.z) and self.z > 0):
            raise UserError(
                f"{dist.family}: the surrogate's normalising constant over {z_draws} nominal draws is "
                f"{self.z}: it needs mass somewhere, and a finite margin everywhere"
            )
        self.z_rel_se = float(g.std() / math.sqrt(z_draws) / self.z)
        self.z_draws = z_draws

    def _nominal(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray | None]:
        """``n`` draws of p: points (n, d) and, where the proposal draws them, scenario seeds (n,)."""
        z = rng.standard_normal((n, self.dist.dim))
        return z, (rng.integers(0, SEEDS, n) if self.seeded else None)

    def g(self, z: np.ndarray, seeds: np.ndarray | None = None) -> np.ndarray:
        """(n,) g at standard points ``z`` (n, d) and, where it has a traffic term, their ``seeds``."""
        params = self.dist.to_params(z)
        out = self._near(params)
        if self.traffic is not None:
            out = out + self.weight * self._traffic(params, seeds)
        return out

    def _near(self, params: np.ndarray) -> np.ndarray:
        """(n,) g's terms in the margin, ``Φ(−margin / σ) + ρ wide Φ(−margin / σ_wide)``, at the
        family's parameters (n, d)."""
        margin = self.margin_of(params, self.dist.names)
        out = _ndtr_v(-margin / self.sigma)
        if self.wide is not None:
            wide = self.wide(params, self.dist.names)  # (n,) bool
            out = out + self.wide_weight * wide * _ndtr_v(-margin / self.wide_sigma)
        return out

    def _traffic(self, params: np.ndarray, seeds: np.ndarray | None) -> np.ndarray:
        """(n,) the family's traffic term at parameters (n, d) and scenario ``seeds`` (n,)."""
        if self.traffic is None or seeds is None:
            raise ValueError(f"{self.dist.family}'s proposal has a term over the scenario seeds: pass them")
        return self.traffic(params, self.dist.names, np.asarray(seeds))

    def ratio(self, z: np.ndarray, seeds: np.ndarray | None = None) -> np.ndarray:
        """(n,) q / p at points ``z`` (n, d) with their scenario ``seeds`` (n,) where ``seeded``."""
        return self.defensive + (1 - self.defensive) * self.g(np.atleast_2d(z), seeds) / self.z

    def logpdf(self, z: np.ndarray) -> np.ndarray:
        """log q(z), where q is a density of ``z`` alone (not ``seeded``)."""
        if self.seeded:
            raise TypeError(
                f"{self.dist.family}'s proposal depends on the scenario seed: use ratio(z, seeds)"
            )
        return nominal(self.dist.dim).logpdf(np.atleast_2d(z)) + np.log(self.ratio(z))

    def sample_seeded(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray | None]:
        """(n, d) points and (n,) seeds (None: not ``seeded``): each a nominal draw with probability δ,
        else a nominal draw accepted with probability g / max g (the traffic term worked out only for
        the candidates it decides: those the margin's terms alone neither accept nor rule out)."""
        top = 1 + self.wide_weight + self.weight  # g's largest value
        k = int(rng.binomial(n, self.defensive))
        z0, s0 = self._nominal(rng, k)
        zs, ss, need = [z0], [s0], n - k
        while need > 0:
            cand, seeds = self._nominal(rng, max(1024, int(2 * need * top / self.z)))
            params = self.dist.to_params(cand)
            near, u = self._near(params), rng.random(len(cand)) * top  # accept where u < g
            accept = u < near
            if seeds is not None:  # near <= u < near + w: the traffic term decides
                band = np.flatnonzero(~accept & (u < near + self.weight))
                accept[band] = u[band] < near[band] + self.weight * self._traffic(params[band], seeds[band])
            kept = np.flatnonzero(accept)[:need]
            zs.append(cand[kept])
            ss.append(seeds[kept] if seeds is not None else None)
            need -= len(kept)
        order = rng.permutation(n)
        z = np.concatenate(zs)[order]
        return z, (np.concatenate(ss)[order] if self.seeded else None)  # type: ignore[arg-type]

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """(n, d) points, where q is a density of ``z`` alone (not ``seeded``)."""
        if self.seeded:
            raise TypeError(f"{self.dist.family}'s proposal draws scenario seeds: use sample_seeded")
        return self.sample_seeded(rng, n)[0]

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "surrogate",
            "family": self.dist.family,
            "sigma_m": self.sigma,
            "defensive": self.defensive,
            "traffic_weight": self.weight,
            "wide_sigma_m": self.wide_sigma if self.wide is not None else None,
            "wide_weight": self.wide_weight,
            "z": self.z,
            "z_rel_se": self.z_rel_se,
            "z_draws": self.z_draws,
        }
