"""The kinematic bicycle model of highway-env's ``Vehicle.step`` (with ``clip_actions``).

Owns ``bicycle_step``: one integration step of every vehicle of the batch, including the crashed
override (no steering, braking to a stop), the speed-limit clipping of the acceleration, the
collision impact displacement recorded at the previous sub-step, and the closest-lane update.
"""

from __future__ import annotations

import torch

from drivegpt.sim.batched.config import LENGTH, MAX_SPEED, MIN_SPEED
from drivegpt.sim.batched.road import closest_lane
from drivegpt.sim.batched.state import BatchState


def clip_actions(
    speed: torch.Tensor,
    crashed: torch.Tensor,
    acceleration: torch.Tensor,
    steering: torch.Tensor,
    min_speed: torch.Tensor | float,
    max_speed: torch.Tensor | float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``Vehicle.clip_actions``: (acceleration [m/s²], steering [rad]), all (B, N)."""
    steering = torch.where(crashed, torch.zeros_like(steering), steering)
    acceleration = torch.where(crashed, -1.0 * speed, acceleration)
    acceleration = torch.where(
        speed > max_speed,
        torch.minimum(acceleration, 1.0 * (max_speed - speed)),
        torch.where(speed < min_speed, torch.maximum(acceleration, 1.0 * (min_speed - speed)), acceleration),
    )
    return acceleration, steering


def bicycle_step(
    state: BatchState,
    acceleration: torch.Tensor,
    steering: torch.Tensor,
    dt: float,
    ego_speed_range: tuple[float, float] = (MIN_SPEED, MAX_SPEED),
) -> BatchState:
    """Integrate every vehicle over ``dt`` [s] given its commands (B, N).

    Absent slots have zero speed and zero acceleration (IDM gives 0 to a non-existing vehicle), so
    they stay where they are without masking.

    The ego's speed limits may differ (``AccelVehicle``: [0, 40] m/s, its speed floored at the minimum
    after the step); traffic uses ``Vehicle``'s.
    """
    s = state
    ego_min, ego_max = ego_speed_range
    min_speed = torch.full_like(s.speed[:1], MIN_SPEED)  # (1, N) [m/s]
    max_speed = torch.full_like(s.speed[:1], MAX_SPEED)
    min_speed[:, 0], max_speed[:, 0] = ego_min, ego_max
    acceleration, steering = clip_actions(s.speed, s.crashed, acceleration, steering, min_speed, max_speed)
    beta = torch.atan(1 / 2 * torch.tan(steering))  # (B, N) [rad] slip angle
    direction = s.heading + beta  # (B, N) [rad]
    x = s.x + s.speed * torch.cos(direction) * dt  # (B, N) [m]
    y = s.y + s.speed * torch.sin(direction) * dt
    x = torch.where(s.has_impact, x + s.impact[..., 0], x)
    y = torch.where(s.has_impact, y + s.impact[..., 1], y)
    crashed = s.crashed | s.has_impact
    heading = s.heading + s.speed * torch.sin(beta) / (LENGTH / 2) * dt  # (B, N) [rad]
    speed = s.speed + acceleration * dt  # (B, N) [m/s]
    if ego_min != MIN_SPEED:  # AccelVehicle.step floors its speed
        speed = torch.cat([speed[:, :1].clamp(min=ego_min), speed[:, 1:]], dim=1)
    lane = closest_lane(y, s.config.lanes_count)  # (B, N)
    return s.replace(
        x=x,
        y=y,
        heading=heading,
        speed=speed,
        lane=lane,
        target_lane=torch.where(s.controlled, s.target_lane, lane),  # a plain Vehicle has no target lane
        crashed=crashed,
        has_impact=torch.zeros_like(s.has_impact),
        impact=torch.zeros_like(s.impact),
    )
