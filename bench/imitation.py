"""DriveGPT imitation figures: held-out accuracy / cross-entropy and closed loop vs the human model.

Held-out = validation episodes of the run's own split (never trained on); closed loop = seeds from
1,000,000 (collection used seeds from 0), the same seeds for DriveGPT and the human model.

    python bench/imitation.py --run runs/pretrain-accel --episodes 100 --workers 2
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path

from drivegpt.eval.closed_loop import EVAL_SEED, evaluate


def _fmt(m: dict) -> str:
    lo, hi = m["collision_rate_ci"]
    return (
        f"collision_rate={m['collision_rate']:.3f} [{lo:.3f}, {hi:.3f}] "
        f"mean_speed={m['mean_speed_mps']:.2f} m/s km={m['km_driven']:.1f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--run", required=True)
    ap.add_argument("--episodes", type=int, default=200)
    ap.add_argument(
        "--envs", nargs="+", default=["drivegpt/Highway-v0", "drivegpt/HighwayDense-v0", "drivegpt/Merge-v0"]
    )
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    run = Path(args.run)
    val = json.loads((run / "metrics.json").read_text())
    policy = json.loads((run / "policy" / "policy.json").read_text())
    vocab = policy["model"]["vocab_size"]
    print(
        f"{run}: action={policy['action']} params={val['parameters']} best-checkpoint held-out "
        f"accuracy={policy['val']['action_accuracy']:.4f} CE={policy['val']['cross_entropy']:.4f} nats "
        f"(uniform over the {vocab} tokens: ln {vocab} = {math.log(vocab):.2f})"
    )
    for k in ("mae_acceleration_mps2", "mae_steering_rad"):
        if k in policy["val"]:
            print(f"  {k}={policy['val'][k]:.4f}")
    res = {"run": str(run), "held_out": policy["val"], "closed_loop": {}, "machine": platform.platform()}
    for env_id in args.envs:
        for name, spec in (("drivegpt", f"drivegpt:{run}"), ("human", "human")):
            t0 = time.time()
            m, _ = evaluate(
                spec, env_id, policy["action"], args.episodes, EVAL_SEED, args.workers, progress=False
            )
            load = " ".join(f"{x:.2f}" for x in os.getloadavg())
            print(f"{env_id:22s} {name:8s} {_fmt(m)} wall={time.time() - t0:.0f}s load={load}", flush=True)
            res["closed_loop"].setdefault(env_id, {})[name] = {**m, "load_average": load}
        d, h = res["closed_loop"][env_id]["drivegpt"], res["closed_loop"][env_id]["human"]
        ratio = d["collision_rate"] / h["collision_rate"] if h["collision_rate"] else float("inf")
        print(
            f"  -> collision ratio drivegpt/human={ratio:.2f} (target <= 1.5); speed ratio="
            f"{d['mean_speed_mps'] / h['mean_speed_mps']:.3f} (target within 0.9-1.1)"
        )
    out = Path(args.out or f"bench/results/imitation-{policy['action']}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
