"""Preference data from takeover clips and the losses that learn from it (groundwork for RLHF).

A takeover says, at each step the human drove: in this context the human's action (chosen) is
preferred to the policy's proposal (rejected). One loader turns clips into such pairs; the
Bradley-Terry loss trains a reward model on them and the DPO loss trains the policy directly
against a frozen reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch.nn import functional as F

from drivegpt.clips import Clip
from drivegpt.tokenizer import ActionTokenizer, ObsNormalizer


class PreferenceBatch(NamedTuple):
    obs: torch.Tensor  # (B, K, V, F) normalised context, left-padded; the last step is the decision
    actions: torch.Tensor  # (B, K) executed action tokens before the decision (last slot unused)
    mask: torch.Tensor  # (B, K) bool, true on real steps
    chosen: torch.Tensor  # (B,) the human's action token
    rejected: torch.Tensor  # (B,) the policy's proposed token


def clip_pairs(clips: Sequence[Clip], tok: ActionTokenizer, norm: ObsNormalizer, K: int) -> PreferenceBatch:
    """One pair per human-driven step where the human and the policy disagreed."""
    obs_rows, act_rows, masks, chosen, rejected = [], [], [], [], []
    for c in clips:
        # observations: context before the takeover, then each step the human drove
        seq_obs = np.concatenate([c.context_obs[:-1], np.asarray(c.obs)]) if len(c.obs) else c.context_obs
        seq_act = np.concatenate([tok.encode(c.context_actions), tok.encode(np.asarray(c.chosen))])
        start = len(c.context_obs) - 1  # index of the takeover step in seq_obs
        ch, rj = tok.encode(np.asarray(c.chosen)), tok.encode(np.asarray(c.rejected))
        for j in range(c.horizon):
            if ch[j] == rj[j]:
                continue  # no preference when they agree
            t = start + j
            lo = max(0, t - K + 1)
            o, a = norm(seq_obs[lo : t + 1]), seq_act[lo : t + 1].copy()
            a[-1] = 0  # the decision slot: filled with chosen / rejected by the losses
            pad = K - len(o)
            obs_rows.append(np.concatenate([np.zeros((pad, *o.shape[1:]), np.float32), o]))
            act_rows.append(np.concatenate([np.zeros(pad, np.int64), a]))
            masks.append(np.arange(K) >= pad)
            chosen.append(ch[j])
            rejected.append(rj[j])
    if not chosen:
        raise ValueError("no preference pairs: the clips hold no step where human and policy disagreed")
    return PreferenceBatch(
        torch.from_numpy(np.stack(obs_rows)),
        torch.from_numpy(np.stack(act_rows)),
        torch.from_numpy(np.stack(masks)),
        torch.tensor(chosen),
        torch.tensor(rejected),
    )


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
