"""Closed-loop evaluation: drive a policy over seeds in parallel and summarise with the metric registry."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from drivegpt.atomic import write_json, write_text
from drivegpt.metrics import driving_metrics
from drivegpt.policy import load_policy
from drivegpt.rollout import Backend, Episode, make_env, parallel_map, run_episode

EVAL_SEED = 1_000_000  #: default first evaluation seed: never used by collection configs


class DriveJob(NamedTuple):
    policy: str
    env_id: str
    action: str
    seed: int


_CACHE: dict[Any, Any] = {}


def drive_one(job: DriveJob) -> Episode:
    """One episode of ``job.policy`` (runs in a worker process; envs and policies are cached)."""
    key = (job.env_id, job.action)
    if key not in _CACHE:
        _CACHE[key] = make_env(job.env_id, job.action)  # type: ignore[arg-type]
    if job.policy not in _CACHE:
        _CACHE[job.policy] = load_policy(job.policy)
    return run_episode(_CACHE[key], _CACHE[job.policy], job.seed)


def evaluate(
    policy: str,
    env_id: str,
    action: str = "meta",
    episodes: int = 100,
    seed: int = EVAL_SEED,
    workers: int | None = None,
    backend: Backend = "local",
    progress: bool = True,
) -> tuple[dict[str, Any], list[Episode]]:
    """Drive ``episodes`` episodes on seeds ``seed, seed+1, ...``; return (metrics, episodes)."""
    load_policy(policy)  # fail fast on a bad spec, before starting workers
    jobs = [DriveJob(policy, env_id, action, seed + i) for i in range(episodes)]
    eps = parallel_map(drive_one, jobs, workers, backend, desc=f"drive {policy}", progress=progress)
    metrics = driving_metrics([e.crashed for e in eps], [e.distance_m for e in eps], [e.speeds for e in eps])
    return metrics, eps


def write_drive_outputs(
    out: str | Path, metrics: dict[str, Any], episodes: list[Episode], run_info: dict[str, Any]
) -> None:
    """``metrics.json``, per-episode ``episodes.csv`` and the resolved ``run.json`` in ``out``."""
    out = Path(out)
    write_json(out / "metrics.json", metrics)
    rows = ["seed,steps,crashed,distance_m,mean_speed_mps,return"]
    for e in episodes:
        rows.append(
            f"{e.seed},{len(e.rewards)},{int(e.crashed)},{e.distance_m:.2f},"
            f"{e.speeds.mean():.3f},{e.rewards.sum():.4f}"
        )
    write_text(out / "episodes.csv", "\n".join(rows) + "\n")
    write_json(out / "run.json", run_info)
