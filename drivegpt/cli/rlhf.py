"""``drivegpt reward train|score``, ``drivegpt rlhf`` (the flywheel), ``drivegpt dpo``, ``drivegpt ppo``."""

from __future__ import annotations

from pathlib import Path

import typer

from drivegpt.cli.options import MAX_SEED, WorkersOpt, out_dir
from drivegpt.cli.util import command_line, friendly_errors
from drivegpt.core.config import load_config

reward_app = typer.Typer(no_args_is_help=True, help="Reward model: learn from takeovers, score policies.")


@reward_app.command("train")
@friendly_errors
def reward_train(
    ctx: typer.Context,
    data: list[Path] = typer.Option(..., help="Clip directory (repeat for several)."),
    init: str = typer.Option(
        ..., help="DriveGPT whose backbone to start from: drivegpt, drivegpt-rlhf or a run dir."
    ),
    out: Path = typer.Option(
        ..., help="Output run directory (reward/, metrics.json, log.csv).", callback=out_dir
    ),
    config: Path | None = typer.Option(None, help="YAML RewardConfig (default: built-in)."),
    human_logs: Path | None = typer.Option(
        None, help="Human driving logs for the human term (human_weight)."
    ),
) -> None:
    """Train a Bradley–Terry reward model on takeover pairs; report held-out pairwise accuracy."""
    from drivegpt.policies.registry import drivegpt_dir
    from drivegpt.rlhf.reward_model import RewardConfig, train_reward_model

    cfg = load_config(RewardConfig, config) if config else RewardConfig()
    m = train_reward_model(cfg, list(data), drivegpt_dir(init), out, command_line(ctx), human_logs=human_logs)
    held = "no clip held out (" + ("val_fraction 0)" if cfg.val_fraction == 0 else "one clip only)")
    if m["val_pairs"]:
        held = f"held-out pairwise accuracy {m['pairwise_accuracy']:.3f} on {m['val_pairs']} pairs"
    typer.echo(f"{held} (train {m['train_pairwise_accuracy']:.3f}, {m['clips']} clips) -> {out / 'reward'}")


@reward_app.command("score")
@friendly_errors
def reward_score(
    ctx: typer.Context,
    reward: Path = typer.Option(..., help="Reward-model run directory (from `drivegpt reward train`)."),
    policy: list[str] = typer.Option(..., help="Policy spec to score (repeat): human, drivegpt:RUN, ..."),
    env: str = typer.Option("drivegpt/Highway-v0", help="Env id."),
    episodes: int = typer.Option(20, min=1, help="Episodes to drive."),
    seed: int = typer.Option(
        1_000_000, min=0, max=MAX_SEED, help="First seed (held-out seeds start at 1,000,000)."
    ),
    workers: WorkersOpt = None,
    out: Path | None = typer.Option(None, help="Write scores.json here.", callback=out_dir),
) -> None:
    """Score any policy's driving with the reward model (DriveGPT as an evaluator)."""
    from drivegpt.core.atomic import write_json
    from drivegpt.core.errors import UserError
    from drivegpt.eval.closed_loop import evaluate
    from drivegpt.policies.registry import policy_action_kind
    from drivegpt.rlhf.reward_model import load_reward_model, score_episodes

    model, meta = load_reward_model(reward)
    for spec in policy:  # the reward model reads the episodes' tokens in its own action interface
        want = meta["action"]
        if (kind := policy_action_kind(spec, want)) != want:
            raise UserError(f"{spec}: drives {kind} actions; the reward model {reward} reads {want}")
    scores = {}
    for spec in policy:
        m, eps = evaluate(spec, env, meta["action"], episodes, seed, workers)
        s = score_episodes(model, meta, eps)
        scores[spec] = {"reward_mean": s["reward_mean"], "episodes": s["episodes"], **m}
        typer.echo(f"{spec}: reward {s['reward_mean']:+.3f}/step, collision rate {m['collision_rate']:.3f}")
    if out is not None:
        run = {"command": command_line(ctx), "reward": str(reward)}
        write_json(out / "scores.json", {**run, "scores": scores})


@friendly_errors
def rlhf(
    ctx: typer.Context,
    config: Path = typer.Option(..., help="YAML FlywheelConfig, e.g. configs/rlhf/quick.yaml"),
    policy: str = typer.Option(
        ..., help="DriveGPT to start from (also the KL reference): drivegpt, drivegpt-rlhf or a run dir."
    ),
    out: Path = typer.Option(
        ..., help="Output dir (round_<k>/, curve.csv, learning_curve.png, policy/).", callback=out_dir
    ),
    rounds: int | None = typer.Option(None, help="Override the config's rounds."),
    workers: WorkersOpt = None,
) -> None:
    """RLHF flywheel: drive with the monitor → takeover clips → reward model → PPO (or DPO), in rounds.

    Resumes where it stopped when run again with the same --out."""
    from drivegpt.policies.registry import drivegpt_dir
    from drivegpt.rlhf.flywheel import run_flywheel
    from drivegpt.rlhf.flywheel_config import FlywheelConfig

    cfg = load_config(FlywheelConfig, config, {"rounds": rounds, "workers": workers})
    m = run_flywheel(cfg, drivegpt_dir(policy), out, command_line(ctx))
    tail = f", {m['takeovers_per_100km']:.0f} takeovers/100 km held-out" if "takeovers_per_100km" in m else ""
    typer.echo(f"{cfg.method} flywheel: {cfg.rounds} rounds{tail} -> {out / 'policy'}")


@friendly_errors
def dpo(
    ctx: typer.Context,
    data: list[Path] = typer.Option(..., help="Clip directory (repeat for several)."),
    policy: str = typer.Option(
        ..., help="DriveGPT to fine-tune (also the reference): drivegpt, drivegpt-rlhf or a run dir."
    ),
    out: Path = typer.Option(
        ..., help="Output run directory (policy/, metrics.json, log.csv).", callback=out_dir
    ),
    config: Path | None = typer.Option(None, help="YAML DPOConfig (default: built-in)."),
) -> None:
    """DPO on takeover pairs against the frozen pretrained policy, with a behaviour-cloning term."""
    from drivegpt.policies.registry import drivegpt_dir
    from drivegpt.rlhf.dpo import DPOConfig
    from drivegpt.rlhf.dpo import dpo as run_dpo

    cfg = load_config(DPOConfig, config) if config else DPOConfig()
    m = run_dpo(cfg, list(data), drivegpt_dir(policy), out, None, command_line(ctx))
    acc = m["val_implicit_accuracy"]  # NaN: nothing held out (val_fraction 0, or a single clip)
    held = f"held-out implicit preference accuracy {acc:.3f}" if acc == acc else "no clip held out"
    typer.echo(f"{held} -> {out / 'policy'}")


@friendly_errors
def ppo(
    ctx: typer.Context,
    config: Path = typer.Option(..., help="YAML BatchedPPOConfig, e.g. configs/rlhf/ppo-batched.yaml"),
    out: Path = typer.Option(
        ..., help="Output run directory (policy/, log.csv, tb/, metrics.json).", callback=out_dir
    ),
    policy: str = typer.Option(
        "drivegpt", help="DriveGPT to fine-tune: drivegpt, drivegpt-rlhf or a run dir."
    ),
    reward: Path | None = typer.Option(None, help="Reward-model run (`drivegpt reward train`); rm_coef > 0."),
    reference: str | None = typer.Option(None, help="KL reference policy (default: --policy)."),
    updates: int | None = typer.Option(None, help="Override the config's updates."),
    resume: bool = typer.Option(False, help="Continue the run in --out (also to more updates)."),
) -> None:
    """PPO on the batched simulator under the batched safety driver (reward model, Lagrangian, crawl)."""
    from drivegpt.rlhf.ppo_batched import ppo_batched
    from drivegpt.rlhf.ppo_batched_config import BatchedPPOConfig

    cfg = load_config(BatchedPPOConfig, config, {"updates": updates})
    m = ppo_batched(cfg, policy, reward, out, reference, resume, command_line(ctx))
    typer.echo(
        f"{m['policy_steps']:,} policy steps: {m['takeovers_per_100km']:.1f} takeovers/100 km, "
        f"{m['mean_speed_mps']:.2f} m/s in the last update's rollouts -> {out / 'policy'}"
    )


def register(app: typer.Typer) -> None:
    app.add_typer(reward_app, name="reward")
    app.command("rlhf")(rlhf)
    app.command("dpo")(dpo)
    app.command("ppo")(ppo)
