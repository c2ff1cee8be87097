"""``drivegpt baseline train``: stable-baselines3 DQN/PPO baselines on the env reward."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from drivegpt.cli.options import MAX_SEED, ActionOpt, Algo, Simulator, out_dir
from drivegpt.cli.util import command_line, friendly_errors
from drivegpt.core.config import load_config
from drivegpt.core.resources import packaged_configs

#: rl-zoo-style hyperparameter files, one per algorithm


def register(app: typer.Typer) -> None:
    baseline_app = typer.Typer(no_args_is_help=True, help="stable-baselines3 baselines (DQN, PPO).")
    app.add_typer(baseline_app, name="baseline")

    @baseline_app.command("train")
    @friendly_errors
    def train(
        ctx: typer.Context,
        algo: Algo = typer.Option(..., help="dqn (accel or meta) or ppo (any action interface)."),
        out: Path = typer.Option(
            ..., help="Run directory (policy/, checkpoint/, progress.csv, events).", callback=out_dir
        ),
        env: str | None = typer.Option(None, help="Env id (default: the config's, drivegpt/Highway-v0)."),
        steps: int | None = typer.Option(None, min=1, help="Simulator steps (default: the config's)."),
        config: Path | None = typer.Option(None, help="YAML config (default: configs/baselines/ALGO.yaml)."),
        action: ActionOpt = None,
        n_envs: int | None = typer.Option(
            None, min=1, help="Parallel envs (default: one per core; --sim batched: 64 episodes at once)."
        ),
        sim: Annotated[
            Simulator | None, typer.Option(help="Simulator (default: the config's, highway-env).")
        ] = None,
        seed: int | None = typer.Option(None, min=0, max=MAX_SEED, help="Seed (default: the config's)."),
        resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its checkpoint."),
    ) -> None:
        """Train an SB3 baseline; load it afterwards as `sb3-dqn:OUT` / `sb3-ppo:OUT`."""
        from drivegpt.policies.sb3 import train_baseline
        from drivegpt.policies.sb3_config import BaselineConfig

        overrides = {"algo": algo, "env_id": env, "total_steps": steps, "action": action}
        cfg = load_config(
            BaselineConfig,
            config or packaged_configs() / "baselines" / f"{algo}.yaml",
            {**overrides, "n_envs": n_envs, "seed": seed, "sim": sim},
            {"env_id": "--env", "total_steps": "--steps"},
        )
        figures = train_baseline(cfg, out, command=command_line(ctx), resume=resume)
        typer.echo(
            f"{cfg.algo} on {cfg.env_id}: {figures['steps']} steps at {figures['steps_per_s'] or 0:.1f} "
            f"steps/s ({figures['n_envs']} envs) -> load as sb3-{cfg.algo}:{out}"
        )
