"""How often the crawl-triggered takeover of ``drivegpt ppo`` (``crawl_ratio``) would fire for a driver.

Drives ``--episodes`` dense training episodes on the batched simulator with each driver alone, and
counts the steps where the rule of ``BatchedPPOConfig`` fires: speed below ``ratio`` × the safety
driver's desired speed, time headway to the lead at least ``headway`` s, and the safety driver's
acceleration at least ``margin`` m/s² above the driver's, for ``steps`` steps in a row (the count
restarts after each firing). Prints firings per 100 km per driver.

    python bench/crawl_rate.py --episodes 128
"""

from __future__ import annotations

import argparse
import os

import torch

from drivegpt.sim import batched
from drivegpt.takeover.batched import (
    WatchedHuman,
    batched_safety_driver,
    lead_figures,
    propose,
    start_episodes,
)
from drivegpt_envs.actions import ACCEL_BINS


def crawl_rate(spec: str, args: argparse.Namespace) -> tuple[float, int]:
    from drivegpt.policies.registry import load_policy

    config = batched.make_config(args.env, "accel")
    seeds = list(range(args.seed, args.seed + args.episodes))
    state = batched.reset(seeds, config)
    safety = batched_safety_driver(config)
    safety.reset(seeds, state)
    driver = WatchedHuman(config) if spec == "human" else load_policy(spec)
    start_episodes(driver, seeds, state)
    accel = torch.tensor(ACCEL_BINS, dtype=state.speed.dtype)
    done = torch.zeros(len(seeds), dtype=torch.bool)
    run, fired, km = torch.zeros(len(seeds), dtype=torch.long), 0, 0.0
    while not bool(done.all()):
        _, headway = lead_figures(state)
        safety.act(state)
        action = propose(driver, state)
        slow = state.speed[:, 0] < args.ratio * safety.p.desired_speed
        held = accel[safety.decision // 3] - accel[action // 3] >= args.margin
        run = torch.where(~done & slow & held & (headway >= args.headway), run + 1, 0)
        fire = run >= args.steps
        fired += int(fire.sum())
        run = torch.where(fire, 0, run)
        x0 = state.x[:, 0].clone()
        state = batched.step(state, action)
        km += float(torch.where(done, 0.0, state.x[:, 0] - x0).sum()) / 1000.0
        done |= batched.terminated(state) | batched.truncated(state)
    return 100.0 * fired / km, fired


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--policy", action="append", default=None, help="spec (repeatable; default human, drivegpt)"
    )
    ap.add_argument("--env", default="drivegpt/HighwayDense-v0")
    ap.add_argument("--episodes", type=int, default=128)
    ap.add_argument("--seed", type=int, default=500_000, help="first seed (the PPO training seeds)")
    ap.add_argument("--ratio", type=float, default=0.8)
    ap.add_argument("--headway", type=float, default=3.0)
    ap.add_argument("--margin", type=float, default=1.0)
    ap.add_argument("--steps", type=int, default=10)
    args = ap.parse_args()
    print(
        f"load average {os.getloadavg()[0]:.2f}; {args.episodes} episodes of {args.env} from seed {args.seed}"
    )
    for spec in args.policy or ["human", "drivegpt"]:
        rate, n = crawl_rate(spec, args)
        print(f"{spec}: {n} crawl takeovers, {rate:.1f} per 100 km")


if __name__ == "__main__":
    main()
