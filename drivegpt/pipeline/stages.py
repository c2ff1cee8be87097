"""The pipeline's stages: each one calls a stage's library function and says what a valid output is.
The training stages are here (collect, pretrain, takeovers, RLHF, the baseline), the evaluation ones
in ``eval_stages`` (search, benchmark, replay); ``STAGES`` lists them all, in order.

Every stage reads its inputs from earlier stages' folders under ``RUN/`` and writes its own folder;
``check`` raises when that folder is missing, incomplete or corrupt (``load_logs`` verifies
checksums, ``load_clips`` too). The order is the loop of docs/architecture.md.
"""

from __future__ import annotations

from pathlib import Path

from drivegpt.core.atomic import write_json
from drivegpt.eval.closed_loop import EVAL_SEED
from drivegpt.pipeline.config import PipelineConfig, Stage
from drivegpt.pipeline.eval_stages import (
    check_benchmark,
    check_replay,
    check_search,
    cli_benchmark,
    cli_replay,
    cli_search,
    run_benchmark,
    run_replay,
    run_search,
)
from drivegpt.pipeline.outputs import pretrained_spec, read_json, resume_or_clear

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
    resume_or_clear(run, cfg.pretrain.to_dict())
    pretrain(cfg.pretrain, out / "logs", run, resume=(run / "checkpoint").exists(), command=command)


def cli_pretrain(cfg: PipelineConfig, out: Path) -> list[str]:
    return [f"drivegpt pretrain --config {out}/configs/pretrain.yaml --data {out}/logs --out {out}/pretrain"]


def check_pretrain(path: Path) -> None:
    read_json(path / "metrics.json", "action_accuracy", "cross_entropy")
    read_json(path / "policy" / "policy.json")


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

    read_json(path / "metrics.json", "takeovers", "takeovers_per_100km")
    load_clips(path / "clips")


# -- rlhf: reward model + fine-tuning, in flywheel rounds -------------------------------------------


def run_rlhf(cfg: PipelineConfig, out: Path, command: str) -> None:
    from drivegpt.rlhf.flywheel import run_flywheel

    run = out / "rlhf"  # the flywheel resumes its own rounds
    resume_or_clear(run, cfg.rlhf.to_dict())
    fly, round0 = cfg.rlhf, run / "round_0" / "eval" / "metrics.json"
    drive = (fly.eval_env, fly.eval_episodes, fly.monitor, EVAL_SEED)
    if drive == (cfg.eval_env, cfg.eval_episodes, cfg.monitor, cfg.eval_seed) and not round0.exists():
        # Round 0 evaluates the pretrained policy exactly as the takeovers stage drove it (same env,
        # seeds and monitor: deterministic, so the same figures); the flywheel skips an evaluation
        # whose metrics.json exists. KL of the reference to itself is 0.
        m = read_json(out / "takeovers" / "metrics.json")
        write_json(round0, {**m, "kl_to_reference": 0.0})
    run_flywheel(cfg.rlhf, out / "pretrain", run, command)


def check_rlhf(path: Path) -> None:
    read_json(path / "metrics.json", "rounds")
    read_json(path / "policy" / "policy.json")
    if not (path / "curve.csv").is_file():
        raise FileNotFoundError(path / "curve.csv")


def cli_rlhf(cfg: PipelineConfig, out: Path) -> list[str]:
    return [f"drivegpt rlhf --config {out}/configs/rlhf.yaml --policy {out}/pretrain --out {out}/rlhf"]


# -- baseline: stable-baselines3 on the env reward ---------------------------------------------------


def run_baseline(cfg: PipelineConfig, out: Path, command: str) -> None:
    from drivegpt.policies.sb3 import train_baseline

    run = out / "baseline"
    resume_or_clear(run, cfg.baseline.to_dict())
    resume = (run / "checkpoint" / "model.zip").is_file()
    train_baseline(cfg.baseline, run, command, resume=resume)


def check_baseline(path: Path) -> None:
    read_json(path / "train.json", "steps")
    read_json(path / "policy" / "policy.json")


def cli_baseline(cfg: PipelineConfig, out: Path) -> list[str]:
    config = f"{out}/configs/baseline.yaml"
    return [f"drivegpt baseline train --algo {cfg.baseline.algo} --config {config} --out {out}/baseline"]


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
