"""How much of a failure the sampled parameters decide: re-run failures with other scenario seeds.

Draws ``--sims`` `stalled_car` scenarios from the naturalistic distribution widened ``--widen``x (so
failures are common), drives the simulated human on the batched simulator, and re-runs every failure
``--repeats`` times with new scenario seeds (new traffic and action noise), (a) keeping the human's
personality traits of the failure and (b) letting each new seed draw them. The failure rate of the
re-runs is how nearly the sampled parameters decide a failure: what importance sampling can lean on
(``drivegpt corner-cases estimate --human-traits`` samples the traits; without it they come from the
seed).

    .venv/bin/python bench/failure_determinism.py \
        --out bench/results/estimate_batched/failure_determinism.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from drivegpt.corner.batched import batched_family_simulator
from drivegpt.corner.naturalistic import WithHumanTraits, family_distribution, load_naturalistic
from drivegpt.sim.batched.human import SEED_STREAM
from drivegpt.sim.personality import PersonalityRanges


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sims", type=int, default=24576)
    ap.add_argument("--widen", type=float, default=2.0, help="std factor of the scenario draws")
    ap.add_argument("--repeats", type=int, default=16)
    ap.add_argument(
        "--out", type=Path, default=Path("bench/results/estimate_batched/failure_determinism.json")
    )
    args = ap.parse_args()
    torch.set_num_threads(1)
    base = family_distribution("stalled_car", load_naturalistic(None))
    joint = WithHumanTraits(base)
    sim = batched_family_simulator("stalled_car", "human", base.names, "accel", 4096, 15.0)
    sim_traits = batched_family_simulator("stalled_car", "human", joint.names, "accel", 4096, 15.0)
    rng = np.random.default_rng(5)
    z = args.widen * rng.standard_normal((args.sims, base.dim))
    seeds = 10_000_000 + np.arange(args.sims)
    failed = sim(base.to_params(z), seeds) >= 1
    params = base.to_params(z[failed])  # (F, 4)
    ranges = PersonalityRanges()
    traits = np.array(
        [
            [
                getattr(ranges.sample(np.random.default_rng([int(s), SEED_STREAM])), t)
                for t in PersonalityRanges.model_fields
            ]
            for s in seeds[failed]
        ]
    )  # (F, 7): the personality each failing seed drew
    r = args.repeats
    kept = sim_traits(np.repeat(np.c_[params, traits], r, 0), 50_000_000 + np.arange(len(params) * r)) >= 1
    redrawn = sim(np.repeat(params, r, 0), 60_000_000 + np.arange(len(params) * r)) >= 1
    g_kept, g_redrawn = kept.reshape(-1, r).mean(1), redrawn.reshape(-1, r).mean(1)
    result = {
        "command": "bench/failure_determinism.py "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()),
        "sims": args.sims, "failures": int(failed.sum()), "repeats": r,
        "rerun_failure_rate_traits_kept": float(g_kept.mean()),
        "rerun_failure_rate_traits_redrawn": float(g_redrawn.mean()),
        "quantiles": [0.1, 0.25, 0.5, 0.75, 0.9],
        "traits_kept_quantiles": np.quantile(g_kept, [0.1, 0.25, 0.5, 0.75, 0.9]).tolist(),
        "traits_redrawn_quantiles": np.quantile(g_redrawn, [0.1, 0.25, 0.5, 0.75, 0.9]).tolist(),
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
