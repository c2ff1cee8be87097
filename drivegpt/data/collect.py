"""Record human-driven episodes over a scenario mix into a verified Minari log dataset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from pydantic import Field

from drivegpt.core.config import FrozenConfig
from drivegpt.data.logs import write_logs
from drivegpt.sim.human import HumanDriver, PersonalityRanges
from drivegpt.sim.rollout import Backend, Episode, make_env, parallel_map, run_episode
from drivegpt_envs.common import ActionKind


class CollectScenario(FrozenConfig):
    """One entry of the scenario mix."""

    env_id: str = "drivegpt/Highway-v0"
    """Gymnasium id: a ``drivegpt/`` id or any stock highway-env id (e.g. ``merge-v0``)."""
    weight: float = Field(1.0, gt=0)
    """Relative share of episodes drawn from this scenario."""
    config: dict[str, Any] = {}
    """highway-env config overrides (e.g. ``vehicles_density: 1.5``)."""


class CollectConfig(FrozenConfig):
    """``drivegpt collect``: who drives, where, how much."""

    action: ActionKind = "accel"
    """Action interface: ``accel`` (acceleration bin × lane intent tokens, the default), ``meta``
    (DiscreteMetaAction) or ``continuous`` (acceleration, steering)."""
    scenarios: tuple[CollectScenario, ...] = (CollectScenario(), CollectScenario(env_id="drivegpt/Merge-v0"))
    """The scenario mix; each episode draws one scenario from its seed."""
    episodes: int = Field(100, ge=1)
    """Episodes to record."""
    seed: int = Field(0, ge=0)
    """Episode i uses seed ``seed + i`` (training seeds; evaluation uses seeds >= 1_000_000)."""
    workers: int | None = Field(None, ge=1)
    """Worker processes (None: all cores)."""
    personality: PersonalityRanges = PersonalityRanges()
    """Ranges from which each episode's driver personality is sampled."""


class CollectJob(NamedTuple):
    seed: int
    env_id: str
    action: str
    overrides: dict[str, Any]
    ranges: dict[str, Any]
    scenario: int


_ENVS: dict[str, Any] = {}  # per-process env cache: building a highway env costs ~50 ms


def _env(env_id: str, action: str, overrides: dict[str, Any]) -> Any:
    key = json.dumps([env_id, action, overrides], sort_keys=True)
    if key not in _ENVS:
        _ENVS[key] = make_env(env_id, action, overrides)  # type: ignore[arg-type]
    return _ENVS[key]


def collect_one(job: CollectJob) -> Episode:
    """Drive one human episode (runs in a worker process)."""
    driver = HumanDriver(ranges=PersonalityRanges(**job.ranges))
    episode = run_episode(_env(job.env_id, job.action, job.overrides), driver, job.seed)
    episode.meta = {
        "seed": job.seed,
        "action": job.action,
        "scenario": job.scenario,
        "env_config": job.overrides,
        "personality": driver.personality.to_dict(),
    }
    return episode


def plan_jobs(cfg: CollectConfig) -> list[CollectJob]:
    """One job per episode; the scenario is drawn from the episode seed (independent of workers)."""
    weights = np.array([s.weight for s in cfg.scenarios], float)
    weights /= weights.sum()
    jobs = []
    for i in range(cfg.episodes):
        seed = cfg.seed + i
        k = int(np.random.default_rng([seed, 0x5CE]).choice(len(cfg.scenarios), p=weights))
        sc = cfg.scenarios[k]
        jobs.append(CollectJob(seed, sc.env_id, cfg.action, dict(sc.config), cfg.personality.to_dict(), k))
    return jobs


def collect(
    cfg: CollectConfig,
    out: str | Path,
    backend: Backend = "local",
    progress: bool = True,
    ray_address: str | None = None,
) -> Path:
    """Run the collection described by ``cfg`` and write the dataset to ``out`` (same seeds, same
    dataset whatever the backend and the number of workers)."""
    jobs = plan_jobs(cfg)
    episodes = parallel_map(
        collect_one, jobs, cfg.workers, backend, desc="collect", progress=progress, ray_address=ray_address
    )
    env = _env(cfg.scenarios[0].env_id, cfg.action, dict(cfg.scenarios[0].config))
    return write_logs(
        out,
        episodes,
        env,
        cfg.to_dict(),
        description=f"Human-driver logs, {cfg.action} actions, {', '.join(s.env_id for s in cfg.scenarios)}",
    )
