"""Road geometry between two vehicles: the bumper-to-bumper gap, closing speed, TTC and headway.

One definition for every part: the human driver's IDM, the safety driver's triggers, replay verdicts
and the corner-case metrics all measure the lead vehicle the same way.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np

TTC_VIOLATION = 0.95  #: [s] any step with a time-to-collision below this is a TTC violation


def bumper_gap(rear: Any, front: Any) -> float:
    """Distance along the lane from ``rear``'s front bumper to ``front``'s rear bumper [m]."""
    return float(rear.lane_distance_to(front) - (rear.LENGTH + front.LENGTH) / 2)


def closing_speed(rear: Any, front: Any) -> float:
    """``rear``'s speed minus ``front``'s, along ``rear``'s heading [m/s] (> 0: closing in)."""
    return float(np.dot(rear.velocity - front.velocity, rear.direction))


def lead_figures(env: gym.Env) -> tuple[float, float]:
    """(TTC [s], time headway [s]) to the lead vehicle in the ego's lane; inf when none/opening."""
    base = env.unwrapped
    ego = base.vehicle
    front, _ = base.road.neighbour_vehicles(ego, ego.lane_index)
    if front is None:
        return math.inf, math.inf
    gap = bumper_gap(ego, front)  # [m]
    closing = closing_speed(ego, front)  # [m/s]
    ttc = gap / closing if closing > 1e-6 else math.inf
    headway = gap / ego.speed if ego.speed > 0.1 else math.inf
    return max(ttc, 0.0), max(headway, 0.0)


def box_clearance(env: gym.Env) -> float:
    """Smallest clearance between the ego's box and any other vehicle's centre [m] (< 0: overlapping).

    Unlike :func:`bumper_gap` it looks at every vehicle, in every lane: the corner-case search uses it
    as a smooth "how close to a collision" signal.
    """
    base = env.unwrapped
    ego = base.vehicle
    others = np.asarray([v.position for v in base.road.vehicles if v is not ego]).reshape(-1, 2)
    d = np.abs(others - ego.position)  # (N, 2) |dx|, |dy| [m]
    gaps = np.maximum(d[:, 0] - ego.LENGTH, d[:, 1] - ego.WIDTH)  # (N,)
    return float(gaps.min()) if len(gaps) else math.inf
