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
3. **The other way round** (``--swap N``): ``N`` highway-env resets (seeds from ``--swap-seed``) are
   imported into the batched simulator (``from_highway_env``) and driven there by the batched human
   with that seed's personality and noise. Where ``bench/sim_distribution.py``'s per-seed cache holds
   the highway-env episode of the seed, its distance and crash are compared with the batched drive's:
   equal distances say the batched simulator drove highway-env's episode. The collision rate on
   highway-env's spawns is then set beside the batched simulator's on its own spawns of the same
   seeds, at a size highway-env could not drive itself (a reset costs a few milliseconds, an episode
   seconds).

    .venv/bin/python bench/crash_origin.py --env drivegpt/HighwayDense-v0 --episodes 2000 --spawns 3000 \
        --out bench/results/sim_distribution/crash_origin
    .venv/bin/python bench/crash_origin.py --env drivegpt/HighwayDense-v0 --episodes 0 --spawns 0 \
        --swap 20000 --out bench/results/sim_distribution/spawn_swap

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
from drivegpt.core.metrics import wilson_interval
from drivegpt.eval.batched import evaluate_batched
from drivegpt.sim import batched
from drivegpt.sim.batched.human import BatchedHuman
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


def rate_test(k1: int, n1: int, k2: int, n2: int) -> float:
    """Two-sided exact p-value of equal rates: given k = k1 + k2 events, k1 ~ Binomial(k, n1 / (n1 + n2))."""
    k, q = k1 + k2, n1 / (n1 + n2)
    probs = [math.comb(k, j) * q**j * (1 - q) ** (k - j) for j in range(k + 1)]
    return min(1.0, sum(pr for pr in probs if pr <= probs[k1] * (1 + 1e-9)))


def swap(env_id: str, n: int, seed: int, cache: Path, chunk: int = 100) -> dict[str, Any]:
    """highway-env's spawns of ``n`` seeds driven on the batched simulator, beside its own spawns."""
    t0, config = time.perf_counter(), batched.make_config(env_id, "accel")
    envs = [make_env(env_id, "accel") for _ in range(min(chunk, n))]
    crashed, km, compared, matched, max_diff = [], [], 0, 0, 0.0
    for lo in range(seed, seed + n, chunk):
        seeds = list(range(lo, min(lo + chunk, seed + n)))
        for env, s in zip(envs, seeds[: len(envs)], strict=False):
            env.reset(seed=s)
        state, human = batched.from_highway_env(envs[: len(seeds)]), BatchedHuman(config)
        human.reset(seeds, state)
        done, hit, dist = np.zeros(len(seeds), bool), np.zeros(len(seeds), bool), np.zeros(len(seeds))
        while not done.all():
            x0, y0 = state.x[:, 0].numpy(), state.y[:, 0].numpy()
            state = batched.step(state, human.act(state))
            dist += np.where(done, 0.0, np.hypot(state.x[:, 0].numpy() - x0, state.y[:, 0].numpy() - y0))
            hit |= ~done & state.crashed[:, 0].numpy()
            done |= (batched.terminated(state) | batched.truncated(state)).numpy()
        for i, s in enumerate(seeds):
            path = cache / env_id.replace("/", "_") / f"{s}.npz"
            if path.exists():  # the highway-env episode of this seed, driven by bench/sim_distribution.py
                ref = np.load(path)
                diff = abs(float(ref["km"]) - dist[i] / 1000)
                compared, max_diff = compared + 1, max(max_diff, diff)
                matched += int(diff < 1e-9 and bool(ref["crashed"]) == bool(hit[i]))
        crashed += hit.tolist()
        km += (dist / 1000).tolist()
    for env in envs:
        env.close()
    wall = time.perf_counter() - t0
    _, own = evaluate_batched("human", env_id, "accel", n, seed, 500, progress=False)
    k1, k2 = int(sum(crashed)), int(own["crashed"].sum())
    return {
        "episodes": n, "seed": seed, "wall_s": wall,
        "highway_env_spawns": {"collisions": k1, "collision_rate_ci": wilson_interval(k1, n),
                               "km": float(np.sum(km))},
        "batched_spawns": {"collisions": k2, "collision_rate_ci": wilson_interval(k2, n),
                           "km": float(own["distance_m"].sum() / 1000)},
        "p_equal_rates": rate_test(k1, n, k2, n),
        "compared_with_highway_env": compared, "same_episode": matched, "max_km_diff": max_diff,
    }  # fmt: skip


def swap_markdown(sw: dict[str, Any]) -> list[str]:
    n = sw["episodes"]
    rows = (
        ("highway-env's, driven on the batched simulator", sw["highway_env_spawns"]),
        ("the batched simulator's own", sw["batched_spawns"]),
    )
    return [
        f"**highway-env's spawns on the batched simulator**: {n:,} highway-env resets (seeds from "
        f"{sw['seed']:,}) imported and driven by the batched human ({sw['wall_s']:.0f} s). Of the "
        f"{sw['compared_with_highway_env']:,} whose highway-env episode `bench/sim_distribution.py` drove, "
        f"{sw['same_episode']:,} are the same episode (equal crash, distance within 1e-9 km; largest "
        f"difference {sw['max_km_diff']:.1e} km).",
        "",
        "| spawns | episodes | collisions | collision rate [95%] | per 1,000 km |",
        "|---|---|---|---|---|",
        *[
            f"| {name} | {n:,} | {r['collisions']} | {r['collisions'] / n:.4f} "
            f"[{r['collision_rate_ci'][0]:.4f}, {r['collision_rate_ci'][1]:.4f}] | "
            f"{1000 * r['collisions'] / r['km']:.2f} |"
            for name, r in rows
        ],
        "",
        f"Equal rates, exact conditional test: p = {sw['p_equal_rates']:.2f}.",
        "",
    ]


def markdown(command: str, result: dict[str, Any]) -> str:
    head = [
        f"# Where the human's crashes on the batched simulator come from: `{result['env']}`",
        "",
        f"Command: `{command}`. Load average {result['load_start']:.2f} → {result['load_end']:.2f}.",
        "",
    ]
    if "spawn" not in result:
        return "\n".join(head + swap_markdown(result["swap"]))
    sp, cr = result["spawn"], result["crashes"]
    same = sum(r["highway_env_crash_step"] == r["batched_crash_step"] for r in cr["redriven"])
    merges = sum(r["simultaneous_merge"] for r in cr["redriven"])
    lines = [
        *head,
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
        *(swap_markdown(result["swap"]) if "swap" in result else []),
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--env", default="drivegpt/HighwayDense-v0")
    ap.add_argument("--episodes", type=int, default=2000, help="batched episodes whose crashes are re-driven")
    ap.add_argument("--spawns", type=int, default=3000, help="resets compared on each simulator")
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--swap", type=int, default=0, help="highway-env spawns driven on the batched simulator")
    ap.add_argument("--swap-seed", type=int, default=SEED)
    ap.add_argument(
        "--cache",
        type=Path,
        default=Path("runs/sim_distribution_cache"),
        help="bench/sim_distribution.py's per-seed highway-env episodes, compared where present",
    )
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    load_start, t0 = os.getloadavg()[0], time.perf_counter()
    result: dict[str, Any] = {"env": args.env}
    if args.spawns or args.episodes:
        result["spawn"] = spawns(args.env, args.spawns)
        result["crashes"] = crashes(args.env, args.episodes, args.batch)
    if args.swap:
        result["swap"] = swap(args.env, args.swap, args.swap_seed, args.cache)
    result |= {"wall_s": time.perf_counter() - t0, "load_start": load_start, "load_end": os.getloadavg()[0]}
    command = "python bench/" + " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
    text = markdown(command, result)
    print(text)
    if args.out is not None:
        write_json(args.out / "crash_origin.json", {"command": command, **result})
        write_text(args.out / "README.md", text)


if __name__ == "__main__":
    main()
