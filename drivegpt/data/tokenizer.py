"""Tokenizer: observation normalisation statistics and the action vocabulary.

* Observations: each Kinematics feature is standardised with a mean and std computed on the
  training logs (present vehicles only) and saved with the model (the ``tokenizer`` entry of ``policy.json``).
* Actions: ``accel`` (the default) uses the env's own 42 tokens, acceleration bin × lane intent
  (``drivegpt_envs.actions``), as they are. ``meta`` uses the 5 meta-actions as tokens (LANE_LEFT=0,
  IDLE=1, LANE_RIGHT=2, FASTER=3, SLOWER=4). ``continuous`` bins the normalised acceleration and
  steering, each in [-1, 1], into ``bins`` equal-width bins (edges ``linspace(-1, 1, bins + 1)``)
  and joins them into one token ``acc_bin * bins + steer_bin``; decoding returns the bin centres, so
  a centre encodes and decodes exactly.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from drivegpt_envs.actions import N_TOKENS

#: vocabulary size of each discrete action kind (its env action ids are its tokens).
DISCRETE_VOCAB: dict[str, int] = {"accel": N_TOKENS, "meta": 5}


@dataclass(frozen=True)
class ActionTokenizer:
    """Maps env actions to token ids and back."""

    kind: str = "accel"
    """``accel``, ``meta`` or ``continuous``."""
    bins: int = 9
    """Continuous only: bins per dimension (odd, so 0 is a bin centre)."""

    def __post_init__(self) -> None:
        if self.kind not in (*DISCRETE_VOCAB, "continuous"):
            raise ValueError(f"action kind {self.kind!r}; valid: accel, meta, continuous")
        if self.kind == "continuous" and self.bins < 2:
            raise ValueError("continuous action tokenizer needs bins >= 2")

    @property
    def vocab_size(self) -> int:
        return DISCRETE_VOCAB.get(self.kind, self.bins * self.bins)

    @property
    def centres(self) -> np.ndarray:
        """Bin centres in [-1, 1] (continuous)."""
        edges = np.linspace(-1.0, 1.0, self.bins + 1)
        return (edges[:-1] + edges[1:]) / 2

    def encode(self, actions: np.ndarray) -> np.ndarray:
        """(T,) accel / meta ids or (T, 2) normalised [acc, steer] -> (T,) int64 tokens."""
        actions = np.asarray(actions)
        if self.kind in DISCRETE_VOCAB:
            tokens = actions.astype(np.int64).reshape(-1)
            if tokens.size and (tokens.min() < 0 or tokens.max() >= self.vocab_size):
                raise ValueError(f"{self.kind} action ids must be in 0..{self.vocab_size - 1}")
            return tokens
        a = np.clip(actions.reshape(-1, 2), -1.0, 1.0)
        idx = np.clip(((a + 1.0) / 2.0 * self.bins).astype(np.int64), 0, self.bins - 1)
        return idx[:, 0] * self.bins + idx[:, 1]

    def decode(self, tokens: np.ndarray) -> np.ndarray:
        """Tokens -> env actions ((T,) int64 accel / meta ids or (T, 2) float32 bin centres)."""
        tokens = np.asarray(tokens, np.int64).reshape(-1)
        if self.kind in DISCRETE_VOCAB:
            return tokens
        c = self.centres
        return np.stack([c[tokens // self.bins], c[tokens % self.bins]], axis=1).astype(np.float32)


@dataclass(frozen=True)
class ObsNormalizer:
    """Per-feature standardisation of Kinematics rows (absent vehicles stay zero)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def fit(cls, observations: np.ndarray) -> ObsNormalizer:
        """Statistics over present vehicle rows of (N, V, F) observations (feature 0 = presence)."""
        rows = observations.reshape(-1, observations.shape[-1])
        rows = rows[rows[:, 0] > 0.5]
        mean = rows.mean(axis=0)
        std = rows.std(axis=0)
        mean[0], std[0] = 0.0, 1.0  # keep presence as is
        std = np.where(std < 1e-6, 1.0, std)
        return cls(tuple(float(x) for x in mean), tuple(float(x) for x in std))

    def __call__(self, observations: np.ndarray) -> np.ndarray:
        x = (np.asarray(observations, np.float32) - np.float32(self.mean)) / np.float32(self.std)
        present = np.asarray(observations)[..., :1] > 0.5
        return np.where(present, x, 0.0).astype(np.float32)


def tokenizer_to_json(actions: ActionTokenizer, norm: ObsNormalizer) -> dict[str, Any]:
    return {"actions": asdict(actions), "observations": asdict(norm)}


def tokenizer_from_json(data: dict[str, Any]) -> tuple[ActionTokenizer, ObsNormalizer]:
    a = data["actions"]
    o = data["observations"]
    return ActionTokenizer(**a), ObsNormalizer(tuple(o["mean"]), tuple(o["std"]))


def dumps(actions: ActionTokenizer, norm: ObsNormalizer) -> str:
    return json.dumps(tokenizer_to_json(actions, norm), indent=2)
