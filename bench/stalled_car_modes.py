"""`stalled_car`'s two kinds of failure, and whether features of the seed's traffic or of the physics
let a learned proposal reach the rarer kind.

The learned proposal of ``bench/learned_proposal.py`` levels off near 40x on `stalled_car`. This bench
splits the Monte Carlo failures by one physical quantity, the deceleration the human needs to stop
behind the stalled car once its lead swerves away,

    v = min(ego_speed, desired_speed)                                    [m/s] the human's cruise
    a_req = v² / (2 max(reveal_distance + min_gap + time_headway v - v reaction_delay, 1 m))  [m/s²]

(its following gap at the swerve, less the distance covered while it reacts), and measures on a held-out
stream's failures (``E_p[f p / q] / P² - 1``, no simulation) the learned proposal trained on the
labelled draws of the other streams with four inputs: the family's parameters and the human's traits
(11); plus the right lane's traffic as the seed spawns it (``family_reset``: the times at which the
six nearest cars behind the stalled car reach it and since the nearest one ahead passed it, 7); plus
``a_req`` and two more physical features (3); plus both. Last, the proposal of the first input mixed
with the naturalistic law cut to a box around the training streams' failures with a_req < 5 m/s²
(the box's mass exact: the law is a product of independent marginals in standard space).
``--check-runs N`` then estimates P(failure) N times from the last proposal measured (``sample``: with
probability δ a nominal draw, else candidates of a point and a fresh scenario seed drawn from the law
until one is accepted with probability √ĥ of its inputs), simulated and weighted by p / q. The runs of
proposals held out on different streams draw independent points and seeds.

    .venv/bin/python bench/stalled_car_modes.py --train 7 8 --test 9 \\
        --streams bench/results/is_second_moment bench/results/is_second_moment/stream-9
    .venv/bin/python bench/stalled_car_modes.py ... --hidden 64 --members 5 --steps 3000 \\
        [--inputs "+ both" --check-runs 10]
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from estimate_batched import DURATION, load  # bench/ is on sys.path when run as a script
from is_second_moment import stream_draws
from learned_proposal import h_hat, train

from drivegpt.corner.batched import batched_family_simulator
from drivegpt.corner.estimate import Z95
from drivegpt.corner.mixture import relvar_from_ratios
from drivegpt.corner.naturalistic import WithHumanTraits, family_distribution, load_naturalistic
from drivegpt.sim.batched.families import family_config, family_reset

FAMILY = "stalled_car"
A_SPLIT = 5.0  #: [m/s²] required deceleration splitting the failures
NEAREST = 6  #: cars behind the stalled car whose arrival times are features
NEVER = 40.0  #: [s] the arrival time of a car that is not there
BOX_DIMS = ("ego_speed", "stall_distance", "human.time_headway", "human.min_gap")
Z_SEED0 = 9 * 10**8  #: scenario seeds of the nominal draws that estimate Z (no stream's)
CHECK_SEED0 = 10**9  #: scenario seeds of the check runs' candidates: + test stream·10**10 + run·10**7
RUN_SEEDS = 10**7  #: candidates (and seeds) one check run may use
INPUTS = {"parameters and traits": ["z"], "+ traffic": ["z", "traffic"], "+ physics": ["z", "phys"],
          "+ both": ["z", "traffic", "phys"]}  # fmt: skip


def physics(params: np.ndarray, names: list[str]) -> np.ndarray:
    """(n, 3): a_req [m/s²], log of the stopping room [log m], time to the swerve [s]."""
    c = {name: params[:, j] for j, name in enumerate(names)}
    v = np.minimum(c["ego_speed"], c["human.desired_speed"])  # [m/s]
    room = c["reveal_distance"] + c["human.min_gap"] + c["human.time_headway"] * v  # [m]
    room = np.maximum(room - v * c["human.reaction_delay"], 1.0)  # [m]
    swerve = (c["stall_distance"] - c["lead_gap"] - c["reveal_distance"]) / c["ego_speed"]  # [s]
    return np.stack([v**2 / (2 * room), np.log(room), swerve], 1)


def traffic(params: np.ndarray, seeds: np.ndarray, chunk: int = 50_000) -> np.ndarray:
    """(n, NEAREST + 1) [s]: when the nearest cars behind the stalled car reach it, sorted, and how long
    ago the nearest one ahead passed it, from the episodes ``family_reset`` spawns (``params``: the
    family's four first)."""
    config, out = family_config(FAMILY), []
    for i in range(0, len(params), chunk):
        s, _ = family_reset(FAMILY, params[i : i + chunk, :4], seeds[i : i + chunk], config)
        x, v, on = s.x[:, 3:].numpy(), s.speed[:, 3:].numpy(), s.present[:, 3:].numpy()  # (b, M) traffic
        t = (s.x[:, 1:2].numpy() - x) / np.maximum(v, 1e-6)  # (b, M) [s] to the stalled car (slot 1)
        behind = np.sort(np.where(on & (t > 0), t, NEVER), 1)[:, :NEAREST]
        ahead = np.where(on & (t <= 0), -t, NEVER).min(1, keepdims=True)
        out.append(np.minimum(np.concatenate([behind, ahead], 1), NEVER))
    return np.concatenate(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", type=int, nargs="+", default=[7, 8], metavar="STREAM")
    ap.add_argument("--test", type=int, default=9, metavar="STREAM")
    ap.add_argument("--streams", type=Path, nargs="+", default=[Path("bench/results/is_second_moment")])
    ap.add_argument("--delta", type=float, default=0.02, help="the nominal's share of a learned proposal")
    ap.add_argument("--members", type=int, default=3)
    ap.add_argument("--hidden", type=int, default=32, help="units per hidden layer of each MLP")
    ap.add_argument("--steps", type=int, default=1500, help="optimiser steps per member (batches of 8192)")
    ap.add_argument("--z-draws", type=int, default=10**6, help="nominal draws (with their traffic) for Z")
    ap.add_argument("--inputs", nargs="+", default=list(INPUTS), choices=list(INPUTS), metavar="NAME",
                    help=f"the classifier's inputs to measure: {', '.join(map(repr, INPUTS))}")  # fmt: skip
    ap.add_argument("--check-runs", type=int, default=0, help="estimates from the last --inputs' proposal")
    ap.add_argument("--check-sims", type=int, default=1000, help="simulations per check run")
    ap.add_argument("--out", type=Path, help="also write the report here (markdown)")
    args = ap.parse_args()
    if args.test in args.train:
        ap.error(f"--test {args.test} is also a --train stream")
    if not 0 < args.delta <= 1 or min(args.members, args.hidden, args.steps, args.z_draws) < 1:
        ap.error("--delta must lie in (0, 1]; --members, --hidden, --steps and --z-draws must be >= 1")
    if args.check_runs < 0 or args.check_sims < 2:
        ap.error(f"--check-runs must be >= 0 and --check-sims >= 2, got {args.check_runs}, {args.check_sims}")
    files = {
        int(f.stem.rsplit("-", 1)[1]): f for d in args.streams for f in d.glob(f"{FAMILY}-failures-*.npz")
    }
    missing = sorted({*args.train, args.test} - set(files))
    if missing:
        ap.error(f"no {FAMILY}-failures-S.npz for streams {missing} in {', '.join(map(str, args.streams))}")
    torch.set_num_threads(1)
    t0, before = time.time(), load()
    dist = WithHumanTraits(family_distribution(FAMILY, load_naturalistic(None)))
    names = list(dist.names)

    def inputs(s: int) -> dict[str, np.ndarray]:
        z, failed = stream_draws(files[s])
        params = dist.to_params(z)
        seeds = s * 10**7 + np.arange(len(z))  # draw i of stream s has scenario seed s * 10**7 + i
        return {"z": z, "y": failed, "phys": physics(params, names), "traffic": traffic(params, seeds)}

    tr = [inputs(s) for s in args.train]
    train_on = {k: np.concatenate([d[k] for d in tr]) for k in tr[0]}
    test = inputs(args.test)
    rng = np.random.default_rng([2026, 12])
    zn = rng.standard_normal((args.z_draws, dist.dim))
    pn = dist.to_params(zn)
    nominal = {"z": zn, "phys": physics(pn, names), "traffic": traffic(pn, Z_SEED0 + np.arange(len(zn)))}
    y, yt = train_on["y"], test["y"]
    P, n = yt.mean(), len(yt)
    mc_relvar = (1 - P) / P
    split = test["phys"][yt, 0] < A_SPLIT  # the test failures of the rarer kind
    lines = [f"# `{FAMILY}`: two kinds of failure, and what a learned proposal reaches\n",
             f"`.venv/bin/python bench/stalled_car_modes.py {shlex.join(sys.argv[1:])}` (streams of "
             f"{len(y):,} + {n:,} draws)\n",
             f"Required deceleration a_req on the training streams ({int(y.sum())} failures):\n",
             "| a_req [m/s²] | share of the draws | failures | failure rate |",
             "|---|---|---|---|"]  # fmt: skip
    a = train_on["phys"][:, 0]
    for lo, hi in ((0, 4), (4, 5), (5, 6), (6, 7), (7, np.inf)):
        m = (a >= lo) & (a < hi)
        rate = y[m].mean() if m.any() else 0.0
        lines.append(f"| [{lo}, {hi}) | {m.mean():.4f} | {int(y[m].sum())} | {rate:.2e} |")
    lines += [f"\nMeasured on stream {args.test}'s {int(yt.sum())} failures in {n:,} draws (P {P:.3g}; "
              f"{int(split.sum())} with a_req < {A_SPLIT:g} m/s²), δ = {args.delta:g}, {args.members} MLPs "
              f"of {args.hidden}, {args.steps} steps:\n",
              "| inputs | relative variance | acceleration reused | second moment carried by a_req < 5 | "
              "largest p/q |", "|---|---|---|---|---|"]  # fmt: skip
    ratios = {}
    for name in args.inputs:
        parts = INPUTS[name]
        mu = {k: train_on[k].mean(0) for k in parts}
        sd = {k: train_on[k].std(0) + 1e-9 for k in parts}

        def x(d: dict, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
            return np.concatenate([(d[k][rows] - mu[k]) / sd[k] for k in parts], 1)  # noqa: B023

        nets = train(x(train_on), y, args.members, args.hidden, args.steps)
        Z = float(np.mean(h_hat(nets, x(nominal)) ** 0.5))
        q_over_p = args.delta + (1 - args.delta) * h_hat(nets, x(test, yt)) ** 0.5 / Z
        ratios[name] = q_over_p
        pq = 1 / q_over_p
        relvar = relvar_from_ratios(pq, n)
        share = pq[split].sum() / pq.sum()
        lines.append(f"| {name} | {relvar:.1f} | {mc_relvar / relvar:.0f}x | {share:.2f} | {pq.max():.2f} |")
        print(lines[-1], flush=True)
    if args.check_runs:
        lines += check(args, dist, nets, x, Z, int(y.sum() + yt.sum()), len(y) + n)
    if "parameters and traits" not in ratios:
        return finish(args, lines, t0, before)
    dims = [names.index(d) for d in BOX_DIMS]
    rare = train_on["z"][y & (a < A_SPLIT)][:, dims]
    if len(rare) == 0:
        lines.insert(0, f"no training failure with a_req < {A_SPLIT:g} m/s²: no box to fit")
        raise SystemExit("\n".join(lines))
    lo, hi = rare.min(0) - 0.25, rare.max(0) + 0.25  # the box, in standard space
    ndtr = torch.special.ndtr
    mass = float(np.prod((ndtr(torch.as_tensor(hi)) - ndtr(torch.as_tensor(lo))).numpy()))
    inside = np.all((test["z"][yt][:, dims] >= lo) & (test["z"][yt][:, dims] <= hi), 1)
    lines += [f"\nThe first proposal mixed with the law cut to the box of the training failures with a_req < "
              f"{A_SPLIT:g} m/s² over {', '.join(BOX_DIMS)} (±0.25 in standard space; mass {mass:.3f}, "
              f"holding {int(inside[split].sum())} of the test's {int(split.sum())} such failures):\n",
              "| box share β | relative variance | acceleration reused |", "|---|---|---|"]  # fmt: skip
    for beta in (0.1, 0.3, 0.5):
        pq = 1 / ((1 - beta) * ratios["parameters and traits"] + beta * inside / mass)
        relvar = relvar_from_ratios(pq, n)
        lines.append(f"| {beta:g} | {relvar:.1f} | {mc_relvar / relvar:.0f}x |")
    finish(args, lines, t0, before)


def sample(
    rng: np.random.Generator, n: int, dim: int, g: Callable, delta: float, seed: int, budget: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n draws of q = p (δ + (1 − δ) g / Z) over (point, scenario seed): each a nominal draw with
    probability δ, else a nominal candidate accepted with probability g(point, seed) ≤ 1; the seeds
    count up from ``seed``, one per candidate, at most ``budget`` of them (else it exits). Returns the
    points (n, dim), seeds (n,) and g (n,)."""
    start = seed
    nominal = int((rng.random(n) < delta).sum())
    z, seeds = rng.standard_normal((nominal, dim)), seed + np.arange(nominal)
    zs, ss, gs, seed = [z], [seeds], [g(z, seeds) if nominal else np.zeros(0)], seed + nominal
    while (need := n - sum(map(len, zs))) > 0:
        if seed + 50_000 > start + budget:
            raise SystemExit(f"{n} draws need more than {budget:,} candidates: the proposal accepts too few")
        z, seeds = rng.standard_normal((50_000, dim)), seed + np.arange(50_000)
        gz, seed = g(z, seeds), seed + 50_000
        keep = np.flatnonzero(rng.random(len(z)) < gz)[:need]
        zs, ss, gs = zs + [z[keep]], ss + [seeds[keep]], gs + [gz[keep]]
    return np.concatenate(zs), np.concatenate(ss), np.concatenate(gs)


def check(
    args: argparse.Namespace, dist: WithHumanTraits, nets: list, x: Any, Z: float, k: int, n: int
) -> list[str]:
    """Estimates from the proposal (``sample``), simulated and weighted by p / q = 1 / (δ + (1 − δ) g / Z),
    set against Monte Carlo's k failures in n draws."""
    names = list(dist.names)
    sim = batched_family_simulator(FAMILY, "human", names, "accel", 4096, DURATION[FAMILY], "cpu")

    parts = INPUTS[args.inputs[-1]]

    def g(z: np.ndarray, seeds: np.ndarray) -> np.ndarray:  # only the inputs the proposal reads
        params = dist.to_params(z)
        d = {"z": z}
        d |= {"phys": physics(params, names)} if "phys" in parts else {}
        d |= {"traffic": traffic(params, seeds)} if "traffic" in parts else {}
        return h_hat(nets, x(d)) ** 0.5

    P = k / n
    runs = []
    for r in range(args.check_runs):
        rng, seed0 = (
            np.random.default_rng([4, args.test, r]),
            CHECK_SEED0 + args.test * 10**10 + r * RUN_SEEDS,
        )
        z, seeds, gz = sample(rng, args.check_sims, dist.dim, g, args.delta, seed0, RUN_SEEDS)
        failed = np.asarray(sim(dist.to_params(z), seeds)) >= 1
        wf = failed / (args.delta + (1 - args.delta) * gz / Z)
        est, se = wf.mean(), wf.std(ddof=1) / np.sqrt(len(wf))
        lo, hi = est - Z95 * se, est + Z95 * se
        runs.append((est, lo, hi, int(failed.sum())))
        print(f"check run {r}: {est:.3g} [{lo:.3g}, {hi:.3g}], {failed.sum()} failed", flush=True)
    est = np.array([e for e, *_ in runs])
    cover = sum(lo <= P <= hi for _, lo, hi, _ in runs)
    rel = est.std(ddof=1) / P if len(est) > 1 else float("nan")
    return [f"\n{args.check_runs} estimates of {args.check_sims} simulations each from the last proposal "
            f"({args.inputs[-1]}; fresh scenario seeds): mean {est.mean():.3g} against Monte Carlo's {P:.3g} "
            f"({k} failures in {n:,} draws), {cover}/{len(est)} 95% intervals covering it, their spread "
            f"{rel:.1%} of P (a relative variance of {rel**2 * args.check_sims:.1f}):\n",
            "| run | estimate | 95% interval | failures drawn |",
            "|---|---|---|---|",
            *(f"| {i} | {e:.4g} | [{lo:.4g}, {hi:.4g}] | {f} |"
              for i, (e, lo, hi, f) in enumerate(runs))]  # fmt: skip


def finish(args: argparse.Namespace, lines: list[str], t0: float, before: str) -> None:
    lines.append(f"\n{time.time() - t0:.0f} s, load average {before} -> {load()}")
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(report)
        tmp.replace(args.out)


if __name__ == "__main__":
    main()
