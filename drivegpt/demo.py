"""The quickstart run behind ``make demo``: collect, verify, evaluate, render, report.

It grows with the project; each stage skips itself when its output already exists and is valid.
"""

from __future__ import annotations

import time
from pathlib import Path

from pydantic import Field

from drivegpt.atomic import write_json, write_text
from drivegpt.clips import load_clips, write_clips
from drivegpt.collect import CollectConfig, collect
from drivegpt.config import FrozenConfig, load_config
from drivegpt.evaluate import EVAL_SEED, evaluate, evaluate_monitored, write_drive_outputs
from drivegpt.logs import DataError, load_logs
from drivegpt.policy import load_policy
from drivegpt.pretrain import ModelSize, PretrainConfig, pretrain
from drivegpt.replay import replay_clip
from drivegpt.takeover import MonitorConfig


class DemoConfig(FrozenConfig):
    """``configs/quickstart.yaml``: the laptop-sized end-to-end run."""

    collect: CollectConfig = CollectConfig(episodes=40)
    """Human-log collection stage."""
    pretrain: PretrainConfig = PretrainConfig(
        model=ModelSize(n_layer=2, n_head=4, n_embd=64, context=8), max_iters=600, eval_every=200
    )
    """DriveGPT pretraining stage (on the demo's own logs)."""
    eval_env: str = "drivegpt/Highway-v0"
    """Env of the closed-loop evaluation."""
    eval_episodes: int = Field(40, ge=1)
    """Held-out evaluation episodes per policy (seeds from 1,000,000)."""
    eval_policies: tuple[str, ...] = ("human", "idm", "drivegpt")
    """Policies evaluated side by side (the demo's own DriveGPT run is added)."""
    replay_clips: int = Field(10, ge=0)
    """Takeover clips replayed with the human and with DriveGPT."""
    video_seed: int = EVAL_SEED
    """Seed of the rendered human episode."""


def load_json(path: Path) -> dict:
    import json

    return json.loads(path.read_text())


def _fmt_ci(m: dict) -> str:
    lo, hi = m["collision_rate_ci"]
    return f"{m['collision_rate']:.3f} [{lo:.3f}, {hi:.3f}]"


def run_demo(config_path: str | Path, out: str | Path, command: str) -> Path:
    cfg = load_config(DemoConfig, config_path)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "run.json", {"command": command, "config": cfg.to_dict()})
    timings: dict[str, float] = {}

    t0 = time.time()
    logs = out / "logs"
    try:
        ds = load_logs(logs)
        print(f"[collect] {logs} exists and verifies: skipped")
    except DataError:
        collect(cfg.collect, logs)
        ds = load_logs(logs)
    timings["collect"] = time.time() - t0

    t0 = time.time()
    run = out / "pretrain"
    if (run / "metrics.json").is_file() and (run / "policy" / "policy.json").is_file():
        print(f"[pretrain] {run} is complete: skipped")
    else:
        pretrain(cfg.pretrain, logs, run, resume=(run / "checkpoint").exists(), command=command)
    timings["pretrain"] = time.time() - t0
    imitation = load_json(run / "metrics.json")

    rows = []
    for policy in (*cfg.eval_policies, f"drivegpt:{run}"):
        t0 = time.time()
        m, eps = evaluate(policy, cfg.eval_env, cfg.collect.action, cfg.eval_episodes)
        name = "drivegpt-demo" if policy.startswith("drivegpt:") else policy
        write_drive_outputs(out / f"drive-{name}", m, eps, {"policy": policy, "env": cfg.eval_env})
        timings[f"drive {policy}"] = time.time() - t0
        km_c = "-" if m["km_per_collision"] is None else f"{m['km_per_collision']:.1f}"
        rows.append(
            f"| {policy} | {m['episodes']} | {_fmt_ci(m)} | {m['mean_speed_mps']:.2f} | "
            f"{m['km_driven']:.1f} | {km_c} |"
        )

    # Takeovers: the demo's DriveGPT under the safety driver, its clips replayed with two drivers.
    t0 = time.time()
    spec = f"drivegpt:{run}"
    m, eps, clips = evaluate_monitored(spec, cfg.eval_env, None, cfg.eval_episodes)
    write_drive_outputs(out / "takeovers", m, eps, {"policy": spec, "env": cfg.eval_env, "takeovers": True})
    write_clips(
        out / "takeovers" / "clips", clips, {"command": command, "monitor": MonitorConfig().to_dict()}
    )
    clips = load_clips(out / "takeovers" / "clips")[: cfg.replay_clips]
    replays = {}
    for who in ("human", spec):
        video = out / "replay.gif" if who == spec and clips else None
        rs = [replay_clip(c, who, MonitorConfig(), video if i == 0 else None) for i, c in enumerate(clips)]
        replays[who] = (
            sum(r.resolved for r in rs),
            len(rs),
            max((r.fidelity_max_abs for r in rs), default=0.0),
        )
    timings["takeovers + replay"] = time.time() - t0
    kpt = "-" if m["km_per_takeover"] is None else f"{m['km_per_takeover']:.2f}"
    takeover_lines = [
        f"DriveGPT (demo run) on {cfg.eval_episodes} held-out episodes with the safety driver: "
        f"{m['takeovers']} takeovers ({m['late_takeovers']} late), "
        f"{m['takeovers_per_100km'] or 0:.1f} per 100 km of policy driving, {kpt} km per takeover.",
        "",
        "| replayed with | resolved | fidelity (max abs) |",
        "|---|---|---|",
        *[f"| {who} | {ok}/{n} | {fid:g} |" for who, (ok, n, fid) in replays.items()],
        "",
        "![replay of a takeover with DriveGPT at the wheel](replay.gif)" if clips else "(no takeovers)",
    ]

    from drivegpt.video import render_episode

    render_episode(cfg.eval_env, cfg.collect.action, load_policy("human"), cfg.video_seed, out / "human.gif")
    scen = ", ".join(s.env_id for s in cfg.collect.scenarios)
    report = "\n".join(
        [
            "# DriveGPT demo report",
            "",
            f"Command: `{command}`",
            "",
            "## Human driving logs",
            f"{len(ds)} episodes, {ds.manifest['steps']} steps, {cfg.collect.action} actions, "
            f"scenarios: {scen}. Verified with `drivegpt data check {logs}`.",
            "",
            "## DriveGPT pretraining (demo run)",
            f"{imitation['parameters']} parameters, {imitation['iter']} steps on {imitation['train_steps']} "
            f"logged decisions: held-out action accuracy {imitation['action_accuracy']:.3f}, cross-entropy "
            f"{imitation['cross_entropy']:.3f} nats (chance: ln 5 = 1.609). `drivegpt` in the table below "
            "is the checkpoint shipped with the package (trained on 1000 episodes).",
            "",
            f"## Closed loop on {cfg.eval_env} (held-out seeds from {EVAL_SEED})",
            "",
            "| policy | episodes | collision rate [95% CI] | mean speed [m/s] | km | km per collision |",
            "|---|---|---|---|---|---|",
            *rows,
            "",
            "![human driver](human.gif)",
            "",
            "## Takeovers and replay",
            *takeover_lines,
            "",
            "## Stage wall times",
            *[f"- {k}: {v:.1f} s" for k, v in timings.items()],
            "",
        ]
    )
    write_text(out / "report.md", report)
    return out / "report.md"
