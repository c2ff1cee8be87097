"""Does the loop make a better driver? Every policy on the same held-out seeds, side by side.

For each policy: the collision rate of the policy alone (Wilson 95% interval), mean speed, progress
(its distance / the human's distance on the same seed, mean with a bootstrap 95% interval) and, in a
second drive on the same seeds under the safety driver, takeovers per 100 km of policy-controlled
distance (Poisson 95% interval) and the monitored collision rate.

    python bench/efficacy.py --env drivegpt/HighwayDense-v0 --episodes 200 \
        --policy human=human --policy drivegpt=drivegpt --policy dagger=drivegpt:runs/dagger/policy

Prints a Markdown table and writes ``--out`` (JSON + Markdown). Seeds start at 1,000,000 (held out:
collection and training use seeds below that).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from drivegpt.core.atomic import write_json, write_text
from drivegpt.eval.closed_loop import EVAL_SEED, evaluate, evaluate_monitored


def bootstrap_mean(x: np.ndarray, n: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the mean of ``x``."""
    rng = np.random.default_rng(seed)
    means = rng.choice(x, size=(n, len(x)), replace=True).mean(axis=1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def row(name: str, spec: str, env: str, episodes: int, workers: int | None, ref: dict[int, float]) -> dict:
    m, eps = evaluate(spec, env, None, episodes, EVAL_SEED, workers, progress=False)
    progress = np.array([e.distance_m / ref[e.seed] for e in eps if ref.get(e.seed)])
    mon, _, _ = evaluate_monitored(spec, env, None, episodes, EVAL_SEED, workers, progress=False)
    return {
        "policy": name,
        "spec": spec,
        **{k: m[k] for k in ("episodes", "collision_rate", "collision_rate_ci", "mean_speed_mps")},
        "km_driven": m["km_driven"],
        "progress": float(progress.mean()) if len(progress) else None,
        "progress_ci": list(bootstrap_mean(progress)) if len(progress) else None,
        "takeovers": mon["takeovers"],
        "late_takeovers": mon["late_takeovers"],
        "km_policy": mon["km_policy"],
        "takeovers_per_100km": mon["takeovers_per_100km"],
        "takeovers_per_100km_ci": mon["takeovers_per_100km_ci"],
        "monitored_collision_rate": mon["collision_rate"],
        "monitored_collision_rate_ci": mon["collision_rate_ci"],
    }


def fmt(x: float | None, ci: list[float] | None, digits: int) -> str:
    if x is None:
        return "-"
    return f"{x:.{digits}f} [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]" if ci else f"{x:.{digits}f}"


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| policy | episodes | collision rate [95% CI] | mean speed [m/s] | progress [95% CI] "
        "| takeovers / 100 km [95% CI] | monitored collision rate [95% CI] |\n|---|---|---|---|---|---|---|\n"
    )
    lines = [
        f"| {r['policy']} | {r['episodes']} | {fmt(r['collision_rate'], r['collision_rate_ci'], 3)} "
        f"| {r['mean_speed_mps']:.2f} | {fmt(r['progress'], r['progress_ci'], 3)} "
        f"| {fmt(r['takeovers_per_100km'], r['takeovers_per_100km_ci'], 1)} "
        f"| {fmt(r['monitored_collision_rate'], r['monitored_collision_rate_ci'], 3)} |"
        for r in rows
    ]
    return head + "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy", action="append", required=True, help="NAME=SPEC (repeatable)")
    ap.add_argument("--env", default="drivegpt/HighwayDense-v0")
    ap.add_argument("--episodes", type=int, default=200)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--out", type=Path, default=Path("bench/results/efficacy"))
    args = ap.parse_args()
    t0, load = time.time(), os.getloadavg()[0]
    _, ref_eps = evaluate("human", args.env, None, args.episodes, EVAL_SEED, args.workers, progress=False)
    ref = {e.seed: e.distance_m for e in ref_eps}  # the progress reference: the human, same seeds
    rows = []
    for item in args.policy:
        name, _, spec = item.partition("=")
        rows.append(row(name, spec, args.env, args.episodes, args.workers, ref))
        print(table(rows[-1:]).splitlines()[-1], flush=True)
    info = {"env": args.env, "seed": EVAL_SEED, "wall_s": time.time() - t0, "load_average_at_start": load}
    write_json(args.out / f"{args.env.split('/')[-1]}.json", {**info, "rows": rows})
    md = f"`{args.env}`, {args.episodes} held-out episodes a row from seed {EVAL_SEED}\n\n" + table(rows)
    write_text(args.out / f"{args.env.split('/')[-1]}.md", md)
    print(md)


if __name__ == "__main__":
    main()
