"""What the driving policy sees and gets: Kinematics observation, HighwayEnv reward, termination, truncation.

Owns ``observe`` (highway-env's ``KinematicObservation`` as configured by the project: features
presence, x, y, vx, vy, cos_h, sin_h; the ego row absolute, the others relative to it, nearest first by
longitudinal distance, within the perception distance and, without ``see_behind``, not more than two
vehicle lengths behind; normalised and clipped to [-1, 1]), ``reward`` (``HighwayEnv._reward``),
``terminated`` and ``truncated``.
"""

from __future__ import annotations

import torch

from drivegpt.sim.batched.config import LANE_WIDTH, LENGTH, MAX_SPEED
from drivegpt.sim.batched.road import on_lane
from drivegpt.sim.batched.state import BatchState

FEATURES: tuple[str, ...] = ("presence", "x", "y", "vx", "vy", "cos_h", "sin_h")


def _normalise(value: torch.Tensor, bound: float) -> torch.Tensor:
    """``utils.lmap(value, [-bound, bound], [-1, 1])`` clipped to [-1, 1]."""
    return (-1 + (value - -bound) * (1 - -1) / (bound - -bound)).clamp(-1, 1)


def observe(state: BatchState) -> torch.Tensor:
    """(B, V, 7) float32 Kinematics observation (V = ``config.obs_vehicles``)."""
    s, cfg = state, state.config
    bsz, n = s.x.shape
    cos_h, sin_h = torch.cos(s.heading), torch.sin(s.heading)  # (B, N)
    vx, vy = s.speed * cos_h, s.speed * sin_h  # (B, N) [m/s] velocity (no slip angle)
    dx, dy = s.x - s.x[:, :1], s.y - s.y[:, :1]  # (B, N) [m]
    visible = s.present & (torch.sqrt(dx * dx + dy * dy) < cfg.perception_distance)
    if not cfg.see_behind:
        visible &= -2 * LENGTH < dx
    visible[:, 0] = False
    key = torch.where(visible, dx.abs(), torch.full_like(dx, float("inf")))  # (B, N) [m]
    rows = cfg.obs_vehicles - 1
    order = torch.sort(key, dim=1, stable=True).indices[:, :rows]  # (B, V-1) nearest first
    shown = visible.gather(1, order)  # (B, V-1)
    y_bound = LANE_WIDTH * cfg.lanes_count
    ego = torch.stack(
        [
            torch.ones_like(s.x[:, 0]),
            _normalise(s.x[:, 0], 5.0 * MAX_SPEED),
            _normalise(s.y[:, 0], y_bound),
            _normalise(vx[:, 0], 2 * MAX_SPEED),
            _normalise(vy[:, 0], 2 * MAX_SPEED),
            cos_h[:, 0],
            sin_h[:, 0],
        ],
        dim=-1,
    )  # (B, 7)

    def g(t: torch.Tensor) -> torch.Tensor:
        return t.gather(1, order)

    others = torch.stack(
        [
            torch.ones_like(g(dx)),
            _normalise(g(dx), 5.0 * MAX_SPEED),
            _normalise(g(dy), y_bound),
            _normalise(g(vx) - vx[:, :1], 2 * MAX_SPEED),
            _normalise(g(vy) - vy[:, :1], 2 * MAX_SPEED),
            g(cos_h),
            g(sin_h),
        ],
        dim=-1,
    )  # (B, V-1, 7)
    others = torch.where(shown.unsqueeze(-1), others, torch.zeros_like(others))
    if others.shape[1] < rows:  # fewer slots than observation rows
        others = torch.cat([others, others.new_zeros(bsz, rows - others.shape[1], len(FEATURES))], dim=1)
    return torch.cat([ego.unsqueeze(1), others], dim=1).to(torch.float32)


def on_road(state: BatchState) -> torch.Tensor:
    """(B,) bool: the ego is on its current lane (``RoadObject.on_road``)."""
    return on_lane(state.x[:, 0], state.y[:, 0], state.lane[:, 0])


def reward(state: BatchState) -> torch.Tensor:
    """(B,) ``HighwayEnv._reward`` of the current state."""
    s, cfg = state, state.config
    lane = torch.where(s.controlled[:, 0], s.target_lane[:, 0], s.lane[:, 0]).to(s.dtype)  # (B,)
    right_lane = lane / max(cfg.lanes_count - 1, 1)
    forward_speed = s.speed[:, 0] * torch.cos(s.heading[:, 0])  # [m/s]
    lo, hi = cfg.reward_speed_range
    high_speed = (0 + (forward_speed - lo) * (1 - 0) / (hi - lo)).clamp(0, 1)
    crashed = s.crashed[:, 0].to(s.dtype)
    road = on_road(s).to(s.dtype)
    r = 0 + cfg.collision_reward * crashed + cfg.right_lane_reward * right_lane
    r = r + cfg.high_speed_reward * high_speed + 0 * road
    if cfg.normalize_reward:
        lo_r, hi_r = cfg.collision_reward, cfg.high_speed_reward + cfg.right_lane_reward
        r = 0 + (r - lo_r) * (1 - 0) / (hi_r - lo_r)
    return r * road


def terminated(state: BatchState) -> torch.Tensor:
    """(B,) bool: the ego crashed, or left the road when ``offroad_terminal``."""
    done = state.crashed[:, 0]
    if state.config.offroad_terminal:
        done = done | ~on_road(state)
    return done


def truncated(state: BatchState) -> torch.Tensor:
    """(B,) bool: the episode time reached the duration."""
    return state.time >= state.config.duration
