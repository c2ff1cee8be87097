"""Wall time of ``drivegpt bench`` on the shipped standard suite with 1 and 2 worker processes.

    nice -n 10 .venv/bin/python bench/bench_walltime.py

Runs the same command (four policies: the human model, stock IDM, the shipped DriveGPT, constant
IDLE; default GIFs) once per worker count and times it end to end, process start included. The
2-worker run's table is kept as ``bench/results/bench_standard.md``. Writes
``bench/results/bench_walltime.{json,md}``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from drivegpt.core.atomic import write_json, write_text
from drivegpt.corner.suite import load_suite, resolve_suite

POLICIES = ["human=human", "idm=idm", "drivegpt=drivegpt", "idle=constant:IDLE"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--suite", default="standard")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--out", default="bench/results/bench_walltime")
    args = ap.parse_args()
    meta, scenarios = load_suite(resolve_suite(args.suite))
    exe = str(Path(sys.executable).with_name("drivegpt"))
    res: dict = {
        "suite": args.suite,
        "scenarios": len(scenarios),
        "families": meta["families"],
        "policies": POLICIES,
        "cores": len(os.sched_getaffinity(0)),
        "machine": platform.platform(),
        "runs": [],
    }
    for w in [int(x) for x in args.workers.split(",")]:
        out = Path(tempfile.mkdtemp()) / "bench"
        cmd = [exe, "bench", "--suite", args.suite, *sum((["--policy", p] for p in POLICIES), []),
               "--workers", str(w), "--out", str(out)]  # fmt: skip
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        sims = len(scenarios) * len(POLICIES)  # the human policy doubles as the progress reference
        run = {"workers": w, "wall_s": round(wall, 1), "sims": sims, "sims_per_s": round(sims / wall, 2),
               "load_before": round(load, 2),
               "command": " ".join(["drivegpt", *cmd[1:-1], "OUT"])}  # OUT: a temporary folder  # fmt: skip
        res["runs"].append(run)
        print(run, flush=True)
        if w == 2:
            table = (out / "results.md").read_text()
            note = f"`{run['command']}` ({len(scenarios)} scenarios, {wall:.0f} s on 2 cores)\n\n"
            write_text("bench/results/bench_standard.md", note + table)
            png = "bench/results/bench_standard_collision_rate.png"
            shutil.copy(out / "plots" / "collision_rate.png", png)
        shutil.rmtree(out.parent, ignore_errors=True)
    if len(res["runs"]) == 2:
        res["speedup_2_vs_1"] = round(res["runs"][0]["wall_s"] / res["runs"][1]["wall_s"], 2)
    write_json(Path(args.out).with_suffix(".json"), res)
    lines = ["| workers | wall [s] | simulations | sims/s | 1-min load before |", "|---|---|---|---|---|"]
    for r in res["runs"]:
        lines.append(
            f"| {r['workers']} | {r['wall_s']} | {r['sims']} | {r['sims_per_s']} | {r['load_before']} |"
        )
    text = (
        f"`drivegpt bench` on the `{args.suite}` suite ({len(scenarios)} scenarios, {len(meta['families'])} "
        f"families) x {len(POLICIES)} policies, {res['cores']} cores.\n\n"
        + "\n".join(lines)
        + f"\n\nspeed-up 2 vs 1 workers: {res.get('speedup_2_vs_1')}\n"
    )
    write_text(Path(args.out).with_suffix(".md"), text)
    print(text)


if __name__ == "__main__":
    main()
