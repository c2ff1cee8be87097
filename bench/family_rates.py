"""Failure rate of each policy on every scenario family, random parameters, held-out seeds.

The standard suite holds 6 scenarios per family, too few to tell two policies apart; this drives
many more. For each family, episode ``i`` has seed ``--seed + i`` and parameters drawn by the
family's ``sample_params`` from a generator seeded with that seed, so every policy meets the same
scenarios. Families with a batched port run ``--batched-episodes`` on the batched simulator, the
others (``--highway-env-families``) ``--episodes`` on highway-env in ``--workers`` processes.
Failure: a collision of the ego or the ego leaving the road. Prints and writes a Markdown table:
each rate with its Wilson 95% interval, and per policy the mean over the families (each family
weighted equally, as in the suite) with a normal-approximation 95% interval.

    .venv/bin/python bench/family_rates.py --policies human drivegpt-rlhf \
        --out bench/results/family_rates.md
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

import numpy as np
from markdown_table import write_markdown

from drivegpt.core.atomic import write_json
from drivegpt.core.metrics import wilson_interval
from drivegpt.corner.runner import run_jobs
from drivegpt.corner.suite import ScenarioJob
from drivegpt.policies.registry import policy_action_kind
from drivegpt.sim.batched.families import BATCHED_FAMILIES
from drivegpt_envs.families import FAMILIES, family_class


def jobs_of(policy: str, family: str, n: int, seed: int) -> list[ScenarioJob]:
    """``n`` scenarios of ``family`` for ``policy``: seed ``seed + i``, parameters from that seed."""
    sim = "batched" if family in BATCHED_FAMILIES else "highway-env"
    kind = policy_action_kind(policy, "accel")
    cls = family_class(family)
    return [
        ScenarioJob(policy, FAMILIES[family], kind, s, cls.sample_params(np.random.default_rng(s)), sim=sim)
        for s in range(seed, seed + n)
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--policies", nargs="+", default=["human", "drivegpt-rlhf"])
    ap.add_argument("--names", nargs="+", help="Row names of the policies (default: the specs).")
    ap.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    ap.add_argument("--batched-episodes", type=int, default=1000)
    ap.add_argument("--episodes", type=int, default=100, help="Per family on highway-env.")
    ap.add_argument("--seed", type=int, default=3_000_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("bench/results/family_rates.md"))
    args = ap.parse_args()
    names = args.names or args.policies
    load0, t0 = os.getloadavg(), time.time()
    rates: dict[str, dict[str, tuple[int, int]]] = {}
    for name, policy in zip(names, args.policies, strict=True):
        rates[name] = {}
        for family in args.families:
            n = args.batched_episodes if family in BATCHED_FAMILIES else args.episodes
            t = time.time()
            outs = run_jobs(jobs_of(policy, family, n, args.seed), args.workers, "local", family, False)
            rates[name][family] = (sum(o.failed for o in outs), len(outs))
            k = rates[name][family][0]
            print(f"{name} {family}: {k}/{n} failed ({time.time() - t:.0f} s)", flush=True)
    head = "| family | sim | episodes | " + " | ".join(names) + " |\n|---|---|---|" + "---|" * len(names)
    rows = []
    for family in args.families:
        cells = []
        for name in names:
            k, n = rates[name][family]
            lo, hi = wilson_interval(k, n)
            cells.append(f"{k / n:.3f} [{lo:.3f}, {hi:.3f}]")
        sim = "batched" if family in BATCHED_FAMILIES else "highway-env"
        n = args.batched_episodes if family in BATCHED_FAMILIES else args.episodes
        rows.append(f"| {family} | {sim} | {n} | " + " | ".join(cells) + " |")
    means = []
    for name in names:
        p = [k / n for k, n in rates[name].values()]
        var = sum(q * (1 - q) / n for q, (_, n) in zip(p, rates[name].values(), strict=True)) / len(p) ** 2
        mean, half = float(np.mean(p)), 1.96 * math.sqrt(var)
        means.append(f"**{mean:.3f}** [{max(0.0, mean - half):.3f}, {mean + half:.3f}]")
    rows.append("| mean over the families | | | " + " | ".join(means) + " |")
    specs = ", ".join(f"{n} = `{p}`" for n, p in zip(names, args.policies, strict=True))
    note = (
        f"Policies: {specs}. Seeds {args.seed}.. per family; load average {load0[0]:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after; {time.time() - t0:.0f} s in all; highway-env in "
        f"{args.workers} worker(s)."
    )
    write_markdown(args.out, "Failure rate per scenario family, random parameters", note, head, rows)
    specs_by_name = dict(zip(names, args.policies, strict=True))
    write_json(args.out.with_suffix(".json"), {"policies": specs_by_name, "rates": rates, "note": note})


if __name__ == "__main__":
    main()
