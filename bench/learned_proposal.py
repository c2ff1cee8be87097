"""A learned proposal: the optimum's shape q ∝ p √h with h(x) learned by a classifier.

The proposal with the least variance over a family's parameters is q ∝ p √h, h(x) the failure
probability at x with the scenario seed left random (``bench/is_second_moment.py --parts bound``).
Gaussian mixtures and the other shapes of ``bench/proposal_shapes.py`` stay far from it on
`stalled_car`, whose failures spread over a curved region. Here h is learned instead: a small
ensemble of MLPs (11 inputs: the family's parameters and the human's traits, standard space) is
trained by logistic loss on every simulation so far, failed or not; since h is a conditional
probability, the simulations may come from any proposal (no weights). The proposal is

    q(x) = p(x) (δ + (1 - δ) g(x) / Z),   g = ĥ^(1/2),   Z = E_p[g]

(δ: the nominal mixed in; ``Z`` by plain Monte Carlo over ``--z-draws`` nominal draws, no
simulation), sampled by rejection from p. Round 0 simulates from the first stored pilot's mixture
(``OUT/FAMILY-pilots.npz`` of ``is_second_moment.py --parts pilots``) with a nominal share of 0.3;
round r > 0 from the proposal learned on rounds 0..r-1. After each round the learned proposal's
relative variance per simulation is measured on the Monte Carlo failures of
``OUT/FAMILY-failures-*.npz`` (none of which is trained on; ``E_p[f p / q] / P² - 1``), and the
acceleration reused = Monte Carlo's relative variance / that. Finally ``--check-runs`` estimates
from the last proposal, ``--check-sims`` simulations each on fresh scenario seeds, are set against
the Monte Carlo estimate (``OUT/FAMILY-learned-deltaδ.json``). ``--mc-train STREAM ...`` instead
trains on the labelled nominal draws of those Monte Carlo streams and measures on the others'
failures (``--streams DIR ...``: the folders of the streams, ``--out`` by default): the classifier as
good as that much plain Monte Carlo makes it (no simulation).

    .venv/bin/python bench/learned_proposal.py --family stalled_car --rounds 4 --per-round 25000
    .venv/bin/python bench/learned_proposal.py --family stalled_car --mc-train 7 --mc-train-draws 200000
    .venv/bin/python bench/learned_proposal.py --family stalled_car --mc-train 7 8 \\
        --streams bench/results/is_second_moment bench/results/is_second_moment/stream-9
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from estimate_batched import DURATION, load  # bench/ is on sys.path when run as a script
from is_second_moment import load_pilots, mc_failures, proposal, stream_draws

from drivegpt.corner.batched import batched_family_simulator
from drivegpt.corner.estimate import Z95
from drivegpt.corner.mixture import nominal, relvar_from_failures
from drivegpt.corner.naturalistic import WithHumanTraits, family_distribution, load_naturalistic
from drivegpt.sim.batched.families import BATCHED_FAMILIES

SEED0 = 7 * 10**8  #: scenario seeds of the training rounds (no MC stream's, nor the bound part's)
CHECK_SEED0 = 8 * 10**8  #: scenario seeds of the check runs


def mlp(d: int, hidden: int) -> torch.nn.Sequential:
    """A classifier's logit from ``d`` inputs: two hidden SiLU layers of ``hidden`` units."""
    return torch.nn.Sequential(torch.nn.Linear(d, hidden), torch.nn.SiLU(),
                               torch.nn.Linear(hidden, hidden), torch.nn.SiLU(),
                               torch.nn.Linear(hidden, 1))  # fmt: skip


def train(z: np.ndarray, y: np.ndarray, members: int, hidden: int, steps: int) -> list[torch.nn.Module]:
    """An ensemble of MLP classifiers of failure, each from its own torch seed."""
    x, t = torch.as_tensor(z, dtype=torch.float32), torch.as_tensor(y, dtype=torch.float32)
    nets = []
    for m in range(members):
        torch.manual_seed(m)
        net = mlp(z.shape[1], hidden)
        with torch.no_grad():
            net[-1].bias.fill_(float(np.log(max(y.mean(), 1e-6))))  # start at the base rate
        opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=0.1)
        for _ in range(steps):
            b = torch.randint(0, len(x), (8192,))
            loss = torch.nn.functional.binary_cross_entropy_with_logits(net(x[b]).squeeze(1), t[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
        nets.append(net)
    return nets


def h_hat(nets: list[torch.nn.Module], z: np.ndarray) -> np.ndarray:
    """(n,) the ensemble's mean failure probability at each point."""
    x = torch.as_tensor(z, dtype=torch.float32)
    with torch.no_grad():
        return np.mean([torch.sigmoid(n(x).squeeze(1)).double().numpy() for n in nets], 0)


class Learned:
    """q = p (δ + (1 - δ) √ĥ / Z): the nominal with probability δ, else a nominal draw accepted with
    probability √ĥ ≤ 1 (rejection sampling); ``ratio`` is p / q, exact up to the error of ``Z``
    (a mean over ``z_draws`` nominal draws, in blocks of 10⁶; its standard error is ``Z_se``)."""

    def __init__(self, nets: list[torch.nn.Module], dim: int, delta: float, z_draws: int) -> None:
        self.nets, self.dim, self.delta = nets, dim, delta
        sizes = [min(10**6, z_draws - i) for i in range(0, z_draws, 10**6)]
        g = np.concatenate([self.g(np.random.default_rng([9, i]).standard_normal((n, dim)))
                            for i, n in enumerate(sizes)])  # fmt: skip
        self.Z, self.Z_se = float(g.mean()), float(g.std() / np.sqrt(len(g)))

    def g(self, z: np.ndarray) -> np.ndarray:
        return h_hat(self.nets, z) ** 0.5

    def ratio(self, z: np.ndarray) -> np.ndarray:
        return 1 / (self.delta + (1 - self.delta) * self.g(z) / self.Z)

    def logpdf(self, z: np.ndarray) -> np.ndarray:  # the Proposal protocol's, for relvar_from_failures
        return nominal(self.dim).logpdf(z) - np.log(self.ratio(z))

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        nominal = rng.random(n) < self.delta
        out = [rng.standard_normal((int(nominal.sum()), self.dim))]
        need = n - len(out[0])
        while need > 0:
            z = rng.standard_normal((min(max(int(2 * need / self.Z), 1024), 10**6), self.dim))
            keep = z[rng.random(len(z)) < self.g(z)][:need]  # accepted with probability g ≤ 1
            out.append(keep)
            need -= len(keep)
        z = np.concatenate(out)
        return z[rng.permutation(n)]


def mc_trained(args: argparse.Namespace, dim: int) -> None:
    """The classifier as good as labelled nominal draws make it: trained on all draws of the MC
    streams ``--mc-train`` (each cut to its first ``--mc-train-draws``), its proposal measured on the
    failures of the other streams. No simulation."""
    t0 = time.time()
    folders = args.streams or [args.out]
    files = [f for d in folders for f in sorted(d.glob(f"{args.family}-failures-*.npz"))]
    stream = {int(f.stem.rsplit("-", 1)[1]): f for f in files}
    if len(stream) < len(files):
        raise SystemExit(f"{', '.join(map(str, folders))}: a stream in more than one folder")
    if not set(args.mc_train) <= set(stream) or len(stream) <= len(set(args.mc_train)):
        have, where = sorted(stream), ", ".join(map(str, folders))
        raise SystemExit(f"--mc-train {args.mc_train}: {where} has streams {have}; need them and another")
    train_on = [stream_draws(stream.pop(s)) for s in sorted(set(args.mc_train))]
    z = np.concatenate([z[: args.mc_train_draws] for z, _ in train_on])
    y = np.concatenate([y[: args.mc_train_draws] for _, y in train_on])
    rest = [np.load(f) for f in stream.values()]
    zf, draws = np.concatenate([m["z"] for m in rest]), sum(int(m["sims"]) for m in rest)
    P = len(zf) / draws
    q = Learned(train(z, y, args.members, args.hidden, args.steps), dim, args.delta, args.z_draws)
    pq, relvar = q.ratio(zf), relvar_from_failures(q, zf, draws)
    print(f"{args.family}: trained on streams {sorted(set(args.mc_train))} ({len(z):,} draws, {int(y.sum())} "
          f"failures), measured on streams {sorted(stream)} ({len(zf)} failures in {draws:,} draws, P "
          f"{P:.3g}): relative variance {relvar:.1f}, {(1 - P) / P / relvar:.0f}x reused; largest p/q "
          f"{pq.max():.1f}; {time.time() - t0:.0f} s")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--family", default="stalled_car", choices=BATCHED_FAMILIES)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--per-round", type=int, default=25_000, help="simulations per training round")
    ap.add_argument("--delta", type=float, default=0.1, help="the nominal's share of a learned proposal")
    ap.add_argument("--members", type=int, default=3)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--steps", type=int, default=1500, help="optimiser steps per member (batches of 8192)")
    ap.add_argument("--z-draws", type=int, default=4 * 10**6, help="nominal draws for Z")
    ap.add_argument("--check-runs", type=int, default=10)
    ap.add_argument("--check-sims", type=int, default=1000)
    ap.add_argument("--rel-halfwidth", type=float, default=0.2)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--out", type=Path, default=Path("bench/results/is_second_moment"))
    ap.add_argument("--mc-train", type=int, nargs="+", metavar="STREAM",
                    help="instead: train on every draw of these MC streams, measure on the rest")  # fmt: skip
    ap.add_argument("--mc-train-draws", type=int, help="with --mc-train: the first N draws of each")
    ap.add_argument("--streams", type=Path, nargs="+", help="with --mc-train: folders of the streams (--out)")
    args = ap.parse_args()
    counts = {"--rounds": args.rounds, "--per-round": args.per_round, "--members": args.members,
              "--hidden": args.hidden, "--steps": args.steps, "--z-draws": args.z_draws,
              "--check-sims": args.check_sims, "--batch": args.batch}  # fmt: skip
    for flag, value in counts.items():
        if value < 1:
            ap.error(f"{flag} must be >= 1, got {value}")
    if args.check_sims < 2 or args.check_runs < 0:
        ap.error(f"--check-sims must be >= 2 and --check-runs >= 0, got {args.check_sims}, {args.check_runs}")
    if args.mc_train_draws is not None and (args.mc_train is None or args.mc_train_draws < 1):
        ap.error(f"--mc-train-draws needs --mc-train and must be >= 1, got {args.mc_train_draws}")
    if not args.rel_halfwidth > 0:
        ap.error(f"--rel-halfwidth must be > 0, got {args.rel_halfwidth}")
    if not 0 < args.delta <= 1:
        ap.error(f"--delta must lie in (0, 1], got {args.delta}")
    torch.set_num_threads(1)
    t0, before = time.time(), load()
    dist = WithHumanTraits(family_distribution(args.family, load_naturalistic(None)))
    if args.mc_train is not None:
        return mc_trained(args, dist.dim)
    sim = batched_family_simulator(args.family, "human", dist.names, "accel", args.batch,
                                   DURATION.get(args.family), "cpu")  # fmt: skip
    zf, _, draws = mc_failures(args.out, args.family)
    P = len(zf) / draws
    mc_relvar = (1 - P) / P
    need = Z95**2 / args.rel_halfwidth**2  # simulations per unit of relative variance

    def simulate(z: np.ndarray, first: int) -> np.ndarray:
        return np.asarray(sim(dist.to_params(z), first + np.arange(len(z)))) >= 1

    rng = np.random.default_rng([args.family == "stalled_car", 2026])
    q_sample = proposal(load_pilots(args.out, args.family), 0, 0.3).sample
    zs, ys, rows, used = [], [], [], 0
    print(f"{args.family}: {len(zf)} MC failures in {draws} draws, P {P:.3g}, MC relative variance "
          f"{mc_relvar:.0f} ({need * mc_relvar:.0f} sims at r = {args.rel_halfwidth})")  # fmt: skip
    print(
        "| round | simulations trained on | failures among them | relative variance on the MC failures "
        "| acceleration reused | largest p/q of an MC failure |\n|---|---|---|---|---|---|"
    )
    q = None
    for r in range(args.rounds):
        z = q_sample(rng, args.per_round)
        zs.append(z)
        ys.append(simulate(z, SEED0 + used))
        used += len(z)
        zall, yall = np.concatenate(zs), np.concatenate(ys)
        q = Learned(
            train(zall, yall, args.members, args.hidden, args.steps), dist.dim, args.delta, args.z_draws
        )
        pq, relvar = q.ratio(zf), relvar_from_failures(q, zf, draws)
        rows.append({"round": r, "sims": used, "failures": int(yall.sum()), "relvar": relvar,
                     "acceleration": mc_relvar / relvar, "max_p_over_q": float(pq.max()),
                     "Z": q.Z, "Z_se": q.Z_se})  # fmt: skip
        print(f"| {r} | {used:,} | {int(yall.sum()):,} | {relvar:.1f} | {mc_relvar / relvar:.0f}x | "
              f"{pq.max():.1f} |", flush=True)  # fmt: skip
        q_sample = q.sample
    checks = []
    for c in range(args.check_runs):
        z = q.sample(np.random.default_rng([3, c]), args.check_sims)
        wf = q.ratio(z) * simulate(z, CHECK_SEED0 + c * args.check_sims)
        est, se = wf.mean(), wf.std(ddof=1) / np.sqrt(len(wf))
        checks.append({"estimate": float(est), "lo": float(est - Z95 * se), "hi": float(est + Z95 * se)})
    cover = sum(ch["lo"] <= P <= ch["hi"] for ch in checks)
    ests = np.array([ch["estimate"] for ch in checks])
    if len(ests) > 1:  # the runs' spread, relative to MC's P
        rel = ests.std(ddof=1) / P
        print(f"{len(ests)} estimates of {args.check_sims} simulations from the last proposal: "
              f"mean {ests.mean():.3g} (MC {P:.3g}), their spread {rel:.1%} of P (relative variance "
              f"{rel**2 * args.check_sims:.1f}), {cover}/{len(ests)} 95% intervals covering the MC "
              "estimate")  # fmt: skip
    result = {"family": args.family, "mc_failures": len(zf), "mc_draws": draws, "P": P, "rounds": rows,
              "checks": checks, "args": {k: v for k, v in vars(args).items() if k != "out"},
              "seconds": time.time() - t0, "load": [before, load()]}  # fmt: skip
    path = args.out / f"{args.family}-learned-delta{args.delta:g}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    tmp.replace(path)
    print(f"{time.time() - t0:.0f} s, load {before} -> {load()}")


if __name__ == "__main__":
    main()
