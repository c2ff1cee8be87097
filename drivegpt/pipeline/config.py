"""The pipeline's settings and its unit of work: :class:`PipelineConfig` and :class:`Stage`."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field

from drivegpt.core.atomic import write_text
from drivegpt.core.config import FrozenConfig
from drivegpt.core.errors import UserError
from drivegpt.corner.search import SearchConfig
from drivegpt.data.collect import CollectConfig
from drivegpt.eval.closed_loop import EVAL_SEED
from drivegpt.model.gpt import ModelSize
from drivegpt.model.pretrain_config import PretrainConfig
from drivegpt.policies.sb3_config import BaselineConfig
from drivegpt.rlhf.flywheel_config import FlywheelConfig
from drivegpt.takeover.monitor import MonitorConfig


class PipelineConfig(FrozenConfig):
    """``drivegpt pipeline``: every stage's settings (``configs/quickstart.yaml``, ``default.yaml``)."""

    collect: CollectConfig = CollectConfig(episodes=40)
    """Human-log collection stage."""
    pretrain: PretrainConfig = PretrainConfig(
        model=ModelSize(n_layer=2, n_head=4, n_embd=64, context=8), max_iters=600, eval_every=200
    )
    """DriveGPT pretraining stage (on this run's logs)."""
    monitor: MonitorConfig = MonitorConfig()
    """The simulated safety driver of every monitored drive and replay."""
    eval_env: str = "drivegpt/Highway-v0"
    """Env of the closed-loop evaluations (takeovers and the nominal benchmark)."""
    eval_episodes: int = Field(40, ge=1)
    """Held-out episodes per policy in each evaluation (seeds from ``eval_seed``)."""
    eval_seed: int = Field(EVAL_SEED, ge=0)
    """First evaluation seed (held out: collection uses seeds below 1,000,000)."""
    eval_policies: tuple[str, ...] = ("human", "idm")
    """Reference policies benchmarked next to this run's DriveGPT policies (any policy spec)."""
    workers: int | None = Field(None, ge=1)
    """Worker processes of the evaluations (None: all cores)."""
    rlhf: FlywheelConfig = FlywheelConfig(rounds=2, drive_episodes=20, eval_episodes=20)
    """The flywheel: rounds of drive with the monitor → clips → reward model → PPO (or DPO)."""
    baseline: BaselineConfig = BaselineConfig(total_steps=5000, checkpoint_every=5000)
    """The stable-baselines3 baseline trained on the env reward (benchmarked next to DriveGPT)."""
    search: SearchConfig = SearchConfig(budget=20, batch=10, feasibility_refs=1)
    """Corner-case search against the final policy, per family (the suite keeps every simulation)."""
    search_families: tuple[str, ...] = ("stalled_car", "hard_braking_lead", "cut_in")
    """Scenario families searched (``drivegpt_envs.families.FAMILIES``)."""
    bench_gifs: int = Field(2, ge=0)
    """GIFs of the worst failures in the corner-case benchmark."""
    replay_clips: int = Field(10, ge=0)
    """Takeover clips replayed with the final policy (and with the human, for reference)."""
    gif_clips: int = Field(2, ge=0)
    """Clips rendered as GIFs: the takeover as it happened and its replay with the final policy."""
    video_seed: int = EVAL_SEED
    """Seed of the rendered human episode."""


NOT_FINISHED = "no finished output"


class StageError(UserError):
    """A stage name or a stage's input is wrong; the message lists the valid choices."""


@dataclass(frozen=True)
class Stage:
    """One step of the pipeline: writes ``RUN/<output>``, reads the outputs of ``needs``."""

    name: str
    output: str
    keys: tuple[str, ...]  # PipelineConfig fields it reads: a change re-runs it
    needs: tuple[str, ...]  # stages whose outputs it reads: when one of them runs, it runs too
    run: Callable[[PipelineConfig, Path, str], None]
    check: Callable[[Path], None]  # raises when RUN/<output> is not a valid, complete output
    resumable: bool = False  # keep a partial output (same config) after a kill: ``run`` resumes it
    commands: Callable[[PipelineConfig, Path], list[str]] | None = None  # the same stage by hand (CLI)

    def fingerprint(self, cfg: PipelineConfig) -> dict[str, Any]:
        """The config slice this stage depends on."""
        full = cfg.to_dict()
        return {k: full[k] for k in self.keys}

    def marker(self, out: Path) -> Path:
        return out / "stages" / f"{self.name}.json"

    def done(self, cfg: PipelineConfig, out: Path) -> tuple[bool, str]:
        """(valid output with the same config?, why not)."""
        try:
            mark = json.loads(self.marker(out).read_text())
        except (OSError, json.JSONDecodeError):
            return False, NOT_FINISHED
        if mark.get("config") != self.fingerprint(cfg):
            return False, "its config changed"
        try:
            self.check(out / self.output)
        except Exception as err:  # any failure to load means the output must be redone
            return False, f"output not valid ({str(err).splitlines()[0][:120]})"
        return True, ""


def write_stage_configs(cfg: PipelineConfig, dest: Path) -> None:
    """``dest/<field>.yaml`` for each stage config (collect, pretrain, monitor, ...): the files the
    stage-by-stage commands of the report read."""
    import yaml

    for name in type(cfg).model_fields:
        value = getattr(cfg, name)
        if isinstance(value, FrozenConfig):
            write_text(dest / f"{name}.yaml", yaml.safe_dump(value.to_dict(), sort_keys=False))
