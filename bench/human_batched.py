"""The simulated human on the batched simulator: driving figures at scale, and its throughput.

For each env (``drivegpt/Highway-v0``, ``drivegpt/HighwayDense-v0``) the batched human
(``drivegpt.sim.batched.human.BatchedHuman``, ``accel`` interface) drives ``--episodes`` held-out
seeds from 1,000,000 (``drivegpt.eval.batched.evaluate_batched``): collision rate with its Wilson 95%
interval, mean speed and lane changes per km (95% intervals from a bootstrap over episodes: lane
changes come in bursts per driver, so a Poisson interval would be too narrow). Next to them: the
highway-env human figures already measured by ``bench/human_driver.py`` (read from
``bench/results/human_driver_*.json``, not re-run) and a small highway-env reference run of
``--reference-episodes`` episodes of ``HumanDriver`` on the same seeds for lane changes per km,
which those files do not hold. The batched simulator's traffic for a seed is not highway-env's
(the two agree in distribution), while the human's personality and noise for a seed are the same.

Throughput: policy steps per second of the batched human at ``--throughput-batch`` episodes (the
human's decision alone, and decision + simulator step), on one thread like ``bench/sim_throughput.py``.

    .venv/bin/python bench/human_batched.py --episodes 2048 --out bench/results/human_batched

Writes ``OUT/human_batched.json`` and ``OUT/human_batched.md`` with the command, wall times and load
averages.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import torch

from drivegpt.core.atomic import write_json, write_text
from drivegpt.core.metrics import driving_metrics
from drivegpt.eval.batched import evaluate_batched
from drivegpt.eval.closed_loop import EVAL_SEED
from drivegpt.sim import batched
from drivegpt.sim.batched.human import BatchedHuman, Personalities
from drivegpt.sim.human import HumanDriver
from drivegpt.sim.personality import Personality
from drivegpt.sim.rollout import make_env

ENVS = ("drivegpt/Highway-v0", "drivegpt/HighwayDense-v0")
#: figures measured on highway-env by bench/human_driver.py, per env.
HIGHWAY_ENV_RESULTS = {
    "drivegpt/Highway-v0": "bench/results/human_driver_highway.json",
    "drivegpt/HighwayDense-v0": "bench/results/human_driver_dense_accel.json",
}


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def bootstrap(num: np.ndarray, den: np.ndarray, draws: int = 2000, seed: int = 0) -> list[float]:
    """95% percentile interval of sum(num) / sum(den) over episodes resampled with replacement."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(num), size=(draws, len(num)))  # (draws, E)
    ratios = num[idx].sum(1) / np.maximum(den[idx].sum(1), 1e-12)
    return [float(np.quantile(ratios, 0.025)), float(np.quantile(ratios, 0.975))]


def batched_row(env_id: str, episodes: int, seed: int, batch: int) -> tuple[dict[str, Any], list[int]]:
    """The batched human's figures on ``episodes`` seeds, and the seeds whose episode ended in a crash."""
    t0, c0, load0 = time.time(), time.process_time(), load_average()
    metrics, per = evaluate_batched("human", env_id, "accel", episodes, seed, batch, progress=False)
    wall, cpu = time.time() - t0, time.process_time() - c0
    km = per["distance_m"] / 1000.0  # (E,) [km]
    lanes = per["lane_changes"].astype(float)  # (E,)
    row = {
        "sim": "batched",
        "env": env_id,
        **metrics,
        "collisions": int(per["crashed"].sum()),
        "lane_changes": int(lanes.sum()),
        "lane_changes_per_km": float(lanes.sum() / km.sum()),
        "lane_changes_per_km_ci": bootstrap(lanes, km),
        "seeds": [seed, seed + episodes - 1],
        "wall_s": wall,
        "cpu_s": cpu,
        "load_average_start": load0,
        "load_average_end": load_average(),
    }
    return row, [int(x) for x in per["seed"][per["crashed"]]]


def reference_row(env_id: str, episodes: int, seed: int) -> dict[str, Any]:
    """HumanDriver on highway-env, ``episodes`` seeds from ``seed``: lane changes per km and the rest."""
    t0, load0 = time.time(), load_average()
    crashed, km, lanes, speeds = [], [], [], []
    for s in range(seed, seed + episodes):
        env = make_env(env_id, "accel")
        env.reset(seed=s)
        human = HumanDriver()
        human.reset(s, env)
        ego = env.unwrapped.vehicle
        lane, dist, changes, crash, row = ego.lane_index[2], 0.0, 0, False, []
        done = False
        while not done:
            x0 = ego.position.copy()
            _, _, term, trunc, _ = env.step(human.act())
            ego = env.unwrapped.vehicle
            dist += float(np.hypot(*(ego.position - x0)))
            changes += int(ego.lane_index[2] != lane)
            lane, crash, done = ego.lane_index[2], crash or ego.crashed, term or trunc
            row.append(ego.speed)
        env.close()
        crashed.append(crash)
        km.append(dist / 1000.0)
        lanes.append(changes)
        speeds.append(np.asarray(row))
    km_a, lanes_a = np.asarray(km), np.asarray(lanes, float)
    return {
        "sim": "highway-env (reference run)",
        "env": env_id,
        **driving_metrics(crashed, list(km_a * 1000.0), speeds),
        "collisions": int(np.sum(crashed)),
        "lane_changes": int(lanes_a.sum()),
        "lane_changes_per_km": float(lanes_a.sum() / km_a.sum()),
        "lane_changes_per_km_ci": bootstrap(lanes_a, km_a),
        "seeds": [seed, seed + episodes - 1],
        "wall_s": time.time() - t0,
        "load_average_start": load0,
        "load_average_end": load_average(),
    }


class _Draws:
    """Stands in for ``HumanDriver.rng``: hands out the batched driver's remaining noise draws."""

    def __init__(self, z: list[float]) -> None:
        self.z = z

    def normal(self, loc: float, scale: float) -> float:
        return loc + scale * self.z.pop(0)


def crash_replay(env_id: str, seed: int, lead: int = 6) -> dict[str, Any]:
    """Re-drive one batched crash in highway-env from ``lead`` steps before it.

    The batched episode is driven again to its crash; its state ``lead`` steps before goes into a
    highway-env env (``to_highway_env``) and ``HumanDriver`` takes over with the batched driver's
    personality, lane-change state, delay queue and remaining noise draws. Also says whether the
    crash is a *simultaneous merge*: the ego and the vehicle it hit both changing into one lane.
    """
    config = batched.make_config(env_id, "accel")
    state, human = batched.reset([seed], config), BatchedHuman(config)
    human.reset([seed], state)
    history = []
    while not bool(state.crashed[0, 0]) and not bool(batched.truncated(state)[0]):
        history.append((state, human.clone()))
        state = batched.step(state, human.act(state))
    crash = len(history)  # [steps] the step after which the ego had crashed
    hit = (state.crashed[0, 1:] & state.present[0, 1:]).nonzero()  # the simulator marks both vehicles
    other = int(hit[0]) + 1 if hit.numel() else 0  # the vehicle the ego hit
    recent = [s for s, _ in history[-lead:]] + [state]  # the last ``lead`` steps and the crash
    ego_merged = any(bool(s.lane[0, 0] != s.target_lane[0, 0]) for s in recent)
    other_merged = other > 0 and any(bool(s.lane[0, other] != s.target_lane[0, other]) for s in recent)
    same_target = other > 0 and int(state.target_lane[0, 0]) == int(state.target_lane[0, other])
    start = max(crash - lead, 0)
    past, driver = history[start]
    env = make_env(env_id, "accel")
    env.reset(seed=seed)
    batched.to_highway_env(past, 0, env)
    names = list(Personalities.__dataclass_fields__)
    twin = HumanDriver(personality=Personality(**{k: float(getattr(driver.p, k)[0]) for k in names}))
    twin.reset(seed, env)
    twin.target_lane = ("0", "1", int(driver.target_lane[0]))
    twin.since_lane_change = float(driver.since_lane_change[0])
    delay = int(driver.delay[0])
    twin.queue = deque(driver.history[0, driver.history.shape[1] - delay :].tolist())
    twin.primed = bool(driver.primed[0])
    twin.rng = _Draws(driver.noise[0, int(driver.t[0]) :].tolist())
    crash_he = None
    for k in range(2 * lead):
        _, _, terminated, truncated, _ = env.step(twin.act())
        if env.unwrapped.vehicle.crashed:
            crash_he = start + k + 1
            break
        if terminated or truncated:
            break
    env.close()
    return {
        "seed": seed,
        "batched_crash_step": crash,
        "replayed_from_step": start,
        "highway_env_crash_step": crash_he,
        "simultaneous_merge": ego_merged and other_merged and same_target,
    }


def measured_row(env_id: str) -> dict[str, Any] | None:
    """The highway-env human (accel) row of bench/results/human_driver_*.json, if measured."""
    path = Path(HIGHWAY_ENV_RESULTS[env_id])
    if not path.is_file():
        return None
    rows = json.loads(path.read_text())["rows"]
    found = [r for r in rows if r["policy"] == "human" and r["action"] == "accel"]
    return {**found[0], "sim": "highway-env", "source": str(path)} if found else None


def throughput(env_id: str, batch: int, seconds: float) -> dict[str, Any]:
    """Policy steps per second of the batched human at ``batch`` episodes, one thread."""
    config = batched.make_config(env_id, "accel")
    seeds = list(range(EVAL_SEED, EVAL_SEED + batch))
    state = batched.reset(seeds, config)
    human = BatchedHuman(config)
    human.reset(seeds, state)
    for _ in range(3):  # warm-up, and out of the spawn configuration
        state = batched.step(state, human.act(state))
    load0 = load_average()
    act_cpu = step_cpu = act_wall = step_wall = 0.0
    calls = 0
    while act_cpu + step_cpu < seconds:
        c0, w0 = time.process_time(), time.perf_counter()
        token = human.act(state)
        c1, w1 = time.process_time(), time.perf_counter()
        state = batched.step(state, token)
        c2, w2 = time.process_time(), time.perf_counter()
        act_cpu, step_cpu, act_wall, step_wall = (
            act_cpu + c1 - c0,
            step_cpu + c2 - c1,
            act_wall + w1 - w0,
            step_wall + w2 - w1,
        )
        calls += 1
    return {
        "env": env_id,
        "batch": batch,
        "calls": calls,
        "threads": torch.get_num_threads(),
        "human_steps_per_cpu_s": batch * calls / act_cpu,
        "human_steps_per_wall_s": batch * calls / act_wall,
        "human_and_sim_steps_per_cpu_s": batch * calls / (act_cpu + step_cpu),
        "human_and_sim_steps_per_wall_s": batch * calls / (act_wall + step_wall),
        "human_ms_per_call": 1000 * act_cpu / calls,
        "sim_ms_per_call": 1000 * step_cpu / calls,
        "load_average_start": load0,
        "load_average_end": load_average(),
    }


def ci(r: dict[str, Any], key: str, fmt: str) -> str:
    lo, hi = r[f"{key}_ci"]
    return f"{r[key]:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]"


def markdown(out: dict[str, Any]) -> str:
    lines = [
        "# The simulated human on the batched simulator",
        "",
        f"Command: `{out['command']}` (wall {out['wall_s']:.0f} s; load average at the start "
        f"{out['load_average_start']}, at the end {out['load_average_end']}; {out['machine']}).",
        "",
        "Held-out seeds from 1,000,000, `accel` interface. Batched rows: the batched simulator's traffic "
        "for each seed; highway-env rows: `bench/results/human_driver_*.json` (measured earlier, not "
        "re-run) and a small reference run for lane changes per km. Intervals are 95%: Wilson for "
        "collision rates, a bootstrap over episodes for lane changes per km.",
        "",
        "| env | simulator | episodes | collisions | collision rate [Wilson 95%] | mean speed [m/s] "
        "| km | lane changes per km [95%] | wall [s] | load average |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in out["rows"]:
        lanes = ci(r, "lane_changes_per_km", ".3f") if "lane_changes_per_km" in r else "-"
        speed = f"{r['mean_speed_mps']:.2f}" if "mean_speed_mps" in r else "-"
        load = r.get("load_average") or f"{r['load_average_start']} → {r['load_average_end']}"
        lines.append(
            f"| {r['env']} | {r['sim']} | {r['episodes']} | {r['collisions']} "
            f"| {ci(r, 'collision_rate', '.4f')} | {speed} | {r['km_driven']:.1f} | {lanes} "
            f"| {r['wall_s']:.0f} | {load} |"
        )
    replays = out["crash_replays"]
    if replays:
        same = sum(r["highway_env_crash_step"] == r["batched_crash_step"] for r in replays)
        merges = sum(r["simultaneous_merge"] for r in replays)
        lines += [
            "",
            f"Batched crashes re-driven in highway-env (the first {len(replays)} over both envs; the state a "
            "few steps before the crash put into highway-env, `HumanDriver` carrying the batched driver's "
            f"state and remaining noise): {same} of {len(replays)} crash at the same step. "
            f"{merges} of {len(replays)} are simultaneous merges (the ego and the vehicle it hits change "
            "into the same lane at once: the human's MOBIL looks at the vehicles in the target lane, not at "
            "those about to enter it).",
            "",
            "| env | seed | batched crash step | re-driven from step | highway-env crash step "
            "| simultaneous merge |",
            "|---|---|---|---|---|---|",
            *(
                f"| {r['env']} | {r['seed']} | {r['batched_crash_step']} | {r['replayed_from_step']} "
                f"| {r['highway_env_crash_step']} | {'yes' if r['simultaneous_merge'] else 'no'} |"
                for r in replays
            ),
        ]
    lines += [
        "",
        "Throughput (one thread, float64, CPU): policy steps per second of the batched human.",
        "",
        "| env | B | human decision [steps/CPU-s] | human + simulator step [steps/CPU-s] | [steps/wall-s] "
        "| ms per call (human, sim) | load average |",
        "|---|---|---|---|---|---|---|",
    ]
    for t in out["throughput"]:
        lines.append(
            f"| {t['env']} | {t['batch']} | {t['human_steps_per_cpu_s']:.0f} "
            f"| {t['human_and_sim_steps_per_cpu_s']:.0f} | {t['human_and_sim_steps_per_wall_s']:.0f} "
            f"| {t['human_ms_per_call']:.1f}, {t['sim_ms_per_call']:.1f} "
            f"| {t['load_average_start']} → {t['load_average_end']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--episodes", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--seed", type=int, default=EVAL_SEED)
    ap.add_argument("--envs", nargs="+", default=list(ENVS))
    ap.add_argument(
        "--reference-episodes", type=int, default=20, help="highway-env episodes per env (0: none)"
    )
    ap.add_argument(
        "--replays", type=int, default=10, help="batched crashes re-driven in highway-env, per env"
    )
    ap.add_argument("--throughput-batch", type=int, default=1024)
    ap.add_argument("--throughput-seconds", type=float, default=5.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="bench/results/human_batched")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0, load0 = time.time(), load_average()
    out: dict[str, Any] = {
        "command": "python bench/human_batched.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.platform()}, {os.cpu_count()} CPU cores",
        "load_average_start": load0,
        "rows": [],
        "crash_replays": [],
        "throughput": [],
    }
    for env_id in args.envs:
        row, crashed = batched_row(env_id, args.episodes, args.seed, args.batch)
        out["rows"].append(row)
        print(json.dumps(row), flush=True)
        out["crash_replays"] += [{"env": env_id, **crash_replay(env_id, s)} for s in crashed[: args.replays]]
        if (row := measured_row(env_id)) is not None:
            out["rows"].append(row)
        if args.reference_episodes:
            out["rows"].append(reference_row(env_id, args.reference_episodes, args.seed))
            print(json.dumps(out["rows"][-1]), flush=True)
        out["throughput"].append(throughput(env_id, args.throughput_batch, args.throughput_seconds))
        print(json.dumps(out["throughput"][-1]), flush=True)
    out["wall_s"], out["load_average_end"] = time.time() - t0, load_average()
    dest = Path(args.out)
    dest.mkdir(parents=True, exist_ok=True)
    write_json(dest / "human_batched.json", out)
    write_text(dest / "human_batched.md", markdown(out))
    print(markdown(out))


if __name__ == "__main__":
    main()
