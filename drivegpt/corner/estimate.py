"""Failure probability under the naturalistic distribution: plain Monte Carlo or importance sampling.

Everything happens in the *standard space* of the nominal distribution, ``z ~ N(0, I_d)``
(:mod:`drivegpt.corner.naturalistic` maps it to a family's parameters), and simulations go through a
pluggable ``simulate_batch(params (n, d), seeds (n,)) -> severity (n,)``: a failure is severity 1; a
graded simulator says how close each run came to failing with a value in [0, 1) (the batched families:
from the smallest time-to-collision), a yes/no one returns booleans (0 and 1).

* ``mc``: ``z`` from the nominal; estimate = failures / simulations, Wilson 95% interval. So is
  ``is`` when its pilot saw no failure at all (there is nothing to fit a proposal to).
* ``is``: a proposal ``q`` fitted by the cross-entropy method, then ``p = mean(w * failed)`` with
  ``w = p(z) / q(z)``, a normal 95% interval from the sample variance. The pilot first finds the
  failure region, level by level until ``min_elites`` failures show up: with a graded simulator, the
  multilevel cross-entropy method (each stage's level is its top ``elite_fraction`` of severities; a
  mixture fitted to the runs at or above the level draws the next stage); with a yes/no simulator,
  the nominal widened by each factor of ``inflation`` in turn. A Gaussian mixture is then fitted by
  weighted EM to the failures so far, each weighted by p over all the pilot's proposals mixed in
  proportion to their sizes (the balance heuristic), and refined ``ce_refine`` times. Fitted
  covariances are widened and their eigenvalues raised to ``cov_floor``, 1 by default: a component
  narrower than the nominal in some direction gives the failures far out along it heavy weights, so a
  failure region with a thin second mode, or one extending along a dimension the fit saw little of, is
  under-estimated with an interval that looks tight. Dimensions whose failures look nominal (``screen``)
  are left at the nominal. The estimation proposal is that mixture plus a defensive component, the nominal
  itself with weight ``defensive``: it keeps support everywhere and bounds
  every weight by ``1 / defensive``. The estimate averages ``w * failed`` over the simulations of the
  refinement stages and of the final proposal: each is drawn from a proposal fixed before it, so each
  term has expectation ``p`` (unbiased); the widened-nominal stages only find the failures. ``sims``
  counts every simulation, pilot included.

Both stop after a batch once the relative half-width (95% half-width / estimate) is at most the
target, or at ``max_sims``. Importance weights whose effective sample size over failures,
``(sum w f)^2 / sum (w f)^2``, is below ``min_ess`` are *degenerate*: the result says so, and its
interval is ``[0, 1]`` with no relative half-width, never a tight interval. Same seed, same result.
An importance-sampling estimate's ``mixture`` (the pilot's; with ``refit_floor`` set, refitted to the
estimate's own failures where at least ``min_ess`` effective ones allow) is written to
``proposal.json`` (:mod:`drivegpt.corner.proposal_file`), from which a later estimate can start
without a pilot. With ``halfspace_share`` set, the file also holds the half-space beyond the
estimate's failures (:mod:`drivegpt.corner.halfspace`), blended with the mixture when reused. A given
proposal may draw the scenario seeds too (``seeded``, as ``stalled_car``'s surrogate,
:mod:`drivegpt.corner.surrogate_proposal`): each simulation then runs on its drawn seed and is weighted
by the proposal's own ``1 / ratio(z, seed)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from drivegpt.core.metrics import check_metric_names, wilson_interval
from drivegpt.corner.estimate_config import EstimateConfig, Method
from drivegpt.corner.estimate_report import plot_convergence, write_estimate
from drivegpt.corner.halfspace import HalfSpace, fit_halfspace
from drivegpt.corner.mixture import (
    GaussianMixture,
    Proposal,
    check_support,
    describe,
    nominal,
    with_defensive,
)
from drivegpt.corner.pilot import pilot, refit

__all__ = ["EstimateConfig", "Method", "estimate_probability", "plot_convergence", "write_estimate"]

Z95 = 1.959963984540054
SimulateBatch = Callable[[np.ndarray, np.ndarray], np.ndarray]  #: (n, d) params, (n,) seeds -> (n,) severity


class Estimate(NamedTuple):
    method: str
    failure_probability: float
    failure_probability_ci: tuple[float, float]
    rel_halfwidth: float | None  # None: no estimate yet (no failure) or degenerate weights
    effective_sample_size: float
    sims: int  # pilot included
    pilot_sims: int  # the IS pilot's (its refinement stages are recycled into the estimate)
    failures: int  # failures among the simulations the estimate uses
    converged: bool  # reached the target relative half-width
    degenerate: bool
    acceleration_factor: float | None  # IS: simulations plain MC needs for the same half-width / sims
    history: list[tuple[int, float, float, float]]  # (sims, estimate, lo, hi) after each batch
    proposal: dict[str, Any]
    mixture: GaussianMixture | None = None  # the proposal to start the next from (no defensive part)
    names: tuple[str, ...] = ()  # the standard space's dimensions (the family's parameters), when known
    start_sims: int = 0  # the simulations behind the proposal file it started from (0: none)
    fitted_to: str = ""  # "pilot" or "estimate" (its own failures, refitted): where ``mixture`` comes from
    halfspace: HalfSpace | None = None  # fitted to this estimate's simulations, beside ``mixture``

    def fit_sims(self) -> int:
        """Every simulation behind ``mixture``: the pilot's, or this estimate's and its start's."""
        return self.pilot_sims if self.fitted_to == "pilot" else self.sims + self.start_sims

    def metrics(self) -> dict[str, Any]:
        """The registry metrics of this estimate."""
        out = {
            "failure_probability": self.failure_probability,
            "failure_probability_ci": list(self.failure_probability_ci),
            "rel_halfwidth": self.rel_halfwidth,
            "effective_sample_size": self.effective_sample_size,
            "sims": self.sims,
            "acceleration_factor": self.acceleration_factor,
        }
        check_metric_names(out)
        return out


def summarise(wf: np.ndarray, method: str, min_ess: float, scale_rel_se: float = 0.0) -> dict[str, Any]:
    """Estimate, 95% interval, relative half-width and ESS of the per-simulation terms ``w * failed``;
    ``scale_rel_se``: the relative standard error of a constant the weights are scaled by (a
    proposal's normalising constant, estimated), added to the estimate's."""
    n, p = len(wf), float(wf.mean()) if len(wf) else 0.0
    pos = wf[wf > 0]
    ess = float(pos.sum() ** 2 / (pos**2).sum()) if len(pos) else 0.0
    se = float(math.hypot(wf.std(ddof=1) / math.sqrt(n), p * scale_rel_se)) if n > 1 else math.inf
    rel = Z95 * se / p if p > 0 and math.isfinite(se) else None
    if method == "mc":
        return {"p": p, "ci": wilson_interval(len(pos), n), "rel": rel, "ess": ess, "degenerate": False}
    if ess < min_ess or rel is None:
        return {"p": p, "ci": (0.0, 1.0), "rel": None, "ess": ess, "degenerate": True}
    return {"p": p, "ci": (max(0.0, p - Z95 * se), p + Z95 * se), "rel": rel, "ess": ess, "degenerate": False}


def estimate_probability(
    simulate_batch: SimulateBatch,
    dim: int,
    cfg: EstimateConfig,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
    proposal: Proposal | None = None,
    start: GaussianMixture | None = None,
) -> Estimate:
    """P(failure) for ``z ~ N(0, I_dim)``; ``simulate_batch`` sees ``transform(z)`` (default: ``z``).

    ``proposal`` fixes the IS proposal (no pilot); it is refused when it lacks support. ``start``: the
    mixture in it, which a half-space fitted here (``cfg.halfspace_share``) is blended with when the
    estimate fits no mixture of its own.
    """
    rng = np.random.default_rng([cfg.seed, dim])
    sims = 0

    def run(z: np.ndarray, seeds: np.ndarray | None = None) -> np.ndarray:
        """(n,) severity of the runs at ``z`` (scenario ``seeds``: by default the next); 1 is a failure."""
        nonlocal sims
        seeds = cfg.seed + sims + np.arange(len(z)) if seeds is None else seeds
        sims += len(z)
        params = transform(z) if transform is not None else z
        severity = np.asarray(simulate_batch(params, seeds), float).reshape(len(z))
        if not np.all((severity >= 0) & (severity <= 1)):
            raise ValueError("simulate_batch must return failures (bool) or severities in [0, 1]")
        return severity

    p0 = nominal(dim)
    wf = np.zeros(0)  # w * failed of every simulation the estimate uses
    fitted = None
    if cfg.method == "mc":
        q: Proposal = p0
    elif proposal is not None:
        if not getattr(proposal, "seeded", False):  # a seeded one keeps support by its own defensive part
            check_support(proposal, dim, rng)
        q = proposal
    else:
        fitted, wf = pilot(run, dim, cfg, rng, lambda: sims)
        q = with_defensive(fitted, cfg.defensive) if fitted is not None else p0
    pilot_sims, history = sims, []
    zf, wfail = [np.zeros((0, dim))], [np.zeros(0)]  # the estimation's failures and their p / q
    zs, fs, ws = [np.zeros((0, dim))], [np.zeros(0, bool)], [np.zeros(0)]  # every estimation simulation
    keep_all = cfg.halfspace_share is not None  # only a half-space's fit needs them all
    kind = "mc" if q is p0 else "is"  # an IS pilot without any failure falls back to plain MC
    z_se = float(getattr(q, "z_rel_se", 0.0))  # a proposal with an estimated normaliser: its error
    s: dict[str, Any] = {}
    batches = 0
    seeded = bool(getattr(q, "seeded", False))  # a proposal over the scenario seeds too (its own q / p)
    while sims < cfg.max_sims:
        n = min(cfg.batch, cfg.max_sims - sims)
        if seeded:
            z, seeds = q.sample_seeded(rng, n)  # type: ignore[attr-defined]
            w = 1 / q.ratio(z, seeds)  # type: ignore[attr-defined]
        else:
            z, seeds = q.sample(rng, n), None
            w = np.exp(p0.logpdf(z) - q.logpdf(z)) if q is not p0 else np.ones(len(z))
        failed = run(z, seeds) >= 1
        wf, batches = np.concatenate([wf, w * failed]), batches + 1
        zf.append(z[failed])
        wfail.append(w[failed])
        if keep_all:
            zs.append(z)
            fs.append(failed)
            ws.append(w)
        s = summarise(wf, kind, cfg.min_ess, z_se)
        history.append((sims, s["p"], *s["ci"]))
        if batches >= cfg.min_batches and s["rel"] is not None and s["rel"] <= cfg.rel_halfwidth:
            break
    if not s:  # the pilot spent the budget
        s = summarise(wf, kind, cfg.min_ess, z_se)
    accel = None
    if kind == "is" and s["rel"] is not None and 0 < s["p"] < 1:
        accel = (1 - s["p"]) / (s["p"] * s["rel"] ** 2) * Z95**2 / sims
    converged = s["rel"] is not None and s["rel"] <= cfg.rel_halfwidth
    fitted_to = "pilot" if fitted is not None else ""
    if kind == "is" and not s["degenerate"] and cfg.refit_floor is not None:  # its failures, weighted p/q
        better = refit(np.concatenate(zf), np.concatenate(wfail), cfg, rng)
        fitted, fitted_to = (better, "estimate") if better is not None else (fitted, fitted_to)
    halfspace, base, failed_all = None, fitted if fitted is not None else start, np.concatenate(fs)
    if kind == "is" and not s["degenerate"] and cfg.halfspace_share is not None and base is not None:
        if failed_all.sum() >= cfg.min_elites and not failed_all.all():  # enough to place a boundary
            share, margin, w_all = cfg.halfspace_share, cfg.halfspace_margin, np.concatenate(ws)
            halfspace = fit_halfspace(
                np.concatenate(zs), failed_all, share, margin, w_all, base, cfg.defensive
            )
            fitted, fitted_to = base, "estimate"  # the proposal file is this estimate's product
    return Estimate(
        cfg.method, s["p"], tuple(s["ci"]), s["rel"], s["ess"], sims, pilot_sims, int((wf > 0).sum()),
        converged, s["degenerate"], accel, history, describe(q), fitted, fitted_to=fitted_to,
        halfspace=halfspace,
    )  # fmt: skip
