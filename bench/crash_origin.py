"""Where do the human's crashes on the batched simulator come from: its spawn draw, or its dynamics?

The two simulators draw different traffic for a seed, so their collision rates can only agree in
distribution. When they seem not to, two checks split the question:

1. **The spawn distribution.** ``--spawns`` resets on each simulator (highway-env: seeds from
   1,000,000; batched: from 2,000,000, its own draw either way): the ego's gap to the vehicle ahead in
   its lane, the vehicles in the adjacent lanes within 20 m of it, its position and the length of the
   column, each compared by a two-sample Kolmogorov-Smirnov test (asymptotic p-value).
2. **The dynamics from the same state.** The batched human drives ``--episodes`` held-out episodes;
   each crash is re-driven in highway-env from its spawn state (``to_highway_env``, with the batched
   driver's personality, lane-change state, delay queue and remaining noise draws:
   ``bench/human_batched.py``'s ``crash_replay``). A crash that recurs at the same step says the
   simulators agree from that state on; it also says whether it is a *simultaneous merge* (the ego and
   the vehicle it hits changing into one lane at once).

    .venv/bin/python bench/crash_origin.py --env drivegpt/HighwayDense-v0 --episodes 2000 --spawns 3000 \
        --out bench/results/sim_distribution/crash_origin

Writes ``OUT/crash_origin.json`` and ``OUT/README.md`` with the command, wall times and load averages.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from drivegpt.core.atomic import write_json, write_text
from drivegpt.eval.batched import evaluate_batched
from drivegpt.sim import batched
from drivegpt.sim.rollout import make_env

sys.path.insert(0, str(Path(__file__).parent))
from human_batched import crash_replay  # noqa: E402
from sim_distribution import ks_distance  # noqa: E402

SEED = 1_000_000
BATCHED_SPAWN_SEED = 2_000_000
ADJACENT_WINDOW = 20.0  # [m] an adjacent-lane vehicle this close to the ego, ahead or behind
FEATURES = ("gap ahead [m]", "adjacent-lane vehicles within 20 m", "ego x [m]", "column length [m]")


def spawn_features(x: np.ndarray, lane: np.ndarray) -> tuple[float, float, float, float]:
    """The features of one spawn; ``x``, ``lane`` (N,) with the ego first."""
    same, adjacent = lane == lane[0], np.abs(lane - lane[0]) == 1
    same[0] = False
    ahead = x[same] - x[0]
    ahead = ahead[ahead > 0]
    near = int((adjacent & (np.abs(x - x[0]) < ADJACENT_WINDOW)).sum())
    return (float(ahead.min()) if len(ahead) else math.inf, near, float(x[0]), float(x.max() - x.min()))


def ks_test(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov distance and its asymptotic p-value (Stephens' correction)."""
    d = ks_distance(a, b)
    na, nb = int(np.isfinite(a).sum()), int(np.isfinite(b).sum())
    ne = na * nb / (na + nb)
    lam = (math.sqrt(ne) + 0.12 + 0.11 / math.sqrt(ne)) * d
    p = 2 * sum((-1) ** (j - 1) * math.exp(-2 * j * j * lam * lam) for j in range(1, 101))
    return d, min(max(p, 0.0), 1.0)


def spawns(env_id: str, n: int) -> dict[str, Any]:
    """The spawn features of ``n`` resets on each simulator, side by side."""
    t0, env, ref = time.perf_counter(), make_env(env_id, "accel"), []
    for seed in range(SEED, SEED + n):
        env.reset(seed=seed)
        vs = env.unwrapped.road.vehicles
        ref.append(
            spawn_features(np.array([v.position[0] for v in vs]), np.array([v.lane_index[2] for v in vs]))
        )
    env.close()
    wall_he = time.perf_counter() - t0
    state = batched.reset(
        range(BATCHED_SPAWN_SEED, BATCHED_SPAWN_SEED + n), batched.make_config(env_id, "accel")
    )
    ours = [spawn_features(state.x[i].numpy(), state.lane[i].numpy()) for i in range(n)]
    he, bt = np.array(ref, float), np.array(ours, float)
    rows = []
    for k, name in enumerate(FEATURES):
        d, p = ks_test(he[:, k], bt[:, k])
        rows.append(
            {
                "feature": name,
                "highway_env_q10_50_90": np.percentile(he[np.isfinite(he[:, k]), k], [10, 50, 90])
                .round(2)
                .tolist(),
                "batched_q10_50_90": np.percentile(bt[np.isfinite(bt[:, k]), k], [10, 50, 90])
                .round(2)
                .tolist(),
                "ks_d": d,
                "p_value": p,
            }
        )
    return {"resets": n, "wall_s_highway_env": wall_he, "rows": rows}


def crashes(env_id: str, episodes: int, batch: int) -> dict[str, Any]:
    """The batched human's crashes over ``episodes`` held-out seeds, each re-driven in highway-env."""
    metrics, per = evaluate_batched("human", env_id, "accel", episodes, SEED, batch, progress=False)
    seeds = per["seed"][per["crashed"].astype(bool)].tolist()
    steps = per["steps"][per["crashed"].astype(bool)].tolist()
    redriven = [crash_replay(env_id, int(s), lead=int(k) + 1) for s, k in zip(seeds, steps, strict=True)]
    return {"episodes": episodes, "collisions": len(seeds), "collision_rate_ci": metrics["collision_rate_ci"],
            "redriven": redriven}  # fmt: skip


def markdown(command: str, result: dict[str, Any]) -> str:
    sp, cr = result["spawn"], result["crashes"]
    same = sum(r["highway_env_crash_step"] == r["batched_crash_step"] for r in cr["redriven"])
    merges = sum(r["simultaneous_merge"] for r in cr["redriven"])
    lines = [
        f"# Where the human's crashes on the batched simulator come from: `{result['env']}`",
        "",
        f"Command: `{command}`. Load average {result['load_start']:.2f} → {result['load_end']:.2f}.",
        "",
        f"**Spawns**, {sp['resets']:,} resets on each simulator (each its own draw), two-sample KS:",
        "",
        "| feature | highway-env 10/50/90% | batched 10/50/90% | KS D | p |",
        "|---|---|---|---|---|",
        *[
            f"| {r['feature']} | {r['highway_env_q10_50_90']} | {r['batched_q10_50_90']} | {r['ks_d']:.3f} | "
            f"{r['p_value']:.2f} |"
            for r in sp["rows"]
        ],  # fmt: skip
        "",
        f"**Crashes**: {cr['collisions']} in {cr['episodes']:,} batched episodes; re-driven in highway-env "
        f"from the spawn state, {same} of {cr['collisions']} crash at the same step; {merges} are "
        "simultaneous merges.",
        "",
        "| seed | batched crash step | highway-env crash step | simultaneous merge |",
        "|---|---|---|---|",
        *[
            f"| {r['seed']} | {r['batched_crash_step']} | {r['highway_env_crash_step']} | "
            f"{'yes' if r['simultaneous_merge'] else 'no'} |"
            for r in cr["redriven"]
        ],  # fmt: skip
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--env", default="drivegpt/HighwayDense-v0")
    ap.add_argument("--episodes", type=int, default=2000, help="batched episodes whose crashes are re-driven")
    ap.add_argument("--spawns", type=int, default=3000, help="resets compared on each simulator")
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    load_start, t0 = os.getloadavg()[0], time.perf_counter()
    result = {"env": args.env, "spawn": spawns(args.env, args.spawns)}
    result["crashes"] = crashes(args.env, args.episodes, args.batch)
    result |= {"wall_s": time.perf_counter() - t0, "load_start": load_start, "load_end": os.getloadavg()[0]}
    command = "python bench/" + " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
    text = markdown(command, result)
    print(text)
    if args.out is not None:
        write_json(args.out / "crash_origin.json", {"command": command, **result})
        write_text(args.out / "README.md", text)


if __name__ == "__main__":
    main()
