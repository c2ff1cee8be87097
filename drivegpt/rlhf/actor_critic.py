"""The actor-critic pieces both PPO trainers share: the value head, GAE advantages, the clipped update.

:mod:`drivegpt.rlhf.ppo` (highway-env rollouts in worker processes) and :mod:`drivegpt.rlhf.ppo_batched`
(the batched simulator) differ in how they collect steps; what they learn from them is this module.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from drivegpt.data.windows import WindowBatch
from drivegpt.model.gpt import DriveGPT

__all__ = ["PPOSettings", "ValueHead", "gae", "ppo_update", "segment_gae"]


class PPOSettings(Protocol):
    """What :func:`ppo_update` reads of a config (``RLHFConfig`` or the batched ``BatchedPPOConfig``)."""

    @property
    def epochs(self) -> int: ...
    @property
    def minibatch_size(self) -> int: ...
    @property
    def temperature(self) -> float: ...
    @property
    def clip_range(self) -> float: ...
    @property
    def entropy_coef(self) -> float: ...
    @property
    def max_grad_norm(self) -> float: ...


class ValueHead(nn.Module):
    """V(h_t) from the policy's hidden state (detached: the critic never moves the policy)."""

    def __init__(self, n_embd: int, scale: float = 1.0):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_embd, 64), nn.Tanh(), nn.Linear(64, 1))
        self.scale = scale  # output units: values of order ``scale`` are reached at unit weights

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.scale * self.net(hidden.detach())[..., 0]  # (B,)


def gae(
    rewards: np.ndarray, values: np.ndarray, gamma: float, lam: float, next_value: float | None
) -> np.ndarray:
    """GAE(γ, λ) advantages of one episode of T steps, t = 0..T-1.

    ``values``: V(s_0..s_{T-1}). ``next_value``: V(s_T), the value of the state after the last step,
    when the episode was truncated (time limit, step cap): the last TD error is
    r_{T-1} + γ·V(s_T) − V(s_{T-1}). None when it terminated (collision, takeover): nothing follows,
    the last TD error is r_{T-1} − V(s_{T-1}).
    """
    T = len(rewards)
    if len(values) != T:
        raise ValueError(f"{T} rewards but {len(values)} values")
    adv, last = np.zeros(T, np.float64), 0.0
    for t in range(T - 1, -1, -1):
        if t + 1 < T:
            next_v = float(values[t + 1])
        else:
            next_v = 0.0 if next_value is None else float(next_value)
        delta = rewards[t] + gamma * next_v - values[t]
        last = delta + gamma * lam * last
        adv[t] = last
    return adv.astype(np.result_type(rewards, values), copy=False)


def segment_gae(
    rewards: np.ndarray,
    values: np.ndarray,
    policy: np.ndarray,
    terminal: np.ndarray,
    next_value: np.ndarray,
    gamma: float,
    lam: float,
) -> np.ndarray:
    """GAE(γ, λ) on (B, T) grids of policy segments. ``policy``: the policy acted at (b, t);
    ``terminal``: its segment ends there with nothing after (takeover, collision); ``next_value``:
    V of the state after (b, t) where the episode was truncated there (else 0). A policy step whose
    next step is also a policy step continues its segment; all other cells have advantage 0."""
    B, T = rewards.shape
    adv = np.zeros((B, T), np.float64)
    last = np.zeros(B, np.float64)
    for t in range(T - 1, -1, -1):
        nxt = policy[:, t + 1] if t + 1 < T else np.zeros(B, bool)
        cont = policy[:, t] & ~terminal[:, t] & nxt  # (B,) the segment goes on at t + 1
        v_next = np.where(
            cont, values[:, t + 1] if t + 1 < T else 0.0, np.where(terminal[:, t], 0.0, next_value[:, t])
        )
        delta = rewards[:, t] + gamma * v_next - values[:, t]
        last = np.where(policy[:, t], delta + gamma * lam * np.where(cont, last, 0.0), 0.0)
        adv[:, t] = last
    return adv


def ppo_update(
    policy: DriveGPT,
    critic: ValueHead,
    opt: torch.optim.Optimizer,
    vf_opt: torch.optim.Optimizer,
    w: WindowBatch,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    returns: torch.Tensor,
    cfg: PPOSettings,
    gen: torch.Generator,
) -> dict[str, float]:
    """``cfg.epochs`` passes of clipped-ratio PPO over one update's steps."""
    policy.eval()  # no dropout: ratios compare the same function
    n = len(old_logp)
    clipped, ents, vls = [], [], []
    for _ in range(cfg.epochs):
        perm = torch.randperm(n, generator=gen)
        for lo in range(0, n, cfg.minibatch_size):
            i = perm[lo : lo + cfg.minibatch_size]
            h = policy.hidden(w.obs[i], w.actions[i])[:, -1]  # (b, C)
            logp_all = F.log_softmax(policy.head(h) / cfg.temperature, -1)  # (b, vocab)
            logp = logp_all.gather(1, w.actions[i, -1:])[:, 0]
            ratio = (logp - old_logp[i]).exp()
            a = advantages[i]
            pg = -torch.min(ratio * a, ratio.clamp(1 - cfg.clip_range, 1 + cfg.clip_range) * a).mean()
            entropy = -(logp_all.exp() * logp_all).sum(-1).mean()
            loss = pg - cfg.entropy_coef * entropy
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(policy.parameters(), cfg.max_grad_norm)
            opt.step()
            vl = F.mse_loss(critic(h), returns[i])
            vf_opt.zero_grad(set_to_none=True)
            vl.backward()
            vf_opt.step()
            clipped.append(float(((ratio - 1).abs() > cfg.clip_range).float().mean()))
            ents.append(float(entropy.detach()))
            vls.append(float(vl.detach()))
    return {
        "clip_fraction": float(np.mean(clipped)),
        "entropy": float(np.mean(ents)),
        "value_loss": float(np.mean(vls)),
    }
