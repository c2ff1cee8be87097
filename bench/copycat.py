"""Copycat imitation: does hiding past actions from DriveGPT make the pretrained policy drive safer?

A sequence model that sees its past actions can predict the human's next token by copying the last
one (the labels are smooth), and then keeps doing what it did when a hazard appears. Action-token
dropout (``action_dropout`` in the pretrain config: each *input* action replaced by MASK with that
probability, the labels unchanged) makes it read the states; ``show_actions: false`` (in ``model:``)
hides every past action, in training and in driving. ``--select N`` adds closed-loop model selection
(``select:``: the evaluation that collided least on N validation episodes of HighwayDense, seeds from
500,000, is the policy kept) to every variant.

For every variant and training seed this pretrains the base config on ``--data`` (human logs from
``drivegpt collect``), then drives the policy alone on ``--episodes`` held-out episodes (seeds from
1,000,000) of ``--env`` on the batched simulator. Every run is a ``drivegpt pretrain`` and a ``drivegpt
drive`` in ``--runs``; a run whose output exists is read, not redone, so the bench resumes.

    python bench/copycat.py --data runs/copycat/logs --runs runs/copycat \
        --base bench/results/pretrain_scale/noise/pretrain.yaml --variants 0 0.5 0.9 states \
        --seeds 0 1 2 --out bench/results/pretrain_scale/copycat
    python bench/copycat.py ... --variants 0 0.9 --select 300 \
        --out bench/results/pretrain_scale/copycat/select

Writes ``--out``/``results.json``, ``results.md`` (Wilson 95% intervals) and
``speed_vs_collisions.png`` (``--human``: the human's ``metrics.json`` on the same seeds as a point);
prints the table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from drivegpt.core.atomic import write_json, write_text
from drivegpt.core.metrics import wilson_interval

sys.path.insert(0, str(Path(__file__).resolve().parent))
from markdown_table import write_markdown  # noqa: E402

CLI = [str(Path(sys.executable).parent / "drivegpt")]  # the console script of this environment


def variant_config(
    base: dict[str, Any], variant: str, seed: int, select: int = 0, label_power: float = 0.0
) -> dict[str, Any]:
    """The base pretrain config with the variant's action hiding, the training seed, (``select`` > 0)
    closed-loop model selection on that many validation episodes of HighwayDense and the label
    weighting (``label_weight_power``)."""
    cfg = {**base, "model": dict(base["model"]), "seed": seed}
    if label_power:
        cfg["label_weight_power"] = label_power
    if select:
        cfg["select"] = {"env": "drivegpt/HighwayDense-v0", "episodes": select}
    if variant == "states":
        cfg["model"]["show_actions"] = False
    else:
        cfg["action_dropout"] = float(variant)
    return cfg


def run_one(args: argparse.Namespace, base: dict[str, Any], variant: str, seed: int) -> dict[str, Any]:
    """Pretrain and drive one (variant, seed), or read them where they are done."""
    selected = (f"-sel{args.select}" if args.select else "") + (
        f"-lw{args.label_weight_power}" if args.label_weight_power else ""
    )
    name = f"{'states' if variant == 'states' else 'ad' + variant}{selected}-s{seed}"
    root = args.runs / name
    root.mkdir(parents=True, exist_ok=True)
    config = root / "pretrain.yaml"
    write_text(
        config,
        yaml.safe_dump(
            variant_config(base, variant, seed, args.select, args.label_weight_power), sort_keys=False
        ),
    )
    timing: dict[str, float] = {}
    if not (root / "pretrain" / "policy" / "policy.json").is_file():
        t = time.time()
        subprocess.run(
            [
                *CLI,
                "pretrain",
                "--config",
                str(config),
                "--data",
                str(args.data),
                "--out",
                str(root / "pretrain"),
            ],
            check=True,
        )
        timing["pretrain_s"] = round(time.time() - t, 1)
    eval_dir = root / f"eval-{args.env.split('/')[-1]}-{args.episodes}"
    if not (eval_dir / "metrics.json").is_file():
        t = time.time()
        drive = ["--sim", "batched", "--policy", f"drivegpt:{root / 'pretrain'}", "--env", args.env]
        sizes = ["--episodes", str(args.episodes), "--batch", str(args.batch), "--out", str(eval_dir)]
        subprocess.run([*CLI, "drive", *drive, *sizes], check=True)
        timing["drive_s"] = round(time.time() - t, 1)
    metrics = json.loads((eval_dir / "metrics.json").read_text())
    policy = json.loads((root / "pretrain" / "policy" / "policy.json").read_text())
    n = int(metrics["episodes"])
    crashes = round(metrics["collision_rate"] * n)
    return {
        "variant": variant,
        "seed": seed,
        "episodes": n,
        "collisions": crashes,
        "collision_rate": crashes / n,
        "collision_rate_ci": list(wilson_interval(crashes, n)),
        "mean_speed_mps": metrics["mean_speed_mps"],
        "val": policy.get("val", {}),
        **timing,
    }


def pooled(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """A variant over its seeds: every episode pooled (the rate of a policy drawn by a random seed)."""
    n, c = sum(r["episodes"] for r in rows), sum(r["collisions"] for r in rows)
    speed = sum(r["mean_speed_mps"] * r["episodes"] for r in rows) / n
    ci = list(wilson_interval(c, n))
    return {
        "episodes": n,
        "collisions": c,
        "collision_rate": c / n,
        "collision_rate_ci": ci,
        "mean_speed_mps": speed,
    }


def spearman(x: list[float], y: list[float]) -> float:
    """Rank correlation (average ranks for ties)."""

    def ranks(v: list[float]) -> np.ndarray:
        a = np.asarray(v, dtype=float)
        return np.array([(a < t).sum() + ((a == t).sum() - 1) / 2 for t in a])  # 0-based average ranks

    return float(np.corrcoef(ranks(x), ranks(y))[0, 1])


def plot(rows: list[dict[str, Any]], human: dict[str, Any] | None, png: Path) -> None:
    """Collision rate against mean speed, one point per trained policy (error bars: Wilson 95%)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for i, v in enumerate(dict.fromkeys(r["variant"] for r in rows)):
        pts = [r for r in rows if r["variant"] == v]
        x = [r["mean_speed_mps"] for r in pts]
        y = [r["collision_rate"] for r in pts]
        err = [[r["collision_rate"] - r["collision_rate_ci"][0] for r in pts],
               [r["collision_rate_ci"][1] - r["collision_rate"] for r in pts]]  # fmt: skip
        name = "no past actions" if v == "states" else f"action_dropout {v}"
        ax.errorbar(x, y, yerr=err, fmt="os^vD"[i % 5], capsize=3, label=name)
    if human is not None:
        ax.plot([human["mean_speed_mps"]], [human["collision_rate"]], "k*", ms=12, label="human (teacher)")
    ax.set_xlabel("mean speed [m/s]")
    ax.set_ylabel("collision rate (policy alone)")
    ax.set_title("Pretrained DriveGPT, one point per training seed")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="human logs (drivegpt collect)")
    ap.add_argument("--runs", type=Path, required=True, help="where the pretrain and drive runs go")
    ap.add_argument("--base", type=Path, required=True, help="the pretrain config every variant starts from")
    ap.add_argument("--variants", nargs="+", default=["0", "0.5", "0.9", "states"],
                    help="action_dropout values, or 'states' (show_actions: false)")  # fmt: skip
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds")
    ap.add_argument(
        "--select", type=int, default=0, help="closed-loop model selection on N validation episodes"
    )
    ap.add_argument("--human", type=Path, default=None,
                    help="the human's metrics.json on the same seeds (a point on the plot)")  # fmt: skip
    ap.add_argument("--label-weight-power", type=float, default=0.0, help="label_weight_power of every run")
    ap.add_argument("--env", default="drivegpt/HighwayDense-v0")
    ap.add_argument("--episodes", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    for v in args.variants:
        if v != "states" and not (v.replace(".", "", 1).isdigit() and 0 <= float(v) < 1):
            raise SystemExit(f"--variants: {v!r} is neither an action_dropout in [0, 1) nor 'states'")
    if args.human is not None and not args.human.is_file():
        raise SystemExit(f"--human: {args.human} does not exist (a `drivegpt drive` metrics.json)")
    base = yaml.safe_load(args.base.read_text())
    load0 = os.getloadavg()
    rows = [run_one(args, base, v, s) for v in args.variants for s in args.seeds]
    summary = {v: pooled([r for r in rows if r["variant"] == v]) for v in args.variants}
    load1 = os.getloadavg()
    args.out.mkdir(parents=True, exist_ok=True)
    rho = spearman([r["mean_speed_mps"] for r in rows], [r["collision_rate"] for r in rows])
    write_json(args.out / "results.json", {"command": "python " + " ".join(sys.argv), "env": args.env,
               "rows": rows, "pooled": summary, "speed_collision_spearman": rho,
               "load_average": [load0[0], load1[0]]})  # fmt: skip
    human = json.loads(args.human.read_text()) if args.human else None
    plot(rows, human, args.out / "speed_vs_collisions.png")

    def label(v: str) -> str:
        return "no past actions (`show_actions: false`)" if v == "states" else f"`action_dropout: {v}`"

    def fmt(r: dict[str, Any]) -> str:
        lo, hi = r["collision_rate_ci"]
        return f"{r['collision_rate']:.3f} [{lo:.3f}, {hi:.3f}] at {r['mean_speed_mps']:.2f} m/s"

    table = []
    for v in args.variants:
        per_seed = [r for r in rows if r["variant"] == v]
        acc = [r["val"].get("action_accuracy", math.nan) for r in per_seed]
        ce = [r["val"].get("cross_entropy", math.nan) for r in per_seed]
        cells = " | ".join(f"{fmt(r)}" for r in per_seed)
        val = f"{sum(acc) / len(acc):.3f} / {sum(ce) / len(ce):.3f}"
        table.append(f"| {label(v)} | {val} | {cells} | **{fmt(summary[v])}** |")
    head = (
        "| past actions in training | val accuracy / CE [nats], mean over seeds | "
        + " | ".join(f"seed {s}" for s in args.seeds)
        + " | pooled |\n|---|---|"
        + "---|" * (len(args.seeds) + 1)
    )
    note = (
        f"{args.env} on the batched simulator, {args.episodes} held-out episodes per policy (seeds from "
        f"1,000,000), the policy alone, Wilson 95% intervals; load average {load0[0]:.2f} at the start, "
        f"{load1[0]:.2f} at the end. Over the {len(rows)} policies, Spearman's rank correlation of mean "
        f"speed and collision rate is {rho:.2f}."
    )
    title = "Copycat imitation: past actions hidden in training"
    if args.select:
        title += f", closed-loop selection on {args.select} validation episodes"
    if args.label_weight_power:
        title += f", labels weighted by share^-{args.label_weight_power}"
    write_markdown(args.out / "results.md", title, note, head, table)


if __name__ == "__main__":
    main()
