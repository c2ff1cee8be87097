"""The record of one driven episode: ``Episode`` (what a rollout returns and the logs store).

A module of its own, importing numpy and gymnasium only, so that reading the logs does not load the
simulators.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

#: keys of the per-step ego state saved with every step (``infos`` in the logs).
STATE_KEYS: tuple[str, ...] = ("speed", "x", "y", "heading", "lane", "crashed", "on_road")


@dataclass
class Episode:
    """One driven episode. ``T`` steps: observations and states have ``T + 1`` rows (reset included)."""

    seed: int
    env_id: str
    observations: np.ndarray  # (T+1, V, F) float32
    actions: np.ndarray  # (T,) int64 accel tokens / meta-actions or (T, 2) float32 [acc, steer] in [-1, 1]
    rewards: np.ndarray  # (T,) float64
    terminations: np.ndarray  # (T,) bool
    truncations: np.ndarray  # (T,) bool
    states: dict[str, np.ndarray]  # key -> (T+1,) float64, keys STATE_KEYS
    meta: dict[str, Any] = field(default_factory=dict)
    decisions: np.ndarray | None = None  # (T,) or (T, 2): the driver's clean decision (imitation label)
    controller: np.ndarray | None = None  # (T,) int8: 0 the policy drove step t, 1 the safety driver

    @classmethod
    def from_steps(
        cls,
        env: gym.Env,
        seed: int,
        observations: list,
        actions: list,
        rewards: list,
        terms: list,
        truncs: list,
        states: list[dict[str, float]],
    ) -> Episode:
        """Stack per-step lists into an episode."""
        continuous = isinstance(env.action_space, gym.spaces.Box)
        return cls(
            seed=seed,
            env_id=env.spec.id if env.spec else "",
            observations=np.asarray(observations, np.float32),
            actions=np.asarray(actions, np.float32 if continuous else np.int64),
            rewards=np.asarray(rewards, np.float64),
            terminations=np.asarray(terms, bool),
            truncations=np.asarray(truncs, bool),
            states={k: np.asarray([s[k] for s in states], np.float64) for k in STATE_KEYS},
        )

    @property
    def crashed(self) -> bool:
        return bool(self.states["crashed"].max() > 0)

    @property
    def distance_m(self) -> float:
        """Ego path length [m]."""
        xy = np.stack([self.states["x"], self.states["y"]], axis=1)
        return float(np.linalg.norm(np.diff(xy, axis=0), axis=1).sum())

    @property
    def policy_distance_m(self) -> float:
        """Ego path length while the policy, not the safety driver, was in control [m]."""
        xy = np.stack([self.states["x"], self.states["y"]], axis=1)
        seg = np.linalg.norm(np.diff(xy, axis=0), axis=1)  # (T,) distance of step t [m]
        return float(seg.sum() if self.controller is None else seg[self.controller == 0].sum())

    @property
    def speeds(self) -> np.ndarray:
        return self.states["speed"][1:]
