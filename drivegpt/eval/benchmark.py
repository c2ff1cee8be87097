"""Benchmark: every policy on every scenario of a suite, side by side.

Each (policy, scenario) pair is one simulation in a worker process; the human model also drives
every scenario once as the progress reference (docs/metrics.md: progress = distance / the human's
distance in the same scenario and seed). Per policy and family the figures use the metric
registry's names; outputs in ``OUT/``: ``results.csv``, ``results.md``, ``episodes.csv``,
``plots/*.png``, ``gifs/*.gif`` (the worst failures) and ``run.json``.

Next to the suite, each policy also drives ``naturalistic_episodes`` episodes of ordinary dense
traffic alone on the batched simulator (:mod:`drivegpt.eval.naturalistic`): its
``collisions_per_1e6km`` with a Poisson 95% interval, in the ``all`` row, and its running estimate
in ``naturalistic.csv`` and ``plots/naturalistic_rate.png``. A suite is built from corner cases, so
its collision rate says where a policy fails; this figure says how often it would fail on the road.
Policies without a batched port (``idm``) get none.

Per-episode score (CLS-like): multipliers (no collision) x (stayed on road) x (progress >= 0.2)
times the weighted mean of progress (capped at 1, weight 5), TTC compliance (5), speed-limit
compliance (1 - fraction of steps above the lane's limit, 4) and comfort (2).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from pydantic import Field

from drivegpt.core.atomic import write_json, write_text
from drivegpt.core.config import FrozenConfig
from drivegpt.core.errors import UserError
from drivegpt.core.metrics import check_metric_names, takeover_metrics, wilson_interval
from drivegpt.corner.runner import run_jobs
from drivegpt.corner.suite import Outcome, Scenario, ScenarioEnv, job_of
from drivegpt.eval.naturalistic import NATURALISTIC_ENV, naturalistic_rate, write_naturalistic
from drivegpt.sim.rollout import Backend, Simulator

REFERENCE = "human"  #: the progress reference driver
MIN_PROGRESS = 0.2  #: the "making progress" multiplier of the score


class BenchConfig(FrozenConfig):
    """What ``drivegpt bench`` runs (saved in ``run.json``)."""

    policies: dict[str, str]
    """Column name -> policy spec."""
    takeovers: bool = False
    """Drive every policy under the takeover monitor and report km per takeover."""
    monitor: dict[str, Any] = Field(default_factory=dict)
    """MonitorConfig fields used with ``takeovers``."""
    gifs: int = Field(3, ge=0)
    """GIFs of the worst failures to render."""
    naturalistic_episodes: int = Field(1000, ge=0)
    """Episodes of naturalistic dense traffic each policy drives alone for ``collisions_per_1e6km``
    (batched simulator; 0: skip)."""
    naturalistic_env: str = NATURALISTIC_ENV
    """The env of those episodes."""
    sim: Simulator | None = None
    """Simulator of every suite episode: highway-env | batched (families with a batched port; with
    takeovers, ``accel`` actions); None: each scenario's own, the one it was made on."""


class Row(NamedTuple):
    """One (policy, scenario) episode of the benchmark."""

    policy: str
    scenario: str
    family: str
    seed: int
    outcome: Outcome
    progress: float
    score: float


def parse_policies(items: list[str]) -> dict[str, str]:
    """``NAME=SPEC`` (or a bare SPEC, named by itself) -> {name: spec}; names must be unique."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, spec = item.partition("=")
        name, spec = (name, spec) if sep else (item, item)
        if not name or not spec or name in out:
            raise UserError(f"--policy {item!r}: give NAME=SPEC with a unique NAME (e.g. gpt=drivegpt)")
        out[name] = spec
    return out


def episode_score(o: Outcome, progress: float) -> float:
    """CLS-like score in [0, 1] of one episode (module docstring)."""
    multiplier = float(not o.crashed and not o.offroad and progress >= MIN_PROGRESS)
    weighted = (
        5 * min(progress, 1.0)
        + 5 * (not o.ttc_violation)
        + 4 * (1 - o.speeding_fraction)
        + 2 * (not o.comfort_violation)
    ) / 16
    return multiplier * weighted


def run_benchmark(
    scenarios: list[Scenario],
    cfg: BenchConfig,
    workers: int | None = None,
    backend: Backend = "local",
    ray_address: str | None = None,
    progress: bool = True,
) -> list[Row]:
    """Simulate every policy on every scenario (plus the human reference) in parallel."""
    from drivegpt.policies.registry import policy_action_kind

    monitor = None
    if cfg.takeovers:
        from drivegpt.takeover.monitor import MonitorConfig

        monitor = MonitorConfig(**cfg.monitor).to_dict()
    jobs, keys = [], []
    sims = [cfg.sim or s.sim for s in scenarios]
    for name, spec in cfg.policies.items():
        for s, sim in zip(scenarios, sims, strict=True):
            jobs.append(job_of(s, spec, policy_action_kind(spec, s.action), monitor)._replace(sim=sim))
            keys.append(name)
    reuse = next((n for n, sp in cfg.policies.items() if sp == REFERENCE and not cfg.takeovers), None)
    if reuse is None:
        jobs += [
            job_of(s, REFERENCE, s.action)._replace(sim=sim) for s, sim in zip(scenarios, sims, strict=True)
        ]
    outs = run_jobs(jobs, workers, backend, "bench", progress, ray_address)
    n = len(scenarios)
    first = list(cfg.policies).index(reuse) * n if reuse is not None else len(outs) - n
    ref = outs[first : first + n]  # the human's outcome on each scenario
    rows = []
    for i, (name, o) in enumerate(zip(keys, outs[: len(keys)], strict=True)):
        s = scenarios[i % n]
        ref_m = ref[i % n].distance_m
        prog = o.distance_m / ref_m if ref_m > 0 else 1.0
        rows.append(Row(name, s.id, s.family, s.seed, o, prog, episode_score(o, prog)))
    return rows


def aggregate(rows: list[Row], takeovers: bool) -> dict[str, Any]:
    """Figures of a group of episodes, with the registry's names."""
    n = len(rows)
    crashes = sum(r.outcome.crashed for r in rows)
    km = sum(r.outcome.distance_m for r in rows) / 1000.0
    steps = sum(r.outcome.steps for r in rows)
    out: dict[str, Any] = {
        "episodes": n,
        "collision_rate": crashes / n,
        "collision_rate_ci": list(wilson_interval(crashes, n)),
        "ttc_violation_rate": float(np.mean([r.outcome.ttc_violation for r in rows])),
        "comfort_violation_rate": float(np.mean([r.outcome.comfort_violation for r in rows])),
        "progress": float(np.mean([r.progress for r in rows])),
        "score": float(np.mean([r.score for r in rows])),
        "km_driven": km,
        "mean_speed_mps": sum(r.outcome.mean_speed_mps * r.outcome.steps for r in rows) / max(steps, 1),
    }
    if takeovers:
        t = sum(r.outcome.takeovers for r in rows)
        policy_km = sum(r.outcome.policy_distance_m for r in rows) / 1000.0
        out.update(takeover_metrics(t, 0, policy_km))
        del out["late_takeovers"]  # a suite outcome does not record whether a takeover came too late
    check_metric_names(out)
    return out


def table(rows: list[Row], policies: list[str], takeovers: bool) -> list[dict[str, Any]]:
    """One entry per policy and family (families sorted, then ``all``)."""
    families = sorted({r.family for r in rows})
    out = []
    for p in policies:
        for fam in [*families, "all"]:
            group = [r for r in rows if r.policy == p and (fam == "all" or r.family == fam)]
            if group:
                out.append({"policy": p, "family": fam, **aggregate(group, takeovers)})
    return out


def _fmt(v: Any, digits: int = 3) -> str:
    return "—" if v is None else f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def _ci(v: Any, digits: int = 4) -> str:
    return "" if v is None else "[{:.{d}f}, {:.{d}f}]".format(*v, d=digits)


def write_results(out: Path, rows: list[Row], entries: list[dict[str, Any]], takeovers: bool) -> None:
    """results.csv, results.md and episodes.csv."""
    buf = io.StringIO()
    cols = list(entries[0])
    w = csv.writer(buf)
    w.writerow(cols)
    for e in entries:
        w.writerow([_ci(e[c]) if c.endswith("_ci") else _fmt(e[c], 4) for c in cols])
    write_text(out / "results.csv", buf.getvalue())
    head = "| policy | family | episodes | collision rate [95% CI] | TTC viol. | comfort viol. |"
    head += " progress | score | collisions per 10⁶ km, naturalistic [95% CI] |"
    head += " km/takeover |" if takeovers else ""
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for e in entries:
        lo, hi = e["collision_rate_ci"]
        cells = [
            e["policy"],
            e["family"],
            str(e["episodes"]),
            f"{e['collision_rate']:.3f} [{lo:.3f}, {hi:.3f}]",
            _fmt(e["ttc_violation_rate"]),
            _fmt(e["comfort_violation_rate"]),
            _fmt(e["progress"]),
            _fmt(e["score"]),
            ""
            if e["collisions_per_1e6km"] is None
            else f"{e['collisions_per_1e6km']:.0f} {_ci(e['collisions_per_1e6km_ci'], 0)}",
        ]
        if takeovers:
            cells.append(_fmt(e["km_per_takeover"], 2))
        lines.append("| " + " | ".join(cells) + " |")
    write_text(out / "results.md", "\n".join(lines) + "\n")
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["policy", "scenario", "family", "seed", *Outcome._fields, "progress", "score"])
    for r in rows:
        figures = [f"{r.progress:.4f}", f"{r.score:.4f}"]
        w.writerow([r.policy, r.scenario, r.family, r.seed, *r.outcome, *figures])
    write_text(out / "episodes.csv", buf.getvalue())


def plot(out: Path, entries: list[dict[str, Any]]) -> list[Path]:
    """Grouped bars per family: collision rate (with Wilson intervals) and score."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    policies = list(dict.fromkeys(e["policy"] for e in entries))
    families = list(dict.fromkeys(e["family"] for e in entries))
    paths = []
    for key in ("collision_rate", "score"):
        fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(families)), 3.5))
        width = 0.8 / len(policies)
        for k, p in enumerate(policies):
            es = {e["family"]: e for e in entries if e["policy"] == p}
            x = np.arange(len(families)) + k * width
            y = np.array([es[f][key] if f in es else np.nan for f in families])
            err = None
            if key == "collision_rate":
                ci = np.array([es[f]["collision_rate_ci"] if f in es else [np.nan] * 2 for f in families])
                err = np.abs(ci.T - y)  # (2, F)
            ax.bar(x, y, width, yerr=err, capsize=2, label=p)
        ax.set_xticks(np.arange(len(families)) + 0.4 - width / 2, families, rotation=30, ha="right")
        ax.set_ylabel(key.replace("_", " "))
        ax.set_ylim(0, 1)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out / "plots" / f"{key}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths


def worst_failures(rows: list[Row], k: int) -> list[Row]:
    """Up to ``k`` failed episodes, lowest score then closest call first, one per scenario."""
    failed = sorted(
        (r for r in rows if r.outcome.failed), key=lambda r: (r.score, r.outcome.min_gap_m, r.scenario)
    )
    seen, out = set(), []
    for r in failed:
        if r.scenario not in seen and len(out) < k:
            seen.add(r.scenario)
            out.append(r)
    return out


def render_failure(path: Path, s: Scenario, spec: str, action: str, max_steps: int = 200) -> None:
    """Re-drive one scenario with rendering on and write a GIF."""
    from drivegpt.policies.registry import load_policy
    from drivegpt.sim.rollout import make_env
    from drivegpt.sim.video import ensure_headless, write_video

    ensure_headless()
    policy = load_policy(spec, action)
    env = ScenarioEnv(make_env(s.env_id, action, getattr(policy, "env_config", None), "rgb_array"), s.params)  # type: ignore[arg-type]
    obs, _ = env.reset(seed=s.seed)
    policy.reset(seed=s.seed, env=env)
    frames = [env.render()]
    for _ in range(max_steps):
        obs, _, terminated, truncated, _ = env.step(policy.act(obs))
        frames.append(env.render())
        if terminated or truncated:
            break
    env.close()
    write_video(path, frames, fps=int(env.unwrapped.config["policy_frequency"]) * 2)


def bench(
    scenarios: list[Scenario],
    cfg: BenchConfig,
    out: str | Path,
    run_info: dict[str, Any],
    workers: int | None = None,
    backend: Backend = "local",
    ray_address: str | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Run the benchmark and write every output into ``out``; returns the table entries."""
    out = Path(out)
    rows = run_benchmark(scenarios, cfg, workers, backend, ray_address, progress)
    entries = table(rows, list(cfg.policies), cfg.takeovers)
    rates = {
        name: naturalistic_rate(spec, cfg.naturalistic_episodes, cfg.naturalistic_env, progress)
        for name, spec in cfg.policies.items()
    }
    for e in entries:
        rate = rates[e["policy"]] if e["family"] == "all" else None
        for key in ("collisions_per_1e6km", "collisions_per_1e6km_ci"):
            e[key] = rate.metrics[key] if rate else None
    write_results(out, rows, entries, cfg.takeovers)
    plot(out, entries)
    write_naturalistic(out, rates)
    from drivegpt.policies.registry import policy_action_kind

    by_id = {s.id: s for s in scenarios}
    for r in worst_failures(rows, cfg.gifs):  # the policy alone (no monitor) re-drives the scenario
        spec, s = cfg.policies[r.policy], by_id[r.scenario]
        gif = out / "gifs" / f"{r.policy}-{r.scenario}.gif"
        if (cfg.sim or s.sim) == "batched":
            from drivegpt.corner.batched import render_scenario

            render_scenario(gif, job_of(s, spec, policy_action_kind(spec, s.action))._replace(sim="batched"))
        else:
            render_failure(gif, s, spec, policy_action_kind(spec, s.action))
    write_json(out / "run.json", {**run_info, "config": cfg.to_dict()})
    return entries
