"""Wall time of ``drivegpt bench`` on the shipped standard suite with 1 and 2 worker processes.

    nice -n 10 .venv/bin/python bench/bench_walltime.py

Runs the same command (four policies: the human model, stock IDM, the shipped DriveGPT, a constant
action in the suite's interface: IDLE with meta-actions, 0 m/s² keeping the lane with ``accel``;
default GIFs) once per worker count and times it end to end, process start included. The 2-worker
run's table is kept as ``bench/results/bench_standard{TAG}.md``. Writes
``bench/results/bench_walltime{TAG}.{json,md}``; TAG is empty for a meta-action suite, ``-accel``
for an ``accel`` one.
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

BASE = ["human=human", "idm=idm", "drivegpt=drivegpt"]
CONSTANT = {  # the same action every step, per action interface
    "meta": "idle=constant:IDLE",
    "accel": "constant=constant:0,keep",  # 0 m/s², keep the lane
    "continuous": "constant=constant:0,0",
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--suite", default="standard")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--out", default=None, help="default: bench/results/bench_walltime{TAG}")
    args = ap.parse_args()
    meta, scenarios = load_suite(resolve_suite(args.suite))
    action = scenarios[0].action
    tag = "" if action == "meta" else f"-{action}"
    args.out = args.out or f"bench/results/bench_walltime{tag}"
    policies = [*BASE, CONSTANT[action]]
    exe = str(Path(sys.executable).with_name("drivegpt"))
    res: dict = {
        "suite": args.suite,
        "action": action,
        "scenarios": len(scenarios),
        "families": meta["families"],
        "policies": policies,
        "cores": len(os.sched_getaffinity(0)),
        "machine": platform.platform(),
        "runs": [],
    }
    for w in [int(x) for x in args.workers.split(",")]:
        out = Path(tempfile.mkdtemp()) / "bench"
        cmd = [exe, "bench", "--suite", args.suite, *sum((["--policy", p] for p in policies), []),
               "--workers", str(w), "--out", str(out)]  # fmt: skip
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        sims = len(scenarios) * len(policies)  # the human policy doubles as the progress reference
        run = {"workers": w, "wall_s": round(wall, 1), "sims": sims, "sims_per_s": round(sims / wall, 2),
               "load_before": round(load, 2),
               "command": " ".join(["drivegpt", *cmd[1:-1], "OUT"])}  # OUT: a temporary folder  # fmt: skip
        res["runs"].append(run)
        print(run, flush=True)
        if w == 2:
            table = (out / "results.md").read_text()
            note = f"`{run['command']}` ({len(scenarios)} scenarios, {wall:.0f} s on 2 cores)\n\n"
            note += f"1-min load average before the run: {load:.2f}\n\n"
            write_text(f"bench/results/bench_standard{tag}.md", note + table)
            png = f"bench/results/bench_standard{tag}_collision_rate.png"
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
        f"families, `{action}` actions) x {len(policies)} policies, {res['cores']} cores; the last column "
        "is the 1-minute load average before each run.\n\n"
        + "\n".join(lines)
        + f"\n\nspeed-up 2 vs 1 workers: {res.get('speedup_2_vs_1')}\n"
    )
    write_text(Path(args.out).with_suffix(".md"), text)
    print(text)


if __name__ == "__main__":
    main()
