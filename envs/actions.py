"""The ``accel`` driving language: one token = (longitudinal acceleration bin) × (lane intent).

The mapping between tokens and (acceleration [m/s²], lane intent) is pure numpy (no simulator
object), so any simulator can reuse it:

* ``ACCEL_BINS``: 14 accelerations from -8 (emergency braking) to +3 m/s², finer near zero where
  car following lives (±0.2 … ±0.6 m/s² hold a gap; -3 … -8 m/s² are the braking a human does when
  surprised);
* ``LANE_INTENTS``: ``keep`` (hold the lane being driven to, a lane change in progress included),
  ``left``, ``right`` (start a change to the lane left / right of the lane the ego is in now);
* ``token = acc_bin * 3 + lane_intent``: 42 tokens. An acceleration encodes to the nearest bin
  (ties to the lower bin; beyond the table it clips to the end bins).

:class:`AccelLaneAction` executes a token in highway-env: the acceleration is applied directly
(clipped so the speed stays in [0, ``MAX_SPEED``]); the lane intent sets the target lane of
highway-env's lane-change controller (``ControlledVehicle.steering_control``). A change off the road
or to an unreachable lane is refused (the target lane stays), so a lane intent never drives off the
road. :func:`register_action_type` makes ``{"action": {"type": "AccelLaneAction"}}`` work in any
highway-env config (done when ``drivegpt_envs`` is imported).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from gymnasium import spaces
from highway_env.envs.common import abstract as _abstract
from highway_env.envs.common import action as _action
from highway_env.envs.common.action import ActionType
from highway_env.vehicle.controller import ControlledVehicle
from highway_env.vehicle.kinematics import Vehicle

#: longitudinal acceleration of each bin [m/s²], ascending; 0 is a bin.
ACCEL_BINS: tuple[float, ...] = (-8.0, -6.0, -4.5, -3.0, -2.0, -1.2, -0.6, -0.2, 0.0, 0.3, 0.8, 1.5, 2.2, 3.0)
#: lane intents, in token order.
LANE_INTENTS: tuple[str, ...] = ("keep", "left", "right")
KEEP, LEFT, RIGHT = 0, 1, 2
#: vocabulary size: acceleration bins × lane intents.
N_TOKENS = len(ACCEL_BINS) * len(LANE_INTENTS)
#: token of "hold the speed, keep the lane" (the neutral action).
NEUTRAL_TOKEN = ACCEL_BINS.index(0.0) * len(LANE_INTENTS) + KEEP

_BINS = np.asarray(ACCEL_BINS)  # [m/s²]
_EDGES = (_BINS[:-1] + _BINS[1:]) / 2  # [m/s²] decision edges between neighbouring bins


def accel_bin(acceleration: Any) -> np.ndarray:
    """Index of the nearest acceleration bin (ties to the lower one; clipped at both ends)."""
    return np.searchsorted(_EDGES, np.asarray(acceleration, np.float64), side="left").astype(np.int64)


def encode_accel_lane(acceleration: Any, lane_intent: Any) -> np.ndarray:
    """(acceleration [m/s²], lane intent 0 keep / 1 left / 2 right) -> token(s), int64."""
    intent = np.asarray(lane_intent, np.int64)
    if intent.size and (intent.min() < 0 or intent.max() >= len(LANE_INTENTS)):
        raise ValueError(f"lane intent must be 0 (keep), 1 (left) or 2 (right), got {lane_intent!r}")
    return accel_bin(acceleration) * len(LANE_INTENTS) + intent


def decode_accel_lane(token: Any) -> tuple[np.ndarray, np.ndarray]:
    """Token(s) -> (acceleration [m/s²] float64, lane intent int64); a bad token is a ValueError."""
    t = np.asarray(token, np.int64)
    if t.size and (t.min() < 0 or t.max() >= N_TOKENS):
        raise ValueError(f"accel tokens must be in 0..{N_TOKENS - 1}, got {token!r}")
    return _BINS[t // len(LANE_INTENTS)], t % len(LANE_INTENTS)


class AccelVehicle(ControlledVehicle):
    """An ego that holds a commanded acceleration and steers with highway-env's lane controller.

    ``act(dict(acceleration=a, lane_intent=i))`` sets a new command; ``act()`` (called by the road
    every simulation step) keeps it and re-computes the steering toward ``target_lane_index``.
    """

    MIN_SPEED = 0.0  # [m/s] braking stops the car, it never reverses
    MAX_SPEED = 40.0  # [m/s]
    MAX_ACCELERATION = ACCEL_BINS[-1]  # [m/s²]
    MAX_DECELERATION = -ACCEL_BINS[0]  # [m/s²]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commanded_acceleration = 0.0  # [m/s²]

    def act(self, action: dict | str | None = None) -> None:
        if isinstance(action, dict):
            a = float(action["acceleration"])
            self.commanded_acceleration = float(np.clip(a, -self.MAX_DECELERATION, self.MAX_ACCELERATION))
            self._lane_intent(int(action["lane_intent"]))
        self.follow_road()
        steering = float(
            np.clip(
                self.steering_control(self.target_lane_index),
                -self.MAX_STEERING_ANGLE,
                self.MAX_STEERING_ANGLE,
            )
        )
        Vehicle.act(self, {"steering": steering, "acceleration": self.commanded_acceleration})

    def _lane_intent(self, intent: int) -> None:
        """Target the lane left/right of the current one; refused (target kept) off the road."""
        if intent == KEEP or self.lane_index is None:
            return
        _from, _to, _id = self.lane_index
        new_id = _id + (-1 if intent == LEFT else 1)
        if not 0 <= new_id < len(self.road.network.graph[_from][_to]):
            return  # off the road: refused
        target = (_from, _to, new_id)
        if self.road.network.get_lane(target).is_reachable_from(self.position):
            self.target_lane_index = target

    def step(self, dt: float) -> None:
        if not self.crashed:  # keep the speed in [MIN_SPEED, MAX_SPEED] over this step
            lo, hi = (self.MIN_SPEED - self.speed) / dt, (self.MAX_SPEED - self.speed) / dt  # [m/s²]
            self.action["acceleration"] = float(
                np.clip(self.action["acceleration"], min(lo, 0.0), max(hi, 0.0))
            )
        super().step(dt)
        self.speed = max(self.speed, self.MIN_SPEED)


class AccelLaneAction(ActionType):
    """``Discrete(42)``: token = acceleration bin × 3 + lane intent (see the module docstring)."""

    def __init__(self, env: Any, **kwargs: Any) -> None:
        super().__init__(env)
        self.last_action = NEUTRAL_TOKEN

    def space(self) -> spaces.Discrete:
        return spaces.Discrete(N_TOKENS)

    @property
    def vehicle_class(self) -> Callable:
        return AccelVehicle

    def act(self, action: int | np.ndarray) -> None:
        acc, intent = decode_accel_lane(int(action))
        self.controlled_vehicle.act({"acceleration": float(acc), "lane_intent": int(intent)})
        self.last_action = int(action)

    def get_available_actions(self) -> list[int]:
        return list(range(N_TOKENS))


_STOCK_FACTORY = _action.action_factory


def _action_factory(env: Any, config: dict) -> ActionType:
    if config["type"] == "AccelLaneAction":
        return AccelLaneAction(env, **config)
    return _STOCK_FACTORY(env, config)


def register_action_type() -> None:
    """Let highway-env build ``{"type": "AccelLaneAction"}`` (idempotent)."""
    _action.action_factory = _action_factory
    _abstract.action_factory = _action_factory


def is_lane_change(action_type: ActionType, action: Any) -> bool:
    """Whether ``action`` asks for a lane change: an ``accel`` token's lane intent, a meta-action's
    LANE_LEFT / LANE_RIGHT; continuous control (or no action) never does."""
    if action is None:
        return False
    if isinstance(action_type, AccelLaneAction):
        return bool(decode_accel_lane(int(action))[1] != KEEP)
    if isinstance(action_type, _action.DiscreteMetaAction):
        return int(action) in (0, 2)
    return False


def env_action_kind(env: Any) -> str:
    """The action interface of a highway-env env (``accel``, ``meta``, ``continuous``, or the class name)."""
    action_type = env.unwrapped.action_type
    if isinstance(action_type, AccelLaneAction):
        return "accel"
    if isinstance(action_type, _action.DiscreteMetaAction):
        return "meta"
    if isinstance(action_type, _action.ContinuousAction):
        return "continuous"
    return type(action_type).__name__
