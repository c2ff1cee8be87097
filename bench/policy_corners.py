"""Where a family can make a policy fail at all: the failure rate at the corners of its parameter space.

Importance sampling needs its pilot to find failures. When a policy's pilot finds none in a family,
is the failure region rare, or out of reach? This probes every combination of -3, 0 and +3 standard
deviations of the chosen parameters (the others at their naturalistic median), ``--seeds`` scenario
seeds each, on the batched simulator, for each policy, and writes the corners where any policy
failed, and each policy's smallest TTC to the lead (median over the seeds, worst corner), to
``--out`` (markdown) and its JSON beside it.

    .venv/bin/python bench/policy_corners.py --family stalled_car --policies human drivegpt-rlhf \\
        --out bench/results/estimate_policies/corners-stalled_car.md
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np
import torch
from estimate_batched import DURATION, load  # bench/ is on sys.path when run as a script

from drivegpt.core.atomic import write_text
from drivegpt.core.errors import UserError
from drivegpt.core.metrics import wilson_interval
from drivegpt.corner.batched import TTC_SCALE, batched_family_simulator
from drivegpt.corner.naturalistic import family_distribution, load_naturalistic
from drivegpt.sim.batched.families import BATCHED_FAMILIES

LEVELS = (-3.0, 0.0, 3.0)  #: [standard deviations] of each probed parameter


def finite(x: float) -> float | None:
    """JSON has no inf or NaN: None (no TTC: never closed in, or every seed failed)."""
    return float(x) if np.isfinite(x) else None


def corners(dim: int, probed: list[int], seeds: int) -> tuple[list[tuple[float, ...]], np.ndarray]:
    """The corners (each a tuple over ``probed``) and the (corners * seeds, dim) standard-space rows."""
    pts = list(itertools.product(LEVELS, repeat=len(probed)))
    z = np.zeros((len(pts) * seeds, dim))  # (n, dim): the unprobed parameters at their median
    for i, p in enumerate(pts):
        z[i * seeds : (i + 1) * seeds][:, probed] = p
    return pts, z


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--family", required=True, choices=BATCHED_FAMILIES)
    ap.add_argument("--policies", nargs="+", default=["human", "drivegpt-rlhf"])
    ap.add_argument("--params", nargs="+", help="parameters to probe (default: the first four)")
    ap.add_argument("--seeds", type=int, default=24, help="scenario seeds per corner")
    ap.add_argument("--first-seed", type=int, default=555_000)
    ap.add_argument("--batch", type=int, default=2048)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    if args.seeds < 1 or args.batch < 1:
        ap.error(f"--seeds and --batch must be >= 1, got {args.seeds} and {args.batch}")
    dist = family_distribution(args.family, load_naturalistic(None))
    names = args.params or dist.names[:4]
    unknown = [n for n in names if n not in dist.names]
    if unknown:
        ap.error(f"{args.family} has no parameter {', '.join(unknown)}; valid: {', '.join(dist.names)}")
    torch.set_num_threads(1)
    probed = [dist.names.index(n) for n in names]
    pts, z = corners(dist.dim, probed, args.seeds)
    seeds = args.first_seed + np.arange(len(z))
    result: dict = {"family": args.family, "params": names, "levels": LEVELS, "seeds_per_corner": args.seeds}
    rates, ttc = {}, {}
    for policy in args.policies:
        try:
            sim = batched_family_simulator(
                args.family, policy, dist.names, "accel", args.batch, DURATION.get(args.family)
            )
        except UserError as err:  # an unknown spec or a missing checkpoint: one line, no traceback
            ap.error(str(err))
        t0, before = time.time(), load()
        sev = sim(dist.to_params(z), seeds).reshape(len(pts), args.seeds)  # (corners, seeds)
        near = np.where(sev < 1, sev, np.nan)  # graded runs: severity 1 / (1 + TTC_min / TTC_SCALE)
        with np.errstate(divide="ignore", invalid="ignore"):
            ttc_med = np.nanmedian(TTC_SCALE * (1 / near - 1), axis=1)  # (corners,) [s]
        rates[policy], ttc[policy] = (sev >= 1).mean(1), ttc_med
        result[policy] = {
            "failures": int((sev >= 1).sum()), "sims": int(sev.size), "seconds": time.time() - t0,
            "load": [before, load()], "failing_corners": int(((sev >= 1).any(1)).sum()),
            "min_ttc_median_s": finite(np.nanmin(ttc_med)) if np.isfinite(ttc_med).any() else None,
        }  # fmt: skip
        print(f"{policy}: {result[policy]}", flush=True)
    lines = [
        f"`{args.family}`: {len(pts)} corners ({', '.join(names)} at -3σ, 0, +3σ; the rest at the median), "
        f"{args.seeds} seeds each, from seed {args.first_seed}.",
        "",
        "| policy | failures / simulations [Wilson 95%] | corners with a failure | smallest median TTC [s] |",
        "|---|---|---|---|",
    ]
    for policy in args.policies:
        r = result[policy]
        lo, hi = wilson_interval(r["failures"], r["sims"])
        ttc_s = f"{r['min_ttc_median_s']:.2f}" if r["min_ttc_median_s"] is not None else "-"
        lines.append(
            f"| `{policy}` | {r['failures']} / {r['sims']} [{lo:.3f}, {hi:.3f}] | "
            f"{r['failing_corners']} of {len(pts)} | {ttc_s} |"
        )
    failing = [i for i in range(len(pts)) if any(rates[p][i] > 0 for p in args.policies)]
    if failing:
        head = " | ".join([*names, *(f"`{p}` fails" for p in args.policies)])
        lines += ["", f"| {head} |", "|" + "---|" * (len(names) + len(args.policies))]
        for i in failing:
            cells = [*(f"{v:+.0f}σ" for v in pts[i]), *(f"{rates[p][i]:.2f}" for p in args.policies)]
            lines.append(f"| {' | '.join(cells)} |")
    result["corners"] = [
        {"z": list(pts[i])}
        | {p: {"fail": float(rates[p][i]), "ttc_median_s": finite(ttc[p][i])} for p in rates}
        for i in range(len(pts))
    ]
    write_text(args.out, "\n".join(lines) + "\n")
    write_text(args.out.with_suffix(".json"), json.dumps(result, indent=1, allow_nan=False))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
