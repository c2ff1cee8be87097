"""Context windows over driving logs: the batches DriveGPT trains and evaluates on."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from drivegpt.core.errors import UserError
from drivegpt.data.logs import LogDataset
from drivegpt.data.tokenizer import ActionTokenizer, ObsNormalizer


class WindowBatch(NamedTuple):
    obs: torch.Tensor  # (B, K, V, F) float32, normalised; zero-padded on the left
    actions: torch.Tensor  # (B, K) int64 executed action tokens (0 where padded): model inputs
    targets: torch.Tensor  # (B, K) int64 label tokens: the human's clean decisions
    mask: torch.Tensor  # (B, K) bool: true on real steps


class StepTable:
    """All steps of some episodes, flattened: window ``(end, K)`` gathers the K steps up to ``end``."""

    def __init__(self, obs: np.ndarray, tokens: np.ndarray, targets: np.ndarray, episode_start: np.ndarray):
        self.obs = torch.from_numpy(obs)  # (N, V, F) normalised
        self.tokens = torch.from_numpy(tokens)  # (N,) executed actions
        self.targets = torch.from_numpy(targets)  # (N,) labels
        self.start = torch.from_numpy(episode_start)  # (N,) index of each step's episode start

    def __len__(self) -> int:
        return len(self.tokens)

    @classmethod
    def from_logs(
        cls, ds: LogDataset, episodes: list[int], actions: ActionTokenizer, norm: ObsNormalizer
    ) -> StepTable:
        obs, toks, targets, starts, n = [], [], [], [], 0
        for ep in ds.episodes(episodes):
            T = len(ep.actions)
            obs.append(norm(ep.observations[:T]))  # the observation each action was taken on
            toks.append(actions.encode(ep.actions))
            targets.append(actions.encode(ep.decisions))
            starts.append(np.full(T, n, np.int64))
            n += T
        if not toks:
            raise UserError("no episodes to build windows from (check val_fraction and dataset size)")
        return cls(np.concatenate(obs), np.concatenate(toks), np.concatenate(targets), np.concatenate(starts))

    def windows(self, ends: torch.Tensor, K: int) -> WindowBatch:
        """Windows of K steps ending at (inclusive) each index of ``ends`` (B,)."""
        idx = ends[:, None] - torch.arange(K - 1, -1, -1)[None, :]  # (B, K)
        mask = idx >= self.start[ends][:, None]
        idx = torch.where(mask, idx, ends[:, None])
        obs = self.obs[idx] * mask[..., None, None]
        tokens = self.tokens[idx] * mask
        return WindowBatch(obs, tokens, self.targets[idx] * mask, mask)

    def sample(self, batch_size: int, K: int, gen: torch.Generator) -> WindowBatch:
        return self.windows(torch.randint(len(self), (batch_size,), generator=gen), K)


def split_episodes(n: int, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Train/validation split by episode (never by step), reproducible from ``seed``."""
    if n < 2:
        raise UserError(f"the dataset has {n} episode(s); a train/validation split needs at least 2")
    perm = np.random.default_rng(seed).permutation(n)
    n_val = min(n - 1, max(1, int(round(n * val_fraction))))
    return sorted(perm[n_val:].tolist()), sorted(perm[:n_val].tolist())
