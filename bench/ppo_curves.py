"""Learning curves of `drivegpt ppo` runs on the batched simulator, side by side.

Reads each run's ``log.csv`` (one row per update: its training rollouts, sampled at the run's
temperature, under the batched safety driver) and plots takeovers per 100 km of policy driving (after
each episode's first state), the mean speed and the KL to the reference against policy steps and
wall time. Held-out figures of the final policies come from ``bench/efficacy.py``.

    python bench/ppo_curves.py --run "takeover RM=runs/ppo-takeover-rm" \
        --run "human-term RM=runs/ppo-human-rm" --out bench/results/ppo_batched
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from drivegpt.core.atomic import write_text  # noqa: E402

PANELS = (
    ("takeovers_per_100km", "takeovers / 100 km (training rollouts)"),
    ("mean_speed_mps", "mean speed [m/s]"),
    ("kl", "KL to the reference"),
)


def read(run: Path) -> dict[str, list[float]]:
    with open(run / "log.csv") as f:
        rows = list(csv.DictReader(f))
    return {k: [float(r[k]) for r in rows] for k in rows[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", action="append", required=True, help="NAME=RUN_DIR (repeatable)")
    ap.add_argument("--out", type=Path, default=Path("bench/results/ppo_batched"))
    args = ap.parse_args()
    runs = {name: Path(path) for name, _, path in (r.partition("=") for r in args.run)}
    logs = {name: read(path) for name, path in runs.items()}
    fig, axes = plt.subplots(2, len(PANELS), figsize=(5 * len(PANELS), 7), squeeze=False)
    for row, x_key, x_label in ((0, "policy_steps", "policy steps"), (1, "wall_s", "wall time [s]")):
        for col, (key, label) in enumerate(PANELS):
            ax = axes[row][col]
            for name, log in logs.items():
                ax.plot(log[x_key], log[key], marker=".", label=name)
            ax.set_xlabel(x_label)
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    args.out.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out / "curves.png", dpi=110)
    lines = [
        "| run | updates | policy steps | wall [s] | first → last takeovers / 100 km | speed [m/s] | KL |"
    ]
    lines.append("|---|---|---|---|---|---|---|")
    summary = {}
    for name, log in logs.items():
        rate, speed = log["takeovers_per_100km"], log["mean_speed_mps"]
        lines.append(
            f"| {name} | {int(log['update'][-1])} | {int(log['policy_steps'][-1]):,} "
            f"| {log['wall_s'][-1]:.0f} "
            f"| {rate[0]:.1f} → {rate[-1]:.1f} | {speed[0]:.2f} → {speed[-1]:.2f} | {log['kl'][-1]:.4f} |"
        )
        config = json.loads((runs[name] / "run.json").read_text())
        summary[name] = {
            "run": runs[name].name,
            "config": config["config"],
            "last": {k: v[-1] for k, v in log.items()},
        }
    text = "\n".join(lines) + "\n"
    write_text(args.out / "curves.md", text)
    write_text(args.out / "curves.json", json.dumps(summary, indent=2) + "\n")
    print(text)


if __name__ == "__main__":
    main()
