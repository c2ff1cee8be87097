"""Collisions per 10⁶ km of each policy alone in naturalistic traffic: the benchmark's road figure.

Each policy drives ``--episodes`` episodes of the dense highway on the batched simulator (seeds from
1,000,000; every car's driver and spacing drawn as in ordinary driving), exactly as ``drivegpt bench``
computes its ``collisions_per_1e6km`` column; printed with the Poisson 95% interval, the km driven and
the mean speed, and written to ``--out`` (JSON and a markdown table, and the running estimates:
``naturalistic.csv``, ``plots/naturalistic_rate.png``).

    .venv/bin/python bench/naturalistic_rate.py --policies human drivegpt drivegpt-rlhf --episodes 2000
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from drivegpt.core.atomic import write_json, write_text
from drivegpt.eval.naturalistic import NATURALISTIC_ENV, naturalistic_rate, write_naturalistic


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3]) if os.path.exists("/proc/loadavg") else "?"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--policies", nargs="+", default=["human", "drivegpt", "drivegpt-rlhf"])
    ap.add_argument("--episodes", type=int, default=2000)
    ap.add_argument("--out", type=Path, default=Path("bench/results/naturalistic_rate"))
    args = ap.parse_args()
    torch.set_num_threads(2)
    if args.episodes < 1:
        ap.error(f"--episodes must be >= 1, got {args.episodes}")
    env = NATURALISTIC_ENV
    rows, rates = [], {}
    for spec in args.policies:
        before, t0 = load(), time.time()
        rates[spec] = naturalistic_rate(spec, args.episodes, env, progress=False)
        figures = rates[spec].metrics if rates[spec] is not None else {}
        row = {"policy": spec, "episodes": args.episodes, **figures, "seconds": time.time() - t0}
        row |= {"load_before": before, "load_after": load()}
        rows.append(row)
        print(json.dumps(row), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    out = {"env": env, "rows": rows}
    write_json(args.out / "rates.json", out)
    lines = [
        f"Policies alone on {env} (batched simulator), {args.episodes} episodes each.",
        "",
        "| policy | collisions | km | collisions per 10⁶ km [Poisson 95%] | mean speed [m/s] |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        if "collisions_per_1e6km" not in r:
            lines.append(f"| {r['policy']} | no batched port | | | |")
            continue
        cell = "{:.0f} [{:.0f}, {:.0f}]".format(r["collisions_per_1e6km"], *r["collisions_per_1e6km_ci"])
        speed = f"{r['mean_speed_mps']:.2f}"
        lines.append(f"| {r['policy']} | {r['collisions']} | {r['km_driven']:.0f} | {cell} | {speed} |")
    write_text(args.out / "rates.md", "\n".join(lines) + "\n")
    write_naturalistic(args.out, rates)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
