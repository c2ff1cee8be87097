"""Takeover figures: DriveGPT vs the human model under the monitor, replay fidelity and resolution.

    python bench/takeovers.py --policy drivegpt --env drivegpt/HighwayDense-v0 --episodes 100 --workers 2
    python bench/takeovers.py --drivers policy --episodes 120 --chunk 10 --max-wall 2400 \
        --clips-out runs/clips-dense --replay-with human
    python bench/takeovers.py --clips-in runs/clips-dense --replay-with human   # re-judge saved clips

Targets: late takeovers / takeovers <= 5 %; the human resolves >= 95 % of the policy's replayed clips.

1. takeovers per 100 km (policy-controlled distance), km per takeover, late takeovers and collision
   rate of the policy and of the (monitored) human model on held-out seeds;
2. replay fidelity (0 where recorded, at most 1e-9 elsewhere) on every clip of the policy and on
   takeover_data/sample, replays/s;
3. resolution rate of the policy's own clips replayed with (a) the same policy, (b) the human model,
   and for every unresolved clip why: trigger and TTC at the takeover, collision, TTC violation, new
   takeover, never safe (no hand-back).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from drivegpt.core.metrics import driving_metrics, wilson_interval
from drivegpt.eval.closed_loop import EVAL_SEED, episode_takeover_metrics, evaluate_monitored
from drivegpt.takeover.clips import load_clips, write_clips
from drivegpt.takeover.monitor import MonitorConfig
from drivegpt.takeover.replay import replay_clips


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


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


def drive(spec: str, args: argparse.Namespace) -> tuple[dict, list]:
    """Monitored episodes on seeds EVAL_SEED, EVAL_SEED+1, ... in chunks of ``--chunk``; no new chunk
    starts after ``--max-wall`` seconds (the figures then cover the episodes driven, as reported);
    the clips so far are written to ``--clips-out`` after every chunk."""
    t0, eps, clips = time.time(), [], []
    chunk = args.chunk or args.episodes
    for start in range(0, args.episodes, chunk):
        if args.max_wall and time.time() - t0 > args.max_wall:
            print(f"  --max-wall {args.max_wall:.0f} s reached: {start} episodes driven", flush=True)
            break
        n = min(chunk, args.episodes - start)
        _, e, c = evaluate_monitored(spec, args.env, None, n, EVAL_SEED + start, args.workers, progress=False)
        eps, clips = eps + e, clips + c
        print(
            f"  {spec}: {len(eps)} episodes, {len(clips)} takeovers, {time.time() - t0:.0f} s, "
            f"load {_load()}",
            flush=True,
        )
        if args.clips_out and spec != "human":
            write_clips(args.clips_out, clips)
    m = driving_metrics([e.crashed for e in eps], [e.distance_m for e in eps], [e.speeds for e in eps])
    return {**m, **episode_takeover_metrics(eps, clips)}, clips


def replay_all(clips: list, spec: str, workers: int | None) -> dict:
    """Replay every clip with ``spec`` (clips judged with the default monitor); per-clip diagnostics."""
    t0 = time.perf_counter()
    rs = replay_clips(clips, spec, MonitorConfig(), workers=workers, progress=False)
    wall = time.perf_counter() - t0
    n = len(rs)
    resolved = sum(r.resolved for r in rs)
    failures = [
        {
            "clip": c.id,
            "trigger": c.trigger,
            "ttc_at_takeover_s": c.figures.get("ttc_s"),
            "headway_at_takeover_s": c.figures.get("headway_s"),
            "speed_at_takeover_mps": c.figures.get("speed_mps"),
            "crash_in_steps": c.figures.get("crash_in_steps"),
            "late_in_recording": c.late,
            "collision": r.collision,
            "ttc_violation": r.ttc_violation,
            "new_takeover": r.new_takeover,
            "handed_back": r.handed_back,
            "min_ttc_s": r.min_ttc_s,
            "steps": r.steps,
        }
        for c, r in zip(clips, rs, strict=True)
        if not r.resolved
    ]
    return {
        "replays": n,
        "resolved": resolved,
        "resolution_rate": resolved / n if n else None,
        "resolution_rate_ci": list(wilson_interval(resolved, n)) if n else None,
        "fidelity_max_abs": max((r.fidelity_max_abs for r in rs), default=0.0),
        "replays_per_s": n / wall if wall else None,
        "wall_s": wall,
        "triggers": {t: sum(c.trigger == t for c in clips) for t in sorted({c.trigger for c in clips})},
        "unresolved": failures,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--policy", default="drivegpt")
    ap.add_argument("--env", default="drivegpt/HighwayDense-v0")
    ap.add_argument("--drivers", nargs="+", default=["policy", "human"], help="policy and/or human")
    ap.add_argument("--episodes", type=int, default=200)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--chunk", type=int, default=0, help="drive in chunks of this many episodes")
    ap.add_argument("--max-wall", type=float, default=0.0, help="start no chunk after this many seconds")
    ap.add_argument("--clips-out", default=None, help="keep the policy's clips in this directory")
    ap.add_argument("--clips-in", default=None, help="skip driving: replay the clips in this directory")
    ap.add_argument(
        "--replay-with", nargs="+", default=["same_policy", "human"], help="same_policy and/or human"
    )
    ap.add_argument("--sample", default="takeover_data/sample")
    ap.add_argument("--out", default="bench/results/takeovers.json")
    args = ap.parse_args()
    res: dict = {
        "command": "python " + " ".join(sys.argv),
        "env": args.env,
        "episodes_requested": args.episodes,
        "machine": platform.platform(),
    }
    clips_by = {}
    for name, spec in (("policy", args.policy), ("human", "human")):
        if name not in args.drivers or (name == "policy" and args.clips_in):
            continue
        t0 = time.time()
        m, clips = drive(spec, args)
        print(f"{spec:28s} {_fmt(m)} wall={time.time() - t0:.0f}s load={_load()}", flush=True)
        res[name] = {**m, "wall_s": time.time() - t0, "load_average": _load()}
        res[name]["late_fraction_ci"] = list(wilson_interval(m["late_takeovers"], m["takeovers"]))
        clips_by[name] = clips
    if args.clips_in:
        own = load_clips(args.clips_in)
        res["clips_in"] = Path(args.clips_in).name
    else:
        with tempfile.TemporaryDirectory() as tmp:  # replay what was written, not what is in memory
            where = Path(args.clips_out) if args.clips_out else Path(tmp) / "c"
            own = load_clips(write_clips(where, clips_by["policy"]))
    for who in args.replay_with:
        spec = args.policy if who == "same_policy" else "human"
        r = replay_all(own, spec, args.workers)
        r["load_average"] = _load()
        res[f"replay_{who}"] = r
        print(
            f"replay {len(own)} {args.policy} clips with {spec}: resolved={r['resolved']} resolution_rate="
            f"{r['resolution_rate'] if r['resolution_rate'] is None else round(r['resolution_rate'], 3)} "
            f"{r['resolution_rate_ci']} load={r['load_average']} "
            f"fidelity_max_abs={r['fidelity_max_abs']} replays_per_s={r['replays_per_s'] or 0:.2f}",
            flush=True,
        )
        for f in r["unresolved"]:
            print("  unresolved:", json.dumps(f), flush=True)
    if Path(args.sample).is_dir():
        r = replay_all(load_clips(args.sample), "human", args.workers)
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
