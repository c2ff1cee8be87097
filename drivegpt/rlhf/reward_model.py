"""The reward model: which action the human prefers in a driving context, learned from takeovers.

It is a DriveGPT whose head scores every action token instead of predicting one: ``r(h_t, a)`` for
each action ``a`` after the history ``h_t`` (B, T, vocab). It starts as a copy of the pretrained
policy (backbone *and* head, so its first guess is "what the human driver would do" — the
imitation logits), then learns by Bradley–Terry on the takeover pairs (the human's correction ≻ the
policy's proposal) plus a small term on the weakly-good steps the policy drove without a takeover.

Saved as a policy directory (``reward/model.safetensors`` + ``reward/policy.json`` with
``"role": "reward"``), so the tokenizer and env configuration travel with it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import Field
from torch.nn import functional as F

from drivegpt.core.atomic import write_csv, write_json
from drivegpt.core.config import FrozenConfig
from drivegpt.core.errors import MissingInputError, TrainingError, UserError
from drivegpt.core.progress import progress_bar
from drivegpt.data.tokenizer import tokenizer_from_json
from drivegpt.model.checkpoint import CheckpointError, load_policy_dir, save_policy
from drivegpt.model.gpt import DriveGPT
from drivegpt.rlhf.preferences import (
    RANK_PAIRS,
    PreferenceBatch,
    RankedBatch,
    bradley_terry_loss,
    load_preferences,
    split_pairs,
)


class RewardConfig(FrozenConfig):
    """``drivegpt reward train`` settings."""

    iters: int = Field(300, ge=1)
    """Optimizer steps."""
    batch_size: int = Field(64, ge=1)
    """Preference pairs per step (and as many weak samples)."""
    lr: float = Field(3e-4, gt=0)
    """AdamW learning rate."""
    weight_decay: float = Field(0.01, ge=0)
    """AdamW weight decay."""
    weak_weight: float = Field(0.1, ge=0)
    """Weight of the weakly-good term: -log softmax(r)[executed action] on non-taken-over steps."""
    ranking_weight: float = Field(0.5, ge=0)
    """Weight of HAOMO's ranking term (old policy ≺ takeover-corrected ≺ human segments), when the
    clips hold ranked segments."""
    human_weight: float = Field(0.0, ge=0)
    """Weight of the human term: -log softmax(r)[the human's decision] at the states of human driving
    logs (``human_logs``), so that the human's normal driving at speed ranks on top, not only its
    braking corrections (0: off)."""
    val_fraction: float = Field(0.2, ge=0, lt=1)
    """Fraction of clips held out for the pairwise accuracy."""
    seed: int = 0
    """Split and batch-sampling seed."""
    threads: int = Field(1, ge=1)
    """torch threads (1 is fastest for models this small, and robust when the cores are shared)."""


def reward_of(model: DriveGPT, pairs: PreferenceBatch, which: torch.Tensor) -> torch.Tensor:
    """r(h, a) at each pair's decision step for the action tokens ``which`` (B,) -> (B,)."""
    r = model(pairs.obs, pairs.actions)[:, -1]  # (B, vocab)
    return r.gather(1, which[:, None])[:, 0]


@torch.no_grad()
def pairwise_accuracy(model: DriveGPT, pairs: PreferenceBatch) -> float:
    """Fraction of pairs where r(chosen) > r(rejected)."""
    if len(pairs.chosen) == 0:
        return float("nan")
    model.eval()
    r = model(pairs.obs, pairs.actions)[:, -1]  # (B, vocab)
    rc, rr = r.gather(1, pairs.chosen[:, None]), r.gather(1, pairs.rejected[:, None])
    return float((rc > rr).float().mean())


def segment_returns(model: DriveGPT, rb: RankedBatch) -> torch.Tensor:
    """Mean centred reward over each segment's own steps, (B, 3)."""
    B, _, K = rb.actions.shape
    acts = rb.actions.flatten(0, 1)  # (3B, K)
    r = model(rb.obs.flatten(0, 1), acts)  # (3B, K, vocab)
    r = r - r.mean(-1, keepdim=True)
    ra = r.gather(2, acts[..., None])[..., 0]  # (3B, K)
    m = rb.segment.flatten(0, 1).float()
    return ((ra * m).sum(1) / m.sum(1).clamp_min(1.0)).view(B, 3)


def ranking_loss(R: torch.Tensor, informative: torch.Tensor) -> torch.Tensor:
    """Bradley–Terry over the informative (worse, better) segment pairs of ``RANK_PAIRS``."""
    terms = torch.stack([-F.logsigmoid(R[:, j] - R[:, i]) for i, j in RANK_PAIRS], 1)  # (B, 3)
    m = informative.float()
    return (terms * m).sum() / m.sum().clamp_min(1.0)


@torch.no_grad()
def ranking_accuracy(model: DriveGPT, rb: RankedBatch | None) -> float:
    """Fraction of informative segment pairs ranked in HAOMO's order."""
    if rb is None or len(rb.group) == 0:
        return float("nan")
    model.eval()
    R = segment_returns(model, rb)
    ok = torch.stack([R[:, j] > R[:, i] for i, j in RANK_PAIRS], 1)
    return float(ok[rb.pairs].float().mean())


def load_reward_model(path: str | Path) -> tuple[DriveGPT, dict[str, Any]]:
    """A reward-model directory (or a run directory holding ``reward/``)."""
    path = Path(path)
    if (path / "reward").is_dir():
        path = path / "reward"
    if not (path / "policy.json").is_file():
        raise MissingInputError(f"{path}: no reward model here; train one with `drivegpt reward train`")
    model, meta = load_policy_dir(path)
    if meta.get("role") != "reward":
        raise CheckpointError(f"{path}: a policy, not a reward model; train one with `drivegpt reward train`")
    return model.eval(), meta


def train_reward_model(
    cfg: RewardConfig,
    clip_dirs: list[str | Path],
    init: str | Path,
    out: str | Path,
    command: str = "",
    progress: bool = True,
    human_logs: str | Path | None = None,
) -> dict[str, Any]:
    """Bradley–Terry reward model on takeover pairs, initialised from the policy (or reward model)
    in ``init``; writes ``out/reward``, ``log.csv``, ``metrics.json``, ``run.json``. ``human_logs``:
    a driving-log dataset whose states carry the human term (``cfg.human_weight``)."""
    out = Path(out)
    torch.set_num_threads(cfg.threads)
    init = Path(init)
    src = next((p for p in (init / "reward", init / "policy") if p.is_dir()), init)
    model, meta = load_policy_dir(src)
    tok, norm = tokenizer_from_json(meta["tokenizer"])
    K = model.cfg.context
    human = None
    if human_logs is not None and cfg.human_weight == 0:
        raise UserError(f"{human_logs}: human logs are read only with human_weight > 0 in the config (now 0)")
    if cfg.human_weight > 0:
        if human_logs is None:
            raise UserError("human_weight > 0 needs human driving logs: pass --human-logs DIR")
        from drivegpt.data.logs import load_logs
        from drivegpt.data.windows import StepTable

        ds = load_logs(human_logs)
        if ds.action_kind != tok.kind:
            raise UserError(
                f"{human_logs}: {ds.action_kind} logs for a reward model that speaks {tok.kind}; "
                f"collect human logs with --action {tok.kind}"
            )
        human = StepTable.from_logs(ds, list(range(len(ds))), tok, norm)
    data = load_preferences(clip_dirs, tok, norm, K)
    train, val = split_pairs(data.pairs, cfg.val_fraction, cfg.seed)
    if len(train.chosen) == 0:
        raise UserError(f"{clip_dirs}: too few clips to train on after holding out {cfg.val_fraction:.0%}")
    initial = {"train": pairwise_accuracy(model, train), "val": pairwise_accuracy(model, val)}
    rk_train = rk_val = None
    if data.ranked is not None:
        held = torch.isin(data.ranked.group, torch.unique(val.group))
        rk_train = RankedBatch(*(x[~held] for x in data.ranked))
        rk_val = RankedBatch(*(x[held] for x in data.ranked))
        if len(rk_train.group) == 0:
            rk_train = None

    gen = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    out.mkdir(parents=True, exist_ok=True)
    run = {"command": command, "config": cfg.to_dict(), "clips": list(map(str, clip_dirs)), "init": str(init)}
    run["human_logs"] = None if human is None else str(human_logs)
    log = [
        [
            "iter",
            "loss",
            "bt_loss",
            "weak_loss",
            "rank_loss",
            "human_loss",
            "train_pairwise_accuracy",
            "val_pairwise_accuracy",
        ]
    ]
    bar = progress_bar(range(cfg.iters), desc="reward model", disable=not progress, dynamic_ncols=True)
    for it in bar:
        model.train()
        idx = torch.randint(len(train.chosen), (cfg.batch_size,), generator=gen)
        b = train.take(idx)
        r = model(b.obs, b.actions)[:, -1]  # (B, vocab)
        bt = bradley_terry_loss(r.gather(1, b.chosen[:, None]), r.gather(1, b.rejected[:, None]))
        weak = torch.zeros(())
        if data.weak is not None and cfg.weak_weight > 0:
            j = torch.randint(len(data.weak.obs), (cfg.batch_size,), generator=gen)
            rw = model(data.weak.obs[j], data.weak.actions[j])[:, -1]  # (B, vocab)
            weak = F.cross_entropy(rw, data.weak.targets[j, -1])
        rank = torch.zeros(())
        if rk_train is not None and cfg.ranking_weight > 0:
            j = torch.randint(len(rk_train.group), (min(cfg.batch_size, 32),), generator=gen)
            rb = RankedBatch(*(x[j] for x in rk_train))
            rank = ranking_loss(segment_returns(model, rb), rb.pairs)
        hum = torch.zeros(())
        if human is not None:
            hb = human.sample(cfg.batch_size, K, gen)
            hum = F.cross_entropy(model(hb.obs, hb.actions)[:, -1], hb.targets[:, -1])
        loss = bt + cfg.weak_weight * weak + cfg.ranking_weight * rank + cfg.human_weight * hum
        if not torch.isfinite(loss):
            raise TrainingError(f"non-finite reward-model loss at iter {it}; lower lr (now {cfg.lr})")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        bar.set_postfix(bt=f"{float(bt.detach()):.3f}")
        if (it + 1) % max(1, cfg.iters // 5) == 0 or it + 1 == cfg.iters:
            row = [
                it + 1,
                float(loss.detach()),
                float(bt.detach()),
                float(weak.detach()),
                float(rank.detach()),
                float(hum.detach()),
            ]
            log.append(row + [pairwise_accuracy(model, train), pairwise_accuracy(model, val)])
    bar.close()
    write_csv(out / "log.csv", log)
    save_policy(out / "reward", model.eval(), {**meta, "role": "reward", "reward_init": str(init)})
    write_json(out / "run.json", run)  # with the outputs it made: a failed run leaves an earlier run's whole
    metrics = {
        "pairwise_accuracy": pairwise_accuracy(model, val),
        "train_pairwise_accuracy": pairwise_accuracy(model, train),
        "initial_pairwise_accuracy": initial["val"],
        "train_pairs": len(train.chosen),
        "val_pairs": len(val.chosen),
        "clips": data.clips,
        "weak_samples": 0 if data.weak is None else len(data.weak.obs),
        "ranked_clips": 0 if data.ranked is None else len(data.ranked.group),
        "val_ranking_accuracy": ranking_accuracy(model, rk_val),
        "train_ranking_accuracy": ranking_accuracy(model, rk_train),
    }
    # JSON has no NaN: null where there was nothing to score (no validation pairs, no ranked clips)
    metrics = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in metrics.items()}
    write_json(out / "metrics.json", metrics)
    return metrics


@torch.no_grad()
def step_rewards(
    model: DriveGPT, meta: dict[str, Any], observations: np.ndarray, actions: np.ndarray
) -> np.ndarray:
    """Centred reward of each executed action of one episode: r(h_t, a_t) - mean_a r(h_t, a), (T,).

    Centring removes the state's own offset, so scores compare policies, not the states they reach.
    """
    from drivegpt.data.windows import StepTable

    tok, norm = tokenizer_from_json(meta["tokenizer"])
    T = len(actions)
    tokens = tok.encode(np.asarray(actions))
    table = StepTable(norm(np.asarray(observations[:T], np.float32)), tokens, tokens, np.zeros(T, np.int64))
    w = table.windows(torch.arange(T), model.cfg.context)
    r = model(w.obs, w.actions)[:, -1]  # (T, vocab)
    centred = r - r.mean(-1, keepdim=True)
    return centred.gather(1, torch.from_numpy(tokens)[:, None])[:, 0].numpy()


def score_episodes(model: DriveGPT, meta: dict[str, Any], episodes: list[Any]) -> dict[str, Any]:
    """The reward model as an evaluator: mean centred reward per step, per episode and overall."""
    per_ep = []
    for ep in episodes:
        r = step_rewards(model, meta, ep.observations, ep.actions)
        per_ep.append(float(r.mean()) if len(r) else 0.0)
    return {
        "episodes": len(episodes),
        "reward_mean": float(np.mean(per_ep)),
        "reward_per_episode": per_ep,
    }
