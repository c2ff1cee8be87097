"""Where a family's failures lie under the naturalistic distribution: plain Monte Carlo, per parameter.

Draws ``--batches`` × 4,096 scenarios of ``--family`` from its naturalistic law (the human's traits
sampled too with ``--human-traits``), drives them with the simulated human on the batched simulator
and prints, in the standard-normal coordinates the estimator works in, each parameter's mean and
spread over the failures and over the near misses (severity above 0.5), then every failure's
coordinates sorted by one parameter: a failure region with two modes shows as two groups.

    .venv/bin/python bench/failure_modes.py --family adversarial_vehicle --human-traits \\
        --out bench/results/estimate_batched/adversarial_vehicle_failure_modes.json
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

from drivegpt.core.atomic import write_json
from drivegpt.corner.batched import batched_family_simulator
from drivegpt.corner.naturalistic import WithHumanTraits, family_distribution, load_naturalistic

BATCH = 4096


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", default="adversarial_vehicle")
    ap.add_argument("--human-traits", action="store_true")
    ap.add_argument("--batches", type=int, default=48)
    ap.add_argument("--seed", type=int, default=123, help="sampler seed")
    ap.add_argument("--sort-by", default="cut_in_gap")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(1)
    dist = family_distribution(args.family, load_naturalistic(None))
    dist = WithHumanTraits(dist) if args.human_traits else dist
    sim = batched_family_simulator(args.family, "human", dist.names, "accel", BATCH, None)
    rng, zs, severity, t0 = np.random.default_rng(args.seed), [], [], time.time()
    for i in range(args.batches):  # scenario seeds from 10,000,000: apart from the estimator's
        z = rng.standard_normal((BATCH, dist.dim))
        severity.append(sim(dist.to_params(z), 10_000_000 + i * BATCH + np.arange(BATCH)))
        zs.append(z)
    z, s = np.concatenate(zs), np.concatenate(severity)
    failed, near = s >= 1, (s > 0.5) & (s < 1)
    print(
        f"{args.family}: {len(s)} runs, {failed.sum()} failures, {time.time() - t0:.0f} s, "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    rows = []
    for j, name in enumerate(dist.names):
        row = dict(
            parameter=name,
            failures_mean=float(z[failed, j].mean()),
            failures_std=float(z[failed, j].std()),
            near_misses_mean=float(z[near, j].mean()),
        )
        rows.append(row)
        print(f"{name:28s} failures {row['failures_mean']:+.2f} ± {row['failures_std']:.2f}   "
              f"near misses {row['near_misses_mean']:+.2f}")  # fmt: skip
    k = dist.names.index(args.sort_by)
    order = np.argsort(z[failed, k])
    np.set_printoptions(precision=2, suppress=True, linewidth=150)
    print(f"failures sorted by {args.sort_by} (columns: {', '.join(dist.names)}):")
    print(z[failed][order])
    if args.out:
        write_json(args.out, {
            "family": args.family, "human_traits": args.human_traits, "runs": len(s),
            "failures": int(failed.sum()), "near_misses": int(near.sum()), "names": dist.names,
            "per_parameter": rows, "failures_z": z[failed][order].round(3).tolist(),
        })  # fmt: skip


if __name__ == "__main__":
    main()
