"""The importance-sampling estimator's own proposals: the cross-entropy pilot and the refit.

Owns :func:`pilot` (levels or widened nominals until failures show, then mixture fits) and
:func:`refit` (a mixture fitted to an estimate's own weighted failures, for the next estimate to start
from). :mod:`drivegpt.corner.estimate` runs them; both work on the standard space ``z ~ N(0, I_d)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from drivegpt.corner.estimate_config import EstimateConfig
from drivegpt.corner.mixture import (
    GaussianMixture,
    fit_mixture,
    inert,
    nominal,
    nominal_in,
    shape,
    with_defensive,
)

__all__ = ["pilot", "refit"]


def refit(
    z: np.ndarray, w: np.ndarray, cfg: EstimateConfig, rng: np.random.Generator
) -> GaussianMixture | None:
    """A mixture fitted to an estimate's failures ``z`` (n, d) weighted by ``w = p / q`` (n,): the
    cross-entropy update on draws from one fixed proposal, floored at ``cfg.refit_floor``, nominal where
    the failures look nominal. None below ``cfg.min_ess`` effective failures (too few to trust)."""
    if cfg.refit_floor is None or not w.sum() > 0 or w.sum() ** 2 / (w**2).sum() < cfg.min_ess:
        return None
    mix = fit_mixture(z, w, cfg.components, cfg.reg, rng)
    covs = shape(mix.covs, cfg.refit_floor)
    return nominal_in(GaussianMixture(mix.weights, mix.means, covs), inert(z, w, cfg.screen))


def pilot(
    run: Callable[[np.ndarray], np.ndarray],
    dim: int,
    cfg: EstimateConfig,
    rng: np.random.Generator,
    used: Callable[[], int],
) -> tuple[GaussianMixture | None, np.ndarray]:
    """Cross-entropy pilot: levels (or widened nominals) until failures show, then mixture fits.

    Returns the fitted mixture (None: no failure seen) and ``w * failed`` of the refinement stages'
    simulations (each drawn from a defensive mixture fixed before it: unbiased terms to recycle)."""
    p0 = nominal(dim)
    zs, logw, sev = [], [], []  # every pilot simulation with log p/q under the proposal that drew it
    used_q: list[tuple[GaussianMixture, int]] = []  # each stage's proposal and size
    recycled = []

    def stage(q: GaussianMixture) -> bool:
        n = min(cfg.pilot_batch, cfg.max_sims - used())
        if n <= 0:
            return False
        z = q.sample(rng, n)
        sev.append(run(z))
        zs.append(z)
        logw.append(p0.logpdf(z) - q.logpdf(z))
        used_q.append((q, n))
        return True

    def fit(keep: np.ndarray) -> GaussianMixture:
        """The mixture fitted to the pilot runs ``keep``, each weighted by p / (the stages' proposals
        mixed in proportion to their sizes): the balance heuristic of multiple importance sampling.
        A run's weight under its own stage's proposal alone would let the few early, nominal-drawn
        runs (weights near 1, against 1e-3 for the later ones) decide the fit."""
        z = np.concatenate(zs)[keep]
        total = sum(n for _, n in used_q)
        logq = np.stack([q.logpdf(z) + math.log(n / total) for q, n in used_q])  # (stages, n)
        top = logq.max(0)
        lw = p0.logpdf(z) - (top + np.log(np.exp(logq - top).sum(0)))
        w = np.exp(lw - lw.max())
        mix = fit_mixture(z, w, cfg.components, cfg.reg, rng)
        # a mode seen in few failures may weigh more than fitted (floor), few failures under-spread (widen)
        floor = np.maximum(mix.weights, 0.5 / len(mix.weights))
        covs = shape(cfg.widen * mix.covs, cfg.cov_floor)
        return nominal_in(GaussianMixture(floor / floor.sum(), mix.means, covs), inert(z, w, cfg.screen))

    def failures() -> int:
        return sum(int((s >= 1).sum()) for s in sev)

    q, widened = nominal(dim, cfg.inflation[0]), 0
    for _ in range(cfg.max_levels):
        if failures() >= cfg.min_elites or not stage(q):
            break
        s = sev[-1]
        if ((s > 0) & (s < 1)).any():  # graded: the next level is this stage's top fraction
            level = min(1.0, float(np.quantile(s, 1 - cfg.elite_fraction)))
            q = with_defensive(fit(np.concatenate(sev) >= level), cfg.defensive)
        elif widened + 1 < len(cfg.inflation):  # yes/no: widen the nominal
            widened += 1
            q = nominal(dim, cfg.inflation[widened])
        else:
            break
    mix = None
    for r in range(cfg.ce_refine + 1):
        f = np.concatenate(sev) >= 1 if sev else np.zeros(0, bool)
        if not f.any():
            break  # no failure seen: the estimate draws from the nominal (and says so)
        mix = fit(f)
        if r < cfg.ce_refine and stage(with_defensive(mix, cfg.defensive)):
            recycled.append(np.exp(logw[-1]) * (sev[-1] >= 1))
    wf = np.concatenate(recycled) if recycled else np.zeros(0)
    return mix, wf
