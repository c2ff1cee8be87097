"""Monte Carlo ground truth on the batched simulator, and importance sampling measured against it.

For each family: plain Monte Carlo from the naturalistic distribution (``z ~ N(0, I)``, simulation i
with scenario seed i, exactly as ``drivegpt corner-cases estimate --method mc --sim batched``) with up
to ``--mc-sims`` simulations or ``--mc-seconds`` of wall time, whichever comes first; then
cross-entropy importance sampling (``drivegpt.corner.estimate``, ``--sim batched``) with
``--is-seeds`` sampler seeds at ``--rel-halfwidth`` (with ``--proposal FILE``: from that proposal,
with no pilot). Reported per family: the MC estimate with its
Wilson 95% interval, the IS estimates, how many IS intervals cover the MC estimate (Wilson interval
of that coverage), the simulations each IS run used, and the acceleration factor = simulations plain
MC needs for the same relative half-width at the MC probability, ``Z95² (1 - p) / (p r²)``, ÷
simulations IS used.

    .venv/bin/python bench/estimate_batched.py --families stalled_car hard_braking_lead \\
        --mc-sims 1000000 --mc-seconds 1800 --is-seeds 10 --out bench/results/estimate_batched
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from drivegpt.core.config import config_from_dict
from drivegpt.core.errors import UserError
from drivegpt.core.metrics import wilson_interval
from drivegpt.corner.batched import batched_family_simulator
from drivegpt.corner.estimate import Z95, EstimateConfig, estimate_probability
from drivegpt.corner.naturalistic import WithHumanTraits, family_distribution, load_naturalistic
from drivegpt.corner.proposal_file import fit_sims, pool_proposals, proposal_from, save_proposal

#: [s] episode length per family: the scripted event and the ego's reaction fit well inside it
DURATION = {"stalled_car": 15.0, "hard_braking_lead": 16.0, "slower_lead": 20.0}


def load() -> str:
    """The 1-, 5- and 15-minute load averages."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3]) if os.path.exists("/proc/loadavg") else "?"


def monte_carlo(
    sim, dist, sims: int, seconds: float, chunk: int, seed: int, resume: dict | None = None
) -> dict:
    """Plain MC in chunks (simulation i: ``z`` row i of the seeded stream, scenario seed ``seed + i``).
    ``resume``: an earlier result of the same stream (``sims``, ``failures``, ``seconds``) to continue."""
    rng = np.random.default_rng([seed, dist.dim])  # as estimate_probability's mc
    t0, done, failures = time.time(), 0, 0
    if resume:
        done, failures = int(resume["sims"]), int(resume["failures"])
        for lo in range(0, done, chunk):  # the rows already simulated, drawn in the same chunks
            rng.standard_normal((min(chunk, done - lo), dist.dim))
        t0 -= float(resume["seconds"])
        seconds += float(resume["seconds"])
    while done < sims and time.time() - t0 < seconds:
        n = min(chunk, sims - done)
        z = rng.standard_normal((n, dist.dim))
        failures += int((sim(dist.to_params(z), seed + done + np.arange(n)) >= 1).sum())
        done += n
        print(f"  mc {done} sims, {failures} failures, {time.time() - t0:.0f} s, load {load()}", flush=True)
    p = failures / done
    lo, hi = wilson_interval(failures, done)
    return {"sims": done, "failures": failures, "p": p, "ci": [lo, hi], "seconds": time.time() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--families", nargs="+", default=list(DURATION))
    ap.add_argument("--policy", default="human")
    ap.add_argument("--mc-sims", type=int, default=1_000_000)
    ap.add_argument("--mc-seconds", type=float, default=1800.0, help="wall-time cap of each family's MC")
    ap.add_argument("--mc-resume", action="store_true", help="continue the MC stream saved in --out")
    ap.add_argument("--mc-from", type=Path, help="take each family's MC result from this results folder")
    ap.add_argument("--mc-failures", type=Path,
                    help="take each family's MC result from the FAMILY-failures-*.npz streams in this folder "
                         "(bench/is_second_moment.py --parts failures)")  # fmt: skip
    ap.add_argument("--is-seeds", type=int, default=10)
    ap.add_argument("--is-first-seed", type=int, default=1, help="sampler seeds from this one (split runs)")
    ap.add_argument("--is-max-sims", type=int, default=20_000)
    ap.add_argument("--is-batch", type=int, default=400, help="IS simulations per estimation batch")
    ap.add_argument("--is-pilot-batch", type=int, default=200, help="IS simulations per pilot stage")
    ap.add_argument("--is-widen", type=float, default=EstimateConfig().widen, help="IS covariance widening")
    ap.add_argument("--is-components", type=int, default=EstimateConfig().components, help="IS mixture size")
    ap.add_argument(
        "--is-cov-floor", type=float, default=EstimateConfig().cov_floor, help="IS eigenvalue floor"
    )
    ap.add_argument(
        "--is-defensive", type=float, default=EstimateConfig().defensive,
        help="IS: the nominal's weight in each run's proposal (a run that fits a proposal: 0.5)",
    )  # fmt: skip
    ap.add_argument("--human-traits", action="store_true", help="sample the human's personality too")
    ap.add_argument("--refit-floor", type=float, help="IS: refit each run's mixture at this floor")
    ap.add_argument("--halfspace-share", type=float, help="IS: fit a half-space to each run, this share")
    ap.add_argument(
        "--halfspace-margin", type=float, help="IS: the half-space's margin (default: by variance)"
    )
    ap.add_argument(
        "--proposal", type=Path, nargs="+",
        help="IS from these proposal.json files (earlier estimates'): run i from file i mod their number",
    )  # fmt: skip
    ap.add_argument(
        "--pool", action="store_true", help="every IS run from the --proposal files pooled (one mixture)"
    )
    ap.add_argument(
        "--save-proposals", action="store_true", help="each IS run's fitted proposal: OUT/FAMILY-proposals/"
    )
    ap.add_argument("--rel-halfwidth", type=float, default=0.2)
    ap.add_argument("--batch", type=int, default=4096, help="episodes stepped at once")
    ap.add_argument("--parts", nargs="+", default=["mc", "is"])
    ap.add_argument("--device", default="cpu", help="where the batched simulator runs: cpu or cuda")
    ap.add_argument("--out", type=Path, default=Path("bench/results/estimate_batched"))
    args = ap.parse_args()
    if args.is_first_seed < 0 or args.is_seeds < 1:
        ap.error("--is-first-seed must be >= 0 and --is-seeds >= 1")
    if args.pool and not args.proposal:
        ap.error("--pool pools the --proposal files: give them")
    if args.proposal and len(args.families) > 1:
        ap.error("a --proposal file belongs to one family: name that one with --families")
    if args.mc_failures and "mc" in args.parts:
        ap.error("--mc-failures is the Monte Carlo reference: leave mc out of --parts")
    settings = {
        "method": "is", "rel_halfwidth": args.rel_halfwidth, "max_sims": args.is_max_sims,
        "batch": args.is_batch, "pilot_batch": args.is_pilot_batch, "widen": args.is_widen,
        "components": args.is_components, "cov_floor": args.is_cov_floor, "refit_floor": args.refit_floor,
        "halfspace_share": args.halfspace_share, "halfspace_margin": args.halfspace_margin,
        "defensive": args.is_defensive,
    }  # fmt: skip
    try:  # every estimator option checked before hours of Monte Carlo
        base = config_from_dict(EstimateConfig, settings, "importance-sampling options")
    except UserError as err:
        ap.error(str(err))
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    model = load_naturalistic(None)
    for family in args.families:
        path = args.out / f"{family}.json"
        dist = family_distribution(family, model)
        dist = WithHumanTraits(dist) if args.human_traits else dist
        duration = DURATION.get(family)  # None: the family's own episode length
        try:
            sim = batched_family_simulator(
                family, args.policy, dist.names, "accel", args.batch, duration, device=args.device
            )
        except UserError as err:  # an unknown spec or a missing checkpoint: one line, no traceback
            ap.error(str(err))
        starts: list[tuple] = [(None, None, 0, None)]  # (proposal, its mixture, fit_sims, file) per start
        if args.proposal:
            starts = []
            groups = [args.proposal] if args.pool else [[f] for f in args.proposal]
            for files in groups:
                try:
                    mix, meta = pool_proposals(files, family, dist.names)
                    q = proposal_from(mix, meta, base.defensive)
                    starts.append((q, mix, fit_sims(meta), ", ".join(map(str, files))))
                except UserError as err:
                    ap.error(str(err))
        result = dict(family=family, policy=args.policy, duration_s=duration, names=dist.names)
        result["proposal"] = [str(f) for f in args.proposal] if args.proposal else None
        result["human_traits"] = args.human_traits
        if args.mc_from:  # the ground truth of an earlier run (the same distribution, other parameters)
            result["mc"] = json.loads((args.mc_from / f"{family}.json").read_text())["mc"]
            result["mc_from"] = str(args.mc_from)
        if args.mc_failures:  # the streams of bench/is_second_moment.py (every draw's failure kept)
            streams = [np.load(f) for f in sorted(args.mc_failures.glob(f"{family}-failures-*.npz"))]
            if not streams:
                ap.error(f"no {family}-failures-*.npz in {args.mc_failures}")
            n, k = sum(int(m["sims"]) for m in streams), sum(len(m["seeds"]) for m in streams)
            result["mc"] = {"sims": n, "failures": k, "p": k / n, "ci": list(wilson_interval(k, n))}
            result["mc_from"] = str(args.mc_failures)
        if "mc" in args.parts:
            print(f"{family}: MC, load {load()}", flush=True)
            before = load()
            earlier = json.loads(path.read_text()).get("mc") if args.mc_resume and path.exists() else None
            result["mc"] = {
                **monte_carlo(sim, dist, args.mc_sims, args.mc_seconds, 16 * args.batch, 0, earlier),
                "load_before": before,
                "load_after": load(),
            }
            result = save(path, result)
        if "is" in args.parts:
            runs, before, t0 = [], load(), time.time()
            used = {"sims": 0, "failures": 0}

            def counted(params: np.ndarray, seeds: np.ndarray, sim=sim, used=used, t0=t0) -> np.ndarray:
                failed = sim(params, seeds)
                used["sims"], used["failures"] = (
                    used["sims"] + len(seeds),
                    used["failures"] + int((failed >= 1).sum()),
                )
                print(f"    {used} {time.time() - t0:.0f} s", flush=True)
                return failed

            for i, seed in enumerate(range(args.is_first_seed, args.is_first_seed + args.is_seeds)):
                cfg = base.model_copy(update={"seed": seed})
                q, mix, start, file = starts[i % len(starts)]
                t_run = time.time()
                est = estimate_probability(counted, dist.dim, cfg, dist.to_params, q, mix)
                runs.append({
                    "seed": seed, "seconds": time.time() - t_run, "p": est.failure_probability,
                    "ci": list(est.failure_probability_ci),
                    "rel_halfwidth": est.rel_halfwidth, "sims": est.sims, "pilot_sims": est.pilot_sims,
                    "failures": est.failures, "converged": est.converged, "degenerate": est.degenerate,
                    "ess": est.effective_sample_size, "own_acceleration_factor": est.acceleration_factor,
                    "proposal": str(file) if file else None,
                })  # fmt: skip
                print(f"  is seed {seed}: {runs[-1]}", flush=True)
                if args.save_proposals and est.mixture is not None:
                    save_proposal(args.out / f"{family}-proposals" / f"seed-{seed}.json", est.mixture, family,
                                  list(dist.names), est.halfspace, policy=args.policy,
                                  pilot_sims=est.pilot_sims, seed=seed,
                                  fit_sims=est._replace(start_sims=start).fit_sims(), fitted_to=est.fitted_to,
                                  started_from=str(file) if file else None)  # fmt: skip
            result["is"] = {
                "config": cfg.model_dump(exclude={"seed"}),
                "runs": runs,
                "seconds": time.time() - t0,
                "load_before": before,
                "load_after": load(),
            }
            result = save(path, result)
        summarise(result, args.rel_halfwidth)
        save(path, result)
    write_markdown(args.out)


def save(path: Path, result: dict) -> dict:
    """Merge ``result`` into the family's JSON (MC and IS may run in two processes) and return it."""
    merged = {**(json.loads(path.read_text()) if path.exists() else {}), **result}
    path.write_text(json.dumps(merged, indent=1))
    return merged


def summarise(result: dict, rel: float) -> None:
    """Coverage of the MC estimate by the IS intervals and the acceleration factors, into ``result``.

    Degenerate IS runs (ESS below ``min_ess``: interval [0, 1], no half-width) are counted apart, never
    as covering. Acceleration of a run = simulations plain MC needs at the MC probability for the
    relative half-width that run reached, ``Z95² (1 - p) / (p r²)``, ÷ the simulations the run used.
    Without a Monte Carlo truth (a learned policy: 10⁶ runs are out of reach on a CPU) ``p`` is the
    mean of the runs' estimates and no coverage is reported."""
    mc, runs = result.get("mc"), result.get("is", {}).get("runs")
    if not runs:
        return
    valid = [r for r in runs if not r["degenerate"] and r["rel_halfwidth"] is not None]
    p = mc["p"] if mc else float(np.mean([r["p"] for r in valid])) if valid else 0.0
    covered = sum(r["ci"][0] <= p <= r["ci"][1] for r in valid) if mc else None
    needed = (lambda r_: Z95**2 * (1 - p) / (p * r_**2)) if p > 0 else None  # MC sims at half-width r_
    accel = [needed(r["rel_halfwidth"]) / r["sims"] for r in valid] if needed else []
    ps = np.array([r["p"] for r in valid])
    spread = Z95 * ps.std(ddof=1) / ps.mean() if len(ps) > 1 and ps.mean() > 0 else None  # observed
    sims_mean = float(np.mean([r["sims"] for r in valid])) if valid else None
    result["summary"] = {
        "mc_p": mc["p"] if mc else None,
        "mc_ci": mc["ci"] if mc else None,
        "reference_p": p,
        "is_runs": len(runs),
        "is_degenerate": len(runs) - len(valid),
        "is_covers_mc": covered,
        "is_valid_runs": len(valid),
        "reference": "mc" if mc else "mean of the IS runs",
        "coverage_ci": list(wilson_interval(covered, len(valid))) if valid and mc else None,
        "is_sims_mean": float(np.mean([r["sims"] for r in runs])),
        "is_converged": sum(r["converged"] for r in runs),
        "is_rel_halfwidth_median": float(np.median([r["rel_halfwidth"] for r in valid])) if valid else None,
        "mc_sims_needed_at_target": needed(rel) if needed else None,
        "acceleration": accel,
        "acceleration_median": float(np.median(accel)) if accel else None,
        "rel_halfwidth_target": rel,
        "is_mean": float(ps.mean()) if len(ps) else None,
        "observed_rel_halfwidth": spread,
        "acceleration_from_spread": needed(spread) / sims_mean if needed and spread and sims_mean else None,
    }


def write_markdown(out: Path) -> None:
    """``OUT/results.md``: one row per family from the JSONs present (the run notes are added by hand)."""
    rows = [
        "| family | policy | MC sims | MC failures | MC P(failure) [Wilson 95%] | IS intervals covering MC "
        "[Wilson 95%] | IS converged | IS sims (mean) | target r | MC sims for r | acceleration (median) | "
        "IS mean | observed r (spread of the runs) | acceleration from the spread |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for path in sorted(out.glob("*.json")):
        r = json.loads(path.read_text())
        mc, s = r.get("mc"), r.get("summary", {})
        if not mc and not s:
            continue
        mc_cells = "- | - | - (accelerations at the IS mean)"
        if mc:
            lo, hi = mc["ci"]
            mc_cells = f"{mc['sims']} | {mc['failures']} | {mc['p']:.3g} [{lo:.3g}, {hi:.3g}]"
        cov = "-"
        if s.get("coverage_ci"):
            lo, hi = s["coverage_ci"]
            cov = f"{s['is_covers_mc']}/{s['is_valid_runs']} [{lo:.2f}, {hi:.2f}]"
            cov += f" (+{s['is_degenerate']} degenerate)"
        need = f"{s['mc_sims_needed_at_target']:.3g}" if s.get("mc_sims_needed_at_target") else "-"
        acc = f"{s['acceleration_median']:.2f}x" if s.get("acceleration_median") else "-"
        spread = f"{s['acceleration_from_spread']:.1f}x" if s.get("acceleration_from_spread") else "-"
        obs = f"{s['observed_rel_halfwidth']:.3f}" if s.get("observed_rel_halfwidth") else "-"
        mean = f"{s['is_mean']:.3g}" if s.get("is_mean") else "-"
        runs = r.get("is", {}).get("runs", [])
        if runs and not any(x["failures"] for x in runs):  # the pilot found none: plain MC's bound
            mean = f"no failure: < {max(x['ci'][1] for x in runs):.2g} (Wilson 95%)"
        rows.append(
            f"| {r['family']} | {r['policy']} | {mc_cells} | {cov} | {s.get('is_converged', '-')} | "
            f"{s.get('is_sims_mean', float('nan')):.0f} | {s.get('rel_halfwidth_target', '-')} | {need} | "
            f"{acc} | "
            f"{mean} | {obs} | {spread} |"
        )
    (out / "results.md").write_text("\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
