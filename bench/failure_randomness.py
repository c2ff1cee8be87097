"""Which of a scenario seed's random draws decide the Monte Carlo failures of the simulated human.

A scenario seed draws two things the family's parameters do not fix: the human's noise (one normal
per policy step, ``BatchedHuman``) and the background traffic (``families._traffic``: positions and
speeds). Each Monte Carlo failure (``bench/is_second_moment.py --parts failures``) is re-simulated at
its own point and seed ``--resims`` times with only the noise redrawn, and as often with only the
traffic redrawn (the seed's other draws kept). A failure that recurs whatever the noise and traffic
is decided by the point: the family's parameters, and the human's traits where they are sampled as
parameters (``--human-traits``); one that rarely recurs is left to the seed, which no proposal over
the parameters steers. With the traits left to the seed, redrawing the seed redraws the personality
too, so the streams of both kinds are worth comparing (``--failures`` folder of either).

    .venv/bin/python bench/failure_randomness.py --family adversarial_vehicle \
        --failures bench/results/is_second_moment/traits                   # traits sampled (13-D)
    .venv/bin/python bench/failure_randomness.py --family stalled_car \
        --failures bench/results/is_second_moment                          # traits sampled (11-D)

Where ``FAILURES/FAMILY-bound.npz`` holds each failure's h (the share failing with the whole seed
redrawn, ``bench/is_second_moment.py --parts bound``), the table is split too: the failures the
seed rarely repeats (h < ``RARE_H``), which carry a large share of the best proposal's variance (59%
on ``stalled_car``), against the others (a bound file of other failures is refused). Writes
``FAILURES/FAMILY-randomness.md`` and, per failure in the streams' order, how many redraws of each
kind failed again (``FAILURES/FAMILY-randomness.npz``: ``noise``, ``traffic``, ``resims``). The
redraws come from generators of their own (``[RESEED, k]``), never from a Monte Carlo stream's seeds.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from estimate_batched import DURATION, load  # bench/ is on sys.path when run as a script
from is_second_moment import RARE_H, bound_h, mc_failures

import drivegpt.sim.batched.families as fam
from drivegpt.core.atomic import write_text
from drivegpt.corner.batched import batched_family_simulator
from drivegpt.corner.naturalistic import WithHumanTraits, family_distribution, load_naturalistic
from drivegpt.sim.batched.families import BATCHED_FAMILIES
from drivegpt.sim.batched.human import BatchedHuman

RESEED = 0x52455345  #: the redraws' own generator word ("RESE")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--family", required=True, choices=BATCHED_FAMILIES)
    ap.add_argument("--failures", type=Path, required=True, help="folder of FAMILY-failures-*.npz")
    ap.add_argument("--resims", type=int, default=8, help="redraws of each kind per failure")
    ap.add_argument("--batch", type=int, default=4096, help="episodes stepped at once")
    args = ap.parse_args()
    if args.resims < 1 or args.batch < 1:
        ap.error(f"--resims and --batch must be >= 1, got {args.resims}, {args.batch}")
    torch.set_num_threads(1)
    z, seeds, draws = mc_failures(args.failures, args.family)
    base = family_distribution(args.family, load_naturalistic(None))
    dist = base if z.shape[1] == base.dim else WithHumanTraits(base)
    if z.shape[1] != dist.dim:
        raise SystemExit(f"{args.failures}: {z.shape[1]}-dimensional failures, not {args.family}'s")
    groups = {"all": np.ones(len(z), bool)}
    h = bound_h(args.failures, args.family, len(z), required=False)  # in the streams' order
    if h is not None:
        groups[f"h < {RARE_H:g}"], groups[f"h ≥ {RARE_H:g}"] = h < RARE_H, h >= RARE_H
    sim = batched_family_simulator(
        args.family, "human", dist.names, "accel", args.batch, DURATION.get(args.family), "cpu"
    )
    t0, before = time.time(), load()
    redraw: dict[str, int] = {}  # which draw is redrawn now, and the redraw's number
    reset, traffic = BatchedHuman.reset, fam._traffic

    def noisy_reset(self, s, state, people=None):  # the seed's driver, the noise of another generator
        reset(self, s, state, people)
        if "noise" in redraw:
            rng = np.random.default_rng([RESEED, redraw["noise"]])
            self.noise = torch.as_tensor(rng.standard_normal(tuple(self.noise.shape)), dtype=self.noise.dtype)

    def other_traffic(s, *rest):  # the traffic of other seeds (no Monte Carlo stream's)
        if "traffic" in redraw:
            s = [RESEED * 1000 + 97 * redraw["traffic"] + int(x) % 10**8 for x in s]
        return traffic(s, *rest)

    BatchedHuman.reset, fam._traffic = noisy_reset, other_traffic
    params = dist.to_params(z)
    try:
        same = np.asarray(sim(params, seeds)) >= 1
        counts = {"noise": np.zeros(len(z)), "traffic": np.zeros(len(z))}
        for k in range(args.resims):
            for kind in counts:
                redraw.clear()
                redraw[kind] = k
                counts[kind] += np.asarray(sim(params, seeds)) >= 1
    finally:
        BatchedHuman.reset, fam._traffic = reset, traffic
    q = [0.1, 0.25, 0.5]
    lines = [
        f"# What decides `{args.family}`'s {len(z)} Monte Carlo failures ({draws:,} draws, "
        f"{dist.dim} dimensions, {args.failures})",
        "",
        f"`.venv/bin/python bench/failure_randomness.py --family {args.family} --failures {args.failures} "
        f"--resims {args.resims}` ({time.time() - t0:.0f} s, load average {before} -> {load()})",
        "",
        f"Same point and seed: {same.mean():.3f} fail again (1 is the simulator's determinism).",
        "",
        "| redrawn | failures recurring | per failure: 10% / 25% / 50% quantiles |",
        "|---|---|---|",
    ]
    what = {"noise": "the human's noise", "traffic": "the traffic"}
    for name, rows in groups.items():
        for kind, c in counts.items():
            share = c[rows] / args.resims
            if not len(share):
                continue
            qs = " / ".join(f"{v:.2f}" for v in np.quantile(share, q))
            n, label = int(rows.sum()), what[kind]
            if name != "all":
                label += f"; the {n} failure{'s' * (n != 1)} with {name}"
            lines.append(f"| {label} | {share.mean():.3f} | {qs} |")
    text = "\n".join(lines) + "\n"
    print(text)
    write_text(args.failures / f"{args.family}-randomness.md", text)
    tmp = args.failures / f"{args.family}-randomness.tmp.npz"
    np.savez(tmp, **counts, resims=args.resims)  # per failure: redraws failing again, of each kind
    tmp.replace(args.failures / f"{args.family}-randomness.npz")


if __name__ == "__main__":
    main()
