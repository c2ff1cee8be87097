"""A first use of the learned proposal on `stalled_car`: fitted from the estimator's own simulations only,
then measured on every Monte Carlo failure (none of which it saw) and by the simulations one estimate
at ±20% takes, fitting included.

The learned proposal of ``bench/stalled_car_modes.py`` meets 100x only when its classifier learns from
1.2 million labelled Monte Carlo draws. Here it learns as the cross-entropy method does, by levels of
a continuous closeness to failure rather than from failures alone:

    closeness = 1 on a failure (crash, leaving the road), else max over the steps of 1 / (1 + TTC / 1 s),
    TTC [s] to any car less than a car's width to its side (|dy| < WIDTH), ahead or behind (so that a car
    closing in from behind after a lane change counts, which the lead-only TTC of the estimator misses).

Round 0 draws ``--pilot`` nominal scenarios. After each round the level γ is the (1 − ρ) quantile of
that round's closeness (as the cross-entropy method sets it), an ensemble of MLP classifiers learns
``closeness ≥ γ`` from every simulation so far, each weighted by its p / q, over the parameters, the
human's traits, the seed's right-lane traffic and three physical features (``stalled_car_modes``;
parameters and traits only on `adversarial_vehicle`), and the next round draws ``--round`` scenarios
from q = p (δ + (1 − δ) ĥ / Z) (point and seed together, ``sample``). Once γ reaches 1, or
``--failures`` failures are in, or after ``--max-rounds``, the classifier learns failure itself and
q = p (δ + (1 − δ) ĥ^power / Z); the estimate draws batches of ``--batch`` from it until the 95%
interval's relative half-width is ``--rel-halfwidth``, after at least four batches (or ``--max-sims``, the
rounds included: a run stopped there shows no acceleration). The
report gives each run's rounds, the relative variance of its q at every Monte Carlo failure of the
family's streams (``E_p[f p / q] / P² − 1``) with the acceleration it would give on first use, and the
run's own estimate.

    .venv/bin/python bench/first_use_learned.py --runs 3 --members 5 --hidden 64 --failures 300 \
        --round 1000 --delta 0.2 [--family adversarial_vehicle]
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
from estimate_batched import DURATION, load  # bench/ is on sys.path when run as a script
from is_second_moment import mc_failures
from learned_proposal import h_hat, mlp
from stalled_car_modes import A_SPLIT, finish, physics, sample, traffic

from drivegpt.corner.estimate import Z95
from drivegpt.corner.mixture import relvar_from_ratios
from drivegpt.corner.naturalistic import TRAIT_PREFIX, WithHumanTraits, family_distribution, load_naturalistic
from drivegpt.sim.batched import on_road, terminated, truncated
from drivegpt.sim.batched.config import LENGTH, WIDTH
from drivegpt.sim.batched.families import family_config, family_reset, family_step
from drivegpt.sim.batched.human import BatchedHuman
from drivegpt.sim.batched.state import BatchState
from drivegpt.sim.personality import Personality
from drivegpt_envs.families import family_class

TTC_SCALE = 1.0  #: [s] closeness 1 / (1 + TTC / TTC_SCALE)
RUN_SEED0 = 2 * 10**9  #: scenario seeds of run r: RUN_SEED0 + r * 10**8 + ...
NOMINAL_SEED0 = 9 * 10**8  #: scenario seeds of the nominal draws that estimate Z
MIN_BATCHES = 4  #: batches before the estimate may stop (as ``EstimateConfig.min_batches``)
MC = Path(__file__).resolve().parent / "results" / "is_second_moment"
#: per family: the Monte Carlo streams (the human's traits sampled) and whether the classifier also sees
#: the seed's right-lane traffic and the physical features of ``stalled_car_modes``
FAMILIES = {"stalled_car": ([MC, MC / "stream-9", MC / "stream-10"], True),
            "adversarial_vehicle": ([MC / "traits"], False)}  # fmt: skip


def any_ttc(s: BatchState) -> torch.Tensor:
    """(B,) [s] the smallest time to collision with a car whose box overlaps the ego's laterally, ahead
    (the ego closing in) or behind (it closing in on the ego); inf when none closes."""
    dx = s.x[:, 1:] - s.x[:, :1]  # (B, N-1) [m] ahead > 0
    vx = s.speed * torch.cos(s.heading)  # (B, N) [m/s]
    closing = torch.where(dx > 0, vx[:, :1] - vx[:, 1:], vx[:, 1:] - vx[:, :1])  # (B, N-1) [m/s]
    lateral = (s.y[:, 1:] - s.y[:, :1]).abs() < WIDTH
    gap = (dx.abs() - LENGTH).clamp(min=0)  # (B, N-1) [m]
    ttc = torch.where(s.present[:, 1:] & lateral & (closing > 0), gap / closing.clamp(min=1e-6), torch.inf)
    return ttc.min(1).values


@torch.inference_mode()
def simulate(
    family: str, params: np.ndarray, seeds: np.ndarray, names: list[str], batch: int = 4096
) -> np.ndarray:
    """(n,) closeness of each scenario in [0, 1], 1 exactly on a failure (the batched human drives)."""
    config = family_config(family, "accel", None, DURATION.get(family))
    d = len(family_class(family).PARAMS)
    traits = [n.removeprefix(TRAIT_PREFIX) for n in names[d:]]
    out = []
    for lo in range(0, len(seeds), batch):
        rows, chunk = params[lo : lo + batch], [int(v) for v in seeds[lo : lo + batch]]
        s, script = family_reset(family, rows[:, :d], chunk, config)
        human = BatchedHuman(config)
        human.reset(chunk, s, [Personality(**dict(zip(traits, r, strict=True))) for r in rows[:, d:]])
        close = torch.zeros(len(chunk), dtype=torch.float64)
        failed = ~on_road(s)
        alive = torch.arange(len(chunk))
        while len(alive):
            s, script = family_step(s, script, human.act(s))
            failed[alive] |= s.crashed[:, 0] | ~on_road(s)
            close[alive] = torch.maximum(close[alive], 1 / (1 + any_ttc(s).double() / TTC_SCALE))
            keep = (~(terminated(s) | truncated(s) | failed[alive])).nonzero().squeeze(1)
            s, script, human, alive = s.select(keep), script.select(keep), human.select(keep), alive[keep]
        out.append(torch.where(failed, 1.0, close.clamp(max=1 - 1e-9)).numpy())
    return np.concatenate(out)


def fit(x: np.ndarray, y: np.ndarray, w: np.ndarray, members: int, hidden: int, steps: int) -> list:
    """An ensemble of MLP classifiers of ``y`` from ``x``, the loss weighted by ``w`` (full batch)."""
    xt, yt = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.float32)
    wt = torch.as_tensor(w / w.mean(), dtype=torch.float32)
    nets = []
    for m in range(members):
        torch.manual_seed(m)
        net = mlp(x.shape[1], hidden)
        opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=0.1)
        for _ in range(steps):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(net(xt).squeeze(1), yt, weight=wt)
            opt.zero_grad()
            loss.backward()
            opt.step()
        nets.append(net)
    return nets


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--family", default="stalled_car", choices=list(FAMILIES))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--pilot", type=int, default=500, help="nominal simulations of round 0")
    ap.add_argument("--round", type=int, default=500, help="simulations per later round")
    ap.add_argument("--rho", type=float, default=0.1, help="the share of a round's draws above its level")
    ap.add_argument("--max-rounds", type=int, default=8)
    ap.add_argument("--failures", type=int, default=100, help="failures that end the rounds")
    ap.add_argument("--power", type=float, default=0.5, help="q ∝ p ĥ^power of the failure classifier")
    ap.add_argument("--delta", type=float, default=0.05, help="the nominal's share of each proposal")
    ap.add_argument("--members", type=int, default=3)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--steps", type=int, default=400, help="full-batch optimiser steps per member")
    ap.add_argument("--z-draws", type=int, default=500_000, help="nominal draws (with traffic) for Z")
    ap.add_argument("--batch", type=int, default=250, help="simulations between the estimate's checks")
    ap.add_argument("--rel-halfwidth", type=float, default=0.2)
    ap.add_argument("--max-sims", type=int, default=20_000, help="simulations of one run, fitting included")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if min(args.runs, args.pilot, args.round, args.max_rounds, args.members, args.hidden, args.steps) < 1:
        ap.error("--runs, --pilot, --round, --max-rounds, --members, --hidden and --steps must be >= 1")
    if not (0 < args.rho < 1 and 0 < args.delta <= 1 and args.power > 0 and 0 < args.rel_halfwidth < 1):
        ap.error("--rho must lie in (0, 1), --delta in (0, 1], --rel-halfwidth in (0, 1); --power > 0")
    if args.batch < 2 or args.z_draws < 1 or args.failures < 1:
        ap.error("--batch must be >= 2, --z-draws and --failures >= 1")
    torch.set_num_threads(1)
    t0, before = time.time(), load()
    family = args.family
    streams, seen = FAMILIES[family]
    dist = WithHumanTraits(family_distribution(family, load_naturalistic(None)))
    names = list(dist.names)
    zf, sf, draws = map(list, zip(*(mc_failures(d, family) for d in streams), strict=True))
    zf, sf, draws = np.concatenate(zf), np.concatenate(sf), sum(draws)
    P = len(zf) / draws
    mc_n = Z95**2 * (1 - P) / (P * args.rel_halfwidth**2)  # plain Monte Carlo's simulations for ±hw

    def feats(z: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        if not seen:
            return z
        params = dist.to_params(z)
        return np.concatenate([z, traffic(params, seeds), physics(params, names)], 1)

    zn = np.random.default_rng([2026, 12]).standard_normal((args.z_draws, dist.dim))
    xn = feats(zn, NOMINAL_SEED0 + np.arange(len(zn)))
    mu, sd = xn.mean(0), xn.std(0) + 1e-9
    xn, xf = (xn - mu) / sd, (feats(zf, sf) - mu) / sd
    rare = physics(dist.to_params(zf), names)[:, 0] < A_SPLIT if seen else np.zeros(len(zf), bool)
    lines = [f"# `{family}`: a learned proposal's first use\n",
             f"`.venv/bin/python bench/first_use_learned.py {shlex.join(sys.argv[1:])}`\n",
             f"Monte Carlo: {len(zf)} failures in {draws:,} draws, P {P:.3g}; plain Monte Carlo needs "
             f"{mc_n:,.0f} simulations for ±{args.rel_halfwidth:g}.\n",
             "| run | fitting sims (rounds) | levels (failures so far) | relative variance at the MC "
             "failures (first use) | "
             f"its share from a_req < {A_SPLIT:g} | estimate sims | estimate [95%] | covers | total sims | "
             "acceleration |",
             "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in range(args.runs):
        rng, seed = np.random.default_rng([5, r]), RUN_SEED0 + r * 10**8
        x, c, ratio, levels = np.zeros((0, xn.shape[1])), np.zeros(0), np.zeros(0), []
        g, Z = None, 1.0
        for k in range(args.max_rounds):
            n = args.pilot if k == 0 else args.round
            if g is None:
                z, sd_ = rng.standard_normal((n, dist.dim)), seed + np.arange(n)
                pq = np.ones(n)
            else:
                z, sd_, gz = sample(rng, n, dist.dim, g, args.delta, seed, 10**8)
                pq = 1 / (args.delta + (1 - args.delta) * gz / Z)
            seed = int(sd_.max()) + 1
            xs = (feats(z, sd_) - mu) / sd
            cs = simulate(family, dist.to_params(z), sd_, names)
            x, c, ratio = np.concatenate([x, xs]), np.concatenate([c, cs]), np.concatenate([ratio, pq])
            gamma = min(1.0, float(np.quantile(cs, 1 - args.rho)))  # of this round's draws, as CE does
            last = gamma >= 1 or (c >= 1).sum() >= args.failures or k == args.max_rounds - 1
            gamma = 1.0 if last else gamma
            levels.append((gamma, int((c >= 1).sum())))
            nets = fit(x, c >= gamma, ratio, args.members, args.hidden, args.steps)
            power = args.power if last else 1.0
            Z = float(np.mean(h_hat(nets, xn) ** power))

            def g(zz: np.ndarray, ss: np.ndarray, nets: list = nets, power: float = power) -> np.ndarray:
                return h_hat(nets, (feats(zz, ss) - mu) / sd) ** power

            print(f"run {r} round {k}: {len(c)} sims, {int((c >= 1).sum())} failed, level {gamma:.3f}")
            if last:
                break
        fitting = len(c)
        if not (c >= 1).any():
            lines.append(f"| {r} | {fitting} ({len(levels)}) | no failure in the rounds: no proposal |")
            print(lines[-1], flush=True)
            continue
        pqf = 1 / (args.delta + (1 - args.delta) * h_hat(nets, xf) ** args.power / Z)  # at every MC failure
        relvar = relvar_from_ratios(pqf, draws)
        share = f"{pqf[rare].sum() / pqf.sum():.2f}" if seen else "–"
        wf, est, se = np.zeros(0), float("nan"), float("nan")
        while len(wf) + fitting < args.max_sims:
            z, sd_, gz = sample(rng, args.batch, dist.dim, g, args.delta, seed, 10**8)
            seed = int(sd_.max()) + 1
            failed = simulate(family, dist.to_params(z), sd_, names) >= 1
            wf = np.concatenate([wf, failed / (args.delta + (1 - args.delta) * gz / Z)])
            est, se = wf.mean(), wf.std(ddof=1) / np.sqrt(len(wf))
            if len(wf) >= MIN_BATCHES * args.batch and est > 0 and Z95 * se / est <= args.rel_halfwidth:
                break
        lo, hi = est - Z95 * se, est + Z95 * se
        total = fitting + len(wf)
        reached = est > 0 and Z95 * se / est <= args.rel_halfwidth
        accel = f"{mc_n / total:.0f}x" if reached else f"– (stopped at --max-sims, ±{Z95 * se / est:.0%})"
        first = mc_n / (fitting + Z95**2 * relvar / args.rel_halfwidth**2)  # sims at that relative variance
        lines.append(f"| {r} | {fitting} ({len(levels)}) | {' '.join(f'{v:.2f} ({k})' for v, k in levels)} | "
                     f"{relvar:.1f} ({first:.0f}x) | {share} | "
                     f"{len(wf)} | {est:.3g} [{lo:.3g}, {hi:.3g}] | {'yes' if lo <= P <= hi else 'no'} | "
                     f"{total} | {accel} |")  # fmt: skip
        print(lines[-1], flush=True)
    finish(args, lines, t0, before)


if __name__ == "__main__":
    main()
