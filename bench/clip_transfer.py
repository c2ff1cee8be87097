"""Batched takeover clips replayed on highway-env: does the state map, and does the replay end the same?

A policy drives ``--episodes`` held-out episodes (seeds from ``--seed``) on the batched simulator
under the batched safety driver; every takeover becomes a clip
(``drivegpt.takeover.batched_clips.evaluate_monitored_batched``). Each clip is then replayed twice by
each driver in ``--drivers``: on the batched simulator (``drivegpt replay``) and on highway-env, its
exact batched state written into highway-env's objects (``drivegpt replay --sim highway-env``). The
fidelity is the largest difference between highway-env's vehicles and the clip's recorded snapshot
(0: the state maps exactly); a replay "ends the same" when resolution, collision, hand-back and the
number of steps agree and the smallest TTC agrees to 1e-9 (relative). Prints a Markdown table.

    .venv/bin/python bench/clip_transfer.py --episodes 200 --out bench/results/clip_transfer.md
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

from markdown_table import write_markdown

from drivegpt.core.metrics import wilson_interval
from drivegpt.takeover.batched_clips import evaluate_monitored_batched
from drivegpt.takeover.clips import ReplayResult
from drivegpt.takeover.monitor import MonitorConfig
from drivegpt.takeover.replay import replay_clip


def ends_the_same(a: ReplayResult, b: ReplayResult) -> bool:
    """The two replays' verdicts and lengths equal, their smallest TTC to 1e-9 (relative)."""
    fields = ("resolved", "collision", "ttc_violation", "new_takeover", "handed_back", "steps")
    same_ttc = a.min_ttc_s == b.min_ttc_s or math.isclose(a.min_ttc_s, b.min_ttc_s, rel_tol=1e-9)
    return same_ttc and all(getattr(a, f) == getattr(b, f) for f in fields)


def rate(k: int, n: int) -> str:
    lo, hi = wilson_interval(k, n)
    return f"{k / n:.3f} [{lo:.3f}, {hi:.3f}]" if n else "-"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--policy", default="drivegpt", help="The policy whose takeovers become clips.")
    ap.add_argument("--env", default="drivegpt/HighwayDense-v0")
    ap.add_argument("--episodes", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1_000_000)
    ap.add_argument("--drivers", nargs="+", default=["human", "drivegpt"])
    ap.add_argument("--out", type=Path, default=Path("bench/results/clip_transfer.md"))
    args = ap.parse_args()
    load0, t0 = os.getloadavg(), time.time()
    clips: list = []
    monitor = MonitorConfig()
    evaluate_monitored_batched(args.policy, args.env, None, args.episodes, args.seed, 256, monitor, clips)
    print(f"{len(clips)} clips from {args.episodes} episodes in {time.time() - t0:.1f} s", flush=True)
    rows = []
    for driver in args.drivers:
        t1 = time.time()
        here = [replay_clip(c, driver, monitor) for c in clips]
        t2 = time.time()
        there = [replay_clip(c, driver, monitor, sim="highway-env") for c in clips]
        t3 = time.time()
        n = len(clips)
        fidelity = max((r.fidelity_max_abs for r in there), default=0.0)
        same = sum(ends_the_same(a, b) for a, b in zip(here, there, strict=True))
        rows.append(
            f"| {driver} | {n} | {fidelity:g} | {same}/{n} | {rate(sum(r.resolved for r in here), n)} | "
            f"{rate(sum(r.resolved for r in there), n)} | {n / (t2 - t1):.1f} / {n / (t3 - t2):.1f} |"
        )
        print(rows[-1], flush=True)
    head = (
        "| driver after the takeover | clips | fidelity on highway-env (max abs) | "
        "replays that end the same | resolved, batched | resolved, highway-env | "
        "replays/s batched / highway-env |\n"
        "|---|---|---|---|---|---|---|"
    )
    note = (
        f"Clips of `{args.policy}` on `{args.env}`, seeds {args.seed}..{args.seed + args.episodes - 1}; "
        f"load average {load0[0]:.2f} before, {os.getloadavg()[0]:.2f} after; "
        f"{time.time() - t0:.0f} s in all; one process."
    )
    write_markdown(args.out, "Batched takeover clips replayed on highway-env", note, head, rows)


if __name__ == "__main__":
    main()
