"""The estimate of a scenario family: its naturalistic law, its simulator, and a proposal to start from.

Owns :func:`estimate` (what ``drivegpt corner-cases estimate`` runs), :func:`family_simulator` (one
highway-env simulation per draw) and :func:`samples_human_traits`. The estimators themselves, on the
standard space, are :mod:`drivegpt.corner.estimate`; the batched simulator's ``simulate_batch`` is
:mod:`drivegpt.corner.batched`; a fitted proposal's file is :mod:`drivegpt.corner.proposal_file`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from drivegpt.core.config import config_from_dict
from drivegpt.core.errors import UserError
from drivegpt.corner.estimate import Estimate, EstimateConfig, Method, SimulateBatch, estimate_probability
from drivegpt.corner.naturalistic import FamilyDistribution

__all__ = ["estimate", "family_law", "family_run", "family_simulator", "samples_human_traits"]


def family_simulator(
    family: str, policy: str, names: list[str], action: str, workers: int | None = None, progress: bool = True
) -> SimulateBatch:
    """``simulate_batch`` of a scenario family: one :func:`~drivegpt.corner.suite.simulate` per row."""
    from drivegpt.corner.suite import ScenarioJob, family_env_id, simulate
    from drivegpt.sim.rollout import parallel_map

    env_id = family_env_id(family)

    def simulate_batch(params: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        jobs = [
            ScenarioJob(
                policy, env_id, action, int(s), {k: float(v) for k, v in zip(names, row, strict=True)}
            )
            for row, s in zip(params, seeds, strict=True)
        ]
        outs = parallel_map(simulate, jobs, workers, "local", f"{family} {len(jobs)} sims", progress)
        return np.array([o.failed for o in outs], bool)

    return simulate_batch


def samples_human_traits(policy: str, sim: str) -> bool:
    """Whether an estimate samples the human's traits by default: with the human on the batched simulator."""
    return policy == "human" and sim == "batched"


def family_law(
    family: str,
    policy: str,
    sim: str,
    naturalistic: str | Path | None = None,
    human_traits: bool | None = None,
) -> FamilyDistribution:
    """The naturalistic law an estimate of ``family`` samples: the family's parameters, and the
    human's traits with ``human_traits`` (default: where :func:`samples_human_traits`)."""
    from drivegpt.corner.naturalistic import WithHumanTraits, family_distribution, load_naturalistic

    dist = family_distribution(family, load_naturalistic(naturalistic))
    if human_traits is None:
        human_traits = samples_human_traits(policy, sim)
    if human_traits:
        if policy != "human" or sim != "batched":
            raise UserError("--human-traits samples the simulated human's personality: it needs "
                            "--policy human and --sim batched")  # fmt: skip
        dist = WithHumanTraits(dist)
    return dist


def family_run(
    family: str,
    policy: str,
    names: list[str],
    action: str = "accel",
    workers: int | None = None,
    progress: bool = True,
    sim: str = "highway-env",
    batch: int = 4096,
    duration: float | None = None,
    device: str = "cpu",
) -> SimulateBatch:
    """``simulate_batch`` of ``family`` on ``sim`` for points on ``names``."""
    if sim == "batched":
        from drivegpt.corner.batched import batched_family_simulator

        return batched_family_simulator(family, policy, names, action, batch, duration, device, progress)
    if sim == "highway-env":
        return family_simulator(family, policy, names, action, workers, progress)
    raise UserError(f"unknown simulator {sim!r}; valid: highway-env, batched")


def estimate(
    family: str,
    policy: str,
    method: Method = "is",
    rel_halfwidth: float = 0.2,
    max_sims: int = 2000,
    seed: int = 0,
    cfg: EstimateConfig | None = None,
    naturalistic: str | Path | None = None,
    action: str = "accel",
    workers: int | None = None,
    progress: bool = True,
    sim: str = "highway-env",
    batch: int = 4096,
    duration: float | None = None,
    human_traits: bool | None = None,
    device: str = "cpu",
    proposal: str | Path | Sequence[str | Path] | None = None,
    surrogate: bool = False,
) -> Estimate:
    """P(failure) of ``policy`` on ``family`` under its naturalistic distribution (default: shipped).

    ``sim``: ``highway-env`` (one env per simulation, ``workers`` processes) or ``batched``
    (:mod:`drivegpt.corner.batched`: ``batch`` episodes at once on ``device``, episodes of
    ``duration`` [s]; the same seeds give the same failures on any device).
    ``human_traits``: sample the simulated human's personality as part of the scenario
    (``WithHumanTraits``; the same probability, a proposal that can lean on the traits); default
    (None): where it can, with the human on the batched simulator. ``proposal``: a ``proposal.json``
    of an earlier estimate of ``family`` (:mod:`drivegpt.corner.proposal_file`): importance sampling
    from it (its mixture, blended with its half-space where it has one), with the nominal mixed in at
    ``cfg.defensive``, and no pilot; several files: the pool of their mixtures
    (:func:`~drivegpt.corner.proposal_file.pool_proposals`). ``surrogate``: importance sampling from
    the family's physics surrogate (:mod:`drivegpt.corner.surrogate_proposal`), no pilot, with the
    family's own defensive weight unless ``cfg`` sets one."""

    given = cfg.model_fields_set if cfg else set()  # the options the caller set, not left at defaults
    over = {"method": method, "rel_halfwidth": rel_halfwidth, "max_sims": max_sims, "seed": seed}
    cfg = config_from_dict(EstimateConfig, {**(cfg.to_dict() if cfg else {}), **over}, "estimate options")
    dist = family_law(family, policy, sim, naturalistic, human_traits)
    q, mix, start = None, None, 0
    if surrogate:
        from drivegpt.corner.surrogate_proposal import SurrogateProposal

        if cfg.method != "is" or proposal is not None:
            raise UserError("--surrogate is an importance-sampling proposal of its own: it needs --method is "
                            "and no --proposal")  # fmt: skip
        if cfg.refit_floor is not None or cfg.halfspace_share is not None:
            raise UserError("--surrogate fits no mixture, so there is nothing to refit or to blend a "
                            "half-space with: drop --refit-floor and --halfspace-share")  # fmt: skip
        # a defensive weight left at its default gives way to the family's own (stalled_car: 0.1)
        q = SurrogateProposal(dist, cfg.defensive if "defensive" in given else None, seed=cfg.seed)
    if proposal is not None:
        from drivegpt.corner.proposal_file import fit_sims, pool_proposals, proposal_from

        if cfg.method != "is":
            raise UserError("--proposal is an importance-sampling proposal: it needs --method is")
        files = [proposal] if isinstance(proposal, str | Path) else list(proposal)
        mix, meta = pool_proposals(files, family, dist.names)
        q = proposal_from(mix, meta, cfg.defensive)
        start = fit_sims(meta)
    from drivegpt.core.progress import progress_bar

    simulate = family_run(family, policy, dist.names, action, workers, False, sim, batch, duration, device)
    bar = progress_bar(
        total=cfg.max_sims, desc=f"{family} {policy} {cfg.method}", unit="sim", disable=not progress
    )

    def run(params: np.ndarray, seeds: np.ndarray) -> np.ndarray:  # one bar for the whole estimate
        out = simulate(params, seeds)
        bar.update(len(seeds))
        return out

    try:
        est = estimate_probability(run, dist.dim, cfg, dist.to_params, q, mix)
    finally:
        bar.total = bar.n  # an estimate that converged early is done, not stopped short
        bar.close()  # before any error message: not on the bar's line
    return est._replace(names=tuple(dist.names), start_sims=start)
