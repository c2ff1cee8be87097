"""Closed-loop evaluation: drive a policy over seeds in parallel and summarise with the metric registry."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from drivegpt.atomic import write_json, write_text
from drivegpt.metrics import driving_metrics
from drivegpt.policy import load_policy, policy_action_kind
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
    if job.policy not in _CACHE:
        _CACHE[job.policy] = load_policy(job.policy, job.action)
    policy = _CACHE[job.policy]
    key = (job.env_id, job.action, job.policy)
    if key not in _CACHE:  # a learned policy carries the observation/action config it was trained with
        _CACHE[key] = make_env(job.env_id, job.action, getattr(policy, "env_config", None))  # type: ignore[arg-type]
    return run_episode(_CACHE[key], policy, job.seed)


def evaluate(
    policy: str,
    env_id: str,
    action: str | None = None,
    episodes: int = 100,
    seed: int = EVAL_SEED,
    workers: int | None = None,
    backend: Backend = "local",
    progress: bool = True,
) -> tuple[dict[str, Any], list[Episode]]:
    """Drive ``episodes`` episodes on seeds ``seed, seed+1, ...``; return (metrics, episodes).

    ``action`` (meta/continuous) applies to drivers that can use either; a learned policy's own
    action kind always wins.
    """
    action = policy_action_kind(policy, action or "meta")  # also fails fast on a bad spec
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
