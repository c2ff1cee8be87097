"""Figure: the human driver on highway-env's own junction envs, with and without its junction rules.

``intersection-v0`` and ``roundabout-v0`` as highway-env ships them (their traffic, routes and
durations), with DriveGPT's observation and the ``accel`` driving language; held-out seeds from
``EVAL_SEED``. Each seed is driven twice by the same personality: with the junction rules (gap
acceptance, curve speeds, speed limits; see ``drivegpt.sim.junction``) and without them (the highway
driver). Collision rate with Wilson 95% intervals, the share of episodes in which the ego reaches
its exit (highway-env's ``has_arrived`` at the intersection; on its exit road at the roundabout)
before the time limit, mean speed.

    nice -n 10 python bench/junction_human.py [--episodes 200] [--workers 2]

Writes ``bench/results/junction_human.{json,md}``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from typing import Any, NamedTuple

import numpy as np

from drivegpt.core.atomic import write_json, write_text
from drivegpt.core.metrics import wilson_interval
from drivegpt.eval.closed_loop import EVAL_SEED
from drivegpt.policies.registry import load_policy
from drivegpt.sim.rollout import make_env, parallel_map, run_episode

ENVS = ("intersection-v0", "roundabout-v0")


class Job(NamedTuple):
    env_id: str
    seed: int
    junction_rules: bool


def run_job(job: Job) -> dict[str, Any]:
    env = make_env(job.env_id, "accel", {"junction_rules": job.junction_rules})
    ep = run_episode(env, load_policy("human", "accel"), job.seed)
    base = env.unwrapped
    if hasattr(base, "has_arrived"):  # intersection: 25 m into the exit
        arrived = base.has_arrived(base.vehicle)
    else:  # roundabout: on the exit road to the north (the ego's route)
        arrived = base.vehicle.lane_index[:2] in (("nx", "nxs"), ("nxs", "nxr"))
    env.close()
    return {"crashed": ep.crashed, "arrived": bool(arrived), "mean_speed_mps": float(ep.speeds.mean())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--episodes", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="bench/results/junction_human")
    args = ap.parse_args()
    t0 = time.time()
    seeds = range(EVAL_SEED, EVAL_SEED + args.episodes)
    jobs = [Job(e, s, rules) for e in ENVS for rules in (False, True) for s in seeds]
    results = parallel_map(run_job, jobs, workers=args.workers, desc="junction episodes")
    rows = []
    for env_id in ENVS:
        for rules in (False, True):
            key = (env_id, rules)
            eps = [r for j, r in zip(jobs, results, strict=True) if (j.env_id, j.junction_rules) == key]
            n, crashes = len(eps), sum(e["crashed"] for e in eps)
            rows.append(
                {
                    "env_id": env_id,
                    "junction_rules": rules,
                    "episodes": n,
                    "collision_rate": crashes / n,
                    "collision_rate_ci": list(wilson_interval(crashes, n)),
                    "arrived_fraction": sum(e["arrived"] for e in eps) / n,
                    "mean_speed_mps": float(np.mean([e["mean_speed_mps"] for e in eps])),
                }
            )
    wall = time.time() - t0
    command = "python " + " ".join(sys.argv)
    lines = [
        f"Human driver (`accel`), {args.episodes} episodes per row, seeds {EVAL_SEED}.."
        f"{EVAL_SEED + args.episodes - 1}, the same personalities in both rows of an env; `{command}`; "
        f"{wall:.0f} s wall on {platform.platform()} ({args.workers} workers; load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} at the end).",
        "",
        "| env | junction rules | collision rate [95% CI] | arrived | mean speed [m/s] |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lo, hi = r["collision_rate_ci"]
        lines.append(
            f"| `{r['env_id']}` | {'yes' if r['junction_rules'] else 'no'} | {r['collision_rate']:.3f} "
            f"[{lo:.3f}, {hi:.3f}] | {r['arrived_fraction']:.2f} | {r['mean_speed_mps']:.1f} |"
        )
    table = "\n".join(lines) + "\n"
    print(table)
    write_text(args.out + ".md", table)
    write_json(args.out + ".json", {"command": command, "wall_s": wall, "rows": rows})
    print(f"wrote {args.out}.json and {args.out}.md")


if __name__ == "__main__":
    main()
