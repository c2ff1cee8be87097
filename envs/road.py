"""``FastRoad``: highway-env's ``Road`` with a faster neighbour search that gives the same answers.

``Road.neighbour_vehicles`` (the nearest vehicle ahead and behind on a lane) is asked by every IDM car
several times a step, for its own lane and for each lane MOBIL weighs, and by the simulated human; it
loops in Python over every vehicle on the road and projects each onto the lane, and on a busy road
that loop is the largest share of the simulator's time. On a straight lane that runs along an axis
(every lane of the highway scenarios and of the straight-road families) the projection is the
position minus the lane's start, times ±1 or 0: one subtraction, which rounds the same however the
products are summed, so ``FastRoad`` runs the same loop over plain floats, gathered once per
simulation frame, and picks the vehicle the loop would pick, ties included. Any
other lane (the merge's sine lane, the junctions' arcs, searches across connected lanes) goes to
highway-env's own loop.

``FastRoadEnv`` is the mixin that puts a ``FastRoad`` under a highway-env env. ``tests/test_road.py``
checks the answers against highway-env's on every scenario and family; ``bench/env_speed.py``
measures the gain.
"""

from __future__ import annotations

from typing import Any

from highway_env.road.lane import AbstractLane, StraightLane
from highway_env.road.road import LaneIndex, Road
from highway_env.vehicle.objects import Landmark

#: [m] lateral margin of ``Road.neighbour_vehicles``' on-lane test (``on_lane(..., margin=1)``)
ON_LANE_MARGIN = 1.0


def _along_an_axis(lane: AbstractLane) -> bool:
    """Whether ``lane`` is a ``StraightLane`` (not a subclass: a ``SineLane`` curves) whose direction
    is ±x or ±y: each local coordinate is then ± one component of (position - start), rounded as
    highway-env's dot products round it."""
    if type(lane) is not StraightLane:
        return False
    dx, dy = lane.direction
    return (dy == 0.0 and abs(dx) == 1.0) or (dx == 0.0 and abs(dy) == 1.0)


class FastRoad(Road):
    """A ``Road`` with the same neighbour search, done over plain floats on lanes along an axis."""

    #: during ``act()``: (vehicle, x [m], y [m]) of every vehicle and object, in the road's order.
    #: Vehicles only decide in ``act()``; nothing moves until ``step()``, so one gather serves every
    #: search of the frame.
    _frame: list[tuple[Any, float, float]] | None = None

    @classmethod
    def of(cls, road: Road) -> FastRoad:
        """The same road (network, vehicles, objects, generator, settings) as a ``FastRoad``."""
        if isinstance(road, FastRoad):
            return road
        fast = cls(
            network=road.network,
            np_random=road.np_random,
            record_history=road.record_history,
            neighbour_vehicles_connected_lanes=road.neighbour_vehicles_connected_lanes,
        )
        fast.vehicles, fast.objects = road.vehicles, road.objects  # the same lists
        return fast

    def act(self) -> None:
        self._frame = self._positions()
        try:
            super().act()
        finally:
            self._frame = None

    def _positions(self) -> list[tuple[Any, float, float]]:
        return [
            (v, float(v.position[0]), float(v.position[1]))
            for v in self.vehicles + self.objects
            if not isinstance(v, Landmark)
        ]

    def neighbour_vehicles(self, vehicle: Any, lane_index: LaneIndex | None = None) -> tuple[Any, Any]:
        """The vehicle ahead of ``vehicle`` on ``lane_index`` (default: its own lane) and the one
        behind, or None, as ``Road.neighbour_vehicles`` finds them."""
        lane_index = lane_index or vehicle.lane_index
        if not lane_index:
            return None, None
        lane = self.network.get_lane(lane_index)
        if self.neighbour_vehicles_connected_lanes or not _along_an_axis(lane):
            return super().neighbour_vehicles(vehicle, lane_index)
        frame = self._frame if self._frame is not None else self._positions()
        (sx, sy), (ux, uy) = lane.start.tolist(), lane.direction.tolist()  # one of ux, uy is ±1, one 0
        half_width = lane.width / 2 + ON_LANE_MARGIN  # [m] AbstractLane.on_lane's lateral bound
        low, high = -lane.VEHICLE_LENGTH, lane.length + lane.VEHICLE_LENGTH  # [m] and its longitudinal
        s = lane.local_coordinates(vehicle.position)[0]  # [m]
        s_front = s_rear = front = rear = None
        for v, x, y in frame:  # the loop of Road.neighbour_vehicles, with exact products by ±1 and 0
            if v is vehicle:
                continue
            s_v = (x - sx) * ux + (y - sy) * uy  # [m] along the lane
            lateral = (x - sx) * -uy + (y - sy) * ux  # [m] across it (the lane's direction_lateral)
            if not (abs(lateral) <= half_width and low <= s_v < high):
                continue
            if s <= s_v and (s_front is None or s_v <= s_front):
                s_front, front = s_v, v
            if s_v < s and (s_rear is None or s_v > s_rear):
                s_rear, rear = s_v, v
        return front, rear


class FastRoadEnv:
    """Mixin placed before a highway-env env class: the road it builds is a ``FastRoad`` (highway-env
    names the builder ``_create_road`` on the highway, ``_make_road`` on the merge)."""

    road: Road

    def _create_road(self) -> None:
        super()._create_road()  # type: ignore[misc]
        self.road = FastRoad.of(self.road)

    def _make_road(self) -> None:
        super()._make_road()  # type: ignore[misc]
        # objects made there (the merge's obstacle) keep the stock road as their ``road``: it holds the
        # same network and lists, and the search never goes through it
        self.road = FastRoad.of(self.road)
