"""Takeovers of a policy (DriveGPT, or the human) under the batched safety driver, next to highway-env.

    python bench/takeovers_batched.py --episodes 1000 --batch 1000 --highway-episodes 10 \
        --out bench/results/takeovers_batched

1. the policy under the batched monitor (``drivegpt.takeover.batched``) on held-out seeds from
   1,000,000: takeovers per 100 km of policy-driven distance (exact Poisson 95% interval), late
   takeovers / takeovers (Wilson), monitored collision rate (Wilson), takeovers per trigger;
2. the same policy alone on the same seeds (Wilson collision rate);
3. throughput: monitored policy steps per second of wall time (look-ahead included), batched and on
   highway-env (``evaluate_monitored`` with one worker, on a few episodes only).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from drivegpt.core.metrics import takeover_metrics, wilson_interval
from drivegpt.eval.closed_loop import EVAL_SEED, evaluate_monitored
from drivegpt.takeover.batched_drive import drive_alone, monitored_driver, run_monitored_batch
from drivegpt.takeover.monitor import TRIGGERS, MonitorConfig


def load() -> str:
    path = Path("/proc/loadavg")
    return " ".join(path.read_text().split()[:3]) if path.exists() else "n/a"


def rate(k: int, n: int) -> dict:
    ci = list(wilson_interval(k, n)) if n else None
    return {"count": k, "n": n, "rate": k / n if n else None, "ci": ci}


def batched_run(args: argparse.Namespace) -> dict:
    policy, config = monitored_driver(args.policy, args.env, "accel")
    if hasattr(policy, "to"):  # DriveGPT: its model next to the simulator
        policy.to(args.device)
    cfg = MonitorConfig()
    wall_mon = wall_alone = 0.0
    crashed, crashed_alone, steps, trig = [], [], [], np.zeros(len(TRIGGERS), np.int64)
    takeovers = late = at_start = 0
    km_policy = km = 0.0
    speeds: list[np.ndarray] = []
    for lo in range(0, args.episodes, args.batch):
        seeds = list(range(args.seed + lo, args.seed + min(lo + args.batch, args.episodes)))
        t0 = time.perf_counter()
        alone, _ = drive_alone(policy, config, seeds, args.device)
        wall_alone += time.perf_counter() - t0
        t0 = time.perf_counter()
        out = run_monitored_batch(
            policy, config, seeds, cfg, record_obs=False, alone=False, device=args.device
        )
        wall_mon += time.perf_counter() - t0
        crashed.append(out.crashed)
        crashed_alone.append(alone)
        steps.append(out.steps)
        trig += out.trigger_counts.sum(0)
        takeovers += int(out.takeovers.sum())
        late += int(out.late_takeovers.sum())
        at_start += int(out.at_start.sum())
        km_policy += float(out.policy_distance_m.sum()) / 1000
        km += float(out.distance_m.sum()) / 1000
        speeds += [row[~np.isnan(row)] for row in out.speed]
        done = lo + len(seeds)
        print(f"[batched] {done}/{args.episodes} episodes, {wall_mon:.0f} s monitored, load {load()}")
    n_steps = int(np.concatenate(steps).sum())
    return {
        "episodes": args.episodes,
        **takeover_metrics(takeovers, late, km_policy, at_start),
        "late_fraction": rate(late, takeovers),
        "monitored_collision_rate": rate(int(np.concatenate(crashed).sum()), args.episodes),
        "alone_collision_rate": rate(int(np.concatenate(crashed_alone).sum()), args.episodes),
        "triggers": dict(zip(TRIGGERS, trig.tolist(), strict=True)),
        "km_driven": km,
        "mean_speed_mps": float(np.concatenate(speeds).mean()),
        "policy_steps": n_steps,
        "wall_s_monitored": wall_mon,
        "wall_s_alone": wall_alone,
        "monitored_steps_per_s": n_steps / wall_mon,
    }


def highway_run(args: argparse.Namespace) -> dict:
    t0 = time.perf_counter()
    metrics, eps, _ = evaluate_monitored(
        args.policy, args.env, "accel", args.highway_episodes, args.seed, workers=1, progress=False
    )
    wall = time.perf_counter() - t0
    n_steps = sum(len(e.actions) for e in eps)
    return {
        "episodes": args.highway_episodes,
        "takeovers": metrics["takeovers"],
        "late_takeovers": metrics["late_takeovers"],
        "km_policy": metrics["km_policy"],
        "takeovers_per_100km": metrics["takeovers_per_100km"],
        "takeovers_per_100km_ci": metrics["takeovers_per_100km_ci"],
        "takeovers_at_start": metrics["takeovers_at_start"],
        "takeovers_after_start_per_100km": metrics["takeovers_after_start_per_100km"],
        "takeovers_after_start_per_100km_ci": metrics["takeovers_after_start_per_100km_ci"],
        "monitored_collision_rate": rate(int(round(metrics["collision_rate"] * len(eps))), len(eps)),
        "policy_steps": n_steps,
        "wall_s": wall,
        "monitored_steps_per_s": n_steps / wall,
    }


def markdown(r: dict) -> str:
    b = r["batched"]

    def ci(x: list | None, digits: int = 3) -> str:
        return "n/a" if x is None else f"[{x[0]:.{digits}f}, {x[1]:.{digits}f}]"

    lines = [
        "# Takeovers under the batched safety driver",
        "",
        f"Command: `{r['command']}`",
        "",
        f"Wall time {r['wall_s_total']:.0f} s; {r['threads']} torch thread(s) on {r['cpus']} cores; "
        f"load average (1, 5, 15 min) {r['load_average_start']} at the start, "
        f"{r['load_average_after_batched']} after the batched run, {r['load_average_end']} at the end.",
        "",
        "| simulator | episodes | takeovers (late) | per 100 km [Poisson 95% CI] | at start | after start, "
        "per 100 km | late / takeovers [Wilson] | monitored collision rate [Wilson] | policy alone collision "
        "rate [Wilson] | monitored steps/s |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| batched | {b['episodes']} | {b['takeovers']} ({b['late_takeovers']}) | "
        f"{b['takeovers_per_100km']:.1f} {ci(b['takeovers_per_100km_ci'], 1)} | {b['takeovers_at_start']} | "
        f"{b['takeovers_after_start_per_100km']:.1f} {ci(b['takeovers_after_start_per_100km_ci'], 1)} | "
        f"{b['late_fraction']['rate'] or 0:.3f} {ci(b['late_fraction']['ci'])} | "
        f"{b['monitored_collision_rate']['rate']:.3f} {ci(b['monitored_collision_rate']['ci'])} | "
        f"{b['alone_collision_rate']['rate']:.3f} {ci(b['alone_collision_rate']['ci'])} | "
        f"{b['monitored_steps_per_s']:.1f} |",
    ]
    if "highway_env" in r:
        h = r["highway_env"]
        per100 = "n/a" if h["takeovers_per_100km"] is None else f"{h['takeovers_per_100km']:.1f}"
        lines.append(
            f"| highway-env | {h['episodes']} | {h['takeovers']} ({h['late_takeovers']}) | "
            f"{per100} {ci(h['takeovers_per_100km_ci'], 1)} | {h['takeovers_at_start']} | "
            f"{h['takeovers_after_start_per_100km'] or 0:.1f} "
            f"{ci(h['takeovers_after_start_per_100km_ci'], 1)} | | "
            f"{h['monitored_collision_rate']['rate']:.3f} {ci(h['monitored_collision_rate']['ci'])} | | "
            f"{h['monitored_steps_per_s']:.1f} |"
        )
    lines += [
        "",
        f"Takeovers per trigger (batched): {b['triggers']}. Policy-driven distance "
        f"{b['km_policy']:.1f} km of {b['km_driven']:.1f} km; mean speed {b['mean_speed_mps']:.2f} m/s. "
        "The two simulators draw different episodes from the same seeds "
        "(they agree in distribution, not draw by draw). *At start*: takeovers that fired on an episode's "
        "first state, before the policy's first action took effect; *after start*: the rate without them.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policy", default="drivegpt")
    ap.add_argument("--env", default="drivegpt/HighwayDense-v0")
    ap.add_argument("--episodes", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=EVAL_SEED)
    ap.add_argument("--highway-episodes", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: best on a loaded machine)")
    ap.add_argument("--device", default="cpu", help="where the batched simulator runs: cpu or cuda")
    ap.add_argument("--out", type=Path, default=Path("bench/results/takeovers_batched"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    result: dict = {"load_average_start": load(), "threads": args.threads, "cpus": os.cpu_count()}
    result["command"] = "python bench/takeovers_batched.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
    )
    result["platform"] = platform.platform()
    if args.device != "cpu":
        result["gpu"] = torch.cuda.get_device_name(torch.device(args.device))
    t0 = time.perf_counter()
    result["batched"] = batched_run(args)
    result["load_average_after_batched"] = load()
    if args.highway_episodes:
        result["highway_env"] = highway_run(args)
    result["load_average_end"] = load()
    result["wall_s_total"] = time.perf_counter() - t0
    (args.out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "README.md").write_text(markdown(result))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
