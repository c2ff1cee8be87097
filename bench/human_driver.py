"""Figures for the simulated human driver vs highway-env's stock IDMVehicle as ego.

Held-out seeds (from 1,000,000; collection uses seeds from 0), the same seeds for every driver and
interface: the human (a personality sampled per seed) and the ``idm`` reference, with the ``accel``
driving language (5 Hz) and with meta-actions (1 Hz). Collision rate with its Wilson 95% interval.

    nice -n 10 python bench/human_driver.py --env drivegpt/HighwayDense-v0 --episodes 400 --workers 2 \\
        --out bench/results/human_driver_dense

With ``--sim batched`` both drive the batched simulator (``accel`` only for the human), where a seed
spawns the same traffic whoever drives, so the rows differ by the driver alone:

    python bench/human_driver.py --sim batched --actions accel --env drivegpt/HighwayDense-v0 \\
        --episodes 20000 --out bench/results/human_driver_batched_dense

Writes ``OUT.json`` and ``OUT.md``; prints the table with the load average next to every row.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path
from typing import Any

from drivegpt.core.atomic import write_json, write_text
from drivegpt.core.metrics import driving_metrics
from drivegpt.eval.batched import evaluate_batched
from drivegpt.eval.closed_loop import EVAL_SEED, evaluate


def load_average() -> str:
    """The 1, 5 and 15-minute load averages (figures depend on them)."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def row_markdown(r: dict[str, Any]) -> str:
    lo, hi = r["collision_rate_ci"]
    kpc = "-" if r["km_per_collision"] is None else f"{r['km_per_collision']:.1f}"
    return (
        f"| {r['policy']} | {r['action']} | {r['episodes']} | {r['collisions']} "
        f"| {r['collision_rate']:.4f} [{lo:.4f}, {hi:.4f}] | {r['mean_speed_mps']:.2f} "
        f"| {r['km_driven']:.1f} | {kpc} | {r['wall_s']:.0f} | {r['load_average']} |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--episodes", type=int, default=200)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--env", default="drivegpt/HighwayDense-v0")
    ap.add_argument("--actions", nargs="+", default=["accel", "meta"])
    ap.add_argument("--policies", nargs="+", default=["human", "idm"])
    ap.add_argument("--seed", type=int, default=EVAL_SEED)
    ap.add_argument("--chunk", type=int, default=20, help="results are written after every chunk of seeds")
    ap.add_argument("--out", default="bench/results/human_driver", help="OUT.json and OUT.md")
    ap.add_argument("--sim", choices=["highway-env", "batched"], default="highway-env")
    ap.add_argument("--batch", type=int, default=1000, help="episodes stepped at once (--sim batched)")
    args = ap.parse_args()
    names = [(policy, action) for action in args.actions for policy in args.policies]
    if args.sim == "batched":
        rows = []
        for policy, action in names:
            t0, load0 = time.time(), load_average()
            m, per = evaluate_batched(policy, args.env, action, args.episodes, args.seed, args.batch, False)
            row = {"policy": policy, "action": action, "env": args.env, **m}
            rows.append(row | {"collisions": int(per["crashed"].sum()), "wall_s": time.time() - t0,
                               "load_average": load0})  # fmt: skip
            print(row_markdown(rows[-1]), flush=True)
        write(args, rows, args.episodes)
        return
    done: dict[tuple[str, str], list] = {k: [] for k in names}
    wall = dict.fromkeys(names, 0.0)
    for start in range(0, args.episodes, args.chunk):  # every driver on the same seeds, chunk by chunk
        n = min(args.chunk, args.episodes - start)
        for policy, action in names:
            t0 = time.time()
            _, eps = evaluate(policy, args.env, action, n, args.seed + start, args.workers, progress=False)
            done[policy, action] += [(e.crashed, e.distance_m, e.speeds) for e in eps]
            wall[policy, action] += time.time() - t0
        rows = [
            summary(policy, action, args.env, done[policy, action], wall[policy, action])
            for policy, action in names
        ]
        write(args, rows, start + n)
    for r in rows:
        print(row_markdown(r), flush=True)
    print(f"wrote {args.out}.json and {args.out}.md")


def summary(policy: str, action: str, env: str, eps: list, wall_s: float) -> dict[str, Any]:
    crashed, dist, speeds = zip(*eps, strict=True)
    m = driving_metrics(list(crashed), list(dist), list(speeds))
    return {
        "policy": policy,
        "action": action,
        "env": env,
        **m,
        "collisions": int(sum(crashed)),
        "wall_s": wall_s,
        "load_average": load_average(),
    }


def write(args: argparse.Namespace, rows: list[dict[str, Any]], episodes: int) -> None:
    """OUT.md and OUT.json with the episodes driven so far (rewritten after every chunk)."""
    head = (
        f"{args.env}, held-out seeds {args.seed}..{args.seed + episodes - 1} (the same for every row), "
        f"`python bench/human_driver.py --sim {args.sim} --env {args.env} --episodes {args.episodes} "
        f"--actions {' '.join(args.actions)}"
        + (f" --workers {args.workers}" if args.sim == "highway-env" else "")
        + f"` ({episodes} of {args.episodes} episodes driven)\n\n"
        "| driver | action | episodes | collisions | collision rate [Wilson 95%] | mean speed [m/s] | km "
        "| km per collision | wall [s] | load average (1, 5, 15 min) |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n"
    )
    write_text(Path(f"{args.out}.md"), head + "\n".join(row_markdown(r) for r in rows) + "\n")
    write_json(Path(f"{args.out}.json"), {"machine": platform.platform(), "episodes": episodes, "rows": rows})


if __name__ == "__main__":
    main()
