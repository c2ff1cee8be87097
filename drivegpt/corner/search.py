"""Failure search: find scenario parameters where a policy crashes or leaves the road.

Every method spends the same budget of simulations in the family's parameter box, normalised to
``[0, 1]^d``:

* ``random``: independent uniform draws (the baseline);
* ``lhs``: Latin hypercube (each parameter's range cut into ``budget`` strata, one draw per stratum);
* ``cem``: cross-entropy method. The first generation is a Latin hypercube; each next generation of
  ``batch`` simulations is drawn from a per-parameter truncated normal fitted (with smoothing and a
  minimum std) to the elite simulations so far, ranked by ``risk`` (1 on failure, else a smooth
  closeness to one from the min TTC and min gap, so it has a gradient before the first failure).
  While the elites are neither failures nor riskier than the median simulation (a flat risk), a
  generation is a new Latin hypercube instead: the search explores until it has a signal.
  The scenario seed sets what the parameters do not (background traffic, the human's personality):
  with probability ``seed_reuse`` a CEM simulation takes the seed of a random failed elite instead
  of a fresh one, so the search also adapts over seeds (before the first failure: fresh seeds).

Simulations run on highway-env in worker processes, or with ``sim: batched`` on the batched simulator
(:func:`drivegpt.corner.suite.run_jobs`: a generation steps together). Failures are clustered in
normalised parameter space (single linkage, distance ``cluster_eps``) and each one is checked for
feasibility: alert human drivers (no reaction delay or noise, personalities drawn for the same seed)
drive the same scenario; if every one of them fails too, it is unavoidable.
"""

from __future__ import annotations

import time
from typing import Any, Literal, NamedTuple

import numpy as np
from pydantic import Field

from drivegpt.core.config import FrozenConfig
from drivegpt.core.metrics import check_metric_names, wilson_interval
from drivegpt.corner.runner import run_jobs
from drivegpt.corner.suite import ALERT_HUMAN, Outcome, Scenario, ScenarioJob, family_env_id
from drivegpt.sim.rollout import Backend, Simulator

Method = Literal["random", "lhs", "cem"]
Keep = Literal["failures", "all"]  # a suite of the search's failures, or of every simulation
SearchSim = Literal["auto", "highway-env", "batched"]


class SearchConfig(FrozenConfig):
    """Failure-search settings (one family, one policy)."""

    method: Method = "cem"
    """random | lhs (baselines) | cem (adaptive)."""
    budget: int = Field(200, ge=1)
    """Simulations per family, the same for every method."""
    seed: int = Field(0, ge=0)
    """Seed of the sampler; simulation i uses scenario seed ``seed + i``."""
    batch: int = Field(20, ge=2)
    """CEM: simulations per generation (run in parallel)."""
    elite_fraction: float = Field(0.2, gt=0, le=1)
    """CEM: elites = this fraction of a generation (at least 2), the riskiest simulations so far."""
    min_std: float = Field(0.03, gt=0, le=1)
    """CEM: floor on each normalised std, so the search keeps exploring."""
    smoothing: float = Field(0.7, gt=0, le=1)
    """CEM: weight of the new fit against the previous mean/std."""
    seed_reuse: float = Field(0.8, ge=0, le=1)
    """CEM: probability that a simulation reuses a failed elite's scenario seed (else a fresh seed)."""
    cluster_eps: float = Field(0.25, gt=0)
    """Failures closer than this (normalised parameter space) share a cluster."""
    feasibility_refs: int = Field(3, ge=0)
    """Alert human drivers that try each failure (0: no feasibility check)."""
    sim: SearchSim = "auto"
    """auto (batched where it runs the family and the policy, else highway-env) | highway-env (one env
    per simulation, in worker processes) | batched (the families with a batched port; a generation
    steps together). The suite's scenarios replay on the simulator they came from."""


class Sim(NamedTuple):
    """One search simulation."""

    index: int
    u: np.ndarray  # (d,) normalised parameters in [0, 1]
    params: dict[str, float]
    seed: int
    outcome: Outcome


class SearchResult(NamedTuple):
    family: str
    policy: str
    sims: list[Sim]
    feasible: dict[int, bool]  # sim index of each failure -> an alert human avoids it
    summary: dict[str, Any]
    sim: Simulator = "highway-env"  # the simulator every simulation ran on


def latin_hypercube(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    """(n, d) points in [0, 1]^d with exactly one point in each of the n strata of every dimension."""
    strata = np.stack([rng.permutation(n) for _ in range(d)], axis=1)  # (n, d)
    return (strata + rng.random((n, d))) / n


def truncated_normal(rng: np.random.Generator, mean: np.ndarray, std: np.ndarray, n: int) -> np.ndarray:
    """(n, d) draws of independent normals truncated to [0, 1] (rejection, then clipping)."""
    out = rng.normal(mean, std, (n, len(mean)))
    for _ in range(100):
        bad = (out < 0) | (out > 1)
        if not bad.any():
            break
        out[bad] = rng.normal(np.broadcast_to(mean, out.shape)[bad], np.broadcast_to(std, out.shape)[bad])
    return np.clip(out, 0.0, 1.0)


def cluster(points: np.ndarray, eps: float) -> list[list[int]]:
    """Single-linkage clusters of (n, d) points: rows closer than ``eps`` join; ordered by first row."""
    n = len(points)
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(n):
        close = np.flatnonzero(np.linalg.norm(points[i + 1 :] - points[i], axis=1) < eps) + i + 1
        for j in close:
            parent[root(int(j))] = root(i)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(root(i), []).append(i)
    return sorted(groups.values(), key=lambda g: g[0])


def select_elites(sims: list[Sim], mean: np.ndarray, k: int, tiebreak: np.ndarray) -> list[Sim]:
    """The ``k`` riskiest sims. Ties between failures (all risk 1) go to the sims nearest ``mean``, so
    the fit seeks one failure mode instead of averaging several; other ties go by ``tiebreak`` (a
    random permutation), so a flat risk leaves the search exploring instead of shrinking to the mean."""

    def key(s: Sim) -> tuple[float, float, int]:
        near = float(np.linalg.norm(s.u - mean)) if s.outcome.failed else 0.0
        return (-s.outcome.risk, near, int(tiebreak[s.index]))

    return sorted(sims, key=key)[:k]


def _bounds(family: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    from drivegpt_envs.families import family_class

    specs = family_class(family).PARAMS
    names = list(specs)
    return names, np.array([specs[k].low for k in names]), np.array([specs[k].high for k in names])


def search_family(
    family: str,
    policy: str,
    cfg: SearchConfig,
    action: str = "accel",
    workers: int | None = None,
    backend: Backend = "local",
    ray_address: str | None = None,
    progress: bool = True,
) -> SearchResult:
    """Spend ``cfg.budget`` simulations of ``policy`` on ``family`` with ``cfg.method``."""
    env_id = family_env_id(family)
    sim = search_simulator(cfg.sim, family, policy)
    names, low, high = _bounds(family)
    rng = np.random.default_rng([cfg.seed, len(names)])
    sims: list[Sim] = []
    t0 = time.time()

    def run(u: np.ndarray, desc: str, seeds: list[int] | None = None) -> None:
        start = len(sims)
        params = [{k: float(v) for k, v in zip(names, low + row * (high - low), strict=True)} for row in u]
        seeds = seeds or [cfg.seed + start + i for i in range(len(u))]  # fresh: seed + sim index
        jobs = [ScenarioJob(policy, env_id, action, seeds[i], p, sim=sim) for i, p in enumerate(params)]
        outs = run_jobs(jobs, workers, backend, desc, progress, ray_address)
        for i, (j, o) in enumerate(zip(jobs, outs, strict=True)):
            sims.append(Sim(start + i, u[i], params[i], j.seed, o))

    d = len(names)
    if cfg.method == "random":
        run(rng.random((cfg.budget, d)), f"{family} random")
    elif cfg.method == "lhs":
        run(latin_hypercube(rng, cfg.budget, d), f"{family} lhs")
    else:
        n_elite = max(2, round(cfg.elite_fraction * cfg.batch))
        run(latin_hypercube(rng, min(cfg.batch, cfg.budget), d), f"{family} cem gen 0")
        mean, std = np.full(d, 0.5), np.full(d, 0.3)
        while len(sims) < cfg.budget:
            elites = select_elites(sims, mean, n_elite, rng.permutation(len(sims)))
            n = min(cfg.batch, cfg.budget - len(sims))
            gen = f"{family} cem gen {len(sims) // cfg.batch}"
            last = elites[-1].outcome
            if not last.failed and last.risk <= np.median([s.outcome.risk for s in sims]):
                run(latin_hypercube(rng, n, d), gen)  # flat risk, no failure: no signal yet, explore
                continue
            u = np.stack([s.u for s in elites])  # (n_elite, d)
            mean = cfg.smoothing * u.mean(0) + (1 - cfg.smoothing) * mean
            std = np.maximum(cfg.smoothing * u.std(0) + (1 - cfg.smoothing) * std, cfg.min_std)
            failing = [s.seed for s in elites if s.outcome.failed] or [-1]  # -1: none yet, fresh seeds
            picks = [failing[p] for p in rng.integers(0, len(failing), n)]
            reuse = (rng.random(n) < cfg.seed_reuse) & (np.array(picks) >= 0)
            fresh = cfg.seed + len(sims) + np.arange(n)
            seeds = [p if r else int(f) for r, p, f in zip(reuse, picks, fresh, strict=True)]
            run(truncated_normal(rng, mean, std, n), gen, seeds)
    refs = cfg.feasibility_refs
    feasible = check_feasibility(sims, env_id, action, refs, workers, backend, ray_address, progress, sim)
    summary = summarise(family, policy, cfg, sims, feasible, names, time.time() - t0) | {"sim": sim}
    return SearchResult(family, policy, sims, feasible, summary, sim)


def search_simulator(sim: SearchSim, family: str, policy: str) -> Simulator:
    """The simulator a search (or an estimate) of ``family`` with ``policy`` runs on: ``auto`` is the
    batched one where it has the family and a driver for the policy (not highway-env's stock ``idm``),
    else highway-env."""
    if sim != "auto":
        return sim
    from drivegpt.policies.registry import NO_BATCHED_FAMILIES
    from drivegpt.sim.batched.families import BATCHED_FAMILIES

    ported = family in BATCHED_FAMILIES and policy.partition(":")[0] not in NO_BATCHED_FAMILIES
    return "batched" if ported else "highway-env"


def check_feasibility(
    sims: list[Sim],
    env_id: str,
    action: str,
    refs: int,
    workers: int | None,
    backend: Backend,
    ray_address: str | None,
    progress: bool,
    sim: Simulator = "highway-env",
) -> dict[int, bool]:
    """For every failed sim: does any of ``refs`` alert human drivers get through it (on ``sim``)?"""
    failed = [s for s in sims if s.outcome.failed]
    if not refs or not failed:
        return {}
    jobs = [
        ScenarioJob(ALERT_HUMAN, env_id, action, s.seed, s.params, None, k + 1, sim)
        for s in failed
        for k in range(refs)
    ]
    outs = run_jobs(jobs, workers, backend, "feasibility", progress, ray_address)
    return {s.index: not all(o.failed for o in outs[i * refs : (i + 1) * refs]) for i, s in enumerate(failed)}


def summarise(
    family: str,
    policy: str,
    cfg: SearchConfig,
    sims: list[Sim],
    feasible: dict[int, bool],
    names: list[str],
    seconds: float,
) -> dict[str, Any]:
    """``summary.json`` figures and one entry per failure cluster."""
    failed = [s for s in sims if s.outcome.failed]
    n, k = len(sims), len(failed)
    groups = cluster(np.stack([s.u for s in failed]), cfg.cluster_eps) if failed else []
    details = []
    for g in groups:
        members = [failed[i] for i in g]
        values = np.array([[s.params[p] for p in names] for s in members])  # (m, d)
        details.append(
            {
                "size": len(members),
                "centre": dict(zip(names, values.mean(0).round(4).tolist(), strict=True)),
                "low": dict(zip(names, values.min(0).round(4).tolist(), strict=True)),
                "high": dict(zip(names, values.max(0).round(4).tolist(), strict=True)),
                "feasible": sum(feasible.get(s.index, False) for s in members),
                "unavoidable": sum(feasible.get(s.index) is False for s in members),
                "example": scenario_id(family, members[0].index),
            }
        )
    figures = {
        "sims": n,
        "failure_rate": k / n if n else 0.0,
        "sims_to_first_failure": failed[0].index + 1 if failed else None,
        "clusters": len(groups),
    }
    check_metric_names(figures)
    return {
        "family": family,
        "policy": policy,
        "method": cfg.method,
        "sim": cfg.sim,
        **figures,
        "failure_rate_ci": list(wilson_interval(k, n)),
        "failures": k,
        "unavoidable": sum(v is False for v in feasible.values()),
        "feasibility_sims": len(failed) * cfg.feasibility_refs,
        "seconds": round(seconds, 2),
        "cluster_details": details,
    }


def scenario_id(family: str, index: int) -> str:
    return f"{family}-{index:05d}"


def to_scenarios(result: SearchResult, action: str, keep: Keep = "failures") -> list[Scenario]:
    """The suite lines of a search: its failures (or every simulation), with outcome and feasibility."""
    return [
        Scenario(
            id=scenario_id(result.family, s.index),
            family=result.family,
            env_id=family_env_id(result.family),
            params=s.params,
            seed=s.seed,
            policy=result.policy,
            action=action,
            outcome=s.outcome._asdict(),
            feasible=result.feasible.get(s.index),
            sim=result.sim,
        )
        for s in result.sims
        if keep == "all" or s.outcome.failed
    ]


def acceleration_factor(adaptive_rate: float, random_rate: float) -> float | None:
    """Search failure rate / random failure rate at the same budget (None when random never failed)."""
    return adaptive_rate / random_rate if random_rate > 0 else None
