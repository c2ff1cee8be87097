"""Learning from the corrections: HG-DAgger and DAgger, aggregated round after round.

A takeover is two samples: the decision that got corrected (negative: the reward model and DPO use
it) and the correction itself (positive: this module). Both methods add *human-labelled states the
policy itself reached* to an imitation set that only grows, then fine-tune the policy on all of it:

* **HG-DAgger** (human-gated): the labels are the safety driver's actions during takeovers, read
  from the round's clips (or, on the batched simulator, from its monitored drives). Only the gated
  steps cost a human label.
* **DAgger**: the simulated human labels *every* state the policy visits (the human decides on the
  same simulator state without driving). A comparison only a simulator allows: every step costs a
  label. A road or family can name a *teacher* policy that labels it instead (``teacher=SPEC``):
  an earlier student that drives it better than the human, whose decisions are kept while the
  student learns elsewhere. The teacher reads the executed history, as the human does.

Each round's labels are one ``labels.npz`` (raw observations, executed actions, the human's labels,
and which steps are labelled); the fine-tuning of round ``k`` reads rounds ``1..k``, so no earlier
data is ever dropped, and the same seeds give the same files.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import torch
from pydantic import Field
from torch.nn import functional as F

from drivegpt.core.atomic import write_bytes, write_csv, write_json
from drivegpt.core.config import FrozenConfig
from drivegpt.core.errors import TrainingError, UserError
from drivegpt.core.progress import progress_bar
from drivegpt.core.rundir import policy_dir
from drivegpt.data.tokenizer import tokenizer_from_json
from drivegpt.data.windows import StepTable
from drivegpt.model.checkpoint import load_policy_dir, save_policy
from drivegpt.model.pretrain import drop_actions
from drivegpt.policies.registry import DriveJob, load_policy, policy_action_kind, policy_and_env
from drivegpt.sim.rollout import Backend, parallel_map
from drivegpt.takeover.clips import load_clips
from drivegpt.takeover.monitor import safety_driver
from drivegpt_envs.families import FAMILIES, family_class

LABELS = "labels.npz"  #: one round's labelled steps
PARAMS_STREAM = 0x504152  #: second seed word of a family episode's parameter draw


def family_params(family: str, seed: int) -> dict[str, float]:
    """The parameters of ``family``'s episode ``seed`` as DAgger draws them (the same on both simulators)."""
    return family_class(family).sample_params(np.random.default_rng([seed, PARAMS_STREAM]))


class DaggerConfig(FrozenConfig):
    """Fine-tuning on the aggregated labels of every round so far (``dagger:`` of a flywheel config)."""

    iters: int = Field(200, ge=1)
    """Optimisation steps per round."""
    batch_size: int = Field(64, ge=1)
    """Labelled windows per step."""
    lr: float = Field(3e-4, gt=0)
    """AdamW learning rate."""
    weight_decay: float = Field(0.0, ge=0)
    """AdamW weight decay."""
    grad_clip: float = Field(1.0, gt=0)
    """Gradient-norm clip."""
    seed: int = 0
    """Seed of the batch sampling."""
    threads: int | None = Field(None, ge=1)
    """torch CPU threads (None: torch's default)."""
    action_dropout: float = Field(0.0, ge=0, lt=1)
    """Probability of hiding each past action token of a window (as ``drivegpt pretrain``'s)."""
    positions: Literal["last", "all"] = "last"
    """Where a window is supervised: its last step only, or every labelled step in it (as pretraining
    does: about K times the labels per forward pass when every step is labelled)."""


class Labels(NamedTuple):
    """Labelled driving: consecutive steps of episodes, some of them labelled by the human."""

    obs: np.ndarray  # (N, V, F) float32 raw observations
    actions: np.ndarray  # (N,) or (N, 2): the executed actions (the model's input history)
    labels: np.ndarray  # like actions: the human's action at each step (meaningful where labelled)
    start: np.ndarray  # (N,) int64 index of each step's episode start
    labelled: np.ndarray  # (N,) bool

    @property
    def n_labels(self) -> int:
        return int(self.labelled.sum())


def concat(parts: list[Labels]) -> Labels:
    """One table of several label sets (episode starts shifted; nothing dropped, order kept)."""
    parts = [p for p in parts if len(p.obs)]
    if not parts:
        raise UserError("no labelled steps to train on: drive with the policy first")
    offsets = np.cumsum([0, *[len(p.obs) for p in parts[:-1]]])
    return Labels(
        np.concatenate([p.obs for p in parts]),
        np.concatenate([p.actions for p in parts]),
        np.concatenate([p.labels for p in parts]),
        np.concatenate([p.start + o for p, o in zip(parts, offsets, strict=True)]),
        np.concatenate([p.labelled for p in parts]),
    )


def save_labels(path: Path, labels: Labels) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, **labels._asdict())
    write_bytes(path, buf.getvalue())


def load_labels(path: Path) -> Labels:
    try:
        with np.load(path, allow_pickle=False) as z:
            return Labels(*(z[k] for k in Labels._fields))
    except (OSError, ValueError, KeyError) as err:
        raise UserError(f"{path}: unreadable labels ({err}); delete it to label the round again") from None


# -- HG-DAgger: the safety driver's actions during takeovers --------------------------------------


def takeover_labels(clip_dir: Path) -> Labels:
    """Each clip as one episode: its context (unlabelled history) then the steps the human drove,
    labelled with the human's actions."""
    parts = []
    for c in load_clips(clip_dir):
        n_ctx, n_human = len(c.context_actions), len(c.chosen)
        obs = np.concatenate([c.context_obs[:-1], np.asarray(c.obs)]) if n_human else c.context_obs[:-1]
        acts = np.concatenate([np.asarray(c.context_actions), np.asarray(c.chosen)]) if n_human else None
        if acts is None or not len(acts):
            continue
        labelled = np.arange(n_ctx + n_human) >= n_ctx
        parts.append(
            Labels(obs.astype(np.float32), acts, acts.copy(), np.zeros(len(acts), np.int64), labelled)
        )
    if not parts:  # no takeover this round: nothing to add
        z = np.zeros(0, np.int64)
        return Labels(np.zeros((0, 0, 0), np.float32), z, z, z, z.astype(bool))
    return concat(parts)


# -- DAgger: the simulated human labels every state the policy reaches ----------------------------


class LabelJob(NamedTuple):
    """One episode for the human to label in a worker: the drive, and a corner-case family's parameters."""

    drive: DriveJob
    params: dict[str, float] | None = None  # None: the env's own scene (a road, not a family)
    teacher: str | None = None  # a policy spec that labels instead of the alert human


def load_teacher(spec: str, student: str) -> Any:
    """The policy ``spec`` as a DAgger labeller of ``student``'s drives: the same action interface
    (its labels are the student's targets), else a one-line error naming both."""
    kind = policy_action_kind(student)
    teacher = load_policy(spec, policy_action_kind(spec, kind))
    if getattr(teacher, "action_kind", kind) != kind:
        raise UserError(
            f"teacher {spec} acts with {teacher.action_kind!r} actions, the student {student} with "
            f"{kind!r}: name a teacher of the same action interface"
        )
    if not hasattr(teacher, "executed"):
        raise UserError(f"teacher {spec}: a teacher must read the executed history (a DriveGPT policy)")
    return teacher


def label_one(job: LabelJob) -> Labels:
    """Drive ``job.drive.policy`` for one episode; at every step the alert human (or ``job.teacher``)
    decides on the same simulator state without driving, and its clean decision is the label (runs
    in a worker)."""
    policy, env = policy_and_env(job.drive)
    teacher = load_teacher(job.teacher, job.drive.policy) if job.teacher else None
    human = safety_driver() if teacher is None else None
    seed = job.drive.seed
    obs, _ = env.reset(seed=seed, options=None if job.params is None else {"params": job.params})
    policy.reset(seed=seed, env=env)
    (teacher or human).reset(seed=seed, env=env)
    observations, actions, labels = [], [], []
    while True:
        action = policy.act(obs)
        if human is not None:
            human.act(obs)
            labels.append(human.decision)
        else:
            labels.append(teacher.act(obs))
            teacher.executed(action)  # the teacher's history holds what the student drove
        observations.append(obs)
        actions.append(action)
        obs, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            break
    acts = np.asarray(actions)
    T = len(acts)
    return Labels(
        np.asarray(observations, np.float32),
        acts,
        np.asarray(labels, acts.dtype),
        np.zeros(T, np.int64),
        np.ones(T, bool),
    )


def visited_labels(
    spec: str,
    env_id: str,
    action: str,
    episodes: int,
    seed: int,
    workers: int | None = None,
    backend: Backend = "local",
    progress: bool = True,
    teacher: str | None = None,
) -> Labels:
    """DAgger's labels: ``episodes`` episodes of ``spec`` from ``seed`` on, every step labelled (by
    the alert human, or by the policy ``teacher``)."""
    jobs = [LabelJob(DriveJob(spec, env_id, action, seed + i), None, teacher) for i in range(episodes)]
    return concat(parallel_map(label_one, jobs, workers, backend, f"label {spec}", progress))


def family_labels(
    spec: str,
    family: str,
    action: str,
    episodes: int,
    seed: int,
    workers: int | None = None,
    backend: Backend = "local",
    progress: bool = True,
    teacher: str | None = None,
) -> Labels:
    """DAgger's labels on a corner-case family on highway-env (any family, ported or not): episode
    ``seed + i`` draws its parameters as ``family_labels_batched`` does, so a ported family gives both
    simulators the same scenes."""
    env_id = FAMILIES[family]
    jobs = [
        LabelJob(DriveJob(spec, env_id, action, s), family_params(family, s), teacher)
        for s in range(seed, seed + episodes)
    ]
    return concat(parallel_map(label_one, jobs, workers, backend, f"label {family}", progress))


# -- fine-tuning on the aggregate ------------------------------------------------------------------


def finetune(
    cfg: DaggerConfig,
    policy_path: str | Path,
    label_files: list[Path],
    out: str | Path,
    progress: bool = True,
) -> dict[str, Any]:
    """Fine-tune the policy at ``policy_path`` on every label file (the loss is the cross-entropy of
    the human's label at each labelled step, with the executed history as context); writes
    ``out/policy``, ``out/log.csv``, ``out/tb`` (TensorBoard) and ``out/metrics.json``."""
    out = Path(out)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    model, meta = load_policy_dir(policy_dir(policy_path))
    tok, norm = tokenizer_from_json(meta["tokenizer"])
    data = concat([load_labels(f) for f in label_files])
    ends = torch.from_numpy(np.flatnonzero(data.labelled))
    if not len(ends):
        raise UserError(f"{', '.join(map(str, label_files))}: no labelled step to train on")
    table = StepTable(norm(data.obs), tok.encode(data.actions), tok.encode(data.labels), data.start)
    K = model.cfg.context
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    labelled = torch.from_numpy(data.labelled)  # (N,)
    back = torch.arange(K - 1, -1, -1)  # (K,) steps before a window's end
    log: list[list[Any]] = [["iter", "loss", "label_accuracy"]]
    from torch.utils.tensorboard import SummaryWriter

    tb = SummaryWriter(str(out / "tb"))  # the same quantities as log.csv, by iteration
    model.train()
    for it in progress_bar(range(cfg.iters), desc="dagger", disable=not progress):
        end = ends[torch.randint(len(ends), (cfg.batch_size,), generator=gen)]  # (B,)
        w = table.windows(end, K)
        if cfg.positions == "all":  # every labelled step of the window, each with its own history
            weight = (w.mask & labelled[(end[:, None] - back).clamp_min(0)]).float()  # (B, K)
        else:  # the decision at each window's end
            weight = torch.zeros(len(end), K).index_fill_(1, torch.tensor([K - 1]), 1.0)
        inputs = drop_actions(w.actions, cfg.action_dropout, gen, model.mask_token)  # (B, K)
        logits = model(w.obs, inputs)  # (B, K, vocab)
        ce = F.cross_entropy(logits.flatten(0, 1), w.targets.flatten(), reduction="none").view_as(weight)
        loss = (ce * weight).sum() / weight.sum()
        if not torch.isfinite(loss):
            raise TrainingError(f"non-finite DAgger loss at iter {it}; lower dagger.lr (now {cfg.lr})")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        acc = float(((logits.argmax(-1) == w.targets).float() * weight).sum() / weight.sum())
        log.append([it + 1, float(loss.detach()), acc])
        tb.add_scalar("dagger/loss", log[-1][1], it + 1)
        tb.add_scalar("dagger/label_accuracy", acc, it + 1)
    tb.close()
    model.eval()
    save_policy(out / "policy", model, {**meta, "dagger_labels": [str(f) for f in label_files]})
    write_csv(out / "log.csv", log)
    metrics = {"human_labels": int(len(ends)), "label_sets": len(label_files), "loss": log[-1][1]}
    write_json(out / "metrics.json", metrics)
    return metrics
