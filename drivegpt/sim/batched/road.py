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


def closest_lane(y: torch.Tensor, lanes: int) -> torch.Tensor:
    """``RoadNetwork.get_closest_lane_index``: the lane whose centre is nearest to y (int64 like y).

    highway-env adds the distance beyond the lane ends and the heading difference to every lane's
    lateral distance; on this road both are the same for all lanes, so only the lateral distance
    decides. A tie (y exactly half-way between two centres) goes to the lower index, like ``argmin``.
    """
    return torch.ceil(y / LANE_WIDTH - 0.5).clamp(0, lanes - 1).long()


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
    two lanes belongs to both). Vehicles are sorted by x once; in that order a cumulative count of
    each lane's members gives every position the rank of the next member ahead and of the last
    member behind, and a rank -> position table (one scatter) turns ranks into vehicles.
    Exactly equal x coordinates (a measure-zero event) are ordered by slot instead of by
    highway-env's list-order rule.
    """
    b, n = x.shape
    dev = x.device
    key = torch.where(present, x, torch.full_like(x, math.inf))  # (B, N) [m] absent slots last
    order = torch.argsort(key, dim=1, stable=True)  # (B, N) slot at each sorted position
    xs, ys, ps = x.gather(1, order), y.gather(1, order), present.gather(1, order)  # (B, N) sorted
    centres = lane_centres(lanes, y).view(1, lanes, 1)  # (1, K, 1) [m]
    on_road = ps & (xs >= -LANE_VEHICLE_LENGTH) & (xs < ROAD_LENGTH + LANE_VEHICLE_LENGTH)
    member = ((ys.unsqueeze(1) - centres).abs() <= LANE_WIDTH / 2 + NEIGHBOUR_MARGIN) & on_road.unsqueeze(1)
    count = member.cumsum(2)  # (B, K, N) members of lane k at sorted positions <= p
    # table[rank + 1] = sorted position of the lane's member of that rank; table[0] and unused -> n
    pos = torch.arange(n, device=dev).expand(b, lanes, n)
    table = torch.full((b, lanes, n + 3), n, dtype=torch.long, device=dev)
    table.scatter_(2, torch.where(member, count, n + 2), pos)
    front_pos = table.gather(2, count + 1)  # (B, K, N) next member strictly after p, or n
    rear_pos = table.gather(2, count - member.long())  # last member strictly before p, or n
    flat = order + (torch.arange(b, device=dev) * n).unsqueeze(1)  # (B, N) flat index at each position
    flat = torch.cat([flat, torch.full_like(flat[:, :1], NONE)], dim=1).unsqueeze(1).expand(b, lanes, n + 1)
    inverse = torch.empty_like(order).scatter_(1, order, torch.arange(n, device=dev).expand(b, n))
    inverse = inverse.unsqueeze(1).expand(b, lanes, n)  # (B, K, N) sorted position of each slot

    def to_flat(p: torch.Tensor) -> torch.Tensor:  # sorted positions -> flat indices, in slot order
        return flat.gather(2, p).gather(2, inverse).transpose(1, 2).reshape(b * n, lanes)

    return Neighbours(front=to_flat(front_pos), rear=to_flat(rear_pos))

def take(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """values (B, N) gathered at slot indices index (B, ...) (``NONE`` reads slot 0; mask it yourself)."""
    flat = index.clamp(min=0).reshape(index.shape[0], -1)
    return values.gather(1, flat).reshape(index.shape)
