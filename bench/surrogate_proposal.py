"""First use of the physics-surrogate proposal (``corner-cases estimate --surrogate``), measured.

``drivegpt.corner.surrogate`` shapes an importance-sampling proposal from a model of a few cars of
``adversarial_vehicle`` or ``stalled_car`` (no simulator run, no pilot). Measurements, the human with
its traits sampled, on the batched simulator:

* ``moment``: the proposal's relative variance per simulation on every Monte Carlo failure of the
  ``traits/`` streams of ``bench/is_second_moment.py`` (395 in 800,000 draws: the default σ was chosen
  on this table, so it flatters the default a little), for a few surrogate scales σ and defensive
  weights: ``mean(f p / q) / P² − 1`` over the draws. Also where the failures lie in the margin.
* (``stalled_car``'s margin on its Monte Carlo failures: ``bench/stalled_car_margin.py``.)
* ``runs``: ``--runs`` estimates of ``--family`` exactly as the CLI runs them (with the family's own
  σ and δ; ``stalled_car`` in episodes of 15 s, as its truth), on scenario seeds no Monte Carlo stream
  used (``stalled_car``'s proposal draws its own, uniform on [0, 2³¹), which may rarely meet one): one
  set stopping at ±20% (simulations used, coverage of the Monte Carlo truth) and one of ``--fixed``
  simulations each (the spread of their estimates is the relative variance, free of the stopping
  rule's optimism).

    .venv/bin/python bench/surrogate_proposal.py --parts moment
    R=".venv/bin/python bench/surrogate_proposal.py --parts runs"
    $R --set fixed --first 0 --runs 20 & $R --set fixed --first 20 --runs 20   # two side by side
    $R --set stop --first 0 --runs 15 & $R --set stop --first 15 --runs 15
    .venv/bin/python bench/surrogate_proposal.py --parts pool --set fixed    # and --set stop
    $R --family stalled_car --set fixed --fixed 2000 --first 0 --runs 10 --sims-per-check 250 & ...

(writes ``bench/results/surrogate/adversarial_vehicle-moment.md``, ``-{fixed,stop}[-FIRST].md`` and
``.json`` per set, ``-{fixed,stop}-pooled.md``, and ``stalled_car-{fixed,stop}*`` likewise)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
from proposal_shapes import draws  # bench/ is on sys.path when run as a script

from drivegpt.core.atomic import write_text
from drivegpt.core.metrics import wilson_interval
from drivegpt.corner.estimate import Z95, EstimateConfig
from drivegpt.corner.estimate_family import estimate
from drivegpt.corner.naturalistic import WithHumanTraits, family_distribution
from drivegpt.corner.naturalistic import _ndtr_v as phi  # the standard normal CDF, elementwise
from drivegpt.corner.surrogate import SURROGATES

FAMILY = "adversarial_vehicle"
#: the Monte Carlo truths (failures, draws), traits sampled or drawn by the seed (the same law):
#: ``adversarial_vehicle``: the ``traits/`` streams (395 in 800,000) and the 10⁶-run truth of
#: ``bench/results/estimate_batched`` (514); ``stalled_car`` (episodes of 15 s): the four streams of
#: ``bench/is_second_moment.py`` (972 in 1.6 million) and its 10⁶-run truth there (547)
TRUTH = {"adversarial_vehicle": (395 + 514, 800_000 + 1_000_000), "stalled_car": (972 + 547, 2_600_000)}
#: [s] the truth's episodes (None: the family's)
DURATION = {"adversarial_vehicle": None, "stalled_car": 15.0}
#: run k's sampler seed: SEED0 + k * 10**6
SEED0 = {"adversarial_vehicle": {"stop": 200_000_000, "fixed": 300_000_000},
         "stalled_car": {"stop": 600_000_000, "fixed": 700_000_000}}  # fmt: skip


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def moment(traits: Path, out: Path) -> None:
    z, f = draws(traits, FAMILY)
    dist = WithHumanTraits(family_distribution(FAMILY))
    t0 = time.time()
    margin = np.concatenate([
        SURROGATES[FAMILY].margin(dist.to_params(z[lo : lo + 65536]), dist.names)
        for lo in range(0, len(z), 65536)
    ])  # fmt: skip
    seconds = time.time() - t0
    p, n = f.mean(), len(f)
    mc = (1 - p) / p
    half = np.arange(n) < n // 2  # the two streams, 400,000 draws each
    lines = [
        f"# The surrogate proposal's variance on `{FAMILY}`'s Monte Carlo failures",
        "",
        f"{n:,} Monte Carlo draws ({FAMILY}, the human's traits sampled), {f.sum()} failures, P = {p:.3g}; "
        f"Monte Carlo's relative variance {mc:,.0f}. The surrogate's margin of all {n:,} draws: "
        f"{seconds:.0f} s (load {load()}).",
        "",
        "Where the failures lie in the surrogate's margin:",
        "",
        "| margin [m] | share of the draws | failures | failing share |",
        "|---|---|---|---|",
    ]
    for lo, hi in [(-math.inf, 0), (0, 0.5), (0.5, 1), (1, 2), (2, 3), (3, 5), (5, math.inf)]:
        cell = (margin >= lo) & (margin < hi)
        rate = f"{f[cell].mean():.3g}" if cell.any() else "-"
        lines.append(f"| [{lo}, {hi}) | {cell.mean():.2e} | {f[cell].sum()} | {rate} |")
    never = np.isinf(margin)
    lines.append(f"| never cuts in (+inf) | {never.mean():.2e} | {f[never].sum()} | {f[never].mean():.3g} |")
    lines += [
        "",
        "q = p (δ + (1 − δ) Φ(−margin / σ) / Z); acceleration with no pilot = Monte Carlo's relative "
        "variance ÷ the proposal's, `mean(f p / q) / P² − 1` over the draws (each stream alone in brackets):",
        "",
        "| σ [m] | Z | δ = 0.02 | δ = 0.1 |",
        "|---|---|---|---|",
    ]
    for sigma in (0.5, 1.0, 1.5, 2.0, 3.0):
        g = phi(-margin / sigma)
        cells = []
        for delta in (0.02, 0.1):
            w = 1 / (delta + (1 - delta) * g / g.mean())  # p / q at every draw
            acc = [((1 - f[h].mean()) / f[h].mean()) / ((w[h] * f[h]).mean() / f[h].mean() ** 2 - 1)
                   for h in (np.ones(n, bool), half, ~half)]  # fmt: skip
            cells.append(f"{acc[0]:.0f}× ({acc[1]:.0f}×, {acc[2]:.0f}×)")
        name = f"{sigma} (default)" if sigma == 1.5 else f"{sigma}"
        lines.append(f"| {name} | {g.mean():.2e} | {' | '.join(cells)} |")
    write_text(out / f"{FAMILY}-moment.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


def spread(ps: np.ndarray, sims: int, p_true: float, boot: int = 10_000) -> tuple[float, float, float, float]:
    """Relative variance per simulation from the spread of fixed-size runs' estimates, and the
    acceleration over Monte Carlo with its 95% bootstrap interval (resampling the runs: the estimates
    are heavy-tailed, so no normal-theory interval)."""
    mc = (1 - p_true) / p_true
    relvar = float(ps.var(ddof=1) * sims / p_true**2)
    again = np.random.default_rng(0).choice(ps, (boot, len(ps)))  # (boot, runs)
    with np.errstate(divide="ignore"):  # a resample of equal estimates has no spread: unbounded
        acc = mc / (again.var(1, ddof=1) * sims / p_true**2)
    lo, hi = np.quantile(acc, [0.025, 0.975], method="inverted_cdf")  # no interpolation: inf stays inf
    return relvar, mc / relvar, float(lo), float(hi)


def coverage(covered: int, degenerate: int, runs: int) -> str:
    """How many intervals cover the truth, the runs flagged degenerate (no interval) set apart."""
    flagged = f" ({degenerate} flagged degenerate: no interval)" if degenerate else ""
    return f"{covered} of the {runs - degenerate} intervals cover it{flagged}"


def truth(family: str) -> tuple[float, float, float]:
    failures, draws = TRUTH[family]
    return (failures / draws, *wilson_interval(failures, draws))


def verdict(which: str, rows: list[dict], p_true: float) -> tuple[str, dict]:
    """What a set of runs says against the truth, as a sentence and as figures: their mean, coverage,
    and the spread with its interval (fixed-size runs) or the simulations used (runs stopping at ±20%)."""
    ps, sims = np.array([r["p"] for r in rows]), np.array([r["sims"] for r in rows])
    covered, degenerate = sum(r["covers"] for r in rows), sum(r.get("degenerate", False) for r in rows)
    se = float(ps.std(ddof=1) / math.sqrt(len(ps)) / p_true)
    mc_needed = Z95**2 * (1 - p_true) / (p_true * 0.2**2)  # plain Monte Carlo's simulations for ±20%
    figures = {"mean_over_truth": float(ps.mean() / p_true), "se_over_truth": se, "covered": covered,
               "degenerate": degenerate, "mean_sims": float(sims.mean()),
               "mc_sims_for_20pct": mc_needed}  # fmt: skip
    if which == "fixed":
        relvar, acc, lo, hi = spread(ps, int(sims[0]), p_true)
        figures |= {"relvar": relvar, "acceleration": acc, "acceleration_ci": [lo, hi]}
        said = (f"their spread is a relative variance of {relvar:.1f} per simulation: **{acc:.0f}×** "
                f"[{lo:.0f}, {hi:.0f}] fewer simulations than plain Monte Carlo for the same interval "
                f"({Z95**2 * relvar / 0.2**2:,.0f} for ±20%)")  # fmt: skip
    else:
        figures["acceleration"] = mc_needed / sims.mean()
        said = (f"{sims.mean():,.0f} simulations on average (from {sims.min():,} to {sims.max():,}) "
                f"against plain Monte Carlo's {mc_needed:,.0f} for ±20%: "
                f"**{figures['acceleration']:.0f}×**")  # fmt: skip
    mean = f"The runs' mean is {ps.mean() / p_true:.3f} of it (± {se:.3f})"
    return f"{mean}; {coverage(covered, degenerate, len(rows))}; {said}.", figures


def runs(family: str, which: str, first: int, count: int, fixed: int, check: int, out: Path) -> None:
    p_true, lo_t, hi_t = truth(family)
    rows, t0, before = [], time.time(), load()
    most = 10_000 if family == FAMILY else 40_000
    for k in range(first, first + count):
        seed = SEED0[family][which] + k * 10**6
        cfg = EstimateConfig(defensive=SURROGATES[family].defensive, batch=check)
        t = time.time()
        rel, most = (0.2, most) if which == "stop" else (1e-6, fixed)  # fixed: never stops early
        est = estimate(
            family, "human", "is", rel, most, seed, cfg, sim="batched", progress=False, surrogate=True,
            duration=DURATION[family],
        )  # fmt: skip
        lo, hi = est.failure_probability_ci
        rows.append({"run": k, "seed": seed, "p": est.failure_probability, "lo": lo, "hi": hi,
                     "sims": est.sims, "failures": est.failures, "rel": est.rel_halfwidth,
                     "seconds": time.time() - t, "degenerate": est.degenerate,
                     "covers": bool(lo <= p_true <= hi) and not est.degenerate})  # fmt: skip
        print(f"  {which} {k}: {est.failure_probability:.3g} [{lo:.3g}, {hi:.3g}], {est.sims} sims, "
              f"{est.failures} failures, {time.time() - t:.0f} s, load {load()}", flush=True)  # fmt: skip
    said, figures = verdict(which, rows, p_true)
    summary = {
        "family": family, "set": which, "first": first, "runs": count, "fixed": fixed, "check": check,
        "truth": [p_true, lo_t, hi_t], **figures,
        "seconds": time.time() - t0, "load_before": before, "load_after": load(), "rows": rows,
    }  # fmt: skip
    lines = [
        f"# `corner-cases estimate --surrogate` on `{family}`: {count} runs ({which})",
        "",
        f"`.venv/bin/python bench/surrogate_proposal.py --parts runs --family {family} --set {which} "
        f"--first {first} --runs {count} --fixed {fixed} --sims-per-check {check}` "
        f"({summary['seconds']:.0f} s, load {before} -> {load()})",
        "",
        f"Truth (Monte Carlo, {TRUTH[family][1]:,} draws): {p_true:.3g} [{lo_t:.3g}, {hi_t:.3g}]. {said}",
        "",
        "| run | estimate [95%] | simulations | failures | seconds |",
        "|---|---|---|---|---|",
    ]  # fmt: skip
    for r in rows:
        miss = " (degenerate: no interval)" if r.get("degenerate") else "" if r["covers"] else " (misses)"
        lines.append(f"| {r['run']} | {r['p']:.3g} [{r['lo']:.3g}, {r['hi']:.3g}]{miss} | {r['sims']:,} | "
                     f"{r['failures']} | {r['seconds']:.0f} |")  # fmt: skip
    stem = f"{family}-{which}" + (f"-{first}" if first else "")
    write_text(out / f"{stem}.md", "\n".join(lines) + "\n")
    write_text(out / f"{stem}.json", json.dumps(summary, indent=1))
    print("\n".join(lines[:5]))


def pool(family: str, out: Path, which: str) -> None:
    """Every set of ``which`` runs together: coverage, and the spread with its interval (fixed-size
    runs) or the simulations used (runs stopping at ±20%)."""
    sets = [json.loads(f.read_text()) for f in sorted(out.glob(f"{family}-{which}*.json"))]
    sets = [s for s in sets if s.get("set") == which and s.get("family", FAMILY) == family]
    if not sets or len({s["fixed"] for s in sets if which == "fixed"}) > 1:
        raise SystemExit(f"no {which} sets (of one size) in {out}: run --parts runs --set {which} first")
    rows = [r for s in sets for r in s["rows"]]
    if len({r["seed"] for r in rows}) != len(rows):
        raise SystemExit(f"{out}: two sets share a run's seed; give each its own --first")
    p_true, lo_t, hi_t = truth(family)
    said, _ = verdict(which, rows, p_true)
    names = ", ".join(f"{s['first']}-{s['first'] + s['runs'] - 1}" for s in sets)
    text = (
        f"# `corner-cases estimate --surrogate` on `{family}`: {len(rows)} runs ({which})\n\n"
        f"`.venv/bin/python bench/surrogate_proposal.py --parts pool --family {family} --set {which}` "
        f"(the sets {names})\n\n"
        f"Truth (Monte Carlo, {TRUTH[family][1]:,} draws): {p_true:.3g} [{lo_t:.3g}, {hi_t:.3g}]. {said}\n"
    )  # fmt: skip
    write_text(out / f"{family}-{which}-pooled.md", text)
    print(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--parts", nargs="+", default=["moment"],
                    choices=["moment", "runs", "pool"])  # fmt: skip
    ap.add_argument("--family", choices=list(TRUTH), default=FAMILY, help="runs and pool: the family")
    ap.add_argument("--set", choices=["stop", "fixed"], default="stop", help="runs: ±20%%, or fixed-size")
    ap.add_argument("--sims-per-check", type=int, default=50, help="runs: simulations between checks")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--first", type=int, default=0, help="runs: the first run's index (its seed's offset)")
    ap.add_argument("--fixed", type=int, default=1000, help="runs --set fixed: simulations per run")
    ap.add_argument("--traits", type=Path, default=Path("bench/results/is_second_moment/traits"))
    ap.add_argument("--out", type=Path, default=Path("bench/results/surrogate"))
    args = ap.parse_args()
    if args.runs < 2 or args.fixed < 1 or args.first < 0 or args.sims_per_check < 1:
        ap.error(f"need --runs >= 2, --fixed >= 1, --first >= 0, --sims-per-check >= 1; got {args.runs}, "
                 f"{args.fixed}, {args.first}, {args.sims_per_check}")  # fmt: skip
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    if "moment" in args.parts:
        moment(args.traits, args.out)
    if "runs" in args.parts:
        runs(args.family, args.set, args.first, args.runs, args.fixed, args.sims_per_check, args.out)
    if "pool" in args.parts:
        pool(args.family, args.out, args.set)


if __name__ == "__main__":
    main()
