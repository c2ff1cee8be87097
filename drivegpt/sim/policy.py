"""The one protocol every driver implements, and the simplest driver of all.

``DrivePolicy`` is what ``load_policy`` returns and what every rollout drives with: the human model,
highway-env's IDM, DriveGPT, stable-baselines3 baselines and ``ConstantPolicy``.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np

from drivegpt.sim.human import META_ACTIONS


@runtime_checkable
class DrivePolicy(Protocol):
    """Every driver in the project: ``reset`` once per episode, then ``act`` once per step.

    ``env`` is given to drivers that read the simulator (the human model); learned policies
    ignore it. ``action_kind`` is the action interface the policy was built for (``meta`` or
    ``continuous``); ``act_batch`` (optional) drives B envs at once.
    """

    action_kind: str

    def reset(self, seed: int, env: gym.Env | None = None) -> None: ...

    def act(self, observation: np.ndarray) -> Any: ...


class ConstantPolicy:
    """Always the same action (a trivial baseline, and a reliable way to provoke takeovers)."""

    def __init__(self, arg: str):
        if arg.upper() in META_ACTIONS:
            self.action: Any = META_ACTIONS.index(arg.upper())
            self.action_kind = "meta"
        else:
            try:
                self.action = np.array([float(x) for x in arg.split(",")], np.float32)
            except ValueError:
                raise ValueError(
                    f"constant:{arg}: give a meta-action ({', '.join(META_ACTIONS)}) "
                    "or 'acc,steer' in [-1, 1]"
                ) from None
            if self.action.shape != (2,):
                raise ValueError(f"constant:{arg}: continuous actions are 'acc,steer'")
            self.action_kind = "continuous"

    def reset(self, seed: int, env: gym.Env | None = None) -> None:
        pass

    def act(self, observation: np.ndarray) -> Any:
        return self.action
