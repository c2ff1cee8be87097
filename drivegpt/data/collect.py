"""Record human-driven episodes over a scenario mix into a verified Minari log dataset.

Each scenario of the mix is driven on one simulator (``CollectConfig.sim``; ``collect_simulators``):
highway-env (``HumanDriver``, one env per episode in worker processes) or the batched simulator
(``BatchedHuman``, ``batch`` episodes per step) for the scenarios it supports; ``auto``, the default,
takes the batched one wherever it can. Every episode draws its scenario and driver personality from
its seed alone, so a seed gives the same driver in either simulator (not the same traffic).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import torch
from pydantic import Field

from drivegpt.core.config import FrozenConfig
from drivegpt.core.errors import UserError
from drivegpt.data.logs import write_logs
from drivegpt.sim import batched
from drivegpt.sim.batched.human import SUPPORTED_ACTIONS as BATCHED_HUMAN_ACTIONS
from drivegpt.sim.batched.human import BatchedHuman, Personalities
from drivegpt.sim.episode import STATE_KEYS, Episode
from drivegpt.sim.human import HumanDriver
from drivegpt.sim.personality import Lapses, PersonalityRanges
from drivegpt.sim.rollout import Backend, Simulator, check_overrides, make_env, parallel_map, run_episode
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
    noise_correlation: float = Field(0.0, ge=0, lt=1)
    """``accel``: correlation of the driver's acceleration noise from one decision to the next (AR(1);
    0: white noise). With a large ``personality.action_noise`` it pushes the driver off its usual path
    for seconds at a time, while the logged label stays its clean decision (noise injection, DART)."""
    lapses: Lapses = Lapses()
    """``accel``: moments of inattention (``rate`` [1/s], ``seconds`` [s]) during which the driver's
    executed acceleration stays what it was, while the logged label stays its clean decision (noise
    injection aimed at late braking). The default ``rate`` 0 has none."""
    sim: Literal["auto", "highway-env", "batched"] = "auto"
    """Simulator: ``auto`` drives each scenario on the batched simulator where it has the road, the
    config and a human for the action interface (``accel``), and on highway-env otherwise;
    ``highway-env`` or ``batched`` for every scenario (``batched`` refuses a scenario it lacks)."""
    batch: int = Field(1024, ge=1)
    """Episodes stepped together on the batched simulator."""


class CollectJob(NamedTuple):
    seed: int
    env_id: str
    action: str
    overrides: dict[str, Any]
    ranges: dict[str, Any]
    scenario: int
    noise_correlation: float = 0.0
    lapses: dict[str, Any] | None = None


_ENVS: dict[str, Any] = {}  # per-process env cache: building a highway env costs ~50 ms


def _env(env_id: str, action: str, overrides: dict[str, Any]) -> Any:
    key = json.dumps([env_id, action, overrides], sort_keys=True)
    if key not in _ENVS:
        _ENVS[key] = make_env(env_id, action, overrides)  # type: ignore[arg-type]
    return _ENVS[key]


def collect_one(job: CollectJob) -> Episode:
    """Drive one human episode (runs in a worker process)."""
    driver = HumanDriver(
        ranges=PersonalityRanges(**job.ranges),
        noise_correlation=job.noise_correlation,
        lapses=Lapses(**(job.lapses or {})),
    )
    episode = run_episode(_env(job.env_id, job.action, job.overrides), driver, job.seed)
    episode.meta = {
        "seed": job.seed,
        "action": job.action,
        "scenario": job.scenario,
        "env_config": job.overrides,
        "personality": driver.personality.to_dict(),
        "sim": "highway-env",
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
        ranges = cfg.personality.to_dict()
        jobs.append(
            CollectJob(
                seed,
                sc.env_id,
                cfg.action,
                dict(sc.config),
                ranges,
                k,
                cfg.noise_correlation,
                cfg.lapses.to_dict(),
            )
        )
    return jobs


def _batched_config(sc: CollectScenario, action: str) -> batched.SimConfig | None:
    """The batched simulator's config for scenario ``sc``, or None where it has no port of it."""
    if sc.env_id not in batched.SUPPORTED_ENV_IDS or action not in BATCHED_HUMAN_ACTIONS:
        return None
    try:
        return batched.make_config(sc.env_id, action, dict(sc.config) or None)  # type: ignore[arg-type]
    except ValueError:  # a config override it cannot represent
        return None


def collect_simulators(cfg: CollectConfig) -> tuple[Simulator, ...]:
    """The simulator of each scenario of ``cfg``'s mix (``cfg.sim`` resolved); UserError where
    ``sim: batched`` meets a scenario the batched simulator cannot drive."""
    sims: list[Simulator] = []
    for sc in cfg.scenarios:
        ported = _batched_config(sc, cfg.action) is not None
        if cfg.sim == "batched" and not ported:
            raise UserError(
                f"collect --sim batched: scenario {sc.env_id!r} with {cfg.action} actions and config "
                f"{dict(sc.config)} has no batched port; supported: {', '.join(batched.SUPPORTED_ENV_IDS)} "
                f"with {', '.join(BATCHED_HUMAN_ACTIONS)} actions (or use --sim auto / highway-env)"
            )
        sims.append("batched" if ported and cfg.sim != "highway-env" else "highway-env")
    return tuple(sims)


def collect(
    cfg: CollectConfig,
    out: str | Path,
    backend: Backend = "local",
    progress: bool = True,
    ray_address: str | None = None,
) -> Path:
    """Run the collection described by ``cfg`` and write the dataset to ``out``: the episodes of each
    scenario on its simulator (``collect_simulators``), in seed order. Same seeds, same dataset
    whatever the backend, the number of workers and the batch size."""
    from drivegpt.core.progress import progress_bar

    for sc in cfg.scenarios:  # a typo or a bad duration in a scenario's config: refused before any episode
        check_overrides(sc.env_id, sc.config)
    jobs, sims = plan_jobs(cfg), collect_simulators(cfg)
    slow = [j for j in jobs if sims[j.scenario] == "highway-env"]
    episodes: dict[int, Episode] = {}
    if slow:
        done = parallel_map(
            collect_one,
            slow,
            cfg.workers,
            backend,
            desc="collect",
            progress=progress,
            ray_address=ray_address,
        )
        episodes |= {ep.seed: ep for ep in done}
    fast = [j for j in jobs if sims[j.scenario] == "batched"]
    bar = progress_bar(total=len(fast), desc="collect (batched)", unit="ep", disable=not progress or not fast)
    for k, sc in enumerate(cfg.scenarios):
        mine = [j for j in fast if j.scenario == k]
        config = _batched_config(sc, cfg.action)
        for lo in range(0, len(mine), cfg.batch):
            chunk = mine[lo : lo + cfg.batch]
            assert config is not None  # collect_simulators chose the batched simulator for it
            episodes |= {
                ep.seed: ep
                for ep in _drive_batch(config, chunk, cfg.personality, cfg.noise_correlation, cfg.lapses)
            }
            bar.update(len(chunk))
    bar.close()
    env = _env(cfg.scenarios[0].env_id, cfg.action, dict(cfg.scenarios[0].config))
    where = ", ".join(f"{s.env_id} ({sim})" for s, sim in zip(cfg.scenarios, sims, strict=True))
    return write_logs(
        out,
        [episodes[j.seed] for j in jobs],
        env,
        cfg.to_dict(),
        description=f"Human-driver logs, {cfg.action} actions, {where}",
    )


def _drive_batch(
    config: batched.SimConfig,
    jobs: list[CollectJob],
    ranges: PersonalityRanges,
    noise_correlation: float = 0.0,
    lapses: Lapses | None = None,
) -> list[Episode]:
    """Drive the episodes of ``jobs`` (one scenario) together to the end of the longest one."""
    seeds = [j.seed for j in jobs]
    state = batched.reset(seeds, config)
    human = BatchedHuman(  # refuses meta / continuous
        config, ranges=ranges, noise_correlation=noise_correlation, lapses=lapses
    )
    human.reset(seeds, state)
    obs, states = [batched.observe(state)], [_ego_state(state)]  # (B, V, F), key -> (B,)
    actions, decisions, rewards, terms, truncs = [], [], [], [], []
    done = torch.zeros(len(seeds), dtype=torch.bool, device=state.device)
    length = torch.zeros(len(seeds), dtype=torch.long, device=state.device)  # (B,) steps of each episode
    while not bool(done.all()):
        token = human.act(state)
        actions.append(token)
        decisions.append(human.decision)
        state = batched.step(state, token)
        length += (~done).long()
        obs.append(batched.observe(state))
        states.append(_ego_state(state))
        rewards.append(batched.reward(state))
        terms.append(batched.terminated(state))
        truncs.append(batched.truncated(state))
        done |= terms[-1] | truncs[-1]
    stacked = {
        "obs": torch.stack(obs, 1),  # (B, T + 1, V, F)
        "actions": torch.stack(actions, 1),  # (B, T)
        "decisions": torch.stack(decisions, 1),
        "rewards": torch.stack(rewards, 1),
        "terms": torch.stack(terms, 1),
        "truncs": torch.stack(truncs, 1),
    }
    arrays = {k: v.cpu().numpy() for k, v in stacked.items()}
    ego = {k: torch.stack([s[k] for s in states], 1).cpu().numpy() for k in STATE_KEYS}  # (B, T + 1)
    people = {name: getattr(human.p, name).cpu().numpy() for name in Personalities.__dataclass_fields__}
    out = []
    for i, job in enumerate(jobs):  # splitting the finished batch into episode records
        t = int(length[i])
        ep = Episode(
            seed=job.seed,
            env_id=job.env_id,
            observations=arrays["obs"][i, : t + 1].astype(np.float32),
            actions=arrays["actions"][i, :t].astype(np.int64),
            rewards=arrays["rewards"][i, :t].astype(np.float64),
            terminations=arrays["terms"][i, :t],
            truncations=arrays["truncs"][i, :t],
            states={k: v[i, : t + 1].astype(np.float64) for k, v in ego.items()},
            decisions=arrays["decisions"][i, :t].astype(np.int64),
        )
        ep.meta = {
            "seed": job.seed,
            "action": job.action,
            "scenario": job.scenario,
            "env_config": job.overrides,
            "personality": {name: float(v[i]) for name, v in people.items()},
            "sim": "batched",
        }
        out.append(ep)
    return out


def _ego_state(state: batched.BatchState) -> dict[str, torch.Tensor]:
    """``rollout.ego_state`` of every episode: key -> (B,) float64."""
    return {
        "speed": state.speed[:, 0],
        "x": state.x[:, 0],
        "y": state.y[:, 0],
        "heading": state.heading[:, 0],
        "lane": state.lane[:, 0].to(state.dtype),
        "crashed": state.crashed[:, 0].to(state.dtype),
        "on_road": batched.on_road(state).to(state.dtype),
    }
