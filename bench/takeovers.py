"""Takeover figures: DriveGPT vs the human model under the monitor, replay fidelity and resolution.

    python bench/takeovers.py --policy drivegpt --env drivegpt/HighwayDense-v0 --episodes 100 --workers 2

Targets: late takeovers / takeovers <= 5 %; the human resolves >= 95 % of the policy's replayed clips.

1. takeovers per 100 km (policy-controlled distance), km per takeover, late takeovers and collision
   rate of the policy and of the (monitored) human model on held-out highway-fast seeds;
2. replay fidelity (must be 0) on every clip of the policy and on takeover_data/sample, replays/s;
3. resolution rate of the policy's own clips replayed with (a) the same policy, (b) the human model.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from drivegpt.core.metrics import wilson_interval
from drivegpt.eval.closed_loop import EVAL_SEED, evaluate_monitored
from drivegpt.takeover.clips import load_clips, write_clips
from drivegpt.takeover.monitor import MonitorConfig
from drivegpt.takeover.replay import replay_clip


def _fmt(m: dict) -> str:
    lo, hi = m["collision_rate_ci"]
    per100 = m["takeovers_per_100km"]
    kpt = "inf" if m["km_per_takeover"] is None else f"{m['km_per_takeover']:.2f}"
    n, late = m["takeovers"], m["late_takeovers"]
    llo, lhi = wilson_interval(late, n) if n else (0.0, 1.0)
    return (
        f"takeovers={n} late={late} late/takeovers={late / n if n else 0:.3f} [{llo:.3f}, {lhi:.3f}] "
        f"per_100km={per100:.2f} "
        f"km_per_takeover={kpt} collision_rate={m['collision_rate']:.3f} [{lo:.3f}, {hi:.3f}] "
        f"mean_speed={m['mean_speed_mps']:.2f} km={m['km_driven']:.1f}"
    )


def replay_all(clips, spec: str) -> dict:
    t0 = time.perf_counter()
    rs = [replay_clip(c, spec, MonitorConfig()) for c in clips]
    wall = time.perf_counter() - t0
    n = len(rs)
    resolved = sum(r.resolved for r in rs)
    return {
        "replays": n,
        "resolved": resolved,
        "resolution_rate": resolved / n if n else None,
        "resolution_rate_ci": list(wilson_interval(resolved, n)) if n else None,
        "fidelity_max_abs": max((r.fidelity_max_abs for r in rs), default=0.0),
        "replays_per_s": n / wall if wall else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--policy", default="drivegpt")
    ap.add_argument("--env", default="drivegpt/HighwayDense-v0")
    ap.add_argument("--drivers", nargs="+", default=["policy", "human"], help="policy and/or human")
    ap.add_argument("--episodes", type=int, default=200)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--sample", default="takeover_data/sample")
    ap.add_argument("--out", default="bench/results/takeovers.json")
    args = ap.parse_args()
    res: dict = {"env": args.env, "episodes": args.episodes, "machine": platform.platform()}
    clips_by = {}
    for name, spec in (("policy", args.policy), ("human", "human")):
        if name not in args.drivers:
            continue
        t0 = time.time()
        m, _, clips = evaluate_monitored(
            spec, args.env, None, args.episodes, EVAL_SEED, args.workers, progress=False
        )
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"{spec:28s} {_fmt(m)} wall={time.time() - t0:.0f}s load={load}", flush=True)
        res[name] = {**m, "load_average": load}
        clips_by[name] = clips
    with tempfile.TemporaryDirectory() as tmp:  # replay what was written, not what is in memory
        own = load_clips(write_clips(Path(tmp) / "c", clips_by["policy"]))
    for who, spec in (("same_policy", args.policy), ("human", "human")):
        r = replay_all(own, spec)
        res[f"replay_{who}"] = r
        print(
            f"replay {len(own)} {args.policy} clips with {spec}: resolved={r['resolved']} resolution_rate="
            f"{r['resolution_rate'] if r['resolution_rate'] is None else round(r['resolution_rate'], 3)} "
            f"{r['resolution_rate_ci']} load={' '.join(f'{x:.2f}' for x in os.getloadavg())} "
            f"fidelity_max_abs={r['fidelity_max_abs']} replays_per_s={r['replays_per_s'] or 0:.2f}",
            flush=True,
        )
    if Path(args.sample).is_dir():
        r = replay_all(load_clips(args.sample), "human")
        res["replay_sample"] = r
        print(
            f"replay {r['replays']} sample clips ({args.sample}) with human: fidelity_max_abs="
            f"{r['fidelity_max_abs']} resolution_rate={r['resolution_rate']:.3f} "
            f"replays_per_s={r['replays_per_s']:.2f}"
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
