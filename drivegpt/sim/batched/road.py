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
    return (
        (lateral.abs() <= LANE_WIDTH / 2 + margin)
        & (x >= -LANE_VEHICLE_LENGTH)
        & (x < ROAD_LENGTH + LANE_VEHICLE_LENGTH)
    )


def reachable(x: torch.Tensor, y: torch.Tensor, lane: torch.Tensor) -> torch.Tensor:
    """``AbstractLane.is_reachable_from``: lateral offset within two lane widths, x on the lane."""
    lateral = y - lane.to(y.dtype) * LANE_WIDTH
    return (lateral.abs() <= 2 * LANE_WIDTH) & (x >= 0) & (x < ROAD_LENGTH + LANE_VEHICLE_LENGTH)


@dataclass(frozen=True)
class Neighbours:
    """Per-lane order of the vehicles of a batch, queried for front and rear vehicles.

    Queries take vehicles as flat indices b * N + slot and return flat indices (``NONE``: no vehicle).
    """

    count: torch.Tensor  # (B * K * N,) int64 members of lane k at sorted positions <= p
    member: torch.Tensor  # (B * K * N,) int64 1 if the vehicle at sorted position p is on lane k
    table: torch.Tensor  # (B * K * (N + 3),) int64 [rank + 1] -> sorted position of that member, else N
    slot_at: torch.Tensor  # (B * (N + 1),) int64 flat index of the vehicle at sorted position p; N -> NONE
    position: torch.Tensor  # (B * N,) int64 sorted position of each vehicle
    lanes: int
    slots: int

    def _lookup(
        self, rows: torch.Tensor, lane: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n, k = self.slots, self.lanes
        b = torch.div(rows, n, rounding_mode="floor")  # (M,) episode of each query
        lane_row = b * k + lane.clamp(0, k - 1)  # (M,) row of (episode, lane)
        at = lane_row * n + self.position.take(rows)  # (M,) index into count / member
        return b, lane_row * (n + 3), at

    def front(self, rows: torch.Tensor, lane: torch.Tensor) -> torch.Tensor:
        """Nearest other vehicle with x >= own x on lane ``lane`` (M,) of vehicles ``rows`` (M,)."""
        b, table_row, at = self._lookup(rows, lane)
        sorted_pos = self.table.take(table_row + self.count.take(at) + 1)  # next member after p, or N
        return self.slot_at.take(b * (self.slots + 1) + sorted_pos)

    def around(self, rows: torch.Tensor, lane: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(front, rear) of vehicles ``rows`` (M,) on lane ``lane`` (M,); rear: nearest with x < own x."""
        b, table_row, at = self._lookup(rows, lane)
        count = self.count.take(at)
        first = b * (self.slots + 1)
        front = self.slot_at.take(first + self.table.take(table_row + count + 1))  # next member after p
        rear = self.slot_at.take(first + self.table.take(table_row + count - self.member.take(at)))
        return front, rear


def neighbours(x: torch.Tensor, y: torch.Tensor, present: torch.Tensor, lanes: int) -> Neighbours:
    """Per-lane front/rear vehicle search of ``Road.neighbour_vehicles``, built once per sub-step.

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
    count = member.cumsum(2)  # (B, K, N)
    pos = torch.arange(n, device=dev).expand(b, lanes, n)
    table = torch.full((b, lanes, n + 3), n, dtype=torch.long, device=dev)
    table.scatter_(2, torch.where(member, count, n + 2), pos)
    slot_at = order + (torch.arange(b, device=dev) * n).unsqueeze(1)  # (B, N) flat index at each position
    slot_at = torch.cat([slot_at, torch.full_like(slot_at[:, :1], NONE)], dim=1)  # (B, N + 1)
    position = torch.empty_like(order).scatter_(1, order, torch.arange(n, device=dev).expand(b, n))
    return Neighbours(
        count=count.reshape(-1),
        member=member.long().reshape(-1),
        table=table.reshape(-1),
        slot_at=slot_at.reshape(-1),
        position=position.reshape(-1),
        lanes=lanes,
        slots=n,
    )
