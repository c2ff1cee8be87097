"""Policy steps per CPU-second of the DriveGPT highway-env envs: stock, with FastKinematics, with FastRoad.

highway-env's ``KinematicObservation`` builds pandas DataFrames every step; the project's envs use
``drivegpt_envs.observation.FastKinematics`` (the same array, numpy only). highway-env's
``Road.neighbour_vehicles`` loops over every vehicle for each search; the project's envs use
``drivegpt_envs.road.FastRoad`` (the same answers, over plain floats gathered once per frame). This
drives the same episodes (the simulated human at the wheel, the same seeds) three ways: highway-env's
observation and search, ``FastKinematics`` with highway-env's search, and both of the project's
(what the envs run); it checks that every observation, action and reward is equal, and prints the
rates and the time of one ``observe()`` call.

    .venv/bin/python bench/env_speed.py --episodes 5
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock

import gymnasium as gym
import numpy as np
from highway_env.envs.common.observation import KinematicObservation
from highway_env.road.road import Road

import drivegpt_envs
from drivegpt.sim.human import HumanDriver
from drivegpt_envs.road import FastRoad


@contextmanager
def highway_env_search() -> Iterator[None]:
    """``FastRoad`` switched off for the block: highway-env's own ``Road.neighbour_vehicles``, and no
    per-frame gather for FastRoad's (the stock side of a comparison)."""
    with (
        mock.patch.object(FastRoad, "neighbour_vehicles", Road.neighbour_vehicles),
        mock.patch.object(FastRoad, "act", Road.act),
    ):
        yield


def drive(env_id: str, episodes: int, stock: bool, stock_road: bool) -> tuple[float, float, list[np.ndarray]]:
    """(policy steps per CPU-second, seconds per observe() call, every observation, action and reward)
    of ``episodes``; ``stock``: highway-env's observation, ``stock_road``: highway-env's search."""
    if stock_road:
        with highway_env_search():
            return drive(env_id, episodes, stock, stock_road=False)
    env = gym.make(env_id)
    u = env.unwrapped
    driver, steps, cpu, observe_s, calls, seen = HumanDriver(), 0, 0.0, 0.0, 0, []
    original = None
    for seed in range(episodes):
        obs, _ = env.reset(seed=seed)
        if stock:  # reset builds the observation type anew: put highway-env's own back each time
            u.observation_type = KinematicObservation(u, **u.config["observation"])
            obs = u.observation_type.observe()
        original = u.observation_type.observe

        def timed_observe(original=original) -> np.ndarray:
            nonlocal observe_s, calls
            t = time.process_time()
            out = original()
            observe_s, calls = observe_s + time.process_time() - t, calls + 1
            return out

        u.observation_type.observe = timed_observe
        driver.reset(seed, env)
        seen.append(obs)
        done = False
        while not done:
            action = driver.act(obs)
            t = time.process_time()
            obs, reward, terminated, truncated, _ = env.step(action)
            cpu += time.process_time() - t
            steps, done = steps + 1, terminated or truncated
            seen += [obs, np.asarray(action), np.asarray(reward)]
    return steps / cpu, observe_s / max(calls, 1), seen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--envs", nargs="+", default=list(drivegpt_envs.ENV_IDS), help="default: the scenarios")
    ap.add_argument("--episodes", type=int, default=5)
    args = ap.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    head = f"{'env':30s} {'stock steps/CPU-s':>18s} {'FastKinematics':>15s} {'+ FastRoad':>11s} {'x':>6s}"
    print(f"{head} {'observe stock':>14s} {'observe fast':>13s} {'equal':>6s}")
    for env_id in args.envs:
        stock_rate, stock_obs_s, stock_seen = drive(env_id, args.episodes, stock=True, stock_road=True)
        obs_rate, fast_obs_s, obs_seen = drive(env_id, args.episodes, stock=False, stock_road=True)
        fast_rate, _, fast_seen = drive(env_id, args.episodes, stock=False, stock_road=False)
        equal = all(
            len(seen) == len(stock_seen)
            and all(np.array_equal(a, b) for a, b in zip(stock_seen, seen, strict=True))
            for seen in (obs_seen, fast_seen)
        )
        print(
            f"{env_id:30s} {stock_rate:>18.1f} {obs_rate:>15.1f} {fast_rate:>11.1f} "
            f"{fast_rate / stock_rate:>5.1f}x {stock_obs_s * 1e3:>11.2f} ms {fast_obs_s * 1e3:>10.3f} ms "
            f"{str(equal):>6s}  ({(len(fast_seen) - args.episodes) // 3} policy steps each)",
            flush=True,
        )
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
