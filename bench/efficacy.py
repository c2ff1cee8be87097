"""Does the loop make a better driver? Every policy on the same held-out seeds, side by side.

For each policy, three drives on the same seeds (each can be switched off with a count of 0):

* **policy alone on highway-env** (``--episodes``): collision rate (Wilson 95% interval), mean speed,
  progress (its distance / the human's distance on the same seed, mean with a bootstrap 95% interval;
  the human drives the same seeds first when any row needs it).
* **policy alone on the batched simulator** (``--sim batched`` or ``both``, ``--batched-episodes``):
  collision rate and mean speed over many more episodes in the same wall time. Episodes of the same
  seed are not the same draw as highway-env's (the two agree in distribution, ``bench/sim_parity.py``);
  drivers without a batched port get ``-`` here, and ``idm`` under the safety driver (nobody can take
  the wheel from highway-env's IDMVehicle).
* **under the safety driver on highway-env** (``--monitored-episodes``, default ``--episodes``):
  takeovers per 100 km of policy-controlled distance (Poisson 95% interval) and the monitored
  collision rate.

    python bench/efficacy.py --env drivegpt/HighwayDense-v0 --sim both --batched-episodes 1000 \
        --episodes 100 --policy drivegpt=drivegpt --policy dagger=drivegpt:runs/dagger/policy

Prints a Markdown table and writes ``--out``/``<env>.json`` and ``.md`` (wall time and load average
per row). ``--reuse FILE.json`` takes a drive from an earlier results file instead of driving it again
when the row's name, spec, env, simulator and episode count match, and for a DriveGPT whose weights are
on this machine their sha256 (so the columns of one table can be driven by several commands, a killed
bench resumes, and a shipped name whose checkpoint was replaced is driven again).

Seeds start at 1,000,000 (held out: collection and training use seeds below that).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from drivegpt.core.atomic import write_json, write_text
from drivegpt.core.errors import UserError
from drivegpt.core.manifest import sha256_file
from drivegpt.eval.closed_loop import EVAL_SEED, evaluate, evaluate_monitored
from drivegpt.policies.registry import drivegpt_dir

AFTER = ("takeovers_after_start_per_100km", "takeovers_after_start_per_100km_ci")
ALONE_KEYS = ("episodes", "collision_rate", "collision_rate_ci", "mean_speed_mps", "km_driven")


def bootstrap_mean(x: np.ndarray, n: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the mean of ``x``."""
    rng = np.random.default_rng(seed)
    means = rng.choice(x, size=(n, len(x)), replace=True).mean(axis=1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def load() -> list[float]:
    """The 1-, 5- and 15-minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


def alone_highway_env(spec: str, args: argparse.Namespace, ref: dict[int, float]) -> dict[str, Any]:
    """The policy alone on highway-env: collision rate, speed, progress against the human."""
    t0, l0 = time.time(), load()
    m, eps = evaluate(spec, args.env, None, args.episodes, EVAL_SEED, args.workers, progress=False)
    progress = np.array([e.distance_m / ref[e.seed] for e in eps if ref.get(e.seed)])
    return {
        **{k: m[k] for k in ALONE_KEYS},
        "progress": float(progress.mean()) if len(progress) else None,
        "progress_ci": list(bootstrap_mean(progress)) if len(progress) else None,
        "wall_s": time.time() - t0,
        "load_average": l0,
    }


def alone_batched(spec: str, args: argparse.Namespace, ref: dict[int, float]) -> dict[str, Any] | None:
    """The policy alone on the batched simulator (None for drivers without a batched port); progress
    against the human's batched drive of the same seeds (``ref``: seed -> distance)."""
    from drivegpt.eval.batched import evaluate_batched

    t0, l0 = time.time(), load()
    try:
        m, per = evaluate_batched(spec, args.env, None, args.batched_episodes, EVAL_SEED, args.batch, False)
    except UserError as err:
        print(f"[efficacy] {spec}: no batched drive ({err})", flush=True)
        return None
    steps = per["steps"]  # (N,) policy steps per episode
    progress = np.array(
        [d / ref[s] for s, d in zip(per["seed"], per["distance_m"], strict=True) if ref.get(s)]
    )
    return {
        **{k: m[k] for k in ALONE_KEYS},
        "progress": float(progress.mean()) if len(progress) else None,
        "progress_ci": list(bootstrap_mean(progress)) if len(progress) else None,
        "mean_episode_steps": float(steps.mean()),
        "wall_s": time.time() - t0,
        "load_average": l0,
    }


def monitored(spec: str, args: argparse.Namespace) -> dict[str, Any] | None:
    """The policy under the safety driver (``--monitored-sim``): takeovers per 100 km, all and without
    those that fired on an episode's first state."""
    t0, l0 = time.time(), load()
    n = args.monitored_episodes
    if args.monitored_sim == "batched":
        from drivegpt.takeover.batched_clips import evaluate_monitored_batched

        try:
            mon, _ = evaluate_monitored_batched(spec, args.env, None, n, EVAL_SEED, args.batch)
        except UserError as err:
            print(f"[efficacy] {spec}: no batched monitored drive ({err})", flush=True)
            return None
    else:
        mon, _, _ = evaluate_monitored(spec, args.env, None, n, EVAL_SEED, args.workers, progress=False)
    keep = ("episodes", "takeovers", "late_takeovers", "km_policy", "takeovers_per_100km")
    keep += ("takeovers_per_100km_ci", "takeovers_at_start", "takeovers_after_start_per_100km")
    keep += ("takeovers_after_start_per_100km_ci", "collision_rate", "collision_rate_ci", "mean_speed_mps")
    out = {k: mon[k] for k in keep}
    return {**out, "sim": args.monitored_sim, "wall_s": time.time() - t0, "load_average": l0}


def weights(spec: str) -> str | None:
    """sha256 of a DriveGPT spec's ``model.safetensors`` (None: not a DriveGPT, or not on this machine)."""
    try:
        path = drivegpt_dir(spec) / "model.safetensors"
    except UserError:
        return None
    return sha256_file(path) if path.is_file() else None


def reused(
    files: list[Path], env: str, name: str, spec: str, part: str, episodes: int, sha: str | None = None
) -> dict | None:
    """The ``part`` drive of row ``name=spec`` from an earlier results file, when it matches. A spec whose
    weights are here (``sha``) matches only a row driven with the same weights: a shipped name such as
    ``drivegpt-rlhf`` keeps its spec when its checkpoint is replaced."""
    for f in files:
        data = json.loads(f.read_text())
        for r in data["rows"] if data["env"] == env else []:
            got = r.get(part)
            same = r["policy"] == name and r["spec"] == spec and (sha is None or r.get("weights") == sha)
            if same and got and got["episodes"] == episodes:
                return {**got, "reused_from": str(f)}
    return None


def fmt(x: float | None, ci: list[float] | None, digits: int) -> str:
    if x is None:
        return "-"
    return f"{x:.{digits}f} [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]" if ci else f"{x:.{digits}f}"


def table(rows: list[dict[str, Any]]) -> str:
    """One line per policy; a column group is ``-`` where that drive was not run."""
    head = (
        "| policy | batched: episodes | batched: collision rate [95% CI] | batched: mean speed [m/s] "
        "| batched: progress vs human [95% CI] "
        "| highway-env: episodes | highway-env: collision rate [95% CI] | highway-env: mean speed [m/s] "
        "| highway-env: progress vs human [95% CI] | monitored: episodes | takeovers / 100 km [95% CI] "
        "| after start / 100 km [95% CI] "
        "| monitored: collision rate [95% CI] | monitored: mean speed [m/s] |\n" + "|---" * 14 + "|\n"
    )
    lines = []
    for r in rows:
        b, h, m = r.get("batched") or {}, r.get("highway_env") or {}, r.get("monitored") or {}
        cells = [
            r["policy"],
            str(b.get("episodes", "-")),
            fmt(b.get("collision_rate"), b.get("collision_rate_ci"), 3),
            fmt(b.get("mean_speed_mps"), None, 2),
            fmt(b.get("progress"), b.get("progress_ci"), 3),
            str(h.get("episodes", "-")),
            fmt(h.get("collision_rate"), h.get("collision_rate_ci"), 3),
            fmt(h.get("mean_speed_mps"), None, 2),
            fmt(h.get("progress"), h.get("progress_ci"), 3),
            str(m.get("episodes", "-")),
            fmt(m.get("takeovers_per_100km"), m.get("takeovers_per_100km_ci"), 1),
            fmt(m.get("takeovers_after_start_per_100km"), m.get("takeovers_after_start_per_100km_ci"), 1),
            fmt(m.get("collision_rate"), m.get("collision_rate_ci"), 3),
            fmt(m.get("mean_speed_mps"), None, 2),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return head + "\n".join(lines) + "\n"


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy", action="append", required=True, help="NAME=SPEC (repeatable)")
    ap.add_argument("--env", default="drivegpt/HighwayDense-v0")
    ap.add_argument(
        "--sim",
        choices=("highway-env", "batched", "both"),
        default="highway-env",
        help="simulator(s) of the policy-alone columns",
    )
    ap.add_argument(
        "--monitored-sim",
        choices=("highway-env", "batched"),
        default="highway-env",
        help="simulator of the drives under the safety driver",
    )
    ap.add_argument("--episodes", type=int, default=200, help="highway-env policy-alone episodes a row")
    ap.add_argument("--batched-episodes", type=int, default=1000, help="batched-simulator episodes a row")
    ap.add_argument(
        "--monitored-episodes",
        type=int,
        default=None,
        help="episodes under the safety driver a row (default: --episodes; 0: none)",
    )
    ap.add_argument("--batch", type=int, default=1000, help="batched-simulator episodes stepped together")
    ap.add_argument("--no-progress", action="store_true", help="skip the human reference drive")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--reuse", type=Path, action="append", default=[], help="earlier results JSON")
    ap.add_argument("--out", type=Path, default=Path("bench/results/efficacy"))
    ap.add_argument("--name", default=None, help="output file stem (default: the env name)")
    args = ap.parse_args()
    if args.monitored_episodes is None:
        args.monitored_episodes = args.episodes
    if args.sim == "batched" and args.monitored_episodes == args.episodes:
        args.monitored_episodes = args.batched_episodes if args.monitored_sim == "batched" else 0
    if args.sim == "batched":
        args.episodes = 0
    return args


def main() -> None:
    args = parse_args()
    t0, load0 = time.time(), load()
    ref: dict[int, float] = {}
    if args.episodes and not args.no_progress:  # the progress reference: the human, same seeds
        _, ref_eps = evaluate("human", args.env, None, args.episodes, EVAL_SEED, args.workers, progress=False)
        ref = {e.seed: e.distance_m for e in ref_eps}
    ref_batched: dict[int, float] = {}
    if args.sim in ("batched", "both") and args.batched_episodes and not args.no_progress:
        from drivegpt.eval.batched import evaluate_batched

        _, per = evaluate_batched(
            "human", args.env, None, args.batched_episodes, EVAL_SEED, args.batch, False
        )
        ref_batched = dict(zip(per["seed"].tolist(), per["distance_m"].tolist(), strict=True))
    rows = []
    for item in args.policy:
        name, _, spec = item.partition("=")
        r: dict[str, Any] = {"policy": name, "spec": spec, "weights": weights(spec)}
        key = (args.reuse, args.env, name, spec)
        if args.sim in ("batched", "both") and args.batched_episodes:
            r["batched"] = reused(*key, "batched", args.batched_episodes, r["weights"]) or alone_batched(
                spec, args, ref_batched
            )
        if args.episodes:
            r["highway_env"] = reused(*key, "highway_env", args.episodes, r["weights"]) or alone_highway_env(
                spec, args, ref
            )
        if args.monitored_episodes:
            old = reused(*key, "monitored", args.monitored_episodes, r["weights"])
            old = old if old and old.get("sim", "highway-env") == args.monitored_sim else None
            r["monitored"] = old or monitored(spec, args)
        rows.append(r)
        print(table(rows[-1:]).splitlines()[-1], flush=True)
    stem = args.name or args.env.split("/")[-1]
    info = {
        "env": args.env,
        "seed": EVAL_SEED,
        "sim": args.sim,
        "monitored_sim": args.monitored_sim,
        "episodes": {
            "highway_env": args.episodes,
            "batched": args.batched_episodes,
            "monitored": args.monitored_episodes,
        },
        "wall_s": time.time() - t0,
        "load_average_at_start": load0,
        "load_average_at_end": load(),
        "cores": os.cpu_count(),
    }
    write_json(args.out / f"{stem}.json", {**info, "rows": rows})
    md = (
        f"`{args.env}`, held-out seeds from {EVAL_SEED} (the same for every row); "
        f"wall {info['wall_s']:.0f} s, "
        f"load average {load0} at the start, {info['load_average_at_end']} at the end\n\n" + table(rows)
    )
    write_text(args.out / f"{stem}.md", md)
    plot(rows, args.out / f"{stem}.png")
    print(md)


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Per policy: collision rate alone, takeovers after start per 100 km and progress, with 95% intervals
    (batched columns where driven, else highway-env's)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("collision rate alone", lambda r: _pick(r, "collision_rate", "collision_rate_ci")),
        ("takeovers after start / 100 km", lambda r: _pick(r, *AFTER, "monitored")),
        ("progress vs human", lambda r: _pick(r, "progress", "progress_ci")),
    ]  # fmt: skip
    fig, axes = plt.subplots(1, 3, figsize=(13, 0.5 * len(rows) + 1.6))
    names = [r["policy"] for r in rows]
    for ax, (title, get) in zip(axes, panels, strict=True):
        for i, r in enumerate(rows):
            x, ci = get(r)
            if x is None:
                continue
            err = [[x - ci[0]], [ci[1] - x]] if ci else None
            ax.errorbar([x], [i], xerr=err, fmt="o", capsize=3, color=f"C{i % 10}")
        ax.set(title=title, yticks=range(len(rows)), yticklabels=names if ax is axes[0] else [])
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def _pick(r: dict[str, Any], key: str, ci: str, *parts: str) -> tuple[float | None, list[float] | None]:
    for part in parts or ("batched", "highway_env"):
        d = r.get(part) or {}
        if d.get(key) is not None:
            return d[key], d.get(ci)
    return None, None


if __name__ == "__main__":
    main()
