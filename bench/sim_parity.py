"""One-step parity of the batched highway simulator with highway-env over many imported states.

For each action kind, highway-env episodes are driven with random actions; before every policy
step the env's state is imported (``from_highway_env``), then highway-env steps it and the batched
simulator steps all imported states at once. Printed: the max abs error per quantity over all
vehicles and states, and the count of discrete mismatches (lane, target lane, crash, pending impact,
observation rows, reward, episode end).

    .venv/bin/python bench/sim_parity.py --states 1000 --env drivegpt/HighwayDense-v0
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np
import torch

import drivegpt_envs
from drivegpt.sim.batched import concat, from_highway_env, observe, reward, step, terminated, truncated


def _action(kind: str, rng: np.random.Generator) -> object:
    if kind == "meta":
        return int(rng.choice([0, 1, 1, 1, 2, 3, 4, 4]))
    if kind == "continuous":
        return np.array([rng.uniform(-0.5, 0.3), rng.uniform(-0.03, 0.03)])
    return int(rng.integers(0, 42))


def collect(kind: str, env_id: str, states: int, horizon: int, seed: int) -> tuple[list, list, list]:
    """(imported states, actions, env snapshots after the step) for ``states`` policy steps."""
    imported, actions, after = [], [], []
    rng = np.random.default_rng(seed)
    env = gym.make(env_id)
    env.unwrapped.configure(drivegpt_envs.action_config(kind))
    episode = 0
    while len(imported) < states:
        env.reset(seed=seed * 100_000 + episode)
        episode += 1
        for _ in range(horizon):
            if len(imported) >= states:
                break
            imported.append(from_highway_env([env]))
            a = _action(kind, rng)
            obs, r, term, trunc, _ = env.step(a)
            u = env.unwrapped
            vehicles = [
                (
                    v.position.copy(),
                    v.heading,
                    v.speed,
                    v.lane_index[2],
                    getattr(v, "target_lane_index", v.lane_index)[2],
                    v.crashed,
                    v.impact is not None,
                )
                for v in u.road.vehicles
            ]
            actions.append(a)
            after.append((vehicles, obs, r, term, trunc))
            if term or trunc:
                break
    return imported, actions, after


def compare(kind: str, imported: list, actions: list, after: list) -> dict[str, float]:
    state = concat(imported)
    stepped = step(state, torch.as_tensor(np.array(actions)))
    obs, rew = observe(stepped).numpy(), reward(stepped).numpy()
    term, trunc = terminated(stepped).numpy(), truncated(stepped).numpy()
    err = {"x": 0.0, "y": 0.0, "heading": 0.0, "speed": 0.0, "obs": 0.0, "reward": 0.0}
    mismatches = {"lane": 0, "target_lane": 0, "crashed": 0, "impact": 0, "done": 0}
    for b, (vehicles, o, r, te, tr) in enumerate(after):
        for i, (pos, h, v, lane, target, crashed, impact) in enumerate(vehicles):
            err["x"] = max(err["x"], abs(stepped.x[b, i].item() - pos[0]))
            err["y"] = max(err["y"], abs(stepped.y[b, i].item() - pos[1]))
            err["heading"] = max(err["heading"], abs(stepped.heading[b, i].item() - h))
            err["speed"] = max(err["speed"], abs(stepped.speed[b, i].item() - v))
            mismatches["lane"] += int(stepped.lane[b, i].item() != lane)
            mismatches["target_lane"] += int(stepped.target_lane[b, i].item() != target)
            mismatches["crashed"] += int(bool(stepped.crashed[b, i]) != crashed)
            mismatches["impact"] += int(bool(stepped.has_impact[b, i]) != impact)
        err["obs"] = max(err["obs"], float(np.abs(obs[b] - o).max()))
        err["reward"] = max(err["reward"], abs(float(rew[b]) - r))
        mismatches["done"] += int(bool(term[b]) != te or bool(trunc[b]) != tr)
    return {**err, **{f"{k} mismatches": float(v) for k, v in mismatches.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--states", type=int, default=1000, help="imported states per action kind")
    parser.add_argument("--env", default="drivegpt/HighwayDense-v0")
    parser.add_argument("--kinds", nargs="+", default=["accel", "meta", "continuous"])
    parser.add_argument("--horizon", type=int, default=30, help="policy steps per highway-env episode")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"one-step parity, {args.env}, {args.states} imported states per action kind")
    for kind in args.kinds:
        t0 = time.perf_counter()
        imported, actions, after = collect(kind, args.env, args.states, args.horizon, args.seed)
        changing = sum(int((s.lane != s.target_lane)[0, 1:].sum()) for s in imported)
        aborted = sum(  # highway-env aborted a lane change: the target went back to the unchanged lane
            int(before.lane[0, i] != before.target_lane[0, i] and veh[3] == veh[4] == int(before.lane[0, i]))
            for before, (vehicles, *_) in zip(imported, after, strict=True)
            for i, veh in enumerate(vehicles)
            if i > 0
        )
        crashes = sum(int(te) for (_, _, _, te, _) in after)
        result = compare(kind, imported, actions, after)
        print(
            f"\n[{kind}] states {len(imported)}, traffic lane changes under way {changing}, "
            f"aborted {aborted}, ego crashes during the step {crashes} ({time.perf_counter() - t0:.0f} s)"
        )
        for name, value in result.items():
            unit = {"x": "m", "y": "m", "heading": "rad", "speed": "m/s"}.get(name, "")
            label = f"max abs error {name}" if "mismatches" not in name else name
            print(f"  {label:32s} {value:.3g} {unit}")


if __name__ == "__main__":
    main()
