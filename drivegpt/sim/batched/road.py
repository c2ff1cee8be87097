"""Road geometry of the straight multi-lane highway, and the per-lane neighbour search.

Owns the lane helpers of highway-env's ``StraightLane`` / ``RoadNetwork`` specialised to the road of
``RoadNetwork.straight_road_network`` (lane k runs along +x, centred on y = k * lane width, from x = 0
to the road length): closest lane, on-lane and reachability tests, and ``neighbours``, which finds
each vehicle's front and rear vehicle in every lane with one sort and a cumulative min/max instead of
highway-env's loop over all vehicles (``Road.neighbour_vehicles``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from drivegpt.sim.batched.config import LANE_VEHICLE_LENGTH, LANE_WIDTH, NEIGHBOUR_MARGIN, ROAD_LENGTH

NONE = -1  # slot index meaning "no vehicle"


def wrap_to_pi(angle: torch.Tensor) -> torch.Tensor:
    """``utils.wrap_to_pi``: angle mapped to [-π, π) [rad]."""
    return torch.remainder(angle + math.pi, 2 * math.pi) - math.pi


def not_zero(x: torch.Tensor, eps: float = 1e-2) -> torch.Tensor:
    """``utils.not_zero``: x, or ±eps when |x| <= eps (the sign of x, +eps at 0)."""
    return torch.where(x.abs() > eps, x, torch.where(x >= 0, eps, -eps).to(x.dtype))


def lane_centres(lanes: int, like: torch.Tensor) -> torch.Tensor:
    """(K,) [m] lateral position of each lane centre."""
    return torch.arange(lanes, device=like.device, dtype=like.dtype) * LANE_WIDTH


def closest_lane(x: torch.Tensor, y: torch.Tensor, heading: torch.Tensor, lanes: int) -> torch.Tensor:
    """``RoadNetwork.get_closest_lane_index`` (position and heading distance), int64 like x."""
    lateral = (y.unsqueeze(-1) - lane_centres(lanes, y)).abs()  # (..., K) [m]
    outside = (x - ROAD_LENGTH).clamp(min=0) + (-x).clamp(min=0)  # (...) [m]
    angle = wrap_to_pi(heading).abs()  # (...) [rad] (lanes have heading 0)
    distance = lateral + outside.unsqueeze(-1) + angle.unsqueeze(-1)  # (..., K)
    return distance.argmin(dim=-1)


def on_lane(x: torch.Tensor, y: torch.Tensor, lane: torch.Tensor, margin: float = 0.0) -> torch.Tensor:
    """``AbstractLane.on_lane`` of the given lane index (bool, like x)."""
    lateral = y - lane.to(y.dtype) * LANE_WIDTH
    return (lateral.abs() <= LANE_WIDTH / 2 + margin) & (x >= -LANE_VEHICLE_LENGTH) & (
        x < ROAD_LENGTH + LANE_VEHICLE_LENGTH
    )


def reachable(x: torch.Tensor, y: torch.Tensor, lane: torch.Tensor) -> torch.Tensor:
    """``AbstractLane.is_reachable_from``: lateral offset within two lane widths, x on the lane."""
    lateral = y - lane.to(y.dtype) * LANE_WIDTH
    return (lateral.abs() <= 2 * LANE_WIDTH) & (x >= 0) & (x < ROAD_LENGTH + LANE_VEHICLE_LENGTH)


@dataclass(frozen=True)
class Neighbours:
    """Front and rear vehicle of every vehicle in every lane, as flat indices b * N + slot (``NONE``: none)."""

    front: torch.Tensor  # (B * N, K) int64: nearest vehicle with x >= own x on lane k
    rear: torch.Tensor  # (B * N, K) int64: nearest vehicle with x < own x on lane k

    def in_lane(self, lane: torch.Tensor, rows: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Front and rear (M,) of vehicles ``rows`` (M,) flat indices (all if None) on lanes ``lane`` (M,)."""
        k = lane.clamp(0, self.front.shape[-1] - 1).unsqueeze(-1)  # (M, 1)
        front = self.front if rows is None else self.front.index_select(0, rows)
        rear = self.rear if rows is None else self.rear.index_select(0, rows)
        return front.gather(1, k).squeeze(1), rear.gather(1, k).squeeze(1)


def neighbours(x: torch.Tensor, y: torch.Tensor, present: torch.Tensor, lanes: int) -> Neighbours:
    """Per-lane front/rear vehicle search of ``Road.neighbour_vehicles`` for all vehicles at once.

    A vehicle belongs to lane k when it lies on it with a 1 m lateral margin (so a vehicle between
    two lanes belongs to both). Vehicles are sorted by x once; along that order a reverse cumulative
    min of member positions gives the next member ahead, a cumulative max the previous one behind.
    Exactly equal x coordinates (a measure-zero event) are ordered by slot instead of by
    highway-env's list-order rule.
    """
    b, n = x.shape
    member = on_lane(
        x.unsqueeze(-1), y.unsqueeze(-1), torch.arange(lanes, device=x.device), NEIGHBOUR_MARGIN
    ) & present.unsqueeze(-1)  # (B, N, K)
    key = torch.where(present, x, torch.full_like(x, math.inf))  # (B, N) [m] absent slots last
    order = torch.argsort(key, dim=1, stable=True)  # (B, N) slot at each sorted position
    member_sorted = member.gather(1, order.unsqueeze(-1).expand(b, n, lanes))  # (B, N, K)
    pos = torch.arange(n, device=x.device).view(1, n, 1).expand(b, n, lanes)  # (B, N, K)
    big = torch.full_like(pos, n)
    after = torch.where(member_sorted, pos, big).flip(1).cummin(1).values.flip(1)  # (B, N, K) first member >= p
    before = torch.where(member_sorted, pos, torch.full_like(pos, -1)).cummax(1).values  # last member <= p
    front_pos = torch.cat([after[:, 1:], big[:, :1]], dim=1)  # (B, N, K) strictly after p
    rear_pos = torch.cat([torch.full_like(pos[:, :1], -1), before[:, :-1]], dim=1)  # strictly before p
    order_k = order.unsqueeze(-1).expand(b, n, lanes)

    def to_slot(p: torch.Tensor) -> torch.Tensor:
        valid = (p >= 0) & (p < n)
        return torch.where(valid, order_k.gather(1, p.clamp(0, n - 1)), torch.full_like(p, NONE))

    inverse = torch.empty_like(order).scatter_(1, order, torch.arange(n, device=x.device).expand(b, n))
    inverse_k = inverse.unsqueeze(-1).expand(b, n, lanes)  # sorted position of each slot
    base = (torch.arange(b, device=x.device) * n).view(b, 1, 1)  # flat index of slot 0 of each episode

    def to_flat(p: torch.Tensor) -> torch.Tensor:  # sorted positions -> flat indices, in slot order
        slot = to_slot(p).gather(1, inverse_k)  # (B, N, K)
        return torch.where(slot >= 0, slot + base, slot).view(b * n, lanes)

    return Neighbours(front=to_flat(front_pos), rear=to_flat(rear_pos))



def take(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """values (B, N) gathered at slot indices index (B, ...) (``NONE`` reads slot 0; mask it yourself)."""
    flat = index.clamp(min=0).reshape(index.shape[0], -1)
    return values.gather(1, flat).reshape(index.shape)
