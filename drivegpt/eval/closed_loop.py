"""Closed-loop evaluation: drive a policy over seeds in parallel and summarise with the metric registry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from drivegpt.core.atomic import write_json, write_text
from drivegpt.core.metrics import driving_metrics, takeover_metrics
from drivegpt.policies.registry import DriveJob, policy_action_kind, policy_and_env
from drivegpt.sim.episode import Episode
from drivegpt.sim.rollout import Backend, parallel_map, run_episode
from drivegpt_envs.common import DEFAULT_ACTION

EVAL_SEED = 1_000_000  #: default first evaluation seed: never used by collection configs


def drive_one(job: DriveJob) -> Episode:
    """One episode of ``job.policy`` (runs in a worker process)."""
    policy, env = policy_and_env(job)
    return run_episode(env, policy, job.seed)


def drive_monitored_one(job: DriveJob) -> tuple[Episode, list[Any]]:
    """One episode of ``job.policy`` under the takeover monitor (runs in a worker process)."""
    from drivegpt.takeover.monitor import MonitorConfig, run_monitored_episode, safety_driver

    policy, env = policy_and_env(job)
    cfg = MonitorConfig(**(job.monitor or {}))
    return run_monitored_episode(env, policy, safety_driver(), job.seed, cfg, policy_spec=job.policy)


def episode_takeover_metrics(episodes: list[Episode], clips: list[Any]) -> dict[str, Any]:
    """Takeover figures over the policy-controlled distance the episodes store."""
    km = sum(e.policy_distance_m for e in episodes) / 1000.0
    at_start = sum(int(c.step) == 0 for c in clips)
    return takeover_metrics(len(clips), sum(bool(c.late) for c in clips), km, at_start)


def evaluate_monitored(
    policy: str,
    env_id: str,
    action: str | None = None,
    episodes: int = 100,
    seed: int = EVAL_SEED,
    workers: int | None = None,
    backend: Backend = "local",
    monitor: dict[str, Any] | None = None,
    progress: bool = True,
    ray_address: str | None = None,
) -> tuple[dict[str, Any], list[Episode], list[Any]]:
    """Like :func:`evaluate` with the safety driver watching; also returns every takeover clip."""
    from drivegpt.takeover.monitor import MonitorConfig

    cfg = MonitorConfig(**(monitor or {}))
    action = policy_action_kind(policy, action or DEFAULT_ACTION)
    jobs = [DriveJob(policy, env_id, action, seed + i, cfg.to_dict()) for i in range(episodes)]
    desc = f"drive {policy} (monitored)"
    out = parallel_map(drive_monitored_one, jobs, workers, backend, desc, progress, ray_address)
    eps = [e for e, _ in out]
    clips = [c for _, cs in out for c in cs]
    metrics = driving_metrics([e.crashed for e in eps], [e.distance_m for e in eps], [e.speeds for e in eps])
    return {**metrics, **episode_takeover_metrics(eps, clips)}, eps, clips


def evaluate(
    policy: str,
    env_id: str,
    action: str | None = None,
    episodes: int = 100,
    seed: int = EVAL_SEED,
    workers: int | None = None,
    backend: Backend = "local",
    progress: bool = True,
    ray_address: str | None = None,
) -> tuple[dict[str, Any], list[Episode]]:
    """Drive ``episodes`` episodes on seeds ``seed, seed+1, ...``; return (metrics, episodes).

    ``action`` (accel/meta/continuous) applies to drivers that can use either; a learned policy's own
    action kind always wins.
    """
    action = policy_action_kind(policy, action or DEFAULT_ACTION)  # also fails fast on a bad spec
    jobs = [DriveJob(policy, env_id, action, seed + i) for i in range(episodes)]
    eps = parallel_map(drive_one, jobs, workers, backend, f"drive {policy}", progress, ray_address)
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
