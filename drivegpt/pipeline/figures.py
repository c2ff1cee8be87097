"""The report's own figures (PNG, matplotlib): pretraining curve, benchmark bars, takeover rates.

The RLHF learning curve, the corner-case plots and the scaling plot are made by their own stages
(``flywheel``, ``benchmark``, ``bench/scaling_plot.py``); the report embeds those files as they are.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_pretrain_curve(log_csv: Path, png: Path) -> None:
    """Validation cross-entropy and action accuracy vs optimisation step."""
    rows = list(csv.DictReader(log_csv.open()))
    it = [int(r["iter"]) for r in rows]
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    ax.plot(it, [float(r["train_loss"]) for r in rows], marker="o", label="train loss")
    ax.plot(it, [float(r["val_cross_entropy"]) for r in rows], marker="o", label="validation CE")
    ax.set_xlabel("optimisation step")
    ax.set_ylabel("cross-entropy [nats]")
    ax2 = ax.twinx()
    ax2.plot(it, [float(r["val_action_accuracy"]) for r in rows], color="k", ls="--", label="val accuracy")
    ax2.set_ylabel("validation action accuracy")
    ax.legend(loc="upper center", fontsize=8)
    ax.set_title("DriveGPT imitation pretraining")
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def plot_benchmark(rows: list[tuple[str, dict[str, Any]]], png: Path) -> None:
    """Collision rate (Wilson 95% interval) and mean speed per policy."""
    plt = _plt()
    names = [n for n, _ in rows]
    rate = [m["collision_rate"] for _, m in rows]
    err = [[m["collision_rate"] - m["collision_rate_ci"][0] for _, m in rows],
           [m["collision_rate_ci"][1] - m["collision_rate"] for _, m in rows]]  # fmt: skip
    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3.2))
    a.bar(names, rate, yerr=err, capsize=4, color="tab:red")
    a.set_ylabel("collision rate (95% CI)")
    b.bar(names, [m["mean_speed_mps"] for _, m in rows], color="tab:blue")
    b.set_ylabel("mean speed [m/s]")
    for ax in (a, b):
        ax.tick_params(axis="x", rotation=30, labelsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def plot_takeovers(rows: list[tuple[str, float, tuple[float, float] | None]], png: Path) -> None:
    """Takeovers per 100 km with the exact Poisson 95% interval."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    vals = [v for _, v, _ in rows]
    err = [[v - (ci[0] if ci else v) for _, v, ci in rows], [(ci[1] if ci else v) - v for _, v, ci in rows]]
    ax.bar([n for n, _, _ in rows], vals, yerr=err, capsize=4, color="tab:orange")
    ax.set_ylabel("takeovers per 100 km (95% CI)")
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
