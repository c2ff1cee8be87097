"""The improvement flywheel: drive with the monitor → takeover clips → reward model → fine-tune, in rounds.

Round ``k`` writes ``out/round_<k>/``: ``clips/`` (what the current policy's takeovers taught; not
with ``dagger``, which learns from ``labels/``: its own unmonitored drive, every state labelled),
``reward/`` (reward model on every clip so far, from the pretrained backbone), ``ppo/`` or ``dpo/``
(the fine-tuned policy; the KL reference is always the pretrained policy) and ``eval/`` (held-out
takeover figures of the new policy). Each step skips itself when its output is complete, so a
killed flywheel resumes where it stopped. ``curve.csv`` and ``learning_curve.png`` track takeovers
per 100 km and the KL to the reference round by round; ``policy/`` is the final policy.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from drivegpt.core.atomic import write_csv, write_json
from drivegpt.core.device import resolve_device
from drivegpt.core.errors import UserError
from drivegpt.core.rundir import policy_dir
from drivegpt.eval.closed_loop import EVAL_SEED, evaluate_monitored
from drivegpt.model.checkpoint import load_policy_dir, save_policy
from drivegpt.policies.registry import policy_action_kind
from drivegpt.rlhf.dagger import (
    LABELS,
    concat,
    family_labels,
    finetune,
    save_labels,
    takeover_labels,
    visited_labels,
)
from drivegpt.rlhf.dagger_batched import (
    family_labels_batched,
    takeover_labels_batched,
    visited_labels_batched,
)
from drivegpt.rlhf.dpo import dpo
from drivegpt.rlhf.flywheel_config import FlywheelConfig, flywheel_simulator
from drivegpt.rlhf.ppo import Rollout, load_run_policy, rlhf, windows_of
from drivegpt.rlhf.ppo_batched import ppo_batched
from drivegpt.rlhf.preferences import kl_to_reference, policy_steps
from drivegpt.rlhf.reward_model import train_reward_model
from drivegpt.sim.batched.families import BATCHED_FAMILIES
from drivegpt.takeover.clips import write_clips


def _done(path: Path) -> bool:
    return (path / "metrics.json").is_file()


def _label_round(cfg: FlywheelConfig, k: int, current: Path, rd: Path, progress: bool) -> Path:
    """Round ``k``'s human labels: the takeover steps of its clips (HG-DAgger), or every step of
    the current policy's drives on the round's seeds (DAgger)."""
    path = rd / "labels" / LABELS
    if not path.is_file():
        if cfg.method.startswith("hg-dagger") and cfg.sim == "batched":
            seed = cfg.drive_seed + (k - 1) * cfg.drive_episodes  # the round's drive seeds, monitored
            spec, n = f"drivegpt:{current}", cfg.drive_episodes
            envs = cfg.label_envs or (cfg.env_id,)
            labels = concat(
                [takeover_labels_batched(spec, e, n, seed, cfg.monitor, cfg.batch, progress) for e in envs]
            )
        elif cfg.method.startswith("hg-dagger"):
            labels = takeover_labels(rd / "clips")
        else:
            seed = cfg.drive_seed + (k - 1) * cfg.drive_episodes  # the round's drive seeds, unmonitored
            spec, action = f"drivegpt:{current}", policy_action_kind(f"drivegpt:{current}")
            n, parts, w = cfg.drive_episodes, [], cfg.workers
            for env_id in cfg.label_envs or (cfg.env_id,):
                t = cfg.teachers.get(env_id)
                if cfg.sim == "batched":
                    parts.append(visited_labels_batched(spec, env_id, n, seed, cfg.batch, progress, t))
                else:
                    parts.append(
                        visited_labels(spec, env_id, action, n, seed, w, progress=progress, teacher=t)
                    )
            for family in cfg.label_families:
                t = cfg.teachers.get(family)
                if cfg.sim == "batched" and family in BATCHED_FAMILIES:
                    parts.append(family_labels_batched(spec, family, n, seed, cfg.batch, progress, t))
                else:
                    parts.append(
                        family_labels(spec, family, action, n, seed, w, progress=progress, teacher=t)
                    )
            labels = concat(parts)
            names = [*(cfg.label_envs or (cfg.env_id,)), *cfg.label_families]
            write_json(
                rd / "labels" / "sources.json",
                [
                    {"source": name, "labeller": cfg.teachers.get(name, "human"), "labels": p.n_labels}
                    for name, p in zip(names, parts, strict=True)
                ],
            )
        save_labels(path, labels)
    return path


def policy_labels(label_file: Path) -> int:
    """Labels of a round that a teacher policy gave rather than the human (``sources.json``; 0 where
    the round has none: every label the human's)."""
    sources = label_file.parent / "sources.json"
    if not sources.is_file():
        return 0
    return sum(s["labels"] for s in json.loads(sources.read_text()) if s["labeller"] != "human")


def _drive(cfg: FlywheelConfig, k: int, current: Path, clips: Path, command: str, progress: bool) -> None:
    """Round ``k``'s monitored drive of the current policy: its takeover clips and policy steps."""
    seed = cfg.drive_seed + (k - 1) * cfg.drive_episodes
    spec, n, w = f"drivegpt:{current}", cfg.drive_episodes, cfg.workers
    if cfg.sim == "batched":
        from drivegpt.takeover.batched_clips import evaluate_monitored_batched

        cl: list[Any] = []
        eps: list[Any] = []
        m, _ = evaluate_monitored_batched(spec, cfg.env_id, None, n, seed, cfg.batch, cfg.monitor, cl, eps)
    else:
        mon = cfg.monitor.model_copy(update={"ranking_steps": cfg.ranking_steps}).to_dict()
        m, eps, cl = evaluate_monitored(spec, cfg.env_id, None, n, seed, w, "local", mon, progress)
    steps = sum(len(e.actions) for e in eps)  # policy steps simulated: the round's drive budget
    extra = {"command": command, "monitor": cfg.monitor.to_dict(), "drive": m, "policy_steps": steps}
    write_clips(clips, cl, extra | {"sim": cfg.sim}, policy_steps(eps))


def mean_kl(policy_dir: Path, ref_dir: str | Path, episodes: list[Any]) -> float:
    """Mean KL(π ‖ π_ref) over the states of ``episodes`` (greedy action distributions at τ=1)."""
    policy, meta = load_run_policy(policy_dir)
    ref, _ = load_run_policy(ref_dir)
    rollouts = [
        Rollout(e.observations[: len(e.actions)], np.asarray(e.actions), False, False, 0.0, e.speeds)
        for e in episodes
        if len(e.actions)
    ]
    w = windows_of(rollouts, meta, policy.cfg.context)
    with torch.no_grad():
        return float(kl_to_reference(policy(w.obs, w.actions)[:, -1], ref(w.obs, w.actions)[:, -1]).mean())


def _evaluate(cfg: FlywheelConfig, policy_dir: Path, ref: str | Path, out: Path) -> dict[str, Any]:
    if _done(out):
        return json.loads((out / "metrics.json").read_text())
    spec, mon = f"drivegpt:{policy_dir}", cfg.monitor.to_dict()
    n, w = cfg.eval_episodes, cfg.workers
    if cfg.eval_sim == "batched":
        from drivegpt.takeover.batched_clips import evaluate_monitored_batched

        eps: list[Any] = []
        m, _ = evaluate_monitored_batched(
            spec, cfg.eval_env, None, n, EVAL_SEED, cfg.batch, cfg.monitor, None, eps
        )
    else:
        m, eps, _ = evaluate_monitored(spec, cfg.eval_env, None, n, EVAL_SEED, w, monitor=mon, progress=False)
    m["kl_to_reference"] = mean_kl(policy_dir, ref, eps)
    write_json(out / "metrics.json", m)
    return m


def run_flywheel(
    cfg: FlywheelConfig, pretrained: str | Path, out: str | Path, command: str = "", progress: bool = True
) -> dict[str, Any]:
    """Run (or resume) the flywheel from the pretrained policy; returns the final round's figures."""
    out = Path(out)
    pretrained = Path(pretrained)
    ref = policy_dir(pretrained)
    _, meta = load_policy_dir(ref)  # fail fast, with the checkpoint's own message
    cfg = cfg.model_copy(
        update={"sim": flywheel_simulator(cfg, meta["action"])}
    )  # run.json: the resolved one
    _same_run(out, cfg, ref)
    if cfg.sim == "batched" and cfg.method.endswith("ppo"):
        resolve_device(cfg.ppo_batched.device)  # not a round's drive and reward model later
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "run.json", {"command": command, "config": cfg.to_dict(), "pretrained": str(ref)})
    rows: list[dict[str, Any]] = []
    if cfg.eval_episodes:
        rows.append({"round": 0, **_evaluate(cfg, ref, ref, out / "round_0" / "eval")})
    current, clip_dirs, label_files = ref, [], []
    for k in range(1, cfg.rounds + 1):
        rd = out / f"round_{k}"
        print(f"[flywheel] round {k}/{cfg.rounds}: drive {current}")
        clips = rd / "clips"
        # DAgger learns from its own unmonitored drive (_label_round): a monitored drive would only
        # record clips that nothing reads
        if cfg.needs_clips and not (clips / "metadata.json").is_file():
            _drive(cfg, k, current, clips, command, progress)
        clip_dirs.append(clips)
        if cfg.method.rpartition("+")[2] in ("ppo", "dpo") and not _clip_count(clip_dirs):
            raise UserError(
                f"{clips}: round {k}'s drive of {cfg.drive_episodes} episodes had no takeover, so RLHF has "
                f"nothing to learn from; raise drive_episodes in the config and run into a new --out"
            )
        row: dict[str, Any] = {"round": k}
        if "dagger" in cfg.method:  # imitate the human's labels of every round so far
            label_files.append(_label_round(cfg, k, current, rd, progress))
            if not _done(rd / "dagger"):
                finetune(cfg.dagger, current, label_files, rd / "dagger", progress)
            current = rd / "dagger" / "policy"
            labelled = json.loads((rd / "dagger" / "metrics.json").read_text())["human_labels"]
            taught = sum(policy_labels(f) for f in label_files)
            row["human_labels"] = labelled - taught
            if cfg.teachers:
                row["teacher_labels"] = taught
        tuned = rd / cfg.method.rpartition("+")[2]
        rm: dict[str, Any] = {}
        if tuned.name == "ppo":
            if not _done(rd / "reward"):
                train_reward_model(cfg.reward, clip_dirs, ref, rd / "reward", command, progress)
            rm = json.loads((rd / "reward" / "metrics.json").read_text())
            if not _done(tuned) and cfg.sim == "batched":
                b = cfg.ppo_batched
                update = {
                    "seed": b.seed + (k - 1) * b.updates * b.batch,
                    "monitor": cfg.monitor,
                    "env_id": cfg.env_id,
                }
                resume = (tuned / "checkpoint").exists()  # a killed round continues its updates
                spec = f"drivegpt:{current}"
                ppo_batched(
                    b.model_copy(update=update),
                    spec,
                    rd / "reward",
                    tuned,
                    str(ref),
                    resume,
                    command,
                    progress,
                )
            elif not _done(tuned):
                seed = cfg.ppo.seed + (k - 1) * cfg.ppo.updates * cfg.ppo.episodes_per_update
                update = {"seed": seed, "monitor": cfg.monitor, "workers": cfg.workers}
                ppo_cfg = cfg.ppo.model_copy(update=update)
                rlhf(ppo_cfg, current, rd / "reward", tuned, ref, command, progress)
        elif tuned.name == "dpo" and not _done(tuned):
            dpo(cfg.dpo, clip_dirs, ref, tuned, ref, command, progress)
        if tuned.name in ("ppo", "dpo"):
            current = tuned / "policy"
        row["pairwise_accuracy"] = rm.get("pairwise_accuracy")
        if cfg.eval_episodes:
            row |= _evaluate(cfg, current, ref, rd / "eval")
        rows.append(row)
        _write_curve(out, rows)
        _log_round(out, row)
    final_model, final_meta = load_policy_dir(current)
    save_policy(out / "policy", final_model, {**final_meta, "flywheel": str(out)})
    final = {**rows[-1], "rounds": cfg.rounds, "method": cfg.method}
    write_json(out / "metrics.json", final)
    return final


def _same_run(out: Path, cfg: FlywheelConfig, ref: Path) -> None:
    """A flywheel resumes only its own run: ``out`` may hold a run of the same pretrained policy and
    config (``rounds`` and the settings that change no result, ``workers``, ``threads``, ``device``,
    aside), else it is refused, naming what differs."""
    if not (out / "run.json").is_file():
        return
    old = json.loads((out / "run.json").read_text())
    new, was = _leaves(cfg.to_dict()), _leaves(old.get("config", {}))
    free = ("workers", "threads", "device")
    differ = sorted(k for k in {*new, *was} if k != "rounds" and k.rpartition(".")[2] not in free
                    and new.get(k) != was.get(k))  # fmt: skip
    if Path(old.get("pretrained", "")).resolve() != ref.resolve():
        differ.insert(0, "the pretrained policy")
    if differ:
        raise UserError(
            f"{out}: holds a flywheel run that differs in {', '.join(differ)}; it resumes only the same run: "
            f"pass a new --out, or delete {out} to start over"
        )


def _leaves(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as ``{"ppo.updates": 2, ...}``."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        out |= _leaves(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v}
    return out


def _clip_count(clip_dirs: list[Path]) -> int:
    """Takeover clips recorded in ``clip_dirs`` (from their metadata, not the clips)."""
    return sum(len(json.loads((d / "metadata.json").read_text()).get("clips", [])) for d in clip_dirs)


def _log_round(out: Path, row: dict[str, Any]) -> None:
    """The round's numeric figures to TensorBoard (``out/tb``, step = round), as in ``curve.csv``."""
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(out / "tb")) as tb:
        for name, value in row.items():
            if name != "round" and isinstance(value, int | float) and not isinstance(value, bool):
                tb.add_scalar(f"flywheel/{name}", value, row["round"])


def _write_curve(out: Path, rows: list[dict[str, Any]]) -> None:
    """``curve.csv`` and ``learning_curve.png``: held-out takeovers per 100 km and KL by round."""
    keys = ["round", "takeovers", "takeovers_per_100km", "takeovers_after_start_per_100km", "km_driven"]
    keys += ["collision_rate", "mean_speed_mps"]
    keys += ["kl_to_reference", "pairwise_accuracy", "human_labels", "teacher_labels"]
    write_csv(out / "curve.csv", [keys, *([r.get(k) for k in keys] for r in rows)])
    rows = [r for r in rows if r.get("takeovers_per_100km") is not None]
    if not rows:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [r["round"] for r in rows]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.4))
    rate = np.array([r["takeovers_per_100km"] for r in rows])
    ci = np.array([r["takeovers_per_100km_ci"] for r in rows])  # (R, 2) Poisson 95% interval
    err = [np.maximum(rate - ci[:, 0], 0), np.maximum(ci[:, 1] - rate, 0)]
    a1.errorbar(x, rate, yerr=err, marker="o", capsize=3, label="all")
    if all(r.get("takeovers_after_start_per_100km_ci") for r in rows):
        after = np.array([r["takeovers_after_start_per_100km"] for r in rows])
        ci = np.array([r["takeovers_after_start_per_100km_ci"] for r in rows])
        err = [np.maximum(after - ci[:, 0], 0), np.maximum(ci[:, 1] - after, 0)]
        a1.errorbar(x, after, yerr=err, marker="s", capsize=3, label="after start")
        a1.legend()
    a1.set(xlabel="round", ylabel="takeovers / 100 km (held-out)", title="takeovers", ylim=(0, None))
    a2.plot(x, [r.get("kl_to_reference") or 0.0 for r in rows], marker="o", color="C1")
    a2.set(xlabel="round", ylabel="KL(π ‖ π_pretrained) [nats]", title="distance from the pretrained policy")
    for a in (a1, a2):
        a.set_xticks(x)
        a.grid(alpha=0.3)
    fig.tight_layout()
    tmp = out / ".learning_curve.tmp.png"
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(out / "learning_curve.png")
