"""Low-level controllers of highway-env's ``ControlledVehicle``: lane-following steering and speed.

Owns ``steering_control`` (lateral position -> lateral speed -> heading -> heading rate -> steering
cascade) and ``speed_control`` (proportional), for any tensor shape.
"""

from __future__ import annotations

import math

import torch

from drivegpt.sim.batched.config import (
    KP_A,
    KP_HEADING,
    KP_LATERAL,
    LANE_WIDTH,
    LENGTH,
    MAX_STEERING_ANGLE,
)
from drivegpt.sim.batched.road import not_zero, wrap_to_pi


def steering_control(
    y: torch.Tensor, heading: torch.Tensor, speed: torch.Tensor, target_lane: torch.Tensor
) -> torch.Tensor:
    """``ControlledVehicle.steering_control`` towards the centre of ``target_lane`` [rad].

    Straight lanes have heading 0 everywhere, so the pursuit point's lane heading is 0.
    """
    lateral = y - target_lane.to(y.dtype) * LANE_WIDTH  # [m] lane_coords[1]
    lateral_speed_command = -KP_LATERAL * lateral  # [m/s]
    safe_speed = not_zero(speed)  # [m/s]
    heading_command = torch.asin((lateral_speed_command / safe_speed).clamp(-1, 1))  # [rad]
    heading_ref = heading_command.clamp(-math.pi / 4, math.pi / 4)  # [rad]
    heading_rate_command = KP_HEADING * wrap_to_pi(heading_ref - heading)  # [rad/s]
    slip_angle = torch.asin((LENGTH / 2 / safe_speed * heading_rate_command).clamp(-1, 1))  # [rad]
    steering = torch.atan(2 * torch.tan(slip_angle))  # [rad]
    return steering.clamp(-MAX_STEERING_ANGLE, MAX_STEERING_ANGLE)


def speed_control(speed: torch.Tensor, target_speed: torch.Tensor) -> torch.Tensor:
    """``ControlledVehicle.speed_control``: proportional acceleration command [m/s²]."""
    return KP_A * (target_speed - speed)
