"""Figures for the simulated human driver vs highway-env's stock IDMVehicle as ego.

Held-out seeds (from 1,000,000; collection uses seeds from 0), the same seeds for every driver and
interface: the human (a personality sampled per seed) and the ``idm`` reference, with the ``accel``
driving language (5 Hz) and with meta-actions (1 Hz). Collision rate with its Wilson 95% interval.

    nice -n 10 python bench/human_driver.py --env drivegpt/HighwayDense-v0 --episodes 400 --workers 2 \\
        --out bench/results/human_driver_dense

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
from drivegpt.eval.closed_loop import EVAL_SEED, evaluate


def load_average() -> str:
    """The 1, 5 and 15-minute load averages (other jobs share the machine)."""
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
    ap.add_argument("--out", default="bench/results/human_driver", help="OUT.json and OUT.md")
    args = ap.parse_args()
    rows = []
    for action in args.actions:
        for policy in args.policies:
            t0 = time.time()
            m, eps = evaluate(
                policy, args.env, action, args.episodes, args.seed, args.workers, progress=False
            )
            row = {
                "policy": policy,
                "action": action,
                "env": args.env,
                **m,
                "collisions": sum(e.crashed for e in eps),
                "wall_s": time.time() - t0,
                "load_average": load_average(),
            }
            print(row_markdown(row), flush=True)
            rows.append(row)
    head = (
        f"{args.env}, held-out seeds {args.seed}..{args.seed + args.episodes - 1} (the same for every row), "
        f"`python bench/human_driver.py --env {args.env} --episodes {args.episodes} "
        f"--workers {args.workers}`\n\n"
        "| driver | action | episodes | collisions | collision rate [Wilson 95%] | mean speed [m/s] | km "
        "| km per collision | wall [s] | load average (1, 5, 15 min) |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n"
    )
    write_text(Path(f"{args.out}.md"), head + "\n".join(row_markdown(r) for r in rows) + "\n")
    write_json(Path(f"{args.out}.json"), {"machine": platform.platform(), "rows": rows})
    print(f"wrote {args.out}.json and {args.out}.md")


if __name__ == "__main__":
    main()
