"""How often a policy fails on the road: collisions per 10⁶ km alone in naturalistic traffic.

A suite is built from corner cases, so its collision rate says *where* a policy fails; this figure
says *how often*. Each policy drives ``episodes`` episodes of ordinary dense traffic on the batched
simulator (:func:`drivegpt.eval.batched.evaluate_batched`: every car's driver and spacing drawn as in
ordinary driving) and the benchmark reports ``collisions_per_1e6km`` with a Poisson 95% interval.

The running estimate, episode by episode in seed order, shows whether the figure has settled:
``naturalistic.csv`` holds it and ``plots/naturalistic_rate.png`` draws it, one curve and band per
policy against the km driven.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from drivegpt.core.atomic import write_text
from drivegpt.core.metrics import poisson_interval

PER_KM = 1e6  #: [km] the exposure the rate is quoted per
NATURALISTIC_ENV = "drivegpt/HighwayDense-v0"  #: ordinary dense traffic, every driver drawn as on the road


class NaturalisticRate(NamedTuple):
    metrics: dict[str, Any]  # collisions, km_driven, mean_speed_mps, collisions_per_1e6km (+ _ci)
    seed: np.ndarray  # (E,) the episodes' seeds, in the order driven
    crashed: np.ndarray  # (E,) bool
    distance_m: np.ndarray  # (E,) [m] the ego's distance in each episode


def naturalistic_rate(
    spec: str, episodes: int, env: str = NATURALISTIC_ENV, progress: bool = True
) -> NaturalisticRate | None:
    """``spec`` alone on ``episodes`` episodes of ``env``; None when it has no batched port or
    ``episodes`` is 0."""
    from drivegpt.eval.batched import NoBatchedPort, evaluate_batched

    if not episodes:
        return None
    try:
        m, per = evaluate_batched(spec, env, None, episodes, progress=progress)
    except NoBatchedPort:
        return None
    collisions, exposure = int(per["crashed"].sum()), max(m["km_driven"], 1e-9) / PER_KM
    lo, hi = poisson_interval(collisions)
    metrics = {
        "collisions": collisions,
        "km_driven": m["km_driven"],
        "mean_speed_mps": m["mean_speed_mps"],
        "collisions_per_1e6km": collisions / exposure,
        "collisions_per_1e6km_ci": [lo / exposure, hi / exposure],
    }
    return NaturalisticRate(metrics, per["seed"], per["crashed"].astype(bool), per["distance_m"])


def running_rate(crashed: np.ndarray, distance_m: np.ndarray) -> dict[str, np.ndarray]:
    """The estimate after each episode: ``km`` driven so far, ``collisions`` so far, their
    ``collisions_per_1e6km`` and its Poisson 95% bounds ``lo`` and ``hi`` (each (E,))."""
    km = np.cumsum(np.asarray(distance_m, float)) / 1000.0  # (E,) [km]
    collisions = np.cumsum(np.asarray(crashed, bool)).astype(int)  # (E,)
    exposure = np.maximum(km, 1e-9) / PER_KM
    bounds = {k: poisson_interval(int(k)) for k in np.unique(collisions)}  # one interval per count
    lo = np.array([bounds[k][0] for k in collisions]) / exposure
    hi = np.array([bounds[k][1] for k in collisions]) / exposure
    rate = collisions / exposure
    return {"km": km, "collisions": collisions, "collisions_per_1e6km": rate, "lo": lo, "hi": hi}


def write_naturalistic(out: Path, rates: dict[str, NaturalisticRate | None]) -> list[Path]:
    """``out/naturalistic.csv`` (every policy's running estimate, episode by episode) and
    ``out/plots/naturalistic_rate.png``; when no policy drove, neither (an earlier run's are removed,
    so they never stand beside a table without the figure). Returns the paths written."""
    curves = {name: running_rate(r.crashed, r.distance_m) for name, r in rates.items() if r is not None}
    if not curves:
        for stale in (out / "naturalistic.csv", out / "plots" / "naturalistic_rate.png"):
            stale.unlink(missing_ok=True)
        return []
    buf = io.StringIO()
    w = csv.writer(buf)
    rate_cols = ["collisions_per_1e6km", "lo", "hi"]
    w.writerow(["policy", "seed", "crashed", "distance_m", "km", "collisions", *rate_cols])
    for name, c in curves.items():
        r = rates[name]
        assert r is not None
        for i in range(len(c["km"])):
            episode = [int(r.seed[i]), int(r.crashed[i]), f"{r.distance_m[i]:.2f}"]
            so_far = [f"{c['km'][i]:.4f}", int(c["collisions"][i]), *(f"{c[k][i]:.1f}" for k in rate_cols)]
            w.writerow([name, *episode, *so_far])
    write_text(out / "naturalistic.csv", buf.getvalue())
    return [out / "naturalistic.csv", plot_running_rate(out / "plots" / "naturalistic_rate.png", curves)]


def plot_running_rate(path: Path, curves: dict[str, dict[str, np.ndarray]]) -> Path:
    """Each policy's estimate and its 95% band against the km driven (log rate axis); before its
    first collision a policy shows only the upper bound (dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for k, (name, c) in enumerate(curves.items()):
        color = f"C{k}"
        seen = c["collisions"] > 0
        ax.plot(c["km"], c["hi"], color=color, ls="--", lw=0.8, alpha=0.6 if seen.any() else 1.0)
        if seen.any():
            ax.fill_between(c["km"][seen], c["lo"][seen], c["hi"][seen], color=color, alpha=0.2, lw=0)
            ax.plot(c["km"][seen], c["collisions_per_1e6km"][seen], color=color, lw=1.5)
        final = c["collisions_per_1e6km"][-1]
        label = f"{name}: {final:,.0f}" if seen.any() else f"{name}: 0 (< {c['hi'][-1]:,.0f})"
        ax.plot([], [], color=color, label=f"{label} in {c['km'][-1]:,.0f} km")
    ax.set_yscale("log")
    ax.set_xlabel("km driven alone in naturalistic traffic")
    ax.set_ylabel("collisions per 10⁶ km")
    ax.set_title("Running estimate and Poisson 95% interval", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
