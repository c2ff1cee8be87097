"""The Intelligent Driver Model of highway-env's ``IDMVehicle`` (``acceleration``, ``desired_gap``).

Owns ``Kin`` (what IDM needs to know about a set of vehicles), ``KinTable`` (all vehicles of a batch,
addressed by flat index b * N + slot), ``IdmParams`` and the batched IDM acceleration. As in
highway-env, the model parameters are those of the vehicle *doing the reasoning* (``self`` in
``IDMVehicle.acceleration``), which may differ from the vehicle whose acceleration is predicted
(MOBIL predicts its followers' accelerations with its own parameters).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from drivegpt.sim.batched.config import SPEED_LIMIT
from drivegpt.sim.batched.road import not_zero
from drivegpt.sim.batched.state import BatchState, Behavior


@dataclass(frozen=True)
class Kin:
    """Kinematics of a set of vehicles, all of one shape S."""

    exists: torch.Tensor  # (S) bool: False stands for highway-env's ``None`` vehicle
    x: torch.Tensor  # (S) [m]
    speed: torch.Tensor  # (S) [m/s]
    cos_h: torch.Tensor  # (S) []
    sin_h: torch.Tensor  # (S) []
    target_speed: torch.Tensor  # (S) [m/s]

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> Kin:
        return Kin(
            *(fn(t) for t in (self.exists, self.x, self.speed, self.cos_h, self.sin_h, self.target_speed))
        )


class KinTable:
    """Every vehicle of a batch as flat (B * N,) columns, for gathers by flat index b * N + slot."""

    def __init__(self, s: BatchState) -> None:
        cos_h, sin_h = torch.cos(s.heading), torch.sin(s.heading)  # (B, N)
        self.all = Kin(s.present, s.x, s.speed, cos_h, sin_h, s.target_speed).map(lambda t: t.reshape(-1))

    def at(self, index: torch.Tensor) -> Kin:
        """The vehicles at flat indices ``index`` (any shape; ``NONE`` gives a non-existing vehicle)."""
        flat = index.clamp(min=0).reshape(-1)
        kin = self.all.map(lambda t: t.index_select(0, flat).view(index.shape))
        return Kin(kin.exists & (index >= 0), kin.x, kin.speed, kin.cos_h, kin.sin_h, kin.target_speed)


@dataclass(frozen=True)
class IdmParams:
    """The reasoning vehicle's IDM parameters, broadcastable to the vehicles it reasons about."""

    comfort_acc_max: torch.Tensor  # [m/s²]
    comfort_acc_min: torch.Tensor  # [m/s²]
    distance_wanted: torch.Tensor  # [m]
    time_wanted: torch.Tensor  # [s]
    delta: torch.Tensor  # []

    @staticmethod
    def of(behavior: Behavior, index: torch.Tensor | None = None) -> IdmParams:
        """Parameters of all vehicles, flattened (B * N,), or of the flat indices ``index``."""
        b = behavior
        columns = (b.comfort_acc_max, b.comfort_acc_min, b.distance_wanted, b.time_wanted, b.delta)
        if index is None:
            return IdmParams(*(t.reshape(-1) for t in columns))
        return IdmParams(*(t.reshape(-1).index_select(0, index) for t in columns))

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> IdmParams:
        return IdmParams(
            *(
                fn(t)
                for t in (
                    self.comfort_acc_max,
                    self.comfort_acc_min,
                    self.distance_wanted,
                    self.time_wanted,
                    self.delta,
                )
            )
        )


def desired_gap(ego: Kin, front: Kin, p: IdmParams) -> torch.Tensor:
    """``IDMVehicle.desired_gap`` with projected velocities [m]."""
    ab = -p.comfort_acc_max * p.comfort_acc_min  # [m²/s⁴]
    dvx = ego.speed * ego.cos_h - front.speed * front.cos_h  # [m/s]
    dvy = ego.speed * ego.sin_h - front.speed * front.sin_h
    dv = dvx * ego.cos_h + dvy * ego.sin_h  # [m/s] closing speed along the ego heading
    return p.distance_wanted + ego.speed * p.time_wanted + ego.speed * dv / (2 * torch.sqrt(ab))


def free_road(ego: Kin, p: IdmParams) -> torch.Tensor:
    """The free-road term ``COMFORT_ACC_MAX * (1 - (v / v0) ** delta)`` of ``acceleration`` [m/s²].

    ``(v / v0) ** delta`` is evaluated as exp(delta * log(v / v0)): equal to within a few ulps, and
    (unlike torch.pow with a tensor exponent on CPU) bitwise independent of the batch size.
    """
    target = not_zero(ego.target_speed.clamp(0, SPEED_LIMIT)).abs()  # [m/s] lane speed limit applied
    ratio = ego.speed.clamp(min=0) / target  # []
    return p.comfort_acc_max * (1 - torch.exp(p.delta * torch.log(ratio)))


def acceleration(ego: Kin, front: Kin, p: IdmParams, free: torch.Tensor | None = None) -> torch.Tensor:
    """``IDMVehicle.acceleration(ego_vehicle=ego, front_vehicle=front)`` [m/s²]; 0 where no ego.

    ``free`` may pass ``free_road(ego, p)`` when it was already computed for the same ego and params.
    """
    free = free_road(ego, p) if free is None else free
    gap = front.x - ego.x  # [m] lane_distance_to (straight lanes)
    interaction = p.comfort_acc_max * (desired_gap(ego, front, p) / not_zero(gap)) ** 2  # [m/s²]
    acc = torch.where(front.exists, free - interaction, free)
    return torch.where(ego.exists, acc, torch.zeros_like(acc))
