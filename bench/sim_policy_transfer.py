"""Do policies transfer between the simulators? The same policy on highway-env and on the batched
simulator: collision rate (Wilson 95%) and mean speed, side by side, with the wall time of each.

    python bench/sim_policy_transfer.py --policy drivegpt --env drivegpt/HighwayDense-v0 \
        --episodes 1000 --reference-episodes 200

The two simulators draw their traffic from the same distribution but not the same random numbers,
so the check is that the intervals overlap, not that episodes match.
"""

from __future__ import annotations

import argparse
import os
import time

from drivegpt.eval.batched import evaluate_batched
from drivegpt.eval.closed_loop import EVAL_SEED, evaluate


def cell(m: dict) -> str:
    lo, hi = m["collision_rate_ci"]
    return f"{m['collision_rate']:.3f} [{lo:.3f}, {hi:.3f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy", action="append", required=True, help="policy spec (repeatable)")
    ap.add_argument("--env", default="drivegpt/HighwayDense-v0")
    ap.add_argument("--episodes", type=int, default=1000, help="batched-simulator episodes per policy")
    ap.add_argument("--reference-episodes", type=int, default=200, help="highway-env episodes per policy")
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=None)
    args = ap.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores, env {args.env}")
    print("| policy | simulator | episodes | collision rate [95% CI] | mean speed [m/s] | wall [s] |")
    print("|---|---|---|---|---|---|")
    for spec in args.policy:
        t0 = time.time()
        n, w = args.reference_episodes, args.workers
        m, _ = evaluate(spec, args.env, None, n, EVAL_SEED, w, progress=False)
        wall = time.time() - t0
        print(f"| {spec} | highway-env | {n} | {cell(m)} | {m['mean_speed_mps']:.2f} | {wall:.0f} |")
        t0 = time.time()
        b, _ = evaluate_batched(spec, args.env, None, args.episodes, EVAL_SEED, args.batch, progress=False)
        wall = time.time() - t0
        row = f"| {spec} | batched | {args.episodes} | {cell(b)} | {b['mean_speed_mps']:.2f} | {wall:.0f} |"
        print(row, flush=True)


if __name__ == "__main__":
    main()
