"""Preference data from takeover clips and the losses that learn from it (groundwork for RLHF).

A takeover says, at each step the human drove: in this context the human's action (chosen) is
preferred to the policy's proposal (rejected). The steps the policy drove with no takeover soon
after are weakly good: unpaired samples saying "this action was fine here". One loader
(:func:`load_preferences`) turns clip directories into both; the Bradley-Terry loss trains a reward
model on them and the DPO loss trains the policy directly against a frozen reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch.nn import functional as F

from drivegpt.core.errors import UserError
from drivegpt.data.tokenizer import ActionTokenizer, ObsNormalizer
from drivegpt.data.windows import StepTable, WindowBatch
from drivegpt.takeover.clips import Clip, load_clips, load_policy_steps


class PreferenceBatch(NamedTuple):
    obs: torch.Tensor  # (B, K, V, F) normalised context, left-padded; the last step is the decision
    actions: torch.Tensor  # (B, K) executed action tokens before the decision (last slot unused)
    mask: torch.Tensor  # (B, K) bool, true on real steps
    chosen: torch.Tensor  # (B,) the human's action token
    rejected: torch.Tensor  # (B,) the policy's proposed token
    group: torch.Tensor  # (B,) index of the clip the pair comes from (split by clip, never by pair)

    def take(self, idx: torch.Tensor) -> PreferenceBatch:
        return PreferenceBatch(*(x[idx] for x in self))


def clip_pairs(clips: Sequence[Clip], tok: ActionTokenizer, norm: ObsNormalizer, K: int) -> PreferenceBatch:
    """One pair per human-driven step where the human and the policy disagreed."""
    seqs: list[tuple[np.ndarray, np.ndarray]] = []  # per clip: (observations, executed tokens)
    ends, chosen, rejected, group, n = [], [], [], [], 0
    for g, c in enumerate(clips):
        # the context before the takeover, then each step the human drove
        seq_obs = (
            np.concatenate([c.context_obs[:-1], np.asarray(c.obs)]) if len(c.obs) else c.context_obs[:-1]
        )
        seq_act = np.concatenate([tok.encode(c.context_actions), tok.encode(np.asarray(c.chosen))])
        seqs.append((seq_obs, seq_act))
        takeover = n + len(c.context_obs) - 1  # table index of the takeover step
        ch, rj = tok.encode(np.asarray(c.chosen)), tok.encode(np.asarray(c.rejected))
        for j in np.flatnonzero(ch != rj):  # no preference where they agree
            ends.append(takeover + j)
            chosen.append(ch[j])
            rejected.append(rj[j])
            group.append(g)
        n += len(seq_act)
    if not chosen:
        raise UserError("no preference pairs: the clips hold no step where human and policy disagreed")
    w = _table(seqs, norm).windows(torch.tensor(ends), K)
    actions = w.actions.clone()
    actions[:, -1] = 0  # the decision slot: filled with chosen / rejected by the losses
    return PreferenceBatch(
        w.obs, actions, w.mask, torch.tensor(chosen), torch.tensor(rejected), torch.tensor(group)
    )


def _table(seqs: Sequence[tuple[np.ndarray, np.ndarray]], norm: ObsNormalizer) -> StepTable:
    """The sequences, one after another, as one table: windows never cross from one into the next."""
    lengths = [len(a) for _, a in seqs]
    starts = np.repeat(np.cumsum([0, *lengths[:-1]]), lengths).astype(np.int64)
    obs = norm(np.concatenate([o[: len(a)] for o, a in seqs]).astype(np.float32))
    tokens = np.concatenate([a for _, a in seqs]).astype(np.int64)
    return StepTable(obs, tokens, tokens, starts)


def policy_steps(episodes: Sequence[Any], margin: int = 5) -> dict[str, np.ndarray]:
    """Every step of monitored episodes, flagged ``weak`` where the policy drove and no takeover
    (nor crash) came within ``margin`` steps: the arrays of ``policy_steps.npz``."""
    obs, actions, start, weak, n = [], [], [], [], 0
    for ep in episodes:
        T = len(ep.actions)
        ctrl = np.zeros(T, np.int64) if ep.controller is None else ep.controller.astype(np.int64)
        bad = ctrl.astype(bool)
        if ep.crashed:
            bad[-1] = True
        soon = np.array([bad[t : t + margin + 1].any() for t in range(T)])  # (T,) trouble within margin
        obs.append(np.asarray(ep.observations[:T], np.float32))
        actions.append(np.asarray(ep.actions))
        start.append(np.full(T, n, np.int64))
        weak.append((ctrl == 0) & ~soon)
        n += T
    return {
        "obs": np.concatenate(obs),
        "actions": np.concatenate(actions),
        "start": np.concatenate(start),
        "weak": np.concatenate(weak),
    }


def weak_windows(
    steps: dict[str, np.ndarray], tok: ActionTokenizer, norm: ObsNormalizer, K: int
) -> WindowBatch:
    """K-step windows ending at each weakly-good step; ``targets`` = the policy's executed action."""
    tokens = tok.encode(steps["actions"])
    table = StepTable(norm(steps["obs"]), tokens, tokens, steps["start"])
    return table.windows(torch.from_numpy(np.flatnonzero(steps["weak"])), K)


class RankedBatch(NamedTuple):
    """HAOMO's ranking: per takeover, three futures from the same moment, worst to best."""

    obs: torch.Tensor  # (B, 3, K, V, F) context then segment, left-padded; 0 old, 1 corrected, 2 human
    actions: torch.Tensor  # (B, 3, K) executed tokens
    segment: torch.Tensor  # (B, 3, K) bool: positions of the segment's own steps (what is scored)
    pairs: torch.Tensor  # (B, 3) bool: (old ≺ corrected, corrected ≺ human, old ≺ human) is informative
    group: torch.Tensor  # (B,) index of the clip


RANK_PAIRS = ((0, 1), (1, 2), (0, 2))  #: (worse, better) segment indices


def ranked_batch(
    clips: Sequence[Clip], tok: ActionTokenizer, norm: ObsNormalizer, K: int
) -> RankedBatch | None:
    """The ranked segments of every clip that has them (None if none does); a pair whose two
    segments took the same actions says nothing and is masked out."""
    seqs: list[tuple[np.ndarray, np.ndarray]] = []  # 3 per kept clip: context + segment
    seg_len, informative, group = [], [], []
    for g, c in enumerate(clips):
        if not c.ranked:
            continue
        seg_obs, seg_act, lens = c.ranked["ranked_obs"], c.ranked["ranked_actions"], c.ranked["ranked_len"]
        L = max(0, min(len(c.context_actions), K - int(lens.max())))  # context steps that fit all three
        ctx_obs = c.context_obs[:-1][len(c.context_obs) - 1 - L :]
        ctx_act = tok.encode(c.context_actions)[len(c.context_actions) - L :]
        ns = [min(int(lens[i]), K) for i in range(3)]  # a segment longer than the context is cropped
        toks = [tok.encode(seg_act[i][: ns[i]]) for i in range(3)]
        flags = [not np.array_equal(toks[i], toks[j]) for i, j in RANK_PAIRS]
        if not any(flags):
            continue
        for i in range(3):
            seqs.append((np.concatenate([ctx_obs, seg_obs[i][: ns[i]]]), np.concatenate([ctx_act, toks[i]])))
        seg_len.append(ns)
        informative.append(flags)
        group.append(g)
    if not group:
        return None
    B = len(group)
    ends = torch.from_numpy(np.cumsum([len(a) for _, a in seqs]) - 1)  # each sequence's last step
    w = _table(seqs, norm).windows(ends, K)
    segment = torch.arange(K)[None, None, :] >= K - torch.tensor(seg_len)[..., None]  # (B, 3, K)
    return RankedBatch(
        w.obs.reshape(B, 3, *w.obs.shape[1:]),
        w.actions.reshape(B, 3, K),
        segment,
        torch.tensor(informative),
        torch.tensor(group),
    )


class PreferenceData(NamedTuple):
    pairs: PreferenceBatch  # chosen ≻ rejected at every human-driven step where they differ
    weak: WindowBatch | None  # weakly-good policy steps (None when the clips carry no policy_steps)
    clips: int  # clips read
    ranked: RankedBatch | None = None  # HAOMO three-way ranking (clips recorded with ranking_steps > 0)


def load_preferences(
    clip_dirs: Sequence[str | Path], tok: ActionTokenizer, norm: ObsNormalizer, K: int, max_weak: int = 20_000
) -> PreferenceData:
    """The one loader behind the reward model, DPO and RLHF: every clip directory, verified."""
    per_dir = [(d, load_clips(d)) for d in clip_dirs]
    clips = [c for _, cs in per_dir for c in cs]
    if not clips:
        raise UserError(f"{', '.join(map(str, clip_dirs))}: no takeover clips; drive with --takeovers first")
    for d, cs in per_dir:  # tokens of another action interface would be read as this model's
        other = next((c for c in cs if c.action != tok.kind), None)
        if other is not None:
            raise UserError(
                f"{d}: clips recorded with {other.action} actions (clip {other.id}) for a model of "
                f"{tok.kind} actions; record them with a policy of {tok.kind} actions (drive --takeovers)"
            )
    weak = []
    for d in clip_dirs:
        steps = load_policy_steps(d)
        if steps is not None and steps["weak"].any():
            weak.append(weak_windows(steps, tok, norm, K))
    w = WindowBatch(*(torch.cat(x)[:max_weak] for x in zip(*weak, strict=True))) if weak else None
    return PreferenceData(clip_pairs(clips, tok, norm, K), w, len(clips), ranked_batch(clips, tok, norm, K))


def split_pairs(
    pairs: PreferenceBatch, val_fraction: float, seed: int
) -> tuple[PreferenceBatch, PreferenceBatch]:
    """Train / held-out pairs, split by clip (a clip's pairs never straddle the split)."""
    groups = torch.unique(pairs.group)
    perm = groups[torch.randperm(len(groups), generator=torch.Generator().manual_seed(seed))]
    n_val = max(1, int(round(len(groups) * val_fraction))) if len(groups) > 1 and val_fraction > 0 else 0
    val = torch.isin(pairs.group, perm[:n_val])
    return pairs.take(torch.nonzero(~val)[:, 0]), pairs.take(torch.nonzero(val)[:, 0])


def bradley_terry_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> torch.Tensor:
    """-log σ(r_chosen - r_rejected), averaged: the reward model's preference likelihood."""
    return -F.logsigmoid(r_chosen - r_rejected).mean()


def dpo_loss(
    logp_chosen: torch.Tensor,
    logp_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float,
) -> torch.Tensor:
    """Direct preference optimisation: -log σ(β [(log π(c) - log π_ref(c)) - (log π(r) - log π_ref(r))])."""
    margin = (logp_chosen - ref_chosen) - (logp_rejected - ref_rejected)
    return -F.logsigmoid(beta * margin).mean()


def kl_to_reference(logits: torch.Tensor, ref_logits: torch.Tensor) -> torch.Tensor:
    """KL(π ‖ π_ref) over the action vocabulary, per row: Σ π (log π - log π_ref)."""
    logp, ref = F.log_softmax(logits, -1), F.log_softmax(ref_logits, -1)
    return (logp.exp() * (logp - ref)).sum(-1)
