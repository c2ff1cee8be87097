"""Failure search on highway-env and on the batched simulator, side by side: simulations per second.

For each family the human (``accel``) is searched with ``drivegpt.corner.search.search_family``:
plain random draws (every simulation of the budget at once) and the cross-entropy method (generations
of ``--cem-batch`` simulations), on highway-env (``--workers`` processes, ``--budget-highway-env``
simulations) and on the batched simulator (one process, ``--budget-batched`` simulations). Feasibility
checks are off, so the figures time the search's own simulations. Each row: simulations, wall time,
simulations per second, failures with the Wilson 95% interval of the failure rate. The two
simulators draw the same scripted cars but their own background traffic, so their random failure
rates agree in distribution, not draw by draw.

    .venv/bin/python bench/search_batched.py --out bench/results/search_batched

Writes ``OUT/search_batched.json`` and ``OUT/search_batched.md`` with the command and load averages.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from drivegpt.core.atomic import write_json, write_text
from drivegpt.core.metrics import wilson_interval
from drivegpt.corner.search import SearchConfig, search_family


def run(family: str, sim: str, method: str, budget: int, batch: int, workers: int) -> dict[str, Any]:
    cfg = SearchConfig(method=method, budget=budget, batch=batch, seed=0, feasibility_refs=0, sim=sim)  # type: ignore[arg-type]
    t0 = time.perf_counter()
    r = search_family(family, "human", cfg, "accel", workers=workers, progress=False)
    seconds = time.perf_counter() - t0
    k, n = r.summary["failures"], r.summary["sims"]
    return {
        "family": family,
        "sim": sim,
        "method": method,
        "batch": batch if method == "cem" else n,
        "workers": workers if sim == "highway-env" else 1,
        "sims": n,
        "seconds": round(seconds, 2),
        "sims_per_s": n / seconds,
        "failures": k,
        "failure_rate": k / n,
        "failure_rate_ci": list(wilson_interval(k, n)),
        "sims_to_first_failure": r.summary["sims_to_first_failure"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--families", nargs="+", default=["cut_in", "stalled_car"])
    ap.add_argument("--budget-highway-env", type=int, default=100)
    ap.add_argument("--budget-batched", type=int, default=4000)
    ap.add_argument("--cem-batch", type=int, nargs="+", default=[20, 400], help="CEM generation sizes.")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", type=Path, default=Path("bench/results/search_batched"))
    args = ap.parse_args()
    load0 = os.getloadavg()
    rows = []
    for family in args.families:
        for sim, budget in (("highway-env", args.budget_highway_env), ("batched", args.budget_batched)):
            rows.append(run(family, sim, "random", budget, 20, args.workers))
            print(rows[-1], flush=True)
            for batch in args.cem_batch:
                if sim == "highway-env" and batch > budget:
                    continue
                rows.append(run(family, sim, "cem", budget, batch, args.workers))
                print(rows[-1], flush=True)
    load1 = os.getloadavg()
    lines = [
        "| family | simulator | method | generation | workers | sims | wall [s] | sims/s | failures | "
        "failure rate [95% CI] | first failure at sim |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lo, hi = r["failure_rate_ci"]
        lines.append(
            f"| {r['family']} | {r['sim']} | {r['method']} | {r['batch']} | {r['workers']} | {r['sims']} | "
            f"{r['seconds']:.1f} | {r['sims_per_s']:.1f} | {r['failures']} | "
            f"{r['failure_rate']:.3f} [{lo:.3f}, {hi:.3f}] | {r['sims_to_first_failure']} |"
        )
    for family in args.families:
        best = {
            sim: max(r["sims_per_s"] for r in rows if r["family"] == family and r["sim"] == sim)
            for sim in ("highway-env", "batched")
        }
        lines.append(
            f"\n{family}: {best['batched'] / best['highway-env']:.0f}× the simulations per second "
            f"(best batched row against the best highway-env row)."
        )
    command = "python " + " ".join(sys.argv)
    load = f"load average {load0[0]:.2f} before, {load1[0]:.2f} after; {os.cpu_count()} cores"
    load += f", {platform.machine()}"
    text = f"# Failure search: highway-env vs batched\n\n`{command}`\n\n{load}\n\n" + "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    write_text(args.out / "search_batched.md", text)
    write_json(args.out / "search_batched.json", {"command": command, "load": [load0, load1], "rows": rows})
    print(text)


if __name__ == "__main__":
    main()
