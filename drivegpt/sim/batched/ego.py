"""Ego action interfaces: accel tokens, acceleration + lane intent, meta-actions, continuous control.

Owns validation of ego actions, their effect at the start of a policy step (``apply_action``, what
highway-env's ``ActionType.act`` does) and the ego's per-sub-step commands (``ego_commands``).

Internally every interface reduces to a longitudinal command and a target lane:
- ``accel_lane`` (drivegpt_envs.actions ``AccelVehicle``): a held acceleration [m/s²] and a lane
  intent -1/0/+1 (left/keep/right of the lane driven now; refused off the road) -> highway-env's
  lane-following steering controller; the speed is kept in [0, 40] m/s.
- ``accel``: ``AccelLaneAction`` tokens (acceleration bin × keep/left/right), decoded to ``accel_lane``.
- ``meta`` (``DiscreteMetaAction`` + ``MDPVehicle``): target speed -> proportional speed control;
  LANE_LEFT/RIGHT shift the target lane -> the same steering controller.
- ``continuous`` (``ContinuousAction`` + plain ``Vehicle``): held acceleration and steering.
"""

from __future__ import annotations

import numpy as np
import torch

from drivegpt.sim.batched.config import MAX_SPEED, MAX_STEERING_ANGLE, MIN_SPEED
from drivegpt.sim.batched.controller import speed_control, steering_control
from drivegpt.sim.batched.road import reachable
from drivegpt.sim.batched.state import BatchState
from drivegpt_envs.actions import ACCEL_BINS, LANE_INTENTS, LEFT, RIGHT, AccelVehicle

#: DiscreteMetaAction.ACTIONS_ALL, by index.
META_ACTIONS: tuple[str, ...] = ("LANE_LEFT", "IDLE", "LANE_RIGHT", "FASTER", "SLOWER")
ACCEL_RANGE: tuple[float, float] = (-AccelVehicle.MAX_DECELERATION, AccelVehicle.MAX_ACCELERATION)  # [m/s²]
ACCEL_SPEED_RANGE: tuple[float, float] = (AccelVehicle.MIN_SPEED, AccelVehicle.MAX_SPEED)  # [m/s]
N_TOKENS = len(ACCEL_BINS) * len(LANE_INTENTS)

EgoAction = torch.Tensor | np.ndarray | list | tuple


def _tensor(action: EgoAction, state: BatchState) -> torch.Tensor:
    raw = action if torch.is_tensor(action) else torch.as_tensor(np.asarray(action, dtype=np.float64))
    return raw.to(device=state.device, dtype=state.dtype)


def _integers(raw: torch.Tensor, count: int, what: str) -> torch.Tensor:
    if not bool(torch.isfinite(raw).all()) or bool((raw != raw.round()).any()):
        raise ValueError(f"{what} must be integers (NaN, inf or a fraction given)")
    if bool(((raw < 0) | (raw >= count)).any()):
        raise ValueError(f"{what} must be in [0, {count})")
    return raw.long()


def validate_action(state: BatchState, action: EgoAction) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Check an ego action batch and convert it to tensors; raise ValueError if malformed.

    accel: (B,) tokens in [0, 42). accel_lane: a tuple (acceleration (B,) [m/s²] finite within
    ``ACCEL_RANGE``, intent (B,) in {-1, 0, +1}) or a (B, 2) array / nested list of those columns.
    meta: (B,) ints in [0, 5). continuous: (B, 2) finite in [-1, 1] (acceleration, steering).
    Returns (acceleration, intent) for accel and accel_lane, meta indices, or the continuous array.
    """
    kind, bsz = state.config.action, state.batch_size
    if kind == "accel_lane" and isinstance(action, tuple) and len(action) == 2:
        accel, intent = (_tensor(a, state) for a in action)
    else:
        raw = _tensor(action, state)
        shape = (bsz, 2) if kind in ("continuous", "accel_lane") else (bsz,)
        if raw.shape != shape:
            raise ValueError(f"{kind} actions must have shape {shape}, got {tuple(raw.shape)}")
        if kind == "meta":
            return _integers(raw, len(META_ACTIONS), f"meta actions {dict(enumerate(META_ACTIONS))}")
        if kind == "continuous":
            if not bool(torch.isfinite(raw).all()) or bool((raw.abs() > 1).any()):
                raise ValueError("continuous actions must be finite and in [-1, 1] (acceleration, steering)")
            return raw
        if kind == "accel":
            token = _integers(raw, N_TOKENS, "accel tokens")
            bins = torch.tensor(ACCEL_BINS, dtype=state.dtype, device=state.device)  # [m/s²]
            code = token % len(LANE_INTENTS)  # 0 keep, 1 left, 2 right
            intent = torch.where(code == LEFT, -1, torch.where(code == RIGHT, 1, 0))
            return bins[token // len(LANE_INTENTS)], intent
        accel, intent = raw[:, 0], raw[:, 1]
    if accel.shape != (bsz,) or intent.shape != (bsz,):
        raise ValueError(f"accel_lane actions must be (acceleration, intent) of shape ({bsz},) each")
    lo, hi = ACCEL_RANGE
    if not bool(torch.isfinite(accel).all()) or bool(((accel < lo) | (accel > hi)).any()):
        raise ValueError(f"accel_lane accelerations must be finite and within [{lo}, {hi}] m/s²")
    if not bool(((intent == -1) | (intent == 0) | (intent == 1)).all()):
        raise ValueError("accel_lane lane intents must be -1 (left), 0 (keep) or +1 (right)")
    return accel, intent.long()


def _shift_target_lane(
    state: BatchState, base: torch.Tensor, shift: torch.Tensor, clip: bool
) -> torch.Tensor:
    """New ego target lane (B,): ``base + shift`` if reachable (clipped into the road, or refused off it)."""
    s, k = state, state.config.lanes_count
    lane = base + shift
    inside = (lane >= 0) & (lane < k)
    lane = lane.clamp(0, k - 1)
    ok = (shift != 0) & (inside | clip) & reachable(s.x[:, 0], s.y[:, 0], lane)
    return torch.where(ok, lane, s.target_lane[:, 0])


def _speed_to_index(speed: torch.Tensor, speeds: torch.Tensor) -> torch.Tensor:
    """``MDPVehicle.speed_to_index``: nearest set point of a uniform speed grid (B,)."""
    x = (speed - speeds[0]) / (speeds[-1] - speeds[0])
    return torch.round(x * (speeds.numel() - 1)).clamp(0, speeds.numel() - 1).long()


def apply_action(state: BatchState, action: torch.Tensor | tuple[torch.Tensor, torch.Tensor]) -> BatchState:
    """Apply a validated ego action at the start of a policy step (``ActionType.act``)."""
    s, cfg = state, state.config
    target_lane = s.target_lane.clone()
    if cfg.action == "continuous":
        lo, hi = cfg.acceleration_range
        slo, shi = cfg.steering_range
        accel = lo + (action[:, 0] - -1) * (hi - lo) / (1 - -1)  # utils.lmap [m/s²]
        steer = slo + (action[:, 1] - -1) * (shi - slo) / (1 - -1)  # [rad]
        return s.replace(ego_accel=accel, ego_steering=steer)
    if cfg.action in ("accel", "accel_lane"):  # AccelVehicle.act: relative to the lane driven now
        accel, intent = action
        target_lane[:, 0] = _shift_target_lane(s, s.lane[:, 0], intent, clip=False)
        return s.replace(ego_accel=accel.clamp(*ACCEL_RANGE), target_lane=target_lane)
    speeds = torch.tensor(cfg.target_speeds, dtype=s.dtype, device=s.device)  # (S,) [m/s]
    shift = torch.where(action == 0, -1, torch.where(action == 2, 1, 0))  # (B,) LANE_LEFT / LANE_RIGHT
    speed_step = torch.where(action == 3, 1, torch.where(action == 4, -1, 0))  # (B,) FASTER / SLOWER
    index = (_speed_to_index(s.speed[:, 0], speeds) + speed_step).clamp(0, speeds.numel() - 1)
    target_speed = s.target_speed.clone()
    target_speed[:, 0] = torch.where(speed_step != 0, speeds[index], s.target_speed[:, 0])
    target_lane[:, 0] = _shift_target_lane(s, s.target_lane[:, 0], shift, clip=True)  # ControlledVehicle.act
    return s.replace(target_speed=target_speed, target_lane=target_lane)


def ego_commands(state: BatchState, dt: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The ego's (acceleration [m/s²], steering [rad]) for one sub-step of ``dt`` [s], both (B,)."""
    s, kind = state, state.config.action
    if kind == "continuous":
        return s.ego_accel, s.ego_steering
    steer = steering_control(s.y[:, 0], s.heading[:, 0], s.speed[:, 0], s.target_lane[:, 0])
    steer = steer.clamp(-MAX_STEERING_ANGLE, MAX_STEERING_ANGLE)
    if kind == "meta":
        return speed_control(s.speed[:, 0], s.target_speed[:, 0]), steer
    lo_v, hi_v = ACCEL_SPEED_RANGE  # AccelVehicle.step: keep the speed in range over this step
    lo = ((lo_v - s.speed[:, 0]) / dt).clamp(max=0)  # [m/s²]
    hi = ((hi_v - s.speed[:, 0]) / dt).clamp(min=0)
    accel = torch.where(s.crashed[:, 0], s.ego_accel, torch.minimum(torch.maximum(s.ego_accel, lo), hi))
    return accel, steer


def ego_speed_range(kind: str) -> tuple[float, float]:
    """The ego's (MIN_SPEED, MAX_SPEED) [m/s] of ``Vehicle.clip_actions`` for an action kind."""
    return ACCEL_SPEED_RANGE if kind in ("accel", "accel_lane") else (MIN_SPEED, MAX_SPEED)
