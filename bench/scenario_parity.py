"""Scenario outcomes on both simulators: the same scenario, field by field.

For each family, ``--scenarios`` scenarios with uniform parameters and seeds from ``--seed`` are
driven by the human on highway-env (``drivegpt.corner.suite.simulate``) and on the batched simulator
(``drivegpt.corner.batched.simulate_scenarios``). For the families without background traffic
(``adversarial_vehicle``, ``stop_and_go``) the two episodes are the same episode, so every
``Outcome`` field should agree (floats to 1e-9); for the others only the scripted cars are the same
and the failure rates are compared (Wilson 95% intervals). Prints a Markdown table.

    .venv/bin/python bench/scenario_parity.py --scenarios 60 --out bench/results/scenario_parity.md
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

import numpy as np
from markdown_table import write_markdown

from drivegpt.core.metrics import wilson_interval
from drivegpt.corner.batched import simulate_scenarios
from drivegpt.corner.suite import Outcome, ScenarioJob
from drivegpt.sim.batched.scenes import SCENES
from drivegpt.sim.rollout import parallel_map
from drivegpt_envs.families import FAMILIES, family_class


def same(a: Outcome, b: Outcome) -> bool:
    """Every field equal (floats within 1e-9)."""
    for x, y in zip(a, b, strict=True):
        if isinstance(x, float) and not math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9):
            return False
        if not isinstance(x, float) and x != y:
            return False
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--families", nargs="+", default=list(SCENES))
    ap.add_argument("--scenarios", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("bench/results/scenario_parity.md"))
    args = ap.parse_args()
    from drivegpt.corner.suite import simulate

    load0, rows = os.getloadavg(), []
    for family in args.families:
        rng = np.random.default_rng([args.seed, len(family)])
        specs = family_class(family).PARAMS
        jobs = [
            ScenarioJob(
                "human", FAMILIES[family], "accel", args.seed + i,
                {k: float(s.low + rng.random() * (s.high - s.low)) for k, s in specs.items()},
            )
            for i in range(args.scenarios)
        ]  # fmt: skip
        t0 = time.time()
        ref = parallel_map(simulate, jobs, args.workers, "local", f"{family} highway-env", True)
        t1 = time.time()
        got = simulate_scenarios([j._replace(sim="batched") for j in jobs])
        t2 = time.time()
        traffic = SCENES[family].traffic is not None
        n, k_ref, k_got = len(jobs), sum(o.failed for o in ref), sum(o.failed for o in got)
        equal = sum(same(a, b) for a, b in zip(ref, got, strict=True))
        both = sum(a.failed == b.failed for a, b in zip(ref, got, strict=True))
        rows.append(
            f"| {family} | {'yes' if traffic else 'no'} | {n} | {equal}/{n} | {both}/{n} | "
            f"{k_ref / n:.3f} [{wilson_interval(k_ref, n)[0]:.3f}, {wilson_interval(k_ref, n)[1]:.3f}] | "
            f"{k_got / n:.3f} [{wilson_interval(k_got, n)[0]:.3f}, {wilson_interval(k_got, n)[1]:.3f}] | "
            f"{t1 - t0:.1f} / {t2 - t1:.1f} |"
        )
        print(rows[-1], flush=True)
    head = (
        "| family | background traffic | scenarios | every outcome field equal | same failed flag | "
        "failure rate, highway-env | failure rate, batched | wall [s] highway-env / batched |\n"
        "|---|---|---|---|---|---|---|---|"
    )
    load1 = os.getloadavg()
    note = f"load average {load0[0]:.2f} before, {load1[0]:.2f} after; highway-env with {args.workers} "
    note += "worker(s)"
    title = "Scenario outcomes: highway-env vs the batched simulator (the human)"
    write_markdown(args.out, title, note, head, rows)


if __name__ == "__main__":
    main()
