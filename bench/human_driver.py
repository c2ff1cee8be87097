"""Figures for the simulated human driver vs highway-env's stock IDMVehicle as ego.

Held-out seeds (from 1,000,000; collection uses seeds from 0), highway-fast settings
(``drivegpt/Highway-v0``), meta-actions and continuous control each.

    python bench/human_driver.py --episodes 200 [--workers 2] [--env drivegpt/Highway-v0]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

from drivegpt.eval.closed_loop import EVAL_SEED, evaluate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--episodes", type=int, default=200)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--env", default="drivegpt/Highway-v0")
    ap.add_argument("--actions", nargs="+", default=["meta", "continuous"])
    ap.add_argument("--policies", nargs="+", default=["human", "idm"])
    ap.add_argument("--out", default="bench/results/human_driver.json")
    args = ap.parse_args()
    rows = []
    for action in args.actions:
        for policy in args.policies:
            t0 = time.time()
            m, eps = evaluate(
                policy, args.env, action, args.episodes, EVAL_SEED, args.workers, progress=False
            )
            wall = time.time() - t0
            lo, hi = m["collision_rate_ci"]
            kpc = "inf (no collision)" if m["km_per_collision"] is None else f"{m['km_per_collision']:.1f}"
            print(
                f"{policy:6s} {action:10s} episodes={m['episodes']} collision_rate={m['collision_rate']:.3f} "
                f"[{lo:.3f}, {hi:.3f}] mean_speed={m['mean_speed_mps']:.2f} m/s "
                f"km={m['km_driven']:.1f} km_per_collision={kpc} wall={wall:.0f}s",
                flush=True,
            )
            rows.append({"policy": policy, "action": action, "env": args.env, **m, "wall_s": wall})
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"machine": platform.platform(), "rows": rows}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
