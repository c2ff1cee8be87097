"""Family episodes on the batched simulator with and without autograd's records, per CPU core.

``drivegpt.corner.batched.run_episodes`` (what searches, estimates, replays and benchmarks of the
batched families run) and ``drivegpt.sim.batched.drive.drive_batch`` run under
``torch.inference_mode()``: nothing they compute is ever differentiated, and at small batches a step
is dozens of small tensor operations whose bookkeeping costs as much as their arithmetic. This script
times ``batched_family_simulator`` (the human, naturalistic draws) per batch size, once as shipped and
once with ``run_episodes`` unwrapped (autograd recording, as before), best of ``--repeats``, one thread.

    .venv/bin/python bench/episode_speed.py --family hard_braking_lead --batches 12 256 4096
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

import drivegpt.corner.batched as corner_batched
from drivegpt.corner.naturalistic import family_distribution, load_naturalistic
from drivegpt.sim.batched.families import BATCHED_FAMILIES


def best_time(run, repeats: int) -> float:
    """The fastest of ``repeats`` calls of ``run()`` [s]."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--family", default="hard_braking_lead", choices=BATCHED_FAMILIES)
    ap.add_argument("--batches", type=int, nargs="+", default=[12, 256, 4096])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if args.repeats < 1 or min(args.batches) < 1:
        ap.error("--repeats and every --batches value must be at least 1")
    torch.set_num_threads(1)
    dist = family_distribution(args.family, load_naturalistic(None))
    sim = corner_batched.batched_family_simulator(
        args.family, "human", dist.names, "accel", max(args.batches), None, "cpu", False
    )
    shipped = corner_batched.run_episodes
    recording = shipped.__wrapped__  # the same function without the inference-mode decorator
    print(f"{args.family}, the human, one thread, load average {os.getloadavg()[0]:.2f}")
    print("| batch | autograd recording [s] | inference mode [s] | saved | episodes / s (inference mode) |")
    print("|---|---|---|---|---|")
    for b in args.batches:
        z = np.random.default_rng(b).standard_normal((b, dist.dim))
        params, seeds = dist.to_params(z), np.arange(b)
        sim(params, seeds)  # warm-up: first-call costs out of the timing
        corner_batched.run_episodes = recording
        try:
            slow = best_time(lambda: sim(params, seeds), args.repeats)  # noqa: B023
        finally:
            corner_batched.run_episodes = shipped
        fast = best_time(lambda: sim(params, seeds), args.repeats)  # noqa: B023
        print(f"| {b} | {slow:.2f} | {fast:.2f} | {1 - fast / slow:.0%} | {b / fast:,.0f} |", flush=True)
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
