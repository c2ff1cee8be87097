"""Does testing the stalled car's lead against the right lane's traffic change the human's failures?

The batched ``stalled_car`` tests every pair of its cars for collisions (the lead swerving into the
right lane can hit a car there, as on highway-env). This script runs the first ``--sims`` simulations
of the Monte Carlo stream of ``bench/estimate_batched.py`` (naturalistic parameters ``z`` row i,
scenario seed i, 15 s episodes, the human driving) twice: as shipped, and with only the ego's pairs
tested (the family's ``Script.collides`` cleared after placing the cars, which is how the port ran
before the pair test). It prints both failure counts and how many simulations changed outcome, so
the effect on the 10⁶-run ground truth measured without the pair test can be judged.

    .venv/bin/python bench/stalled_car_pairs.py --sims 65536 --out bench/results/stalled_car_pairs.json
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

import drivegpt.sim.batched.families as families
from drivegpt.core.atomic import write_json
from drivegpt.core.metrics import wilson_interval
from drivegpt.corner.batched import batched_family_simulator
from drivegpt.corner.naturalistic import family_distribution, load_naturalistic

FAMILY, DURATION = "stalled_car", 15.0  # [s] as bench/estimate_batched.py


def failures(sims: int, batch: int, pairs: bool) -> np.ndarray:
    """(sims,) bool: failed, for the first ``sims`` rows of the Monte Carlo stream."""
    place = families.place_scripted

    def ego_pairs_only(*args, **kwargs) -> None:  # the port before the pair test
        place(*args, **kwargs)
        args[-1].collides[:] = False

    if not pairs:
        families.place_scripted = ego_pairs_only  # type: ignore[assignment]
    try:
        dist = family_distribution(FAMILY, load_naturalistic(None))
        sim = batched_family_simulator(FAMILY, "human", dist.names, "accel", batch, DURATION)
        rng = np.random.default_rng([0, dist.dim])  # the stream of estimate_batched.py's monte_carlo
        out, chunk = [], 16 * batch
        for lo in range(0, sims, chunk):
            n = min(chunk, sims - lo)
            z = rng.standard_normal((n, dist.dim))
            out.append(sim(dist.to_params(z), lo + np.arange(n)) >= 1)
        return np.concatenate(out)
    finally:
        families.place_scripted = place


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sims", type=int, default=65536)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--out", type=Path, default=Path("bench/results/stalled_car_pairs.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    load0, t0 = os.getloadavg(), time.time()
    runs = {
        name: failures(args.sims, args.batch, pairs)
        for name, pairs in (("all pairs", True), ("ego only", False))
    }
    a, b = runs["all pairs"], runs["ego only"]
    result = {
        "command": "python " + " ".join(sys.argv),
        "sims": args.sims,
        "seconds": round(time.time() - t0, 1),
        "load": [list(load0), list(os.getloadavg())],
        **{
            name: {
                "failures": int(f.sum()),
                "p": float(f.mean()),
                "ci": list(wilson_interval(int(f.sum()), len(f))),
            }
            for name, f in runs.items()
        },
        "changed": {
            "failed_only_with_pairs": int((a & ~b).sum()),
            "failed_only_without": int((b & ~a).sum()),
        },
    }
    write_json(args.out, result)
    print(result)


if __name__ == "__main__":
    main()
