"""The one protocol every driver implements, and the simplest driver of all.

``DrivePolicy`` is what ``load_policy`` returns and what every rollout drives with: the human model,
highway-env's IDM, DriveGPT, stable-baselines3 baselines and ``ConstantPolicy``.
"""

from __future__ import annotations

import math
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np

from drivegpt.core.errors import UserError
from drivegpt.sim.human import META_ACTIONS
from drivegpt_envs.actions import LANE_INTENTS, N_TOKENS, decode_accel_lane, encode_accel_lane


@runtime_checkable
class DrivePolicy(Protocol):
    """Every driver in the project: ``reset`` once per episode, then ``act`` once per step.

    ``env`` is given to drivers that read the simulator (the human model); learned policies
    ignore it. ``action_kind`` is the action interface the policy was built for (``accel``, ``meta``
    or ``continuous``); ``act_batch`` (optional) drives B envs at once.
    """

    action_kind: str

    def reset(self, seed: int, env: gym.Env | None = None) -> None: ...

    def act(self, observation: np.ndarray) -> Any: ...


class ConstantPolicy:
    """Always the same action (a trivial baseline, and a reliable way to provoke takeovers).

    ``arg``: a meta-action (``FASTER``); an ``accel`` token as ``ACC[,keep|left|right]`` (``-3,keep``:
    the acceleration [m/s²] snapped to the nearest bin; the lane intent defaults to keep) or as
    ``token:N``; or a continuous ``acc,steer`` in [-1, 1].
    """

    def __init__(self, arg: str):
        parts = [x.strip().lower() for x in arg.split(",")]
        if arg.upper() in META_ACTIONS:
            self.action: Any = META_ACTIONS.index(arg.upper())
            self.action_kind = "meta"
        elif arg.startswith("token:") or len(parts) == 1 or (len(parts) == 2 and parts[1] in LANE_INTENTS):
            self.action = self._accel_token(arg, parts)
            self.action_kind = "accel"
        else:
            try:
                self.action = np.array([float(x) for x in arg.split(",")], np.float32)
            except ValueError:
                raise UserError(
                    f"constant:{arg}: give a meta-action ({', '.join(META_ACTIONS)}) "
                    "or 'acc,steer' in [-1, 1]"
                ) from None
            if self.action.shape != (2,):
                raise UserError(f"constant:{arg}: continuous actions are 'acc,steer'")
            if not np.all(np.abs(self.action) <= 1):  # NaN fails this too
                raise UserError(f"constant:{arg}: continuous actions are 'acc,steer' in [-1, 1]")
            self.action_kind = "continuous"

    @staticmethod
    def _accel_token(arg: str, parts: list[str]) -> int:
        try:
            if arg.startswith("token:"):
                token = int(arg.removeprefix("token:"))
                decode_accel_lane(token)  # range check
                return token
            intent = LANE_INTENTS.index(parts[1]) if len(parts) == 2 else 0
            acc = float(parts[0])  # [m/s²] snapped to the nearest bin
            if not math.isfinite(acc):
                raise ValueError(f"not a finite acceleration: {acc}")
            return int(encode_accel_lane(acc, intent))
        except ValueError:
            raise UserError(
                f"constant:{arg}: give a meta-action ({', '.join(META_ACTIONS)}), an accel token "
                f"'ACC[,keep|left|right]' (ACC in m/s²) or 'token:N' (N in 0..{N_TOKENS - 1}), "
                "or 'acc,steer' in [-1, 1]"
            ) from None

    def reset(self, seed: int, env: gym.Env | None = None) -> None:
        pass

    def act(self, observation: np.ndarray) -> Any:
        return self.action
