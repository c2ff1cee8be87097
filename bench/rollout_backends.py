"""Rollout throughput (policy steps/s) of `drive`'s evaluation by backend: local with 1 and 2 workers,
Ray with 2 CPUs; Ray's overhead vs local at equal workers (target <= 15%).

Each variant drives the same policy on the same seeds (the metrics must agree exactly, checked).
Local pools start fresh processes on every call, so their figure includes process start; Ray is
started once (`ray.init(num_cpus=2)`, timed separately) and its workers stay up: "ray cold" is the
first call (workers start and import DriveGPT), "ray warm" the later ones. Overhead uses ray warm.

    nice -n 10 python bench/rollout_backends.py --episodes 40 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from drivegpt.eval.closed_loop import evaluate


def steps_per_s(policy: str, env: str, episodes: int, workers: int, backend: str) -> tuple[float, dict]:
    t0 = time.perf_counter()
    kwargs = {"workers": workers, "backend": backend, "progress": False}
    metrics, eps = evaluate(policy, env, None, episodes, **kwargs)  # type: ignore[arg-type]
    wall = time.perf_counter() - t0
    return sum(len(e.rewards) for e in eps) / wall, metrics


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--policy", default="human")
    ap.add_argument("--env", default="drivegpt/Highway-v0")
    ap.add_argument("--episodes", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=3, help="interleaved repeats; medians reported")
    ap.add_argument("--out", default="bench/results/rollout_backends")
    args = ap.parse_args()
    import ray

    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray_init_s = time.perf_counter() - t0
    a = (args.policy, args.env, args.episodes)
    ray_cold, reference = steps_per_s(*a, 2, "ray")
    runs: dict[str, list[float]] = {"local_1": [], "local_2": [], "ray_2": []}
    for r in range(args.repeats):  # interleaved so that machine drift hits every variant alike
        for key, workers, backend in (("local_1", 1, "local"), ("local_2", 2, "local"), ("ray_2", 2, "ray")):
            sps, metrics = steps_per_s(*a, workers, backend)
            assert metrics == reference, f"{key}: metrics differ from the first run"
            runs[key].append(sps)
        print(f"repeat {r}: " + ", ".join(f"{k}={v[-1]:.1f}" for k, v in runs.items()), flush=True)
    ray.shutdown()
    med = {k: float(np.median(v)) for k, v in runs.items()}
    res = {
        "policy": args.policy,
        "env": args.env,
        "episodes": args.episodes,
        "local_1_worker_steps_per_s": med["local_1"],
        "local_2_workers_steps_per_s": med["local_2"],
        "ray_2_cpus_steps_per_s": med["ray_2"],
        "ray_2_cpus_cold_steps_per_s": ray_cold,
        "ray_init_s": ray_init_s,
        "ray_overhead_vs_local_2": 1 - med["ray_2"] / med["local_2"],
        "identical_metrics": True,
        "repeats": runs,
        "cpus": len(os.sched_getaffinity(0)),
        "load_average_1min": os.getloadavg()[0],
        "machine": platform.platform(),
    }
    lines = [
        f"# Rollout backends: {args.policy} on {args.env}, {args.episodes} episodes, "
        f"median of {args.repeats}",
        "",
        "| variant | policy steps/s |",
        "|---|---|",
        f"| local, 1 worker | {med['local_1']:.1f} |",
        f"| local, 2 workers | {med['local_2']:.1f} |",
        f"| Ray, 2 CPUs (warm workers) | {med['ray_2']:.1f} |",
        f"| Ray, 2 CPUs (first call, workers starting) | {ray_cold:.1f} |",
        "",
        f"Ray overhead vs local at 2 workers: {100 * res['ray_overhead_vs_local_2']:.1f}% (target <= 15%); "
        f"`ray.init` took {ray_init_s:.1f} s once. Metrics identical across all runs.",
        f"Machine: {res['cpus']} CPUs (1-min load average at the end: "
        f"{res['load_average_1min']:.1f}).",
    ]
    print("\n".join(lines))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(res, indent=2) + "\n")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
