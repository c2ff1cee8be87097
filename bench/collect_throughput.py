"""Collection throughput: policy steps/s of `collect` (1 and 2 workers) vs raw highway-env stepping.

Raw = the same env config stepped with a constant action (IDLE / zeros), no driver, no recording,
in this process, over the same seeds. Logging overhead = 1 - collect_1worker / raw.

    python bench/collect_throughput.py --episodes 150
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from drivegpt.data.collect import CollectConfig, CollectScenario, collect
from drivegpt.sim.rollout import make_env


def raw_steps_per_s(env_id: str, action: str, episodes: int, seed: int) -> float:
    env = make_env(env_id, action)
    const = np.zeros(2, np.float32) if action == "continuous" else 1
    steps, t0 = 0, time.perf_counter()
    for i in range(episodes):
        env.reset(seed=seed + i)
        done = False
        while not done:
            _, _, term, trunc, _ = env.step(const)
            steps += 1
            done = term or trunc
    return steps / (time.perf_counter() - t0)


def driver_steps_per_s(env_id: str, action: str, episodes: int, seed: int) -> float:
    """The human driver at the wheel, nothing recorded: isolates the cost of logging itself."""
    from drivegpt.sim.human import HumanDriver

    env, driver = make_env(env_id, action), HumanDriver()
    steps, t0 = 0, time.perf_counter()
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        driver.reset(seed + i, env)
        done = False
        while not done:
            obs, _, term, trunc, _ = env.step(driver.act(obs))
            steps += 1
            done = term or trunc
    return steps / (time.perf_counter() - t0)


def collect_steps_per_s(env_id: str, action: str, episodes: int, seed: int, workers: int) -> float:
    cfg = CollectConfig(
        action=action,
        scenarios=(CollectScenario(env_id=env_id),),
        episodes=episodes,
        seed=seed,
        workers=workers,
    )
    tmp = Path(tempfile.mkdtemp())
    try:
        t0 = time.perf_counter()
        out = collect(cfg, tmp / "logs", progress=False)
        wall = time.perf_counter() - t0
        steps = json.loads((out / "manifest.json").read_text())["steps"]
        return steps / wall
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--episodes", type=int, default=150)
    ap.add_argument("--env", default="drivegpt/Highway-v0")
    ap.add_argument("--action", default="meta")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3, help="interleaved repeats; medians reported")
    ap.add_argument("--out", default="bench/results/collect_throughput.json")
    args = ap.parse_args()
    runs: dict[str, list[float]] = {"raw": [], "unrecorded": [], "one": [], "two": []}
    a = (args.env, args.action, args.episodes, args.seed)
    for r in range(args.repeats):  # interleaved so that machine drift hits every variant alike
        runs["raw"].append(raw_steps_per_s(*a))
        runs["unrecorded"].append(driver_steps_per_s(*a))
        runs["one"].append(collect_steps_per_s(*a, workers=1))
        runs["two"].append(collect_steps_per_s(*a, workers=2))
        print(f"repeat {r}: " + ", ".join(f"{k}={v[-1]:.1f}" for k, v in runs.items()), flush=True)
    raw, unrecorded, one, two = (float(np.median(runs[k])) for k in ("raw", "unrecorded", "one", "two"))
    res = {
        "env": args.env,
        "action": args.action,
        "episodes": args.episodes,
        "raw_steps_per_s": raw,
        "driver_unrecorded_steps_per_s": unrecorded,
        "collect_1_worker_steps_per_s": one,
        "collect_2_workers_steps_per_s": two,
        "logging_overhead": 1 - one / raw,
        "recording_overhead": 1 - one / unrecorded,
        "speedup_2_workers": two / one,
        "repeats": runs,
        "machine": platform.platform(),
    }
    print(f"raw highway-env (constant action): {raw:.1f} steps/s")
    print(f"collect, 1 worker:  {one:.1f} steps/s  -> overhead {100 * (1 - one / raw):.1f}% (target <= 15%)")
    print(
        f"human driver, not recorded: {unrecorded:.1f} steps/s -> recording+writing overhead "
        f"{100 * (1 - one / unrecorded):.1f}%"
    )
    print(f"collect, 2 workers: {two:.1f} steps/s  -> speed-up {two / one:.2f}x (target >= 1.7x)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
