"""DAgger's labelled drives on the batched simulator: labelled policy steps per second of wall time.

The policy drives ``--episodes`` episodes ``--batch`` at a time and the alert human labels every step
(``drivegpt.rlhf.dagger_batched.visited_labels_batched``, what a ``sim: batched`` flywheel round runs):

    python bench/dagger_label_rate.py --policy drivegpt --episodes 512 --batch 512
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from drivegpt.rlhf.dagger_batched import visited_labels_batched


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy", default="drivegpt")
    ap.add_argument("--env", default="drivegpt/HighwayDense-v0")
    ap.add_argument("--episodes", type=int, default=512)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    load = os.getloadavg()
    t = time.perf_counter()
    labels = visited_labels_batched(args.policy, args.env, args.episodes, 0, args.batch, progress=False)
    wall = time.perf_counter() - t
    print(
        f"{args.policy} on {args.env}: {len(labels.obs):,} labelled steps in {wall:.1f} s = "
        f"{len(labels.obs) / wall:,.0f} steps/s (B={args.batch}, {args.threads} torch threads); "
        f"load average {load[0]:.2f} before, {os.getloadavg()[0]:.2f} after"
    )


if __name__ == "__main__":
    main()
