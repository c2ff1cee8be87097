"""Closed-loop evaluation on the batched simulator: B episodes stepped together, one policy call per step.

The same figures as :func:`drivegpt.eval.closed_loop.evaluate` (collision rate, distance, speed),
for any policy that acts on a batch of observations (``act_batch``: DriveGPT, stable-baselines3,
``constant:``) and for the simulated human (``human``: :class:`~drivegpt.sim.batched.human.BatchedHuman`,
which reads the batch state as ``HumanDriver`` reads highway-env's objects; ``accel`` interface only)
and for highway-env's stock IDMVehicle at the wheel (``idm``: the simulator's ``SimConfig.ego_idm``,
whose ego drives as the traffic does and ignores the actions).

Seeds: episode ``i`` is spawned from seed ``seed + i`` by the batched simulator's own generator, so an
episode depends only on its seed (never on the batch size), but it is not highway-env's episode of
that seed: the two simulators agree in distribution (``bench/sim_parity.py``), not draw by draw. The
human's personality and noise of episode ``i`` are ``HumanDriver``'s for seed ``seed + i``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from drivegpt.core.atomic import write_csv, write_json
from drivegpt.core.errors import UserError
from drivegpt.core.metrics import driving_metrics
from drivegpt.core.progress import progress_bar
from drivegpt.policies.registry import load_policy, policy_action_kind
from drivegpt.sim import batched
from drivegpt.sim.batched.drive import drive_batch
from drivegpt.sim.batched.human import BatchedHuman
from drivegpt.sim.policy import ConstantPolicy

#: the action an ``idm`` ego is handed (and ignores), per action kind: a ``constant:`` argument
IGNORED_ACTION = {"accel": "0,keep", "meta": "IDLE", "continuous": "0,0"}


class NoBatchedPort(UserError):
    """The policy reads highway-env's objects and cannot drive the batched simulator."""


def evaluate_batched(
    policy: str,
    env_id: str,
    action: str | None = None,
    episodes: int = 100,
    seed: int = 1_000_000,
    batch: int = 1024,
    progress: bool = True,
    device: torch.device | str = "cpu",
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Drive ``episodes`` episodes of ``policy`` in batches of ``batch``; return (metrics, per-episode
    arrays ``seed``, ``crashed``, ``distance_m``, ``steps``, ``lane_changes``, ``mean_speed_mps``).
    ``device``: where the simulator (and DriveGPT's model) run, e.g. ``"cuda"``; the same seeds give the
    same episodes."""
    kind = policy_action_kind(policy, action or "accel")
    if policy.partition(":")[0] == "human":
        config = batched.make_config(env_id, kind)
        driver: Any = BatchedHuman(config)  # refuses meta / continuous, naming what it drives
    elif policy.partition(":")[0] == "idm":  # highway-env's IDMVehicle at the wheel: actions are ignored
        if kind not in IGNORED_ACTION:
            raise NoBatchedPort(f"{policy}: drives accel, meta or continuous, not {kind}")
        config = batched.make_config(env_id, kind, ego_idm=True)
        driver = ConstantPolicy(IGNORED_ACTION[kind])
    else:
        driver = load_policy(policy, kind)
        config = batched.make_config(env_id, kind, getattr(driver, "env_config", None))
        if hasattr(driver, "to"):  # DriveGPT: its model next to the simulator
            driver.to(device)
    if (
        not isinstance(driver, BatchedHuman)
        and not hasattr(driver, "act_batch")
        and not hasattr(driver, "action")
    ):
        raise NoBatchedPort(
            f"{policy}: this driver reads highway-env's objects and has no batched port; "
            "use --sim highway-env (the batched simulator drives human, idm, drivegpt, sb3-* and constant:)"
        )
    return drive_episodes(driver, config, episodes, seed, batch, progress, device, name=policy)


def drive_episodes(
    driver: Any,
    config: batched.SimConfig,
    episodes: int,
    seed: int = 1_000_000,
    batch: int = 1024,
    progress: bool = True,
    device: torch.device | str = "cpu",
    name: str = "policy",
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """:func:`evaluate_batched` for a driver already built (a DriveGPT driven another way, say):
    ``episodes`` episodes of ``config`` in batches of ``batch``; the same metrics and arrays."""
    crashed, distance, steps, lane_changes, speeds = [], [], [], [], []
    bar = progress_bar(total=episodes, desc=f"drive {name} (batched)", unit="ep", disable=not progress)
    for lo in range(0, episodes, batch):
        seeds = list(range(seed + lo, seed + min(lo + batch, episodes)))
        out = drive_batch(driver, config, seeds, device)
        crashed.append(out["crashed"])
        distance.append(out["distance_m"])
        steps.append(out["steps"])
        lane_changes.append(out["lane_changes"])
        speeds += out["speeds"]
        bar.update(len(seeds))
    bar.close()
    per_episode = {
        "seed": np.arange(seed, seed + episodes),
        "crashed": np.concatenate(crashed),
        "distance_m": np.concatenate(distance),
        "steps": np.concatenate(steps),
        "lane_changes": np.concatenate(lane_changes),
        "mean_speed_mps": np.array([s.mean() for s in speeds]),
    }
    metrics = driving_metrics(list(per_episode["crashed"]), list(per_episode["distance_m"]), speeds)
    return metrics, per_episode


def write_batched_drive_outputs(
    out: str | Path, metrics: dict[str, Any], per_episode: dict[str, np.ndarray], run_info: dict[str, Any]
) -> None:
    """``metrics.json``, per-episode ``episodes.csv`` and ``run.json`` of :func:`evaluate_batched`'s
    drive, as :func:`~drivegpt.eval.closed_loop.write_drive_outputs` writes highway-env's."""
    out, per = Path(out), per_episode
    write_json(out / "metrics.json", metrics)
    rows = zip(
        per["seed"].tolist(),
        per["steps"].tolist(),
        per["crashed"].astype(int).tolist(),
        [f"{d:.2f}" for d in per["distance_m"]],
        [f"{v:.3f}" for v in per["mean_speed_mps"]],
        strict=True,
    )
    write_csv(out / "episodes.csv", [["seed", "steps", "crashed", "distance_m", "mean_speed_mps"], *rows])
    write_json(out / "run.json", run_info)
