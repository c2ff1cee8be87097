"""How many simulations importance sampling really needs: its proposals' variance, measured on MC failures.

The acceleration factor of a run (``bench/estimate_batched.py``) comes from the run's own sample
variance, and the spread of 30 runs' estimates. Both miss failures that a proposal samples so rarely
that few runs see one: a run that does not see them reports a tight interval around a slightly low
estimate, and the rare run that does jumps. The relative variance per simulation of a proposal ``q``
can be measured without running it, from failures that plain Monte Carlo found under the nominal:

    E_q[(w f)^2] = E_p[f p / q],  so  relvar(q) = mean over MC draws of f p/q, / P^2  - 1

(``p``: the naturalistic law in standard space, ``w = p / q``, ``f``: failed;
``drivegpt.corner.mixture.relvar_from_failures``). Every MC failure counts, the ones the proposal
misses with their large ``p / q``; the interval is a bootstrap over the MC draws.

Parts:
* ``failures``: plain MC, ``--sims`` draws of stream ``--stream`` (draw i with scenario seed
  ``stream * 10**7 + i``); keeps each failure's standard-space point and seed in
  ``OUT/FAMILY-failures-STREAM.npz``, resuming from it. Run streams in parallel processes.
* ``pilots``: the estimator's pilot (``drivegpt.corner.estimate``, the settings of
  ``bench/estimate_batched.py``) for ``--seeds`` sampler seeds; keeps each fitted mixture and the
  pilot's simulations in ``OUT/FAMILY-pilots.npz`` (other ``--components``, ``--pilot-batch`` or
  ``--ce-refine``: ``OUT/FAMILY-kK-pbN-ceR-pilots.npz``, each tag only where it differs).
* ``mechanism``: the 20 MC failures the first pilot's proposal draws least often (largest ``p / q``),
  each re-simulated: the ego's speed and lateral position at the crash and the car it hit.
* ``phase``: the failures that proposal draws less often than the nominal, each re-simulated at 40
  phases of the right lane's traffic (the rest of its seed kept) and with 40 other seeds.
* ``bound``: the best any proposal over the family's parameters could do. Each MC failure's point
  is re-simulated with ``--resims`` fresh scenario seeds: the share that fails estimates h(x), the
  failure probability at that point left to the seed (traffic, the driver's noise). The proposal
  with the least variance is q ∝ p √h, whose relative variance is E[h^(-1/2) | failure]² - 1 ≥
  1 / E[h | failure] - 1 (Jensen); so no proposal over the parameters, however fitted, and even
  with a free pilot, beats plain MC by more than (1/P - 1) / (1 / E[h | failure] - 1). The MC
  failures are draws of the parameters given failure, so the mean share is unbiased for E[h |
  failure]; the interval is a bootstrap over the failures. ``OUT/FAMILY-bound.json`` (and the
  per-failure counts in ``OUT/FAMILY-bound.npz``).
* ``fits``: how close a Gaussian mixture could get: fitted to half of the MC failures (target p h,
  or p √h with each weighted by h^(-1/2) from ``bound``), with and without the covariance floor,
  its relative variance measured on the other half; a table on stdout, no simulations.
* ``report``: per proposal (the fitted mixture with a defensive nominal of each weight in
  ``--defensive``) its relative variance, the simulations it needs at ``--rel-halfwidth`` and the
  acceleration = MC simulations for that half-width / (pilot simulations + those), and the share of
  the largest single MC failure in the second moment (near 1: one failure decides it, the figure is
  not settled). ``OUT/FAMILY-second-moment.json`` and a table on stdout.

    .venv/bin/python bench/is_second_moment.py --family stalled_car --parts failures --stream 7 \\
        --sims 400000 --out bench/results/is_second_moment      # and --stream 8 beside it
    .venv/bin/python bench/is_second_moment.py --family stalled_car --parts pilots report \\
        --out bench/results/is_second_moment

``--policy SPEC`` measures a learned policy instead of the simulated human (no personality traits to
sample; about 9x slower per simulation on a CPU, so give it its own ``--out``). ``--device cuda
--batch 65536 --chunk 65536`` runs the batched simulator on a GPU, the same draws and episodes
(``bench/cuda_estimate.sh``: 10**6 draws of a learned policy per family); ``--seconds`` caps a
``failures`` run's wall time, checked between chunks, and a rerun resumes it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from estimate_batched import DURATION, load  # bench/ is on sys.path when run as a script

from drivegpt.core.errors import UserError
from drivegpt.corner.batched import batched_family_simulator
from drivegpt.corner.estimate import Z95, EstimateConfig
from drivegpt.corner.mixture import (
    GaussianMixture,
    fit_mixture,
    nominal,
    relvar_from_failures,
    shape,
    with_defensive,
)
from drivegpt.corner.naturalistic import WithHumanTraits, family_distribution, load_naturalistic
from drivegpt.corner.pilot import pilot
from drivegpt.sim.batched.families import BATCHED_FAMILIES

PILOT_BATCH = 200  #: pilot simulations per stage, as bench/estimate_batched.py's runs
RARE_H = 0.1  #: failures the seed repeats in fewer than this share of redraws: rarely repeated
CHUNK = 65536  #: MC draws per chunk (one save each); a learned policy's: 8192 (it is about 9x slower)


def failures(
    sim, dist, out: Path, stream: int, sims: int, chunk: int = CHUNK, seconds_cap: float = float("inf")
) -> None:
    """Plain MC of ``stream`` up to ``sims`` draws or ``seconds_cap`` of this run's wall time (checked
    between chunks); every failure's point and seed, resumable. The draws are one stream however they
    are chunked."""
    rng = np.random.default_rng([stream, dist.dim])
    zs, seeds, done, seconds = [np.zeros((0, dist.dim))], [np.zeros(0, np.int64)], 0, 0.0
    if out.exists():
        old = np.load(out)
        zs, seeds, done, seconds = [old["z"]], [old["seeds"]], int(old["sims"]), float(old["seconds"])
        rng.standard_normal((done, dist.dim))  # the draws already simulated
    t0, start = time.time() - seconds, time.time()
    while done < sims and time.time() - start < seconds_cap:
        n = min(chunk, sims - done)
        z = rng.standard_normal((n, dist.dim))
        seed = stream * 10**7 + done + np.arange(n)
        failed = np.asarray(sim(dist.to_params(z), seed)) >= 1
        zs.append(z[failed])
        seeds.append(seed[failed])
        done += n
        tmp = out.with_suffix(".tmp.npz")
        np.savez(tmp, z=np.concatenate(zs), seeds=np.concatenate(seeds), sims=done, seconds=time.time() - t0)
        tmp.replace(out)
        print(f"  stream {stream}: {done} sims, {sum(map(len, seeds))} failures, "
              f"{time.time() - t0:.0f} s, load {load()}", flush=True)  # fmt: skip


def pilots(sim, dist, out: Path, seeds: range, cfg: EstimateConfig) -> None:
    """The pilot's fitted mixture and simulations for each sampler seed."""
    means, covs, weights, used = [], [], [], []
    for seed in seeds:
        c = cfg.model_copy(update={"seed": seed})
        rng, count = np.random.default_rng([c.seed, dist.dim]), [0]

        def run(z: np.ndarray, c=c, count=count) -> np.ndarray:
            s = c.seed + count[0] + np.arange(len(z))  # as estimate_probability
            count[0] += len(z)
            return np.asarray(sim(dist.to_params(z), s), float)

        mix, _ = pilot(run, dist.dim, c, rng, lambda count=count: count[0])
        if mix is None:
            raise SystemExit(f"seed {seed}: the pilot saw no failure")
        k = len(mix.weights)  # pad to components (EM may drop one) with zero-weight copies
        pad = c.components - k
        weights.append(np.concatenate([mix.weights, np.zeros(pad)]))
        means.append(np.concatenate([mix.means, np.repeat(mix.means[:1], pad, 0)]))
        covs.append(np.concatenate([mix.covs, np.repeat(mix.covs[:1], pad, 0)]))
        used.append(count[0])
        print(f"  pilot seed {seed}: {count[0]} sims", flush=True)
    tmp = out.with_suffix(".tmp.npz")
    np.savez(tmp, seeds=np.array(list(seeds)), weights=np.stack(weights), means=np.stack(means),
             covs=np.stack(covs), sims=np.array(used))  # fmt: skip
    tmp.replace(out)


def mc_sims_needed(p: float, rel: float) -> float:
    """Plain MC's simulations for a relative half-width ``rel`` at failure probability ``p``."""
    return Z95**2 * (1 - p) / (p * rel**2)


def stream_draws(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Every draw (n, d) of the MC stream stored at ``path`` (``FAMILY-failures-STREAM.npz``),
    regenerated from its seed as ``failures`` drew them, and whether it failed (n,); a file whose
    failures are not those draws, in draw order, exits."""
    mc, stream = np.load(path), int(path.stem.rsplit("-", 1)[1])
    n, d = int(mc["sims"]), mc["z"].shape[1]
    z = np.random.default_rng([stream, d]).standard_normal((n, d))
    failed = np.zeros(n, bool)
    failed[mc["seeds"] - stream * 10**7] = True  # draw i has scenario seed stream * 10**7 + i
    if np.any(np.diff(mc["seeds"]) <= 0) or not np.array_equal(z[failed], mc["z"]):
        raise SystemExit(f"{path}: the regenerated draws are not the stored failures (in draw order)")
    return z, failed


def mc_failures(out: Path, family: str) -> tuple[np.ndarray, np.ndarray, int]:
    """Every MC failure's point (k, d) and seed (k,) over the family's streams, and their draws."""
    files = sorted(out.glob(f"{family}-failures-*.npz"))
    if not files:
        raise SystemExit(f"no {family}-failures-*.npz in {out}: run --parts failures first")
    mc = [np.load(f) for f in files]
    z, seeds = np.concatenate([m["z"] for m in mc]), np.concatenate([m["seeds"] for m in mc])
    return z, seeds, sum(int(m["sims"]) for m in mc)


def load_pilots(out: Path, stem: str) -> Any:
    """The pilots' mixtures and simulations (``OUT/STEM-pilots.npz``)."""
    path = out / f"{stem}-pilots.npz"
    if not path.exists():
        raise SystemExit(f"no {path}: run --parts pilots first")
    return np.load(path)


def proposal(pil: Any, i: int, defensive: float) -> GaussianMixture:
    """Pilot ``i``'s fitted mixture (its padding dropped) with the nominal mixed in at ``defensive``."""
    w, keep = pil["weights"][i], pil["weights"][i] > 0
    return with_defensive(GaussianMixture(w[keep], pil["means"][i][keep], pil["covs"][i][keep]), defensive)


def report(out: Path, family: str, stem: str, defensive: list[float], rel: float, boot: int) -> dict:
    """Per defensive weight: the proposals' relative variance, acceleration and missed failures."""
    z, _, n = mc_failures(out, family)
    p = len(z) / n
    need = mc_sims_needed(p, rel)
    pil = load_pilots(out, stem)
    lp0 = nominal(z.shape[1]).logpdf(z)
    rng = np.random.default_rng(0)
    ks = rng.binomial(n, p, boot)  # bootstrap: failures among n redrawn MC draws, then which ones
    picks = [rng.integers(0, len(z), k) for k in ks]
    rows = []
    for a in defensive:
        rv, acc, top, thin, thin_m2 = [], [], [], [], []
        for i in range(len(pil["seeds"])):
            q = proposal(pil, i, a)
            lw = lp0 - q.logpdf(z)
            rv.append(relvar_from_failures(q, z, n))
            acc.append(need / (pil["sims"][i] + Z95**2 * rv[-1] / rel**2))
            top.append(float(np.exp(lw).max() / np.exp(lw).sum()))
            thin.append(float((lw > 0).mean()))  # failures q draws less often than the nominal does
            thin_m2.append(float(np.exp(lw[lw > 0]).sum() / np.exp(lw).sum()))
            if i == 0:  # the first seed's proposal: bootstrap interval of its relative variance
                bs = [float(np.exp(lw[j]).sum() / n / (len(j) / n) ** 2 - 1) for j in picks if len(j)]
                ci = [float(np.quantile(bs, 0.025)), float(np.quantile(bs, 0.975))]
        rows.append({
            "defensive": a, "relvar_median": float(np.median(rv)), "relvar_seed0_ci": ci,
            "acceleration_median": float(np.median(acc)), "acceleration_min": float(np.min(acc)),
            "acceleration_max": float(np.max(acc)), "top_failure_share_max": float(np.max(top)),
            "thin_failures_median": float(np.median(thin)),
            "thin_second_moment_median": float(np.median(thin_m2)),
        })  # fmt: skip
    result = {
        "family": family, "mc_sims": n, "mc_failures": len(z), "p": p, "mc_relvar": (1 - p) / p,
        "rel_halfwidth": rel, "mc_sims_needed": need, "pilots": len(pil["seeds"]),
        "pilot_sims_mean": float(pil["sims"].mean()), "rows": rows,
    }  # fmt: skip
    print(f"{family}: {len(z)} MC failures in {n} draws, P {p:.3e}; MC needs {need:.0f} sims at r = {rel}; "
          f"{len(pil['seeds'])} pilots, {pil['sims'].mean():.0f} sims each")  # fmt: skip
    print("| defensive | relvar per sim, median (first seed: 95% bootstrap) | acceleration, median "
          "[min, max] | largest failure's share | failures with p/q > 1 (their share of the second moment) |"
          "\n|---|---|---|---|---|")  # fmt: skip
    for r in rows:
        lo, hi = r["relvar_seed0_ci"]
        acc = f"{r['acceleration_median']:.1f}x [{r['acceleration_min']:.1f}, {r['acceleration_max']:.1f}]"
        print(f"| {r['defensive']} | {r['relvar_median']:.1f} ({lo:.0f}-{hi:.0f}) | {acc} | "
              f"{r['top_failure_share_max']:.2f} | {r['thin_failures_median']:.3f} "
              f"({r['thin_second_moment_median']:.2f}) |")  # fmt: skip
    return result


def mechanism(sim, dist, out: Path, family: str, show: int) -> None:
    """How the failures the first pilot's proposal draws least often end: the ego's speed and lateral
    position and the other car at the crash, each failure re-simulated alone from its point and seed."""
    import drivegpt.corner.batched as batched

    z, seeds, _ = mc_failures(out, family)
    q = proposal(load_pilots(out, family), 0, EstimateConfig().defensive)
    w = np.exp(nominal(z.shape[1]).logpdf(z) - q.logpdf(z))
    last, step = {}, batched.family_step

    def recording(state, script, action):  # the state after each step of the episode
        last["state"], script = step(state, script, action)
        return last["state"], script

    batched.family_step = recording
    try:
        for i in np.argsort(-w)[:show]:
            sim(dist.to_params(z[i : i + 1]), seeds[i : i + 1])
            s = last["state"]
            hit = [int(j) for j in np.flatnonzero(s.crashed[0].cpu().numpy()) if j != 0]
            print(f"  p/q {w[i]:6.2f}: ego {s.speed[0, 0]:5.2f} m/s at y {s.y[0, 0]:4.2f} m; hit by car(s) "
                  f"{hit} at {s.speed[0, hit].cpu().numpy().round(1).tolist()} m/s, "
                  f"y {s.y[0, hit].cpu().numpy().round(2).tolist()} m")  # fmt: skip
    finally:
        batched.family_step = step


def phase(sim, dist, out: Path, family: str, grid: int = 40) -> None:
    """Does the right lane's traffic phase alone decide the failures the first pilot's proposal draws
    less often than the nominal (``p / q`` > 1)? Each is re-simulated, same point and seed, with the
    whole traffic lane shifted to each of ``grid`` phases (the first car's offset, uniform over one
    spacing, which the seed draws first), and with 40 other seeds at its phase left to them."""
    import drivegpt.sim.batched.families as fam

    z, seeds, _ = mc_failures(out, family)
    q = proposal(load_pilots(out, family), 0, EstimateConfig().defensive)
    thin = np.flatnonzero(nominal(z.shape[1]).logpdf(z) > q.logpdf(z))
    phases, traffic, target = (np.arange(grid) + 0.5) / grid, fam._traffic, {}

    def shifted(seeds, slots, x_from, x_to, speed, spacing):  # the seed's traffic, moved to the phase
        on, x, v = traffic(seeds, slots, x_from, x_to, speed, spacing)
        if "u" in target:
            gens = [torch.Generator().manual_seed(s) for s in seeds]  # as _traffic draws them
            draws = [torch.rand(slots, 3, generator=g, dtype=torch.float64) for g in gens]
            first = torch.stack([d[0, 0] for d in draws]).to(x)  # (B,) the phase each seed drew
            x = x + (spacing * (torch.as_tensor(target["u"]).to(x) - first))[:, None]
            on = x < x_to[:, None]
        return on, x, v

    fam._traffic = shifted
    try:
        for i in thin:
            target["u"] = phases
            rows = np.repeat(z[i : i + 1], grid, 0)
            failed = np.asarray(sim(dist.to_params(rows), np.repeat(seeds[i : i + 1], grid))) >= 1
            target.clear()
            others = np.asarray(sim(dist.to_params(rows), 9 * 10**7 + grid * i + np.arange(grid))) >= 1
            marks = "".join("X" if f else "." for f in failed)
            print(f"  failure {i}: at {grid} phases {marks} {failed.mean():.3f}; "
                  f"{grid} other seeds {others.mean():.3f}")  # fmt: skip
    finally:
        fam._traffic = traffic


def bound(sim, dist, out: Path, family: str, resims: int, boot: int, rel: float) -> dict[str, Any]:
    """The best any proposal over the parameters could do (see the module's text)."""
    z, _, draws = mc_failures(out, family)
    t0, before = time.time(), load()

    def shares(idx: np.ndarray, n: int, first: int) -> np.ndarray:  # (len(idx), n) fails, fresh seeds
        seed = first + np.arange(len(idx) * n)  # seeds of no MC stream (stream * 10**7 + i) nor part
        return (np.asarray(sim(dist.to_params(np.repeat(z[idx], n, 0)), seed)) >= 1).reshape(len(idx), n)

    k = len(z)
    fails, n = shares(np.arange(k), resims, 5 * 10**8).sum(1).astype(float), np.full(k, float(resims))
    rare = np.flatnonzero(fails < 4)  # few failures in resims: h is small there, measure it closer
    if len(rare):
        fails[rare] += shares(rare, 25 * resims, 6 * 10**8).sum(1)
        n[rare] += 25 * resims
    h = np.maximum(fails, 0.5) / n  # (k,) share failing at each failure's point; 0 of n counted as 1/2
    p = k / draws  # the MC estimate of P
    rng = np.random.default_rng(0)
    picks = rng.integers(0, k, (boot, k))  # bootstrap over the failures

    def acc(relvar: np.ndarray | float) -> np.ndarray:  # MC's relative variance / the proposal's
        with np.errstate(divide="ignore"):  # a zero-variance proposal (the seed never matters): inf
            return (1 / p - 1) / np.maximum(relvar, 0.0)

    jensen = 1 / h[picks].mean(1) - 1  # a lower bound on the best proposal's relative variance
    best = (h[picks] ** -0.5).mean(1) ** 2 - 1  # the best proposal's (q ∝ p √h), estimated
    need = Z95**2 / rel**2  # sims per unit of relative variance at the half-width
    result = {
        "family": family, "failures": k, "mc_sims": draws, "P": p, "resims": resims,
        "points_resimulated_more": int(len(rare)), "points_failing_never": int(np.sum(fails == 0)),
        "mean_h_given_failure": float(h.mean()),
        "jensen_max_acceleration": float(acc(1 / h.mean() - 1)),
        "jensen_max_acceleration_interval": np.quantile(acc(jensen), [0.025, 0.975]).tolist(),
        "best_relvar": float((h**-0.5).mean() ** 2 - 1),
        "best_relvar_interval": np.quantile(best, [0.025, 0.975]).tolist(),
        "best_acceleration": float(acc((h**-0.5).mean() ** 2 - 1)),
        "best_acceleration_interval": np.quantile(acc(best), [0.025, 0.975]).tolist(),
        "best_sims_at_rel_halfwidth": float(need * ((h**-0.5).mean() ** 2 - 1)),
        # the guess at the points that never failed again decides much of it: h there 1e-4 or 1e-5
        "best_acceleration_if_never_h": {
            str(g): float(acc((np.where(fails == 0, g, h) ** -0.5).mean() ** 2 - 1)) for g in (1e-4, 1e-5)
        },
        "rel_halfwidth": rel, "sims": int(n.sum()), "seconds": time.time() - t0,
    }  # fmt: skip
    r = result
    print(f"  {family}: P {p:.3g}; E[h | failure] {r['mean_h_given_failure']:.3f} over {k} failures "
          f"({len(rare)} re-simulated {26 * resims} times, {r['points_failing_never']} never failed again); "
          f"best proposal over the parameters: relative variance {r['best_relvar']:.2f} "
          f"{np.round(r['best_relvar_interval'], 2).tolist()}, {r['best_acceleration']:.0f}x "
          f"{np.round(r['best_acceleration_interval']).tolist()} MC (Jensen bound "
          f"{r['jensen_max_acceleration']:.0f}x), {r['best_sims_at_rel_halfwidth']:.0f} sims at r = {rel}; "
          f"with h 1e-4 / 1e-5 where it never failed again: "
          f"{' / '.join(f'{a:.0f}x' for a in r['best_acceleration_if_never_h'].values())}; "
          f"{r['sims']} sims in {r['seconds']:.0f} s, load {before} -> {load()}")  # fmt: skip

    def finite(v: Any) -> Any:  # JSON has no inf or nan: null (unbounded) instead
        if isinstance(v, dict):
            return {k: finite(x) for k, x in v.items()}
        return [finite(x) for x in v] if isinstance(v, list) else (v if np.isfinite(v) else None)

    tmp = out / f"{family}-bound.tmp.npz"
    np.savez(tmp, fails=fails, n=n)  # per MC failure: fresh-seed failures and runs (the fits part)
    tmp.replace(out / f"{family}-bound.npz")
    tmp = out / f"{family}-bound.tmp"
    tmp.write_text(
        json.dumps({k: v if isinstance(v, str) else finite(v) for k, v in result.items()}, indent=1)
    )
    tmp.replace(out / f"{family}-bound.json")
    return result


def bound_h(out: Path, family: str, failures: int, required: bool = True) -> np.ndarray | None:
    """h per Monte Carlo failure, in the streams' order, from ``--parts bound`` (0 of n counted as
    1/2); a missing file exits with the command to run (None where not ``required``), a file of
    another number of failures exits too."""
    path = out / f"{family}-bound.npz"
    if not path.exists():
        if not required:
            return None
        raise SystemExit(f"no {path}: run bench/is_second_moment.py --family {family} --parts bound")
    b = np.load(path)
    if len(b["n"]) != failures:
        raise SystemExit(f"{path}: {len(b['n'])} failures, the streams {failures}: run its bound again")
    return np.maximum(b["fails"], 0.5) / b["n"]


def fits(out: Path, family: str, rel: float, components: int) -> None:
    """Which proposal shape would do: mixtures fitted to one half of the MC failures, measured on the
    other (each half standing for half the draws), with the CE target p h (the failures unweighted)
    or, where the bound part ran, the optimum's p √h (each weighted by h^(-1/2)), with and without
    the covariance floor of 1, the default defensive 0.02. As good as a pilot that saw hundreds of
    failures could get."""
    z, _, draws = mc_failures(out, family)
    targets = [("p h", np.ones(len(z)))]
    h = bound_h(out, family, len(z), required=False)  # the p √h target needs it; without it, p h only
    if h is not None:
        targets.append(("p √h", h**-0.5))
    p, half, cfg = len(z) / draws, np.arange(len(z)) % 2 == 0, EstimateConfig()
    need = mc_sims_needed(p, rel)
    print(f"{family}: {len(z)} MC failures, P {p:.3g}, MC {need:.0f} sims at r = {rel}")
    print(
        "| target | covariance floor | relative variance (fold 1, fold 2) | acceleration, no pilot |"
        "\n|---|---|---|---|"
    )
    for target, w in targets:
        for floor in (1.0, 0.0):
            rv = []
            for fit_on in (half, ~half):
                mix = fit_mixture(z[fit_on], w[fit_on], components, cfg.reg, np.random.default_rng(0))
                q = GaussianMixture(mix.weights, mix.means, shape(mix.covs, floor))
                q = with_defensive(q, cfg.defensive)
                rv.append(relvar_from_failures(q, z[~fit_on], draws // 2))
            print(f"| {target} | {floor:g} | {np.mean(rv):.1f} ({rv[0]:.1f}, {rv[1]:.1f}) | "
                  f"{need / (Z95**2 * np.mean(rv) / rel**2):.0f}x |")  # fmt: skip
    h = targets[-1][1] ** -2.0  # h per failure, back from its weight h^(-1/2) (all 1 without a bound)
    few = min(int((fit & (h < RARE_H)).sum()) for fit in (half, ~half))
    if len(targets) == 2 and few < 2:
        print(f"| two Gaussians, h < {RARE_H:g} apart | - | {few} rarely repeated failures in a half: none |")
    if len(targets) == 2 and few >= 2:  # the optimum's split: one Gaussian per group of failures
        for floor in (0.5, 1.0):
            rv = []
            for fit_on in (half, ~half):
                groups = [fit_on & (h >= RARE_H), fit_on & (h < RARE_H)]
                share = (h[groups[1]] ** -0.5).sum() / (h[fit_on] ** -0.5).sum()  # of the p √h mass
                covs = shape(np.stack([np.cov(z[g].T) for g in groups]), floor)
                means = np.stack([z[g].mean(0) for g in groups])
                q = GaussianMixture(np.array([1 - share, share]), means, covs)
                rv.append(relvar_from_failures(with_defensive(q, cfg.defensive), z[~fit_on], draws // 2))
            acc = need / (Z95**2 * np.mean(rv) / rel**2)
            print(f"| two Gaussians, h < {RARE_H:g} apart, by p √h | {floor:g} | {np.mean(rv):.1f} "
                  f"({rv[0]:.1f}, {rv[1]:.1f}) | {acc:.0f}x |")  # fmt: skip


def rare(out: Path, family: str, names: list[str], below: float = RARE_H) -> None:
    """Where the failures the seed rarely repeats lie (after ``--parts bound``): per coordinate, the
    mean and spread of the failures with h < ``below`` against the others', and their share of the
    optimum's p √h mass (each failure counts h^(-1/2) there)."""
    z, _, _ = mc_failures(out, family)
    h = bound_h(out, family, len(z))
    if len(names) != z.shape[1]:
        raise SystemExit(f"{out}: {z.shape[1]}-dimensional failures, not {family}'s {len(names)}")
    low = h < below
    share = (h[low] ** -0.5).sum() / (h**-0.5).sum()
    print(f"{family}: {low.sum()} of {len(z)} MC failures with h < {below:g}; their share of the p √h "
          f"mass {share:.2f}")  # fmt: skip
    print("| coordinate | those: mean (sd) | the others: mean (sd) |\n|---|---|---|")
    for j, name in enumerate(names):
        a, o = z[low, j], z[~low, j]
        print(f"| {name} | {a.mean():+.2f} ({a.std():.2f}) | {o.mean():+.2f} ({o.std():.2f}) |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--family", required=True, choices=BATCHED_FAMILIES)
    parts = ["failures", "pilots", "mechanism", "phase", "bound", "fits", "rare", "report"]
    ap.add_argument("--parts", nargs="+", default=["pilots", "report"], choices=parts)
    ap.add_argument("--policy", default="human", help="policy spec under test (not the human: no traits)")
    ap.add_argument("--no-human-traits", action="store_true", help="the family's parameters alone")
    ap.add_argument("--stream", type=int, default=7, help="failures: the MC stream (one per process)")
    ap.add_argument("--sims", type=int, default=400_000, help="failures: MC draws of the stream")
    ap.add_argument("--seconds", type=float, default=float("inf"), help="failures: wall-time cap of this run")
    ap.add_argument("--seeds", type=int, default=30, help="pilots: sampler seeds 1..N")
    ap.add_argument("--defensive", type=float, nargs="+", default=[0.02, 0.1, 0.3, 0.5, 0.7])
    ap.add_argument("--rel-halfwidth", type=float, default=0.2)
    ap.add_argument(
        "--components", type=int, default=EstimateConfig().components,
        help="pilots, report: Gaussians in the fitted mixture (not the default: files FAMILY-kK*)",
    )  # fmt: skip
    ap.add_argument("--pilot-batch", type=int, default=PILOT_BATCH, help="pilots: simulations per stage")
    ap.add_argument(
        "--ce-refine", type=int, default=EstimateConfig().ce_refine,
        help="pilots: cross-entropy refinement stages after the first fit",
    )  # fmt: skip
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--resims", type=int, default=40, help="bound: fresh seeds per MC failure")
    ap.add_argument("--device", default="cpu", help="where the batched simulator runs: cpu or cuda")
    ap.add_argument("--batch", type=int, help="episodes stepped at once (default 4096; a policy's 1024)")
    ap.add_argument("--chunk", type=int, help="failures: draws per save (default 65536; a policy's 8192)")
    ap.add_argument("--out", type=Path, default=Path("bench/results/is_second_moment"))
    args = ap.parse_args()
    learned = args.policy != "human"  # a learned policy: its forward pass each step, about 9x slower
    batch = (1024 if learned else 4096) if args.batch is None else args.batch
    chunk = (CHUNK // 8 if learned else CHUNK) if args.chunk is None else args.chunk
    counts = {"--sims": args.sims, "--seeds": args.seeds, "--components": args.components,
              "--resims": args.resims, "--batch": batch, "--chunk": chunk,
              "--pilot-batch": args.pilot_batch}  # fmt: skip
    for flag, value in counts.items():
        if value < 1:
            ap.error(f"{flag} must be >= 1, got {value}")
    if args.ce_refine < 0:
        ap.error(f"--ce-refine must be >= 0, got {args.ce_refine}")
    if not all(0 < a < 1 for a in args.defensive):
        ap.error(f"every --defensive weight must lie in (0, 1), got {args.defensive}")
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    dist = family_distribution(args.family, load_naturalistic(None))
    dist = dist if args.no_human_traits or learned else WithHumanTraits(dist)
    try:
        sim = batched_family_simulator(
            args.family, args.policy, dist.names, "accel", batch, DURATION.get(args.family), args.device
        )
    except UserError as err:  # an unknown spec or a missing checkpoint: one line, no traceback
        ap.error(str(err))
    stem = args.family + "".join(  # the settings that differ from estimate_batched's name the files
        f"-{tag}{value}"
        for tag, value, usual in (
            ("k", args.components, EstimateConfig().components),
            ("pb", args.pilot_batch, PILOT_BATCH),
            ("ce", args.ce_refine, EstimateConfig().ce_refine),
        )
        if value != usual
    )
    fam_out = args.out / f"{stem}.json"
    if "failures" in args.parts:
        npz = args.out / f"{args.family}-failures-{args.stream}.npz"
        failures(sim, dist, npz, args.stream, args.sims, chunk, args.seconds)
    if "pilots" in args.parts:
        cfg = EstimateConfig(method="is", rel_halfwidth=args.rel_halfwidth, max_sims=30_000, batch=400,
                             pilot_batch=args.pilot_batch, components=args.components,
                             ce_refine=args.ce_refine)  # fmt: skip  # as estimate_batched
        t0, before = time.time(), load()
        pilots(sim, dist, args.out / f"{stem}-pilots.npz", range(1, args.seeds + 1), cfg)
        print(f"  pilots: {time.time() - t0:.0f} s, load {before} -> {load()}")
    if "mechanism" in args.parts:
        mechanism(sim, dist, args.out, args.family, 20)
    if "phase" in args.parts:
        phase(sim, dist, args.out, args.family)
    if "bound" in args.parts:
        bound(sim, dist, args.out, args.family, args.resims, args.bootstrap, args.rel_halfwidth)
    if "fits" in args.parts:
        fits(args.out, args.family, args.rel_halfwidth, args.components)
    if "rare" in args.parts:
        rare(args.out, args.family, dist.names)
    if "report" in args.parts:
        result = report(args.out, args.family, stem, args.defensive, args.rel_halfwidth, args.bootstrap)
        result["components"] = args.components
        result["human_traits"] = not args.no_human_traits and args.policy == "human"
        result["policy"] = args.policy
        tmp = fam_out.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=1))
        tmp.replace(fam_out)


if __name__ == "__main__":
    main()
