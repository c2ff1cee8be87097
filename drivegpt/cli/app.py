"""The ``drivegpt`` command: thin subcommands over library functions."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer

from drivegpt.cli.options import (
    MAX_SEED,
    ActionOpt,
    BackendOpt,
    BatchOpt,
    DeviceOpt,
    RayAddressOpt,
    SimOpt,
    SimOrDefaultOpt,
    WorkersOpt,
    out_dir,
)
from drivegpt.cli.util import _command_line, friendly_errors
from drivegpt.core.config import load_config
from drivegpt.core.errors import UserError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="DriveGPT: imitation + RLHF from simulated takeovers on highway-env.",
)
data_app = typer.Typer(no_args_is_help=True, help="Inspect and verify driving-log datasets.")
app.add_typer(data_app, name="data")


def takeover_summary(m: dict[str, Any]) -> str:
    """One line of takeover figures for the terminal."""
    return (
        f"{m['takeovers']} takeovers ({m['late_takeovers']} late), {m['takeovers_per_100km'] or 0:.1f} per "
        f"100 km of policy driving; {m['takeovers_at_start']} at an episode's first state, "
        f"{m['takeovers_after_start_per_100km'] or 0:.1f} per 100 km without them"
    )


@app.command()
@friendly_errors
def collect(
    ctx: typer.Context,
    config: Path = typer.Option(..., help="YAML collect config, e.g. configs/collect/tiny.yaml"),
    out: Path = typer.Option(..., help="Output dataset directory (replaced atomically).", callback=out_dir),
    episodes: int | None = typer.Option(None, help="Override the config's episode count."),
    workers: WorkersOpt = None,
    seed: int | None = typer.Option(None, min=0, max=MAX_SEED, help="First episode seed."),
    backend: BackendOpt = "local",
    ray_address: RayAddressOpt = None,
    sim: SimOrDefaultOpt = None,
    batch: int | None = typer.Option(None, min=1, help="Episodes stepped together on the batched simulator."),
) -> None:
    """Record human-driven episodes into a Minari dataset with a checksum manifest.

    --sim: default the config's, else auto: batched for the scenarios it has, highway-env for the rest."""
    from drivegpt.data.collect import CollectConfig, collect_simulators
    from drivegpt.data.collect import collect as run_collect
    from drivegpt.data.logs import load_logs

    over = {"episodes": episodes, "workers": workers, "seed": seed, "sim": sim, "batch": batch}
    cfg = load_config(CollectConfig, config, over)
    sims = collect_simulators(cfg)  # before any driving: a scenario --sim batched lacks fails here
    t0 = time.time()
    path = run_collect(cfg, out, backend=backend, ray_address=ray_address)
    ds = load_logs(path)
    from drivegpt.core.atomic import write_json

    run = {"command": _command_line(ctx), "config": cfg.to_dict(), "scenario_sims": list(sims)}
    write_json(Path(out) / "run.json", run)
    typer.echo(
        f"wrote {len(ds)} episodes / {ds.manifest['steps']} steps to {path} in {time.time() - t0:.1f} s"
    )


@data_app.command("check")
@friendly_errors
def data_check(
    path: Path = typer.Argument(..., metavar="DATASET", help="Dataset directory written by collect."),
) -> None:
    """Verify checksums and integrity; exit 0 when sound, non-zero with the reason otherwise."""
    from drivegpt.data.logs import load_logs

    ds = load_logs(path)
    n_steps = sum(len(ep.rewards) for ep in ds.episodes())  # reads every arrow file
    typer.echo(
        f"ok: {path} ({len(ds)} episodes, {n_steps} steps, {len(ds.manifest['files'])} files verified)"
    )


@data_app.command("info")
@friendly_errors
def data_info(
    path: Path = typer.Argument(..., metavar="DATASET", help="Dataset directory written by collect."),
) -> None:
    """Summarise a dataset: episodes, steps, scenarios, collisions, personalities."""
    import numpy as np

    from drivegpt.data.logs import load_logs

    ds = load_logs(path)
    eps = list(ds.episodes())
    crashed = [bool(ep.states["crashed"].max() > 0) for ep in eps]
    envs: dict[str, int] = {}
    for ep in eps:
        envs[ep.meta["env_id"]] = envs.get(ep.meta["env_id"], 0) + 1
    speeds = np.concatenate([ep.states["speed"][1:] for ep in eps])
    typer.echo(
        f"{path}: {len(eps)} episodes, {sum(len(e.rewards) for e in eps)} steps, action={ds.action_kind}"
    )
    typer.echo(f"  scenarios: {envs}")
    typer.echo(
        f"  collisions: {sum(crashed)} ({100 * np.mean(crashed):.1f}%), mean speed {speeds.mean():.2f} m/s"
    )


@app.command()
@friendly_errors
def drive(
    ctx: typer.Context,
    policy: str = typer.Option(
        "human", help="Policy spec: human, idm, drivegpt, drivegpt:RUN_DIR, sb3-dqn:PATH, sb3-ppo:PATH."
    ),
    env: str = typer.Option("drivegpt/Highway-v0", help="Env id (drivegpt/ or stock highway-env)."),
    action: ActionOpt = None,
    episodes: int = typer.Option(20, min=1, help="Episodes to drive."),
    seed: int = typer.Option(
        1_000_000, min=0, max=MAX_SEED, help="First seed (evaluation seeds start at 1,000,000)."
    ),
    workers: WorkersOpt = None,
    backend: BackendOpt = "local",
    ray_address: RayAddressOpt = None,
    out: Path = typer.Option(
        ..., help="Output directory for metrics.json and episodes.csv.", callback=out_dir
    ),
    takeovers: bool = typer.Option(False, "--takeovers", help="Watch the policy with the takeover monitor."),
    clips_out: Path | None = typer.Option(
        None, help="With --takeovers: write the takeover clips here.", callback=out_dir
    ),
    monitor_config: Path | None = typer.Option(None, help="YAML MonitorConfig (default: built-in)."),
    sim: SimOpt = "highway-env",
    batch: BatchOpt = 1024,
    device: DeviceOpt = "auto",
) -> None:
    """Drive a policy in closed loop and write metrics.json (with --takeovers: takeover figures + clips)."""
    from drivegpt.core.device import resolve_device
    from drivegpt.eval.closed_loop import evaluate, evaluate_monitored, write_drive_outputs

    if clips_out is not None and not takeovers:
        raise UserError("--clips-out needs --takeovers")
    if monitor_config is not None and not takeovers:
        raise UserError("--monitor-config needs --takeovers (it sets the monitor that watches the policy)")
    info = {"command": _command_line(ctx), "policy": policy, "env": env, "action": action}
    info |= {"episodes": episodes, "seed": seed, "sim": sim}
    dev = resolve_device(device) if sim == "batched" else None
    if dev is not None:
        info["device"] = str(dev)
    if sim == "batched" and takeovers:
        from drivegpt.core.atomic import write_csv, write_json
        from drivegpt.takeover.batched_clips import evaluate_monitored_batched
        from drivegpt.takeover.monitor import MonitorConfig

        mcfg = load_config(MonitorConfig, monitor_config) if monitor_config else MonitorConfig()
        clips: list | None = [] if clips_out is not None else None
        metrics, per = evaluate_monitored_batched(
            policy, env, action, episodes, seed, batch, mcfg, clips, device=dev or "cpu"
        )
        if clips_out is not None:
            from drivegpt.takeover.clips import write_clips

            write_clips(clips_out, clips or [], {"command": _command_line(ctx), "monitor": mcfg.to_dict()})
        per["crashed"] = per["crashed"].astype(int)
        write_json(out / "metrics.json", metrics)
        write_csv(out / "episodes.csv", [list(per), *zip(*per.values(), strict=True)])
        write_json(out / "run.json", {**info, "monitor": mcfg.to_dict()})
        typer.echo(takeover_summary(metrics))
    elif sim == "batched":
        from drivegpt.eval.batched import evaluate_batched, write_batched_drive_outputs

        metrics, per = evaluate_batched(policy, env, action, episodes, seed, batch, device=dev or "cpu")
        write_batched_drive_outputs(out, metrics, per, info)
    elif takeovers:
        from drivegpt.takeover.clips import write_clips
        from drivegpt.takeover.monitor import MonitorConfig

        mcfg = load_config(MonitorConfig, monitor_config) if monitor_config else MonitorConfig()
        metrics, eps, clips = evaluate_monitored(
            policy,
            env,
            action,
            episodes,
            seed,
            workers,
            backend,
            mcfg.to_dict(),
            ray_address=ray_address,
        )
        if clips_out is not None:
            from drivegpt.rlhf.preferences import policy_steps

            extra = {"command": _command_line(ctx), "monitor": mcfg.to_dict()}
            write_clips(clips_out, clips, extra, policy_steps(eps))
        typer.echo(takeover_summary(metrics))
    else:
        metrics, eps = evaluate(
            policy, env, action, episodes, seed, workers, backend, ray_address=ray_address
        )
    if sim == "highway-env":
        write_drive_outputs(out, metrics, eps, info)
    lo, hi = metrics["collision_rate_ci"]
    typer.echo(
        f"{policy} on {env}: collision rate {metrics['collision_rate']:.3f} "
        f"[{lo:.3f}, {hi:.3f}], mean speed {metrics['mean_speed_mps']:.2f} m/s, "
        f"{metrics['km_driven']:.1f} km -> {out / 'metrics.json'}"
    )


@app.command()
@friendly_errors
def replay(
    ctx: typer.Context,
    clips: Path = typer.Argument(
        ..., metavar="CLIPS", help="Clip directory written by `drive --takeovers --clips-out`."
    ),
    clip: list[str] | None = typer.Option(None, help="Replay only these clip ids (repeatable)."),
    policy: str = typer.Option(..., help="Who drives from the takeover moment (policy spec)."),
    monitor: bool = typer.Option(
        True,
        "--monitor/--no-monitor",
        help="--no-monitor: the look-ahead trigger does not count after hand-back.",
    ),
    video: Path | None = typer.Option(None, help="GIF/MP4 of the first replayed clip."),
    out: Path = typer.Option(..., help="Output directory for replay.json and replays.csv.", callback=out_dir),
    workers: WorkersOpt = None,
    backend: BackendOpt = "local",
    ray_address: RayAddressOpt = None,
    sim: SimOrDefaultOpt = None,
) -> None:
    """Re-simulate takeover clips exactly, then let POLICY drive; report resolution and fidelity.

    Each clip replays on the simulator it was recorded on; --sim highway-env replays batched clips
    on highway-env, their state written into highway-env's objects."""
    from drivegpt.core.atomic import write_json, write_text
    from drivegpt.takeover.clips import clip_monitor, load_clips
    from drivegpt.takeover.monitor import MonitorConfig
    from drivegpt.takeover.replay import replay_clips

    loaded = load_clips(clips, clip or None)
    mcfg = MonitorConfig(**clip_monitor(clips))  # judge with the thresholds the clips were recorded with
    results = replay_clips(loaded, policy, mcfg, video, monitor, workers, backend, ray_address, sim=sim)
    n = len(results)
    summary = {
        "replays": n,
        "resolution_rate": sum(r.resolved for r in results) / n if n else None,
        "fidelity_max_abs": max((r.fidelity_max_abs for r in results), default=0.0),
        "replays_per_s": n / max(1e-9, sum(r.seconds for r in results)),
        "policy": policy,
        "sim": sim or "the clips' own",
        "command": _command_line(ctx),
    }
    write_json(out / "replay.json", summary)
    rows = [",".join(results[0]._fields if results else ["clip"])]
    rows += [",".join(str(x) for x in r) for r in results]
    write_text(out / "replays.csv", "\n".join(rows) + "\n")
    typer.echo(
        f"{n} replays: resolution rate {summary['resolution_rate'] or 0:.3f}, "
        f"fidelity {summary['fidelity_max_abs']:g}, {summary['replays_per_s']:.2f} replays/s -> {out}"
    )


@app.command()
@friendly_errors
def pretrain(
    ctx: typer.Context,
    config: Path = typer.Option(..., help="YAML pretrain config, e.g. configs/pretrain/accel-small.yaml"),
    data: Path = typer.Option(..., help="Log dataset directory written by `drivegpt collect`."),
    out: Path = typer.Option(
        ..., help="Run directory (checkpoint/, policy/, log.csv, tb/).", callback=out_dir
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its checkpoint."),
    max_iters: int | None = typer.Option(None, help="Override the config's max_iters."),
) -> None:
    """Pretrain DriveGPT by next-action-token imitation of the human logs."""
    from drivegpt.model.pretrain import pretrain as run_pretrain
    from drivegpt.model.pretrain_config import PretrainConfig

    cfg = load_config(PretrainConfig, config, {"max_iters": max_iters})
    m = run_pretrain(cfg, data, out, resume=resume, command=_command_line(ctx))
    typer.echo(
        f"val accuracy {m['action_accuracy']:.3f}, val CE {m['cross_entropy']:.3f} nats "
        f"({m['parameters']} parameters) -> policy in {out / 'policy'}"
    )


@app.command()
@friendly_errors
def demo(
    ctx: typer.Context,
    out: Path = typer.Option(Path("runs/demo"), help="Output directory of the demo run.", callback=out_dir),
    config: Path = typer.Option(Path("configs/quickstart.yaml"), help="Demo config."),
) -> None:
    """The quickstart: `drivegpt pipeline` with configs/quickstart.yaml (what `make demo` runs)."""
    from drivegpt.pipeline.demo import run_demo

    report = run_demo(config, out, _command_line(ctx))
    typer.echo(f"report: {report}")


# Subcommands that live in their own modules: each module has `register(app)` adding its commands.
# One line per module, in this block only.
# fmt: off
from drivegpt.cli.baseline import register as _register_baseline; _register_baseline(app)  # noqa: E402, E702, I001
from drivegpt.cli.corner import register as _register_corner; _register_corner(app)  # noqa: E402, E702, I001
from drivegpt.cli.pipeline import register as _register_pipeline; _register_pipeline(app)  # noqa: E402, E702, I001
from drivegpt.cli.rlhf import register as _register_rlhf; _register_rlhf(app)  # noqa: E402, E702, I001
# fmt: on
# (end of registrations)


if __name__ == "__main__":  # pragma: no cover
    app()
