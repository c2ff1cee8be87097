"""Do policies transfer between the simulators? The same policy on highway-env and on the batched
simulator: collision rate (Wilson 95%) and mean speed (bootstrap 95% over episodes), side by side.

    python bench/sim_policy_transfer.py --policy drivegpt --policy sb3-ppo:runs/baseline-ppo-batched \
        --env drivegpt/HighwayDense-v0 --episodes 1000 --reference-episodes 1000 \
        --out bench/results/sim_policy_transfer

The two simulators draw their traffic from the same distribution but not the same random numbers,
so the check is that the intervals overlap, not that episodes match. highway-env's episodes are slow
(one to two seconds each in dense traffic), so each one is kept in ``--cache`` (one ``.npz`` per
policy, env and seed, written atomically): a killed run resumes and a larger ``--reference-episodes``
only drives the seeds it lacks. Results go to ``--out`` (``results.json``, ``README.md``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from episode_cache import cached

from drivegpt.core.atomic import write_text
from drivegpt.core.metrics import wilson_interval
from drivegpt.eval.batched import evaluate_batched
from drivegpt.eval.closed_loop import EVAL_SEED, drive_one
from drivegpt.policies.registry import DriveJob, policy_action_kind
from drivegpt.sim.rollout import parallel_map
from drivegpt_envs.common import DEFAULT_ACTION


class Job(NamedTuple):
    policy: str
    env_id: str
    action: str
    seed: int
    cache: str


def cache_path(job: Job) -> Path:
    key = hashlib.sha256(f"{job.policy}|{job.env_id}|{job.action}".encode()).hexdigest()[:12]
    return Path(job.cache) / key / f"{job.seed}.npz"


def cached_episode(job: Job) -> dict[str, Any]:
    """One highway-env episode's crash flag, distance [m] and speeds [m/s], through the cache."""

    def drive() -> dict[str, Any]:
        ep = drive_one(DriveJob(job.policy, job.env_id, job.action, job.seed))
        return {
            "crashed": bool(ep.crashed),
            "distance_m": float(ep.distance_m),
            "speeds": np.asarray(ep.speeds),
        }

    path = cache_path(job)
    if not (path.parent / "key.txt").exists():
        write_text(path.parent / "key.txt", f"{job.policy} {job.env_id} {job.action}\n")
    rec = cached(path, drive)
    return {"crashed": bool(rec["crashed"]), "distance_m": float(rec["distance_m"]), "speeds": rec["speeds"]}


def speed_ci(per: np.ndarray, draws: int = 2000) -> list[float]:
    """Bootstrap 95% interval of the mean of the per-episode mean speeds ``per``."""
    idx = np.random.default_rng(0).integers(0, len(per), (draws, len(per)))
    means = per[idx].mean(1)
    return [float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))]


def summary(crashed: list[bool], speed: np.ndarray, wall: float) -> dict:
    """Collision rate and the mean of per-episode mean speeds ``speed`` [m/s], each with its interval."""
    lo, hi = wilson_interval(int(sum(crashed)), len(crashed))
    return {
        "episodes": len(crashed), "collision_rate": sum(crashed) / len(crashed),
        "collision_rate_ci": [lo, hi], "mean_speed": float(speed.mean()),
        "mean_speed_ci": speed_ci(speed), "wall_s": wall,
    }  # fmt: skip


def overlap(a: list[float], b: list[float]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def cell(s: dict, key: str, fmt: str) -> str:
    lo, hi = s[f"{key}_ci"]
    return f"{s[key]:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy", action="append", required=True, help="policy spec (repeatable)")
    ap.add_argument("--env", default="drivegpt/HighwayDense-v0")
    ap.add_argument("--episodes", type=int, default=1000, help="batched-simulator episodes per policy")
    ap.add_argument("--reference-episodes", type=int, default=1000, help="highway-env episodes per policy")
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--cache", default="runs/sim_policy_transfer_cache", help="per-seed highway-env records")
    ap.add_argument("--out", type=Path, default=None, help="write results.json and README.md here")
    args = ap.parse_args()
    load0 = os.getloadavg()
    print(f"load average at start: {load0[0]:.2f}, {os.cpu_count()} cores, env {args.env}")
    rows = []
    for spec in args.policy:
        action = policy_action_kind(spec, DEFAULT_ACTION)
        t0 = time.time()
        jobs = [
            Job(spec, args.env, action, EVAL_SEED + i, args.cache) for i in range(args.reference_episodes)
        ]
        eps = parallel_map(cached_episode, jobs, args.workers, "local", f"highway-env {spec}", True)
        he = summary(
            [e["crashed"] for e in eps], np.array([e["speeds"].mean() for e in eps]), time.time() - t0
        )
        t0 = time.time()
        _, out = evaluate_batched(spec, args.env, None, args.episodes, EVAL_SEED, args.batch, progress=False)
        bt = summary(list(out["crashed"]), out["mean_speed_mps"], time.time() - t0)
        row = {"policy": spec, "highway_env": he, "batched": bt}
        row |= {f"{k}_agree": overlap(he[f"{k}_ci"], bt[f"{k}_ci"]) for k in ("collision_rate", "mean_speed")}
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.out is None:
        return
    command = "python bench/sim_policy_transfer.py " + " ".join(
        [f"--policy {p}" for p in args.policy]
        + [f"--env {args.env} --episodes {args.episodes} --reference-episodes {args.reference_episodes}"]
    )
    load = [load0[0], os.getloadavg()[0]]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(
        json.dumps({"command": command, "load": load, "rows": rows}, indent=1)
    )
    lines = [
        "# Policies on highway-env and on the batched simulator", "",
        f"Command: `{command}` (held-out seeds from {EVAL_SEED:,}; each simulator draws its own traffic). "
        f"Load average {load[0]:.2f} → {load[1]:.2f}; wall times include episodes read from the cache.", "",
        "| policy | simulator | episodes | collision rate [Wilson 95%] | mean speed [m/s, bootstrap 95%] "
        "| wall [s] |",
        "|---|---|---|---|---|---|",
    ]  # fmt: skip
    for r in rows:
        for sim in ("highway_env", "batched"):
            s = r[sim]
            lines.append(
                f"| `{r['policy']}` | {sim.replace('_', '-')} | {s['episodes']} | "
                f"{cell(s, 'collision_rate', '.3f')} | {cell(s, 'mean_speed', '.2f')} | {s['wall_s']:.0f} |"
            )
    lines += ["", "Intervals that overlap:", ""]
    for r in rows:
        lines.append(
            f"- `{r['policy']}`: collision rate {'yes' if r['collision_rate_agree'] else 'no'}, "
            f"mean speed {'yes' if r['mean_speed_agree'] else 'no'}"
        )
    (args.out / "README.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
