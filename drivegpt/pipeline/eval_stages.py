"""The pipeline's evaluation stages: search (corner cases of the final policy), benchmark (every policy
on the evaluation episodes, and on the batched simulator where it has a port) and replay (takeover
clips replayed exactly). Each calls its library function and says what a valid output is; the
training stages and the list of all stages are in ``stages``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from drivegpt.core.atomic import write_json, write_text
from drivegpt.pipeline.config import PipelineConfig
from drivegpt.pipeline.outputs import final_spec, pretrained_spec, read_json

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
    read_json(path / "summary.json")


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
    policies = read_json(path / "policies.json", "policies")["policies"]
    for name in policies:
        read_json(path / name / "metrics.json", "collision_rate", "mean_speed_mps")
    read_json(path / "suite" / "run.json", "config")


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
    summary = read_json(path / "replay.json", "final", "human", "gifs")
    for gif in summary["gifs"]:
        if not (path / gif["file"]).is_file():
            raise FileNotFoundError(path / gif["file"])
