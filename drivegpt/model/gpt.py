"""DriveGPT: a causal transformer over interleaved state and action tokens (nanoGPT style).

A context of K steps becomes 2K tokens ``s_0, a_0, s_1, a_1, ..., s_{K-1}, a_{K-1}``:

* state token: each Kinematics row (V vehicles x F features) goes through a per-vehicle MLP; the
  ego row's embedding queries all rows (ego-attention, absent vehicles masked by ``presence``) and
  the pooled vector is the state token;
* action token: an embedding of the action id;
* both get a timestep embedding (position of the step in the context) and a type embedding.

The hidden state at ``s_t`` predicts ``a_t`` (loss on action tokens only); causality means it sees
``s_0..s_t`` and ``a_0..a_{t-1}``, exactly what a driver knows when it acts.

Inference (:meth:`DriveGPT.next_action_logits`) reads only the last state token, so it takes the
state tokens' encodings from the caller (a state's encoding does not depend on its position: a
driving policy encodes each observation once and keeps the last K), drops the last action token
(the last state never sees it) and computes the last block at the last state token only. A KV
cache would not be exact here: the timestep embedding is the position in the sliding window, so
every token's keys change when the window slides.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
from pydantic import Field, model_validator
from torch.nn import functional as F

from drivegpt.core.config import FrozenConfig


class ModelSize(FrozenConfig):
    """The sizes a user chooses (the ``model:`` section of a pretrain config)."""

    n_layer: int = Field(2, ge=1)
    """Transformer blocks."""
    n_head: int = Field(4, ge=1)
    """Attention heads (also in the ego-attention pooling)."""
    n_embd: int = Field(64, ge=8)
    """Embedding width C (a multiple of n_head)."""
    context: int = Field(8, ge=1)
    """Steps K in the context (2K tokens)."""
    dropout: float = Field(0.0, ge=0, lt=1)
    """Dropout probability."""
    show_actions: bool = True
    """Past actions are input tokens. False: every action token is MASK, in training and in driving,
    so the policy reads only states and cannot copy its last action (the copycat failure of
    history-conditioned imitation)."""

    @model_validator(mode="after")
    def _heads_divide_width(self) -> ModelSize:
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be a multiple of n_head ({self.n_head})")
        return self


class DriveGPTConfig(ModelSize):
    """Everything that fixes the network's shape: the sizes plus what the data fixes."""

    n_vehicles: int = Field(10, ge=1)
    """Kinematics rows per observation (V)."""
    n_features: int = Field(7, ge=1)
    """Features per row (F): presence, x, y, vx, vy, cos_h, sin_h."""
    vocab_size: int = Field(5, ge=2)
    """Action tokens (the tokenizer's vocabulary)."""


class EgoAttentionEncoder(nn.Module):
    """Per-vehicle MLP, then the ego row attends over all present rows -> one state vector."""

    def __init__(self, cfg: DriveGPTConfig):
        super().__init__()
        c = cfg.n_embd
        self.vehicle = nn.Sequential(nn.Linear(cfg.n_features, c), nn.GELU(), nn.Linear(c, c))
        self.n_head = cfg.n_head
        self.q = nn.Linear(c, c)
        self.kv = nn.Linear(c, 2 * c)
        self.out = nn.Linear(2 * c, c)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        # obs: (B, T, V, F) normalised; feature 0 is presence (row 0 = ego, always present)
        B, T, V, _ = obs.shape
        x = self.vehicle(obs)  # (B, T, V, C)
        C, H = x.shape[-1], self.n_head
        present = obs[..., 0] > 0.5  # (B, T, V)
        present = present | (torch.arange(V, device=obs.device) == 0)  # never mask the ego
        q = self.q(x[:, :, :1]).view(B, T, 1, H, C // H).transpose(2, 3)  # (B, T, H, 1, C/H)
        k, v = self.kv(x).split(C, dim=-1)
        k = k.view(B, T, V, H, C // H).transpose(2, 3)  # (B, T, H, V, C/H)
        v = v.view(B, T, V, H, C // H).transpose(2, 3)
        mask = present[:, :, None, None, :]  # (B, T, 1, 1, V)
        pooled = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, T, H, 1, C/H)
        pooled = pooled.reshape(B, T, C)
        return self.out(torch.cat([x[:, :, 0], pooled], dim=-1))  # (B, T, C)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: DriveGPTConfig):
        super().__init__()
        assert cfg.n_embd % cfg.n_head == 0
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.n_head = cfg.n_head
        self.dropout = cfg.dropout
        self.resid_dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, L, C = x.shape  # (B, 2K, C)
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, L, self.n_head, C // self.n_head).transpose(1, 2)  # (B, H, L, C/H)
        k = k.view(B, L, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, L, self.n_head, C // self.n_head).transpose(1, 2)
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)  # (B, H, L, C/H)
        y = y.transpose(1, 2).contiguous().view(B, L, C)
        return self.resid_dropout(self.c_proj(y))

    def last_row(self, x: torch.Tensor) -> torch.Tensor:
        """The attention output at the last position only (B, 1, C); it attends to every position."""
        B, L, C = x.shape  # (B, L, C)
        H = self.n_head
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q[:, -1:].view(B, 1, H, C // H).transpose(1, 2)  # (B, H, 1, C/H)
        k = k.view(B, L, H, C // H).transpose(1, 2)  # (B, H, L, C/H)
        v = v.view(B, L, H, C // H).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v)  # (B, H, 1, C/H): the last row of a causal mask is full
        return self.c_proj(y.transpose(1, 2).reshape(B, 1, C))


class MLP(nn.Module):
    def __init__(self, cfg: DriveGPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd)
        self.c_proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, cfg: DriveGPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))

    def last_row(self, x: torch.Tensor) -> torch.Tensor:
        """The block's output at the last position only (B, 1, C) (inference, no dropout)."""
        y = x[:, -1:] + self.attn.last_row(self.ln_1(x))  # (B, 1, C)
        return y + self.mlp(self.ln_2(y))


class DriveGPT(nn.Module):
    def __init__(self, cfg: DriveGPTConfig):
        super().__init__()
        self.cfg = cfg
        c = cfg.n_embd
        self.state_encoder = EgoAttentionEncoder(cfg)
        self.action_emb = nn.Embedding(cfg.vocab_size + 1, c)  # + MASK: "action not shown"
        self.time_emb = nn.Embedding(cfg.context, c)
        self.type_emb = nn.Embedding(2, c)  # 0: state token, 1: action token
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.n_layer)])
        self.ln_f = nn.LayerNorm(c)
        self.head = nn.Linear(c, cfg.vocab_size)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    @property
    def mask_token(self) -> int:
        """Action id that hides a past action (action-token dropout)."""
        return self.cfg.vocab_size

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Action logits at every step.

        obs: (B, T, V, F) normalised observations; actions: (B, T) int64 action ids (the action at
        the last step is never seen by its own prediction; pass anything there, e.g. 0).
        Returns logits (B, T, vocab): row t predicts a_t from s_0..s_t and a_0..a_{t-1}.
        """
        return self.head(self.hidden(obs, actions))

    def hidden(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Final hidden states at the state tokens (B, T, C): what the heads (policy, reward, value) read."""
        x = self.drop(self._interleave(self.state_encoder(obs), actions))  # (B, 2T, C)
        for block in self.blocks:
            x = block(x)
        return self.ln_f(x)[:, 0::2]  # (B, T, C): hidden states at the state tokens

    def _interleave(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """State encodings (B, T, C) and action ids (B, T) -> the tokens s0 a0 s1 a1 ... (B, 2T, C)."""
        B, T = actions.shape
        if T > self.cfg.context:
            raise ValueError(f"sequence of {T} steps exceeds the context of {self.cfg.context}")
        if not self.cfg.show_actions:
            actions = torch.full_like(actions, self.mask_token)  # (B, T) a states-only model
        time = self.time_emb(torch.arange(T, device=states.device))  # (T, C)
        s = states + time + self.type_emb.weight[0]  # (B, T, C)
        a = self.action_emb(actions) + time + self.type_emb.weight[1]  # (B, T, C)
        return torch.stack([s, a], dim=2).view(B, 2 * T, -1)  # (B, 2T, C)

    def next_action_logits(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Inference: logits (B, vocab) of the action at the last step, as ``forward(obs, actions)[:, -1]``
        (equal up to float rounding).

        states: (B, T, C) ``state_encoder`` outputs of the T observations (each step's encoding can be
        kept from the step it was observed); actions: (B, T) action ids (the last one is not read).
        """
        return self.head(self.next_hidden(states, actions))  # (B, vocab)

    def next_hidden(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """The final hidden state (B, C) at the last state token, as ``hidden(obs, actions)[:, -1]``,
        from kept state encodings (see :meth:`next_action_logits`)."""
        x = self._interleave(states, actions)[:, :-1]  # (B, 2T-1, C): s_{T-1} never sees a_{T-1}
        *body, last = self.blocks  # (slicing a ModuleList would build a new module every call)
        for block in body:
            x = block(x)
        x = last.last_row(x)  # (B, 1, C) at s_{T-1}
        return self.ln_f(x[:, 0])  # (B, C)

    def loss(
        self,
        obs: torch.Tensor,
        actions: torch.Tensor,
        mask: torch.Tensor,
        targets: torch.Tensor | None = None,
        action_dropout: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Mean cross-entropy on the action tokens where ``mask`` (B, T) is true.

        ``actions`` are the input tokens (what was executed); ``targets`` the labels (default: the
        same tokens).
        ``action_dropout``: probability of replacing each *input* action token by the MASK token
        (targets are unchanged), so the model cannot simply copy its previous action and must read
        the state — the "copycat" failure of history-conditioned behaviour cloning.
        """
        inputs = actions
        if action_dropout > 0:
            drop = torch.rand(actions.shape, generator=generator) < action_dropout
            inputs = torch.where(drop, torch.full_like(actions, self.mask_token), actions)
        logits = self(obs, inputs)  # (B, T, vocab)
        targets = actions if targets is None else targets
        ce = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none")  # (B*T,)
        m = mask.flatten().float()
        return (ce * m).sum() / m.sum().clamp_min(1.0)
