"""A proposal to reuse: a pilot, rounds of refits drawn from the pool of the last, their pool.

Where a family's parameters (and the human's traits, sampled with them) decide its failures, an
estimate refitted to its own failures (``--refit-floor``) makes a better proposal than its pilot,
but unevenly: each refit follows the failures its run happened to draw. The pool of several refits
(the equal-weight mixture of their mixtures, :func:`drivegpt.corner.mixture.pool`) keeps at least
``1/N`` of the best one's density everywhere, and refits drawn from a pool see more of the failure
region than refits drawn from one proposal. :func:`fit_proposal` runs that recipe:

1. a pilot (stages of ``pilot_batch``; ``pilot_sims`` simulations at most, pilot included);
2. ``rounds`` times: ``refits`` fitting runs of ``fit_sims`` simulations each, drawn from the pool
   of the previous round's refits (the first round: from the pilot's mixture), each refitted to its
   own failures at covariance floor ``refit_floor`` (a run whose weights are degenerate refits
   nothing);
3. the pool of the last round's refits: what ``drivegpt corner-cases fit-proposal`` writes as one
   ``proposal.json``, with every simulation behind it as ``fit_sims``.

Run ``k`` (0: the pilot) draws scenario seeds ``seed + k * SEED_STRIDE + i``: no two runs share one.
On ``adversarial_vehicle`` with the human's traits sampled, six such fits (four refits of 8,192 in
each of two rounds) need 8-203x (median 137x) fewer simulations than plain Monte Carlo, reused, by
their variance on Monte Carlo failures (``bench/results/estimate_reuse/README.md``); runs of 2,048
from a pilot there all had degenerate weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from drivegpt.core.errors import UserError
from drivegpt.core.progress import progress_bar
from drivegpt.corner.estimate import EstimateConfig, estimate_probability
from drivegpt.corner.estimate_family import family_law, family_run
from drivegpt.corner.mixture import GaussianMixture, pool, with_defensive

SEED_STRIDE = 10_000_019  #: scenario seeds between two runs' first ones (more than any run's simulations)


class FittedProposal(NamedTuple):
    """What :func:`fit_proposal` fitted: the pool and how it came about."""

    mixture: GaussianMixture  # the pool of the last round's refits (no defensive part)
    names: tuple[str, ...]  # the standard space's dimensions
    sims: int  # every simulation behind it
    runs: list[dict[str, Any]]  # per run: round (0: the pilot), seed, simulations, refitted or not


def fit_proposal(
    family: str,
    policy: str = "human",
    refits: int = 4,
    rounds: int = 2,
    fit_sims: int = 8192,
    pilot_sims: int = 4000,
    seed: int = 0,
    cfg: EstimateConfig | None = None,
    naturalistic: str | Path | None = None,
    action: str = "accel",
    workers: int | None = None,
    progress: bool = True,
    sim: str = "batched",
    batch: int = 4096,
    duration: float | None = None,
    human_traits: bool | None = None,
    device: str = "cpu",
) -> FittedProposal:
    """The recipe of the module's text for ``policy`` on ``family``; ``cfg`` gives the pilot's stages
    (``pilot_batch``), the refits' floor (``refit_floor``, default 0.3) and the defensive weight.

    A pilot without failures, or a round in which no run refitted, is a :class:`UserError` saying what
    to raise."""
    if refits < 1 or rounds < 1 or fit_sims < 1 or pilot_sims < 1:
        raise ValueError(f"refits, rounds, fit_sims and pilot_sims must be >= 1: {refits, rounds, fit_sims}")
    cfg = (cfg or EstimateConfig(pilot_batch=200)).model_copy(update={"method": "is"})
    floor = cfg.refit_floor if cfg.refit_floor is not None else 0.3
    dist = family_law(family, policy, sim, naturalistic, human_traits)
    run = family_run(family, policy, dist.names, action, workers, False, sim, batch, duration, device)
    bar = progress_bar(
        total=1 + refits * rounds, desc=f"{family} fit-proposal", unit="run", disable=not progress
    )
    pilot_cfg = cfg.model_copy(update={"seed": seed, "max_sims": pilot_sims, "refit_floor": None})
    est = estimate_probability(run, dist.dim, pilot_cfg, dist.to_params)
    bar.update()
    if est.mixture is None:
        raise UserError(
            f"{family}: the pilot saw no failure of {policy} in {est.sims} simulations: nothing to fit; "
            f"raise --pilot-sims, or estimate by Monte Carlo"
        )
    sims, last = est.sims, [est.mixture]
    runs: list[dict[str, Any]] = [{"round": 0, "seed": seed, "sims": est.sims, "refitted": True}]
    for r in range(1, rounds + 1):
        start = pool(last)
        q = with_defensive(start, cfg.defensive)
        fitted = []
        for i in range(refits):
            k = (r - 1) * refits + i + 1
            update = {
                "seed": seed + k * SEED_STRIDE,
                "max_sims": fit_sims,
                "rel_halfwidth": 1e-9,  # no early stop: the run is for fitting
                "batch": min(fit_sims, 1024),
                "refit_floor": floor,
                "halfspace_share": None,
            }
            e = estimate_probability(run, dist.dim, cfg.model_copy(update=update), dist.to_params, q, start)
            sims += e.sims
            refitted = e.fitted_to == "estimate" and e.mixture is not None
            if refitted:
                fitted.append(e.mixture)
            runs.append({"round": r, "seed": update["seed"], "sims": e.sims, "refitted": refitted,
                         "effective_sample_size": e.effective_sample_size})  # fmt: skip
            bar.update()
        if not fitted:
            raise UserError(
                f"{family}: round {r}: all {refits} fitting runs had degenerate weights and refitted "
                f"nothing; raise --fit-sims (now {fit_sims}) or --pilot-sims (now {pilot_sims})"
            )
        last = fitted
    bar.close()
    return FittedProposal(pool(last), tuple(dist.names), sims, runs)


__all__ = ["SEED_STRIDE", "FittedProposal", "fit_proposal"]
