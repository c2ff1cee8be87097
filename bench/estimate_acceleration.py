"""Importance sampling vs plain Monte Carlo for failure probabilities (drivegpt/corner/estimate.py).

Toy part (seconds): Gaussian tails with a known answer, P(X1 > t) for X ~ N(0, 1) in 1-D and the
two-mode P(X1 > t or X2 > t) in 2-D, at P = 1e-3 ... 1e-6. Per problem, ``--repeats`` IS runs to a
relative half-width of 0.2: mean estimate against the truth, coverage of the 95% intervals, simulations
used, the acceleration factor the estimator reports (plain-MC simulations for the same relative
half-width / IS simulations) and the same from the *observed* spread of the repeats. At 1e-3 plain MC
also runs to the same target, so the factor there is measured, not only computed.

Real part (minutes to hours): the ``human`` policy on scenario families under the shipped naturalistic
distribution, IS to ``--rel-halfwidth`` or ``--max-sims``, and plain MC with the same budget as a check.

    .venv/bin/python bench/estimate_acceleration.py --part toy
    nice -n 10 .venv/bin/python bench/estimate_acceleration.py --part real --families hard_braking_lead

Writes ``bench/results/estimate/{toy,real}.{json,md}`` and per real run ``<family>-<method>/``
(``estimate.json``, ``convergence.png``); prints the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from statistics import NormalDist

import numpy as np

from drivegpt.corner.estimate import Z95, EstimateConfig, estimate_probability, write_estimate
from drivegpt.corner.estimate_family import estimate

OUT = Path(__file__).parent / "results" / "estimate"


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def toy_problem(p: float, dim: int) -> tuple[float, float]:
    """Threshold t with P(failure) = p, and the exact p: 1-D tail, or 2-D tail of either coordinate."""
    n = NormalDist()
    t = n.inv_cdf(1 - p) if dim == 1 else n.inv_cdf(math.sqrt(1 - p))
    exact = 1 - n.cdf(t) if dim == 1 else 1 - n.cdf(t) ** 2
    return t, exact


def toy(repeats: int) -> list[dict]:
    rows = []
    for dim in (1, 2):
        for p in (1e-3, 1e-4, 1e-5, 1e-6):
            t, exact = toy_problem(p, dim)

            def sim(x: np.ndarray, seeds: np.ndarray, t: float = t) -> np.ndarray:
                return (x > t).any(1)

            t0 = time.time()
            runs = [
                estimate_probability(sim, dim, EstimateConfig(method="is", seed=s, max_sims=50_000))
                for s in range(repeats)
            ]
            if (dim, p) == (2, 1e-5):  # one convergence plot of a toy run
                write_estimate(runs[0], OUT / "toy-2d-1e-05", {"family": "toy 2-D tail", "policy": "P=1e-5"})
            ps = np.array([r.failure_probability for r in runs])
            sims = np.array([r.sims for r in runs])
            h_obs = Z95 * ps.std(ddof=1) / exact  # the observed relative half-width of one run
            mc_needed = (1 - exact) / (exact * h_obs**2) * Z95**2
            row = {
                "dim": dim,
                "p": exact,
                "mean_estimate": float(ps.mean()),
                "rel_bias": float(ps.mean() / exact - 1),
                "coverage": float(
                    np.mean(
                        [r.failure_probability_ci[0] <= exact <= r.failure_probability_ci[1] for r in runs]
                    )
                ),
                "degenerate": int(sum(r.degenerate for r in runs)),
                "sims_median": float(np.median(sims)),
                "pilot_sims_median": float(np.median([r.pilot_sims for r in runs])),
                "acceleration_reported_median": float(np.median([r.acceleration_factor or 0 for r in runs])),
                "observed_rel_halfwidth": float(h_obs),
                "acceleration_observed": float(mc_needed / sims.mean()),
                "seconds": round(time.time() - t0, 2),
            }
            if p == 1e-3:  # plain MC to the same target, measured
                mc = [
                    estimate_probability(
                        sim, dim, EstimateConfig(method="mc", seed=s, max_sims=400_000, batch=5_000)
                    )
                    for s in range(5)
                ]
                row["mc_sims_mean"] = float(np.mean([r.sims for r in mc]))
                row["mc_estimates"] = [r.failure_probability for r in mc]
                row["acceleration_measured"] = row["mc_sims_mean"] / float(sims.mean())
            rows.append(row)
            print(json.dumps(row))
    return rows


def toy_table(rows: list[dict], repeats: int) -> str:
    lines = [
        f"IS to relative half-width 0.2, {repeats} seeds per row (mean over seeds; acceleration = plain-MC "
        "simulations for the same relative half-width / IS simulations, pilot included).",
        "",
        "| dim | P exact | mean estimate (rel. bias) | 95% CI coverage | IS sims (median) | acceleration "
        "reported (median) | observed rel. half-width | acceleration from observed spread | MC measured |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        mc = (
            f"{r['mc_sims_mean']:.0f} sims ({r['acceleration_measured']:.0f}x)" if "mc_sims_mean" in r else ""
        )
        lines.append(
            f"| {r['dim']} | {r['p']:.3g} | {r['mean_estimate']:.3g} ({r['rel_bias']:+.3f}) | "
            f"{r['coverage']:.2f} | {r['sims_median']:.0f} | {r['acceleration_reported_median']:.3g} | "
            f"{r['observed_rel_halfwidth']:.3f} | {r['acceleration_observed']:.3g} | {mc} |"
        )
    return "\n".join(lines) + "\n"


def real(args: argparse.Namespace) -> list[dict]:
    cfg = EstimateConfig(batch=args.batch, pilot_batch=args.batch, min_batches=3)
    old = OUT / "real.json"
    rows: list[dict] = json.loads(old.read_text())["rows"] if args.append and old.is_file() else []
    for method in args.methods:
        for family in args.families:
            budget = args.max_sims
            same = [r["sims"] for r in rows if r["family"] == family and r["method"] == "is"]
            if method == "mc" and same:
                budget = same[0]  # the same budget as the IS run
            t0 = time.time()
            load0 = uptime()
            est = estimate(
                family,
                "human",
                method,
                args.rel_halfwidth,
                budget,
                args.seed,
                cfg,
                None,
                "accel",
                args.workers,
            )
            seconds = time.time() - t0
            run = {
                "family": family,
                "policy": "human",
                "seconds": round(seconds, 1),
                "uptime_before": load0,
                "uptime_after": uptime(),
                "command": f"bench/estimate_acceleration.py --part real ({method})",
            }
            write_estimate(est, OUT / f"{family}-{method}", run)
            row = {
                "family": family,
                "method": method,
                **est.metrics(),
                "failures": est.failures,
                "pilot_sims": est.pilot_sims,
                "degenerate": est.degenerate,
                "converged": est.converged,
                **run,
            }
            rows.append(row)
            print(json.dumps(row))
            save(args, rows, real_table(rows))  # after every run: a long run stopped early keeps its rows
    return rows


def real_table(rows: list[dict]) -> str:
    lines = [
        "| family | method | P(failure) [95% CI] | rel. half-width | ESS | sims (pilot) | failures | "
        "acceleration | s | load average before -> after |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lo, hi = r["failure_probability_ci"]
        rel = "-" if r["rel_halfwidth"] is None else f"{r['rel_halfwidth']:.2f}"
        acc = "-" if r["acceleration_factor"] is None else f"{r['acceleration_factor']:.1f}"
        la = [u.split("load average:")[-1].strip() for u in (r["uptime_before"], r["uptime_after"])]
        flag = " (degenerate)" if r["degenerate"] else ""
        lines.append(
            f"| {r['family']} | {r['method']} | {r['failure_probability']:.3g} [{lo:.3g}, {hi:.3g}]{flag} | "
            f"{rel} | {r['effective_sample_size']:.1f} | {r['sims']} ({r['pilot_sims']}) | {r['failures']} | "
            f"{acc} | {r['seconds']:.0f} | {la[0]} -> {la[1]} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=["toy", "real"], default="toy")
    ap.add_argument("--repeats", type=int, default=40)
    ap.add_argument("--families", nargs="+", default=["hard_braking_lead", "stalled_car"])
    ap.add_argument("--methods", nargs="+", default=["is", "mc"])
    ap.add_argument("--rel-halfwidth", type=float, default=0.3)
    ap.add_argument("--max-sims", type=int, default=400)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--append", action="store_true", help="real: add rows to the existing real.json")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    print("before:", START[1])
    rows = toy(args.repeats) if args.part == "toy" else real(args)
    print(save(args, rows, toy_table(rows, args.repeats) if args.part == "toy" else real_table(rows)))


START = (time.time(), uptime())


def save(args: argparse.Namespace, rows: list[dict], table: str) -> str:
    """Write ``<part>.json`` and ``<part>.md`` with the load average at the start and now."""
    after = uptime()
    meta = {"argv": vars(args), "uptime_before": START[1], "uptime_after": after}
    meta["seconds"] = round(time.time() - START[0], 1)
    (OUT / f"{args.part}.json").write_text(json.dumps({"run": meta, "rows": rows}, indent=2) + "\n")
    head = f"`bench/estimate_acceleration.py {' '.join(sys.argv[1:])}`"
    md = f"{head}\n\nload average before: {START[1]}\n\nafter: {after}\n\n{table}"
    (OUT / f"{args.part}.md").write_text(md)
    return md


if __name__ == "__main__":
    main()
