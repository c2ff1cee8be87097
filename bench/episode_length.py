"""Do the Monte Carlo truths' shortened episodes miss failures? Re-simulated at the family's full length.

``bench/is_second_moment.py`` and ``bench/estimate_batched.py`` cut some families' episodes
(``estimate_batched.DURATION``: ``stalled_car`` to 15 s of its 20 s) to save simulation time, while
``drivegpt corner-cases estimate`` runs the family's own length. The first ``--sims`` draws of a
stored Monte Carlo stream (``FAMILY-failures-S.npz``) are simulated again at the full length, same
points and seeds: an episode is the same up to the cut, so every stored failure fails again, and the
failures that only the full episodes have are what the cut misses. Also printed: how often the human
nearly stops (its lowest speed under 1 m/s), whether the failures did, and when the extra ones
happen.

    .venv/bin/python bench/episode_length.py --family stalled_car --stream 7 --sims 65536   # 200 s

Writes ``FAILURES/FAMILY-episode-length-STREAM.md``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from estimate_batched import DURATION, load  # bench/ is on sys.path when run as a script

import drivegpt.corner.batched as batched
from drivegpt.core.atomic import write_text
from drivegpt.core.metrics import wilson_interval
from drivegpt.corner.batched import batched_family_simulator
from drivegpt.corner.naturalistic import WithHumanTraits, family_distribution, load_naturalistic
from drivegpt.sim.batched.families import family_config

STOPPED = 1.0  #: [m/s] a lowest speed under this counts as a stop


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--family", default="stalled_car", choices=sorted(DURATION))
    ap.add_argument("--failures", type=Path, default=Path("bench/results/is_second_moment"))
    ap.add_argument("--stream", type=int, default=7)
    ap.add_argument("--sims", type=int, default=65536, help="the stream's first draws simulated again")
    ap.add_argument("--batch", type=int, default=4096, help="episodes stepped at once")
    args = ap.parse_args()
    full = family_config(args.family)  # the family's own episode length and policy step
    if DURATION[args.family] >= full.duration:
        ap.error(f"{args.family}: its truths run the whole {full.duration:g} s episode; nothing is cut")
    path = args.failures / f"{args.family}-failures-{args.stream}.npz"
    if not path.exists():
        raise SystemExit(f"no {path}: run bench/is_second_moment.py --family {args.family} --parts failures")
    mc = np.load(path)
    if not 1 <= args.sims <= int(mc["sims"]) or args.batch < 1:
        ap.error(f"--sims in [1, {int(mc['sims'])}] (the stream's draws) and --batch >= 1")
    torch.set_num_threads(1)
    base = family_distribution(args.family, load_naturalistic(None))
    dist = base if mc["z"].shape[1] == base.dim else WithHumanTraits(base)
    sim = batched_family_simulator(args.family, "human", dist.names, "accel", args.batch, None, "cpu")
    lowest, ends, run = [], [], batched.run_episodes

    def recording(*a, **k):  # each batch's lowest ego speed and episode length, in row order
        t = run(*a, **k)
        lowest.append(torch.nan_to_num(t.speed[:, 1:], nan=torch.inf).min(1).values.cpu().numpy())
        ends.append(t.steps.cpu().numpy() / full.policy_frequency)
        return t

    t0, before = time.time(), load()
    z = np.random.default_rng([args.stream, dist.dim]).standard_normal((args.sims, dist.dim))
    batched.run_episodes = recording
    try:
        failed = sim(dist.to_params(z), args.stream * 10**7 + np.arange(args.sims)) >= 1
    finally:
        batched.run_episodes = run
    low, end = np.concatenate(lowest), np.concatenate(ends)
    stored = mc["seeds"] - args.stream * 10**7
    stored = stored[stored < args.sims]
    if not np.allclose(z[stored], mc["z"][: len(stored)]):
        raise SystemExit(f"{path}: its failures are not the stream's draws in draw order")
    cut = np.zeros(args.sims, bool)
    cut[stored] = True
    if np.any(cut & ~failed):
        raise SystemExit(f"{path}: a failure of the shortened episodes did not fail again at full length")
    extra = failed & ~cut
    n_full, n_cut, n_extra = int(failed.sum()), int(cut.sum()), int(extra.sum())
    lo, hi = wilson_interval(n_extra, n_full)
    full_s = full.duration
    lines = [
        f"# `{args.family}`: episodes of {DURATION[args.family]:g} s against the family's {full_s:g} s",
        "",
        f"`.venv/bin/python bench/episode_length.py --family {args.family} --stream {args.stream} "
        f"--sims {args.sims}` ({time.time() - t0:.0f} s, load average {before} -> {load()})",
        "",
        f"The first {args.sims:,} draws of stream {args.stream} (the human, its traits sampled), "
        "same points and seeds:",
        "",
        "| | value |",
        "|---|---|",
        f"| failures at {DURATION[args.family]:g} s (stored) | {n_cut} |",
        f"| failures at {full_s:g} s | {n_full} (every stored one among them) |",
        f"| failures only the full episodes have | {n_extra}: {n_extra / max(n_full, 1):.3f} "
        f"[{lo:.3f}, {hi:.3f}] of the full-length failures |",
        f"| when those end [s] | {', '.join(f'{t:.1f}' for t in end[extra]) or '-'} |",
        f"| draws in which the human's lowest speed is under {STOPPED:g} m/s "
        f"| {np.mean(low < STOPPED):.4f} |",
        f"| full-length failures that did | {np.mean(low[failed] < STOPPED):.3f} |",
        f"| the extra failures that did | {np.mean(low[extra] < STOPPED) if n_extra else float('nan'):.3f} |",
    ]
    write_text(args.failures / f"{args.family}-episode-length-{args.stream}.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
