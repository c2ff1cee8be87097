"""Distribution parity of the batched simulator with highway-env: the human driving the same seeds.

Per road (Highway, HighwayDense) the simulated human drives held-out seeds from 1,000,000:
``HumanDriver`` on highway-env (worker processes) and ``BatchedHuman`` on the batched simulator. Each
simulator draws its own traffic for a seed, so the two agree in distribution, not draw by draw.
Compared, each with a 95% interval: collision rate (Wilson), mean speed and lane changes per km
(bootstrap over episodes); and the time-headway distributions of the ego and of the traffic (each
vehicle's bumper-to-bumper gap to the vehicle ahead in its lane over its own speed, above 1 m/s,
after every policy step): the two-sample Kolmogorov-Smirnov distance D against its 95% critical value
counting each *episode* as one sample (headways within an episode are correlated, so the critical
value of independent samples would be far too strict).

    python bench/sim_distribution.py --highway-episodes 200 --batched-episodes 2000 --workers 2 \
        --out bench/results/sim_distribution

highway-env's episodes are slow (about 1.5 s each on one core in dense traffic), so each one is kept in
``--cache`` (one ``.npz`` per seed, written atomically): a killed run resumes and a larger
``--highway-episodes`` only drives the seeds it lacks.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from episode_cache import cached

from drivegpt.core.metrics import wilson_interval
from drivegpt.sim import batched
from drivegpt.sim.batched.config import LENGTH
from drivegpt.sim.batched.human import BatchedHuman
from drivegpt.sim.human import HumanDriver
from drivegpt.sim.rollout import make_env

ENVS = ("drivegpt/Highway-v0", "drivegpt/HighwayDense-v0")
SEED = 1_000_000
MIN_SPEED = 1.0  # [m/s] headways of slower vehicles are not counted


def headways(x: np.ndarray, lane: np.ndarray, speed: np.ndarray, present: np.ndarray) -> np.ndarray:
    """(B, N) time headway [s] of every vehicle to the nearest vehicle ahead in its lane: (gap - LENGTH)
    / speed; NaN where there is none, the vehicle is absent or slower than ``MIN_SPEED``."""
    dx = x[:, None, :] - x[:, :, None]  # (B, i, j) [m] x_j - x_i
    ahead = (lane[:, None, :] == lane[:, :, None]) & present[:, None, :] & (dx > 0)  # (B, i, j)
    gap = np.where(ahead, dx, np.inf).min(axis=2) - LENGTH  # (B, N) [m]
    ok = present & np.isfinite(gap) & (speed > MIN_SPEED)
    return np.where(ok, gap / np.maximum(speed, MIN_SPEED), np.nan)


def highway_env_episode(job: tuple[str, int]) -> dict[str, Any]:
    """One seed of the human on highway-env: crashed, km, lane changes, speeds, ego/traffic headways."""
    env_id, seed = job
    env = make_env(env_id, "accel")
    env.reset(seed=seed)
    human = HumanDriver()
    human.reset(seed, env)
    ego = env.unwrapped.vehicle
    lane, dist, changes, crashed, done = ego.lane_index[2], 0.0, 0, False, False
    speeds, ego_thw, traffic_thw = [], [], []
    while not done:
        x0 = ego.position.copy()
        _, _, term, trunc, _ = env.step(human.act())
        ego = env.unwrapped.vehicle
        dist += float(np.hypot(*(ego.position - x0)))
        changes += int(ego.lane_index[2] != lane)
        lane, crashed, done = ego.lane_index[2], crashed or ego.crashed, term or trunc
        speeds.append(float(ego.speed))
        vs = [ego] + [v for v in env.unwrapped.road.vehicles if v is not ego]
        x = np.array([[v.position[0] for v in vs]])
        h = headways(x, np.array([[v.lane_index[2] for v in vs]]), np.array([[v.speed for v in vs]]), x == x)
        ego_thw.append(h[0, 0])
        traffic_thw.extend(h[0, 1:].tolist())
    env.close()
    return {
        "crashed": crashed, "km": dist / 1000, "lane_changes": changes, "speed": float(np.mean(speeds)),
        "ego_thw": np.asarray(ego_thw), "traffic_thw": np.asarray(traffic_thw),
    }  # fmt: skip


def cached_episode(job: tuple[str, int, str]) -> dict[str, Any]:
    """``highway_env_episode`` through the per-seed cache in directory ``job[2]``."""
    env_id, seed, cache = job
    path = Path(cache) / env_id.replace("/", "_") / f"{seed}.npz"
    rec = cached(path, lambda: highway_env_episode((env_id, seed)))
    return rec | {k: rec[k].item() for k in ("crashed", "km", "lane_changes", "speed")}


def batched_episodes(env_id: str, seeds: list[int], batch: int) -> list[dict[str, Any]]:
    """The same records for ``seeds`` on the batched simulator, ``batch`` episodes at a time."""
    out = []
    config = batched.make_config(env_id, "accel")
    for lo in range(0, len(seeds), batch):
        chunk = seeds[lo : lo + batch]
        state = batched.reset(chunk, config)
        human = BatchedHuman(config)
        human.reset(chunk, state)
        b = len(chunk)
        done = np.zeros(b, bool)
        crashed, dist, changes = np.zeros(b, bool), np.zeros(b), np.zeros(b, int)
        speeds: list[list[float]] = [[] for _ in range(b)]
        ego_thw: list[list[float]] = [[] for _ in range(b)]
        traffic_thw: list[list[np.ndarray]] = [[] for _ in range(b)]
        while not done.all():
            x0, y0, lane0 = state.x[:, 0].numpy(), state.y[:, 0].numpy(), state.lane[:, 0].numpy()
            state = batched.step(state, human.act(state))
            alive = ~done
            x, lane, speed = state.x.numpy(), state.lane.numpy(), state.speed.numpy()
            dist += np.where(alive, np.hypot(x[:, 0] - x0, state.y[:, 0].numpy() - y0), 0.0)
            changes += alive & (lane[:, 0] != lane0)
            crashed |= alive & state.crashed[:, 0].numpy()
            h = headways(x, lane, speed, state.present.numpy())
            for i in np.flatnonzero(alive):
                speeds[i].append(float(speed[i, 0]))
                ego_thw[i].append(h[i, 0])
                traffic_thw[i].append(h[i, 1:])
            done |= (batched.terminated(state) | batched.truncated(state)).numpy()
        for i in range(b):
            out.append({
                "crashed": bool(crashed[i]), "km": dist[i] / 1000, "lane_changes": int(changes[i]),
                "speed": float(np.mean(speeds[i])), "ego_thw": np.asarray(ego_thw[i]),
                "traffic_thw": np.concatenate(traffic_thw[i]),
            })  # fmt: skip
    return out


def bootstrap(num: np.ndarray, den: np.ndarray | None = None, draws: int = 2000) -> list[float]:
    """95% interval of sum(num) / sum(den) (den: the count) over episodes resampled with replacement."""
    rng = np.random.default_rng(0)
    den = np.ones_like(num) if den is None else den
    idx = rng.integers(0, len(num), (draws, len(num)))
    ratios = num[idx].sum(1) / den[idx].sum(1)
    return [float(np.quantile(ratios, 0.025)), float(np.quantile(ratios, 0.975))]


def ks_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the empirical CDFs."""
    a, b = np.sort(a[np.isfinite(a)]), np.sort(b[np.isfinite(b)])
    grid = np.concatenate([a, b])
    return float(
        np.abs(np.searchsorted(a, grid, "right") / len(a) - np.searchsorted(b, grid, "right") / len(b)).max()
    )


def summary(eps: list[dict[str, Any]]) -> dict[str, Any]:
    k, n = sum(e["crashed"] for e in eps), len(eps)
    km = np.array([e["km"] for e in eps])
    lanes = np.array([e["lane_changes"] for e in eps], float)
    speed = np.array([e["speed"] for e in eps])
    return {
        "episodes": n, "collisions": k, "collision_rate": k / n,
        "collision_rate_ci": list(wilson_interval(k, n)),
        "mean_speed": float(speed.mean()), "mean_speed_ci": bootstrap(speed),
        "lane_changes_per_km": float(lanes.sum() / km.sum()), "lane_changes_per_km_ci": bootstrap(lanes, km),
        "km": float(km.sum()),
    }  # fmt: skip


def overlap(a: list[float], b: list[float]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--highway-episodes", type=int, default=200)
    ap.add_argument("--batched-episodes", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--envs", nargs="+", default=list(ENVS))
    ap.add_argument("--out", type=Path, default=Path("bench/results/sim_distribution"))
    ap.add_argument("--cache", default="runs/sim_distribution_cache", help="per-seed highway-env records")
    args = ap.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for env_id in args.envs:
        load0, t0 = os.getloadavg(), time.time()
        with ProcessPoolExecutor(args.workers) as pool:
            jobs = [(env_id, SEED + i, args.cache) for i in range(args.highway_episodes)]
            he = list(pool.map(cached_episode, jobs, chunksize=4))
        t_he = time.time() - t0
        t1 = time.time()
        bt = batched_episodes(env_id, list(range(SEED, SEED + args.batched_episodes)), args.batch)
        t_b = time.time() - t1
        row: dict[str, Any] = {"env": env_id, "highway_env": summary(he), "batched": summary(bt)}
        n1, n2 = len(he), len(bt)
        crit = 1.358 * math.sqrt((n1 + n2) / (n1 * n2))  # 95%, one sample per episode
        for who in ("ego_thw", "traffic_thw"):
            a = np.concatenate([e[who] for e in he])
            b = np.concatenate([e[who] for e in bt])
            d = ks_distance(a, b)
            q = [0.1, 0.5, 0.9]
            row[who] = {
                "ks_d": d, "critical_d_per_episode": crit, "agree": d <= crit,
                "samples": [int(np.isfinite(a).sum()), int(np.isfinite(b).sum())],
                "quantiles_highway_env": np.nanquantile(a, q).round(3).tolist(),
                "quantiles_batched": np.nanquantile(b, q).round(3).tolist(),
            }  # fmt: skip
        for key in ("collision_rate_ci", "mean_speed_ci", "lane_changes_per_km_ci"):
            row[f"{key[:-3]}_agree"] = overlap(row["highway_env"][key], row["batched"][key])
        row |= {
            "wall_s_highway_env": t_he,
            "wall_s_batched": t_b,
            "load_start": load0,
            "load_end": os.getloadavg(),
        }
        rows.append(row)
        print(json.dumps(row, indent=1), flush=True)
    command = "python bench/sim_distribution.py " + " ".join(
        f"--{k.replace('_', '-')} {' '.join(v) if isinstance(v, list) else v}" for k, v in vars(args).items()
    )
    (args.out / "results.json").write_text(json.dumps({"command": command, "rows": rows}, indent=1) + "\n")
    (args.out / "README.md").write_text(markdown(command, rows))


def markdown(command: str, rows: list[dict[str, Any]]) -> str:
    def ci(r: dict[str, Any], key: str, fmt: str) -> str:
        lo, hi = r[f"{key}_ci"]
        return f"{r[key]:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]"

    lines = [
        "# Distribution parity: the human on highway-env and on the batched simulator", "",
        f"Command: `{command}`. Held-out seeds from {SEED:,}; each simulator draws its own traffic for a "
        "seed. Intervals 95%: Wilson (collision rate), bootstrap over episodes (speed, lane changes "
        "per km). Time headway: two-sample KS distance D against the 95% critical value with one sample "
        "per episode.", "",
        "| env | simulator | episodes | collision rate | mean speed [m/s] | lane changes per km | km |",
        "|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for r in rows:
        for sim in ("highway_env", "batched"):
            s = r[sim]
            lines.append(
                f"| `{r['env']}` | {sim.replace('_', '-')} | {s['episodes']} | "
                f"{ci(s, 'collision_rate', '.4f')} | "
                f"{ci(s, 'mean_speed', '.2f')} | {ci(s, 'lane_changes_per_km', '.3f')} | {s['km']:.1f} |"
            )
    lines += ["", "| env | headways of | KS D | critical D | agree | samples (highway-env, batched) | "
              "10/50/90% highway-env [s] | 10/50/90% batched [s] |",
              "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        for who in ("ego_thw", "traffic_thw"):
            k = r[who]
            lines.append(
                f"| `{r['env']}` | {'ego' if who == 'ego_thw' else 'traffic'} | {k['ks_d']:.3f} | "
                f"{k['critical_d_per_episode']:.3f} | {'yes' if k['agree'] else 'no'} | {k['samples']} | "
                f"{k['quantiles_highway_env']} | {k['quantiles_batched']} |"
            )
    lines += ["", "Intervals that overlap (collision rate, speed, lane changes per km):", ""]
    for r in rows:
        flags = ", ".join(
            f"{k}: {'yes' if r[f'{k}_agree'] else 'no'}"
            for k in ("collision_rate", "mean_speed", "lane_changes_per_km")
        )
        lines.append(
            f"- `{r['env']}`: {flags}; wall {r['wall_s_highway_env']:.0f} s (highway-env), "
            f"{r['wall_s_batched']:.0f} s (batched); load average {r['load_start'][0]:.2f} → "
            f"{r['load_end'][0]:.2f}"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
