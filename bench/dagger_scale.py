"""DAgger at scale: the policy of every flywheel round on held-out seeds of the batched simulator.

For a ``drivegpt rlhf`` run with ``method: dagger`` or ``hg-dagger`` (``configs/rlhf/dagger-batched.yaml``,
``hg-dagger-batched.yaml``), round 0
being the pretrained policy, each round's policy drives alone ``--episodes`` held-out episodes (seeds
from 1,000,000) of every ``--env`` on the batched simulator, and (``--monitored-episodes``) the same
number under the batched safety driver on the first env. The x axes are the human-labelled policy
steps so far (DAgger: every step the policy drove in the round's labelled drives; HG-DAgger: the steps
the safety driver drove; summed over rounds) and the
wall time since the run started (the modification times of ``run.json`` and of each round's
``dagger/metrics.json``).

    python bench/dagger_scale.py --run runs/dagger-batched --episodes 1000 \
        --out bench/results/dagger_scale

Writes ``--out``/``results.json``, ``results.md`` and ``learning_curve.png``; prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from drivegpt.core.atomic import write_json, write_text
from drivegpt.eval.batched import evaluate_batched
from drivegpt.eval.closed_loop import EVAL_SEED
from drivegpt.rlhf.dagger import load_labels
from drivegpt.takeover.batched_clips import evaluate_monitored_batched


def rounds_of(run: Path) -> list[dict[str, Any]]:
    """(round, policy dir, cumulative labelled policy steps, wall time [s]) of every finished round."""
    cfg = json.loads((run / "run.json").read_text())
    t0 = (run / "run.json").stat().st_mtime
    out = [{"round": 0, "policy": Path(cfg["pretrained"]), "policy_steps": 0, "wall_s": 0.0}]
    steps = 0
    k = 1
    while (run / f"round_{k}" / "dagger" / "metrics.json").is_file():
        steps += load_labels(run / f"round_{k}" / "labels" / "labels.npz").n_labels  # HG-DAgger: gated only
        wall = (run / f"round_{k}" / "dagger" / "metrics.json").stat().st_mtime - t0
        out.append(
            {
                "round": k,
                "policy": run / f"round_{k}" / "dagger" / "policy",
                "policy_steps": steps,
                "wall_s": round(wall, 1),
            }
        )
        k += 1
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True, help="a drivegpt rlhf run with method: (hg-)dagger")
    ap.add_argument("--env", action="append", default=None, help="env id (repeatable)")
    ap.add_argument("--episodes", type=int, default=1000, help="held-out episodes per env and round")
    ap.add_argument("--monitored-episodes", type=int, default=1000, help="under the safety driver (0: skip)")
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("bench/results/dagger_scale"))
    ap.add_argument("--last-only", action="store_true", help="only the run's last round")
    args = ap.parse_args()
    envs = args.env or ["drivegpt/HighwayDense-v0", "drivegpt/Highway-v0"]
    import torch

    torch.set_num_threads(args.threads)
    rows = []
    for r in rounds_of(args.run)[-1:] if args.last_only else rounds_of(args.run):
        spec = f"drivegpt:{r['policy']}"
        row: dict[str, Any] = {k: r[k] for k in ("round", "policy_steps", "wall_s")}
        row["load_start"] = [round(x, 2) for x in os.getloadavg()]
        t = time.time()
        for env in envs:
            m, _ = evaluate_batched(spec, env, "accel", args.episodes, EVAL_SEED, args.batch, progress=False)
            row[env] = {
                k: m[k] for k in ("episodes", "collision_rate", "collision_rate_ci", "mean_speed_mps")
            }
        if args.monitored_episodes:
            mon, _ = evaluate_monitored_batched(
                spec, envs[0], "accel", args.monitored_episodes, EVAL_SEED, args.batch
            )
            row["monitored"] = {
                k: mon[k]
                for k in (
                    "takeovers",
                    "late_takeovers",
                    "takeovers_per_100km",
                    "takeovers_per_100km_ci",
                    "takeovers_at_start",
                    "takeovers_after_start_per_100km",
                    "takeovers_after_start_per_100km_ci",
                    "collision_rate",
                )
            }
        row["eval_s"] = round(time.time() - t, 1)
        rows.append(row)
        print(line(row, envs), flush=True)
        write_json(args.out / "results.json", {"run": str(args.run), "envs": envs, "rows": rows})
    write_text(args.out / "results.md", table(rows, envs, args))
    plot(rows, envs, args.out / "learning_curve.png")


def fmt(m: dict[str, Any]) -> str:
    lo, hi = m["collision_rate_ci"]
    return f"{m['collision_rate']:.3f} [{lo:.3f}, {hi:.3f}] at {m['mean_speed_mps']:.2f} m/s"


def line(row: dict[str, Any], envs: list[str]) -> str:
    parts = [f"round {row['round']}: {row['policy_steps']:,} steps, {row['wall_s']:.0f} s"]
    parts += [f"{e.split('/')[-1]} {fmt(row[e])}" for e in envs]
    if "monitored" in row:
        m = row["monitored"]
        parts.append(f"takeovers/100 km {m['takeovers_per_100km']:.1f}")
        parts.append(f"after start {m['takeovers_after_start_per_100km']:.1f}")
    return "; ".join(parts)


def table(rows: list[dict[str, Any]], envs: list[str], args: argparse.Namespace) -> str:
    head = ["round", "labelled policy steps", "wall since start [s]"]
    head += [f"{e}: collision rate [Wilson 95%] at mean speed" for e in envs]
    head += ["takeovers per 100 km [Poisson 95%] (late)"] if args.monitored_episodes else []
    head += ["after start, per 100 km [Poisson 95%]"] if args.monitored_episodes else []
    head += ["load average at start"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [str(r["round"]), f"{r['policy_steps']:,}", f"{r['wall_s']:.0f}"] + [fmt(r[e]) for e in envs]
        if "monitored" in r:
            m = r["monitored"]
            lo, hi = m["takeovers_per_100km_ci"]
            cells.append(f"{m['takeovers_per_100km']:.1f} [{lo:.1f}, {hi:.1f}] ({m['late_takeovers']})")
            lo, hi = m["takeovers_after_start_per_100km_ci"]
            cells.append(f"{m['takeovers_after_start_per_100km']:.1f} [{lo:.1f}, {hi:.1f}]")
        cells.append(" ".join(map(str, r["load_start"])))
        out.append("| " + " | ".join(cells) + " |")
    cmd = f"python bench/dagger_scale.py --run {args.run} --episodes {args.episodes}"
    cmd += f" --monitored-episodes {args.monitored_episodes} --out {args.out}"
    return (
        f"# DAgger at scale: each round's policy alone on {args.episodes} held-out episodes per env\n\n"
        f"`{cmd}`; batched simulator, seeds from 1,000,000.\n\n" + "\n".join(out) + "\n"
    )


def plot(rows: list[dict[str, Any]], envs: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for env in envs:
        rate = [r[env]["collision_rate"] for r in rows]
        err = [
            [r[env]["collision_rate"] - r[env]["collision_rate_ci"][0] for r in rows],
            [r[env]["collision_rate_ci"][1] - r[env]["collision_rate"] for r in rows],
        ]
        for ax, x in (
            (axes[0], [r["policy_steps"] for r in rows]),
            (axes[1], [r["wall_s"] / 60 for r in rows]),
        ):
            ax.errorbar(x, rate, yerr=err, marker="o", capsize=3, label=env.split("/")[-1])
        axes[2].plot(
            [r["policy_steps"] for r in rows],
            [r[env]["mean_speed_mps"] for r in rows],
            marker="o",
            label=env.split("/")[-1],
        )
    axes[0].set(xlabel="labelled policy steps", ylabel="collision rate alone (95% CI)")
    axes[1].set(xlabel="wall time since the run started [min]", ylabel="collision rate alone (95% CI)")
    axes[2].set(xlabel="labelled policy steps", ylabel="mean speed [m/s]")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


if __name__ == "__main__":
    main()
