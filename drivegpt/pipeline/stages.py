"""The pipeline's stages: each one calls a stage's library function and says what a valid output is.

Every stage reads its inputs from earlier stages' folders under ``RUN/`` and writes its own folder;
``check`` raises when that folder is missing, incomplete or corrupt (``load_logs`` verifies
checksums, ``load_clips`` too). The order is the loop of docs/architecture.md.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from drivegpt.core.atomic import write_json, write_text
from drivegpt.eval.closed_loop import EVAL_SEED
from drivegpt.pipeline.config import PipelineConfig, Stage


def _read_json(path: Path, *keys: str) -> dict[str, Any]:
    """``path`` parsed; ``KeyError`` naming the first missing key."""
    data = json.loads(path.read_text())
    missing = [k for k in keys if k not in data]
    if missing:
        raise KeyError(f"{path}: no {missing[0]!r}")
    return data


def _resume_or_clear(run: Path, config: dict[str, Any]) -> None:
    """Keep a partial ``run`` left by a kill only when it was started with ``config`` (it resumes)."""
    started = run / "run.json"
    if not started.is_file() or json.loads(started.read_text()).get("config") != config:
        shutil.rmtree(run, ignore_errors=True)


# -- collect: human-driven logs ---------------------------------------------------------------------


def run_collect(cfg: PipelineConfig, out: Path, command: str) -> None:
    from drivegpt.data.collect import collect

    collect(cfg.collect, out / "logs")
    write_json(out / "logs" / "run.json", {"command": command, "config": cfg.collect.to_dict()})


def cli_collect(cfg: PipelineConfig, out: Path) -> list[str]:
    return [f"drivegpt collect --config {out}/configs/collect.yaml --out {out}/logs"]


def check_collect(path: Path) -> None:
    from drivegpt.data.logs import load_logs

    load_logs(path)


# -- pretrain: DriveGPT imitation -------------------------------------------------------------------


def run_pretrain(cfg: PipelineConfig, out: Path, command: str) -> None:
    from drivegpt.model.pretrain import pretrain

    run = out / "pretrain"
    _resume_or_clear(run, cfg.pretrain.to_dict())
    pretrain(cfg.pretrain, out / "logs", run, resume=(run / "checkpoint").exists(), command=command)


def cli_pretrain(cfg: PipelineConfig, out: Path) -> list[str]:
    return [f"drivegpt pretrain --config {out}/configs/pretrain.yaml --data {out}/logs --out {out}/pretrain"]


def check_pretrain(path: Path) -> None:
    _read_json(path / "metrics.json", "action_accuracy", "cross_entropy")
    _read_json(path / "policy" / "policy.json")


def pretrained_spec(out: Path) -> str:
    return f"drivegpt:{out / 'pretrain'}"


def final_spec(out: Path) -> str:
    """The policy at the end of the loop: after RLHF when that stage exists, else the pretrained one."""
    rlhf = out / "rlhf" / "policy"
    return f"drivegpt:{rlhf}" if (rlhf / "policy.json").is_file() else pretrained_spec(out)


# -- takeovers: the pretrained policy under the simulated safety driver -----------------------------


def run_takeovers(cfg: PipelineConfig, out: Path, command: str) -> None:
    from drivegpt.eval.closed_loop import evaluate_monitored, write_drive_outputs
    from drivegpt.rlhf.preferences import policy_steps
    from drivegpt.takeover.clips import write_clips

    spec, dest = pretrained_spec(out), out / "takeovers"
    monitor = cfg.monitor.to_dict()
    m, eps, clips = evaluate_monitored(
        spec, cfg.eval_env, None, cfg.eval_episodes, cfg.eval_seed, cfg.workers, monitor=monitor
    )
    write_clips(dest / "clips", clips, {"command": command, "monitor": monitor}, policy_steps(eps))
    info = {"command": command, "policy": spec, "env": cfg.eval_env, "seed": cfg.eval_seed, "takeovers": True}
    write_drive_outputs(dest, m, eps, info)


def cli_takeovers(cfg: PipelineConfig, out: Path) -> list[str]:
    return [
        f"drivegpt drive --policy {pretrained_spec(out)} --env {cfg.eval_env} --episodes {cfg.eval_episodes} "
        f"--seed {cfg.eval_seed} --takeovers --monitor-config {out}/configs/monitor.yaml "
        f"--clips-out {out}/takeovers/clips --out {out}/takeovers"
    ]


def check_takeovers(path: Path) -> None:
    from drivegpt.takeover.clips import load_clips

    _read_json(path / "metrics.json", "takeovers", "takeovers_per_100km")
    load_clips(path / "clips")


# -- rlhf: reward model + fine-tuning, in flywheel rounds -------------------------------------------


def run_rlhf(cfg: PipelineConfig, out: Path, command: str) -> None:
    from drivegpt.rlhf.flywheel import run_flywheel

    run = out / "rlhf"  # the flywheel resumes its own rounds
    _resume_or_clear(run, cfg.rlhf.to_dict())
    fly, round0 = cfg.rlhf, run / "round_0" / "eval" / "metrics.json"
    drive = (fly.eval_env, fly.eval_episodes, fly.monitor, EVAL_SEED)
    if drive == (cfg.eval_env, cfg.eval_episodes, cfg.monitor, cfg.eval_seed) and not round0.exists():
        # Round 0 evaluates the pretrained policy exactly as the takeovers stage drove it (same env,
        # seeds and monitor: deterministic, so the same figures); the flywheel skips an evaluation
        # whose metrics.json exists. KL of the reference to itself is 0.
        m = _read_json(out / "takeovers" / "metrics.json")
        write_json(round0, {**m, "kl_to_reference": 0.0})
    run_flywheel(cfg.rlhf, out / "pretrain", run, command)


def check_rlhf(path: Path) -> None:
    _read_json(path / "metrics.json", "rounds")
    _read_json(path / "policy" / "policy.json")
    if not (path / "curve.csv").is_file():
        raise FileNotFoundError(path / "curve.csv")


def cli_rlhf(cfg: PipelineConfig, out: Path) -> list[str]:
    return [f"drivegpt rlhf --config {out}/configs/rlhf.yaml --policy {out}/pretrain --out {out}/rlhf"]


# -- baseline: stable-baselines3 on the env reward ---------------------------------------------------


def run_baseline(cfg: PipelineConfig, out: Path, command: str) -> None:
    from drivegpt.policies.sb3 import train_baseline

    run = out / "baseline"
    _resume_or_clear(run, cfg.baseline.to_dict())
    resume = (run / "checkpoint" / "model.zip").is_file()
    train_baseline(cfg.baseline, run, command, resume=resume)


def check_baseline(path: Path) -> None:
    _read_json(path / "train.json", "steps")
    _read_json(path / "policy" / "policy.json")


def cli_baseline(cfg: PipelineConfig, out: Path) -> list[str]:
    config = f"{out}/configs/baseline.yaml"
    return [f"drivegpt baseline train --algo {cfg.baseline.algo} --config {config} --out {out}/baseline"]


# -- search: corner cases of the final policy -------------------------------------------------------


def run_search(cfg: PipelineConfig, out: Path, command: str) -> None:
    from drivegpt.corner.search import search_family, to_scenarios
    from drivegpt.corner.suite import write_suite
    from drivegpt.policies.registry import policy_action_kind

    spec, dest = final_spec(out), out / "search"
    kind = policy_action_kind(spec, cfg.collect.action)
    results = [search_family(f, spec, cfg.search, kind, cfg.workers) for f in cfg.search_families]
    scenarios = [sc for r in results for sc in to_scenarios(r, kind, "all")]
    write_suite(dest, scenarios, command, {"search": cfg.search.to_dict(), "policy": spec, "keep": "all"})
    write_json(dest / "summary.json", {r.family: r.summary for r in results})


def check_search(path: Path) -> None:
    from drivegpt.corner.suite import load_suite

    load_suite(path)
    _read_json(path / "summary.json")


def cli_search(cfg: PipelineConfig, out: Path) -> list[str]:
    fams = " ".join(f"--family {f}" for f in cfg.search_families)
    return [
        f"drivegpt corner-cases search {fams} --policy {final_spec(out)} --config {out}/configs/search.yaml "
        f"--keep all --out {out}/search"
    ]


# -- benchmark: every policy side by side on held-out seeds -----------------------------------------

BATCHED_EVAL_FACTOR = 10  # the batched simulator drives 10x highway-env's evaluation episodes in less time


def benchmark_policies(cfg: PipelineConfig, out: Path) -> dict[str, str]:
    """Table name -> policy spec: the reference policies, then this run's own."""
    names = {"drivegpt": "drivegpt-shipped"}
    policies = {names.get(p, p.replace(":", "-").replace("/", "-")): p for p in cfg.eval_policies}
    policies["drivegpt-pretrained"] = pretrained_spec(out)
    if final_spec(out) != pretrained_spec(out):
        policies["drivegpt-rlhf"] = final_spec(out)
    policies[f"sb3-{cfg.baseline.algo}"] = f"sb3-{cfg.baseline.algo}:{out / 'baseline'}"
    return policies


def run_benchmark(cfg: PipelineConfig, out: Path, command: str) -> None:
    from drivegpt.corner.suite import load_suite
    from drivegpt.eval.benchmark import BenchConfig, bench
    from drivegpt.eval.closed_loop import evaluate, write_drive_outputs
    from drivegpt.policies.registry import load_policy
    from drivegpt.sim.video import render_episode

    dest = out / "benchmark"
    policies = benchmark_policies(cfg, out)
    for name, spec in policies.items():
        action = cfg.collect.action
        m, eps = evaluate(spec, cfg.eval_env, action, cfg.eval_episodes, cfg.eval_seed, cfg.workers)
        info = {"command": command, "policy": spec, "env": cfg.eval_env, "seed": cfg.eval_seed}
        write_drive_outputs(dest / name, m, eps, info)
        _drive_batched(cfg, spec, dest / name / "batched", command)
    render_episode(cfg.eval_env, cfg.collect.action, load_policy("human"), cfg.video_seed, dest / "human.gif")
    _, scenarios = load_suite(out / "search")
    bench_cfg = BenchConfig(
        policies=policies, gifs=cfg.bench_gifs, naturalistic_episodes=BATCHED_EVAL_FACTOR * cfg.eval_episodes
    )
    info = {"command": command, "suite": str(out / "search")}
    bench(scenarios, bench_cfg, dest / "suite", info, cfg.workers)
    write_json(dest / "policies.json", {"env": cfg.eval_env, "seed": cfg.eval_seed, "policies": policies})


def _drive_batched(cfg: PipelineConfig, spec: str, dest: Path, command: str) -> None:
    """``spec`` alone on the batched simulator, beside its highway-env rows: ``BATCHED_EVAL_FACTOR``
    times the episodes from the same first seed (the simulators agree in distribution, not draw by draw).
    Skipped where the simulator lacks the road, the interface or a port of the policy."""
    from drivegpt.eval.batched import NoBatchedPort, evaluate_batched, write_batched_drive_outputs
    from drivegpt.sim.batched import SUPPORTED_ENV_IDS
    from drivegpt.sim.batched.human import UnsupportedHumanInterface

    if cfg.eval_env not in SUPPORTED_ENV_IDS:
        return
    episodes = BATCHED_EVAL_FACTOR * cfg.eval_episodes
    try:
        m, per = evaluate_batched(spec, cfg.eval_env, cfg.collect.action, episodes, cfg.eval_seed)
    except (NoBatchedPort, UnsupportedHumanInterface):
        return
    info = {"command": command, "policy": spec, "env": cfg.eval_env, "seed": cfg.eval_seed, "sim": "batched"}
    write_batched_drive_outputs(dest, m, per, info)


def cli_benchmark(cfg: PipelineConfig, out: Path) -> list[str]:
    from drivegpt.sim.batched import SUPPORTED_ENV_IDS
    from drivegpt.sim.batched.human import SUPPORTED_ACTIONS

    policies = benchmark_policies(cfg, out)
    lines = [
        f"drivegpt drive --policy {spec} --env {cfg.eval_env} --action {cfg.collect.action} "
        f"--episodes {cfg.eval_episodes} --seed {cfg.eval_seed} --out {out}/benchmark/{name}"
        for name, spec in policies.items()
    ]
    if cfg.eval_env in SUPPORTED_ENV_IDS:
        lines += [
            f"drivegpt drive --sim batched --policy {spec} --env {cfg.eval_env} "
            f"--action {cfg.collect.action} --episodes {BATCHED_EVAL_FACTOR * cfg.eval_episodes} "
            f"--seed {cfg.eval_seed} "
            f"--out {out}/benchmark/{name}/batched"
            for name, spec in policies.items()
            if spec != "human" or cfg.collect.action in SUPPORTED_ACTIONS
        ]
    named = " ".join(f"--policy {name}={spec}" for name, spec in policies.items())
    suite = f"drivegpt bench --suite {out}/search {named} --gifs {cfg.bench_gifs} --out {out}/benchmark/suite"
    return [*lines, suite]


def check_benchmark(path: Path) -> None:
    policies = _read_json(path / "policies.json", "policies")["policies"]
    for name in policies:
        _read_json(path / name / "metrics.json", "collision_rate", "mean_speed_mps")
    _read_json(path / "suite" / "run.json", "config")


# -- replay: the takeover clips with the final policy at the wheel ----------------------------------


def run_replay(cfg: PipelineConfig, out: Path, command: str) -> None:
    from drivegpt.takeover.clips import clip_monitor, load_clips
    from drivegpt.takeover.monitor import MonitorConfig
    from drivegpt.takeover.replay import replay_clip

    src, dest = out / "takeovers" / "clips", out / "replay"
    clips = load_clips(src)[: cfg.replay_clips]
    monitor = MonitorConfig(**clip_monitor(src))  # judged with the thresholds they were recorded with
    drivers = {"final": final_spec(out), "human": "human"}
    summary: dict[str, Any] = {"command": command, "clips": str(src), "drivers": drivers, "gifs": []}
    rows = ["driver,clip,resolved,collision,ttc_violation,new_takeover,fidelity_max_abs"]
    for name, spec in drivers.items():
        results = []
        for i, clip in enumerate(clips):
            video = dest / f"{clip.id}-{name}.gif" if i < cfg.gif_clips else None
            r = replay_clip(clip, spec, monitor, video)
            results.append(r)
            rows.append(
                f"{name},{r.clip},{int(r.resolved)},{int(r.collision)},{int(r.ttc_violation)},"
                f"{int(r.new_takeover)},{r.fidelity_max_abs:g}"
            )
            if video is not None:
                summary["gifs"].append({"clip": clip.id, "driver": name, "file": video.name})
        n = len(results)
        summary[name] = {
            "policy": spec,
            "replays": n,
            "resolution_rate": sum(r.resolved for r in results) / n if n else None,
            "fidelity_max_abs": max((r.fidelity_max_abs for r in results), default=0.0),
        }
    write_text(dest / "replays.csv", "\n".join(rows) + "\n")
    write_json(dest / "replay.json", summary)


def cli_replay(cfg: PipelineConfig, out: Path) -> list[str]:
    return [
        f"drivegpt replay {out}/takeovers/clips --policy {spec} --out {out}/replay-{name}  "
        f"# the pipeline replays the first {cfg.replay_clips} clips"
        for name, spec in (("final", final_spec(out)), ("human", "human"))
    ]


def check_replay(path: Path) -> None:
    summary = _read_json(path / "replay.json", "final", "human", "gifs")
    for gif in summary["gifs"]:
        if not (path / gif["file"]).is_file():
            raise FileNotFoundError(path / gif["file"])


EVAL_KEYS = ("eval_env", "eval_episodes", "eval_seed")
#: the stages in order: name, output folder, config keys read, stages read, run, check, ...
STAGES: list[Stage] = [
    Stage("collect", "logs", ("collect",), (), run_collect, check_collect, commands=cli_collect),
    Stage("pretrain", "pretrain", ("pretrain",), ("collect",), run_pretrain, check_pretrain,
          resumable=True, commands=cli_pretrain),
    Stage("takeovers", "takeovers", ("monitor", *EVAL_KEYS), ("pretrain",), run_takeovers, check_takeovers,
          commands=cli_takeovers),
    Stage("rlhf", "rlhf", ("rlhf",), ("pretrain",), run_rlhf, check_rlhf, resumable=True, commands=cli_rlhf),
    Stage("baseline", "baseline", ("baseline",), (), run_baseline, check_baseline, resumable=True,
          commands=cli_baseline),
    Stage("search", "search", ("search", "search_families"), ("pretrain", "rlhf"), run_search, check_search,
          commands=cli_search),
    Stage("benchmark", "benchmark", (*EVAL_KEYS, "eval_policies", "video_seed", "bench_gifs"),
          ("pretrain", "rlhf", "baseline", "search"), run_benchmark, check_benchmark, commands=cli_benchmark),
    Stage("replay", "replay", ("replay_clips", "gif_clips"), ("takeovers", "rlhf"), run_replay, check_replay,
          commands=cli_replay),
]  # fmt: skip
