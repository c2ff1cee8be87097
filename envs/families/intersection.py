"""Intersection: the ego crosses a priority road on which a car arrives at the same moment."""

from __future__ import annotations

import numpy as np
from highway_env.envs.intersection_env import IntersectionEnv
from highway_env.road.lane import AbstractLane
from highway_env.vehicle.kinematics import Vehicle

from drivegpt_envs.families.base import family_config
from drivegpt_envs.families.spec import FamilyEnv, ParamSpec
from drivegpt_envs.families.vehicles import ForwardIDMVehicle

#: where the ego's path (north, x = w/2) crosses the near lane of the priority road (east, y = w/2) [m]
CONFLICT = np.full(2, AbstractLane.DEFAULT_WIDTH / 2)
TRAFFIC = 3  #: background cars placed at reset (random entries and routes, seeded)
#: the Kinematics observation's ranges: highway-env's defaults except ``y``, which it scales by the road's
#: lateral extent (±4 m on this one-lane road) and clips. The ego approaches along y, so the clip hid its
#: distance to the crossing (and every crossing car's) until the last 4 m; ±50 m covers the approach.
FEATURES_RANGE = {
    "x": [-5.0 * Vehicle.MAX_SPEED, 5.0 * Vehicle.MAX_SPEED],  # [m]
    "y": [-50.0, 50.0],  # [m]
    "vx": [-2.0 * Vehicle.MAX_SPEED, 2.0 * Vehicle.MAX_SPEED],  # [m/s]
    "vy": [-2.0 * Vehicle.MAX_SPEED, 2.0 * Vehicle.MAX_SPEED],  # [m/s]
}


class IntersectionFamilyEnv(FamilyEnv, IntersectionEnv):
    """highway-env's four-way intersection (speed limit 10 m/s): the horizontal road has the right of
    way. The ego comes from the south and drives straight on to the north; a car on the priority road
    from the west drives straight through at ``crossing_speed`` without slowing, timed to reach the
    crossing point ``arrival_offset`` after the ego would (both holding their speeds). A few seeded
    background cars come from random entries; highway-env's regulated road makes cars without the
    right of way yield, except the ego, which decides for itself."""

    FAMILY = "intersection"
    PARAMS = {
        "ego_speed": ParamSpec(7.0, 10.0, "m/s", "initial ego speed"),
        "ego_distance": ParamSpec(20.0, 45.0, "m", "initial distance ego → crossing point, along its lane"),
        "crossing_speed": ParamSpec(6.0, 12.0, "m/s", "speed of the crossing car (the limit is 10 m/s)"),
        "arrival_offset": ParamSpec(
            -2.0, 3.0, "s", "crossing car's arrival minus the ego's, both at constant speed"
        ),
    }

    @classmethod
    def default_config(cls) -> dict:
        config = super().default_config()
        config.update(family_config(duration=20, lanes=1))
        config.update(
            {
                "destination": "o2",
                "spawn_probability": 0.0,  # no cars added during the episode
                "other_vehicles_type": "drivegpt_envs.families.vehicles.ForwardIDMVehicle",
                "neighbour_vehicles_connected_lanes": True,
            }
        )
        return config

    def define_spaces(self) -> None:
        obs = self.config["observation"]  # also a policy's own observation config, passed at make
        if obs.get("type") == "Kinematics" and "features_range" not in obs:
            self.config["observation"] = {
                **obs,
                "features_range": {k: list(v) for k, v in FEATURES_RANGE.items()},
            }
        super().define_spaces()

    def _place(self, entry: int, exit_: int, distance: float, speed: float, vehicle_class: type) -> object:
        """A vehicle ``distance`` [m] before the crossing point on the route from entry ``entry`` straight
        to exit ``exit_`` (corners 0 south, 1 west, 2 north, 3 east), heading along its lane."""
        approach = (f"o{entry}", f"ir{entry}", 0)
        inside = (f"ir{entry}", f"il{exit_}", 0)
        lane = self.road.network.get_lane(inside)
        s = lane.local_coordinates(CONFLICT)[0] - distance  # [m] along the lane through the junction
        if s < 0.0:
            lane = self.road.network.get_lane(approach)
            s = max(lane.length + s, 0.0)
        vehicle = vehicle_class(self.road, lane.position(s, 0.0), lane.heading_at(s), speed)
        self.road.vehicles.append(vehicle)
        return vehicle

    def _make_vehicles(self, n_vehicles: int = 0) -> None:
        p = self.params
        ego = self._place(0, 2, p["ego_distance"], p["ego_speed"], self.action_type.vehicle_class)
        if hasattr(ego, "plan_route_to"):
            ego.plan_route_to(self.config["destination"])
        self.controlled_vehicles = [ego]
        arrival = max(p["ego_distance"] / p["ego_speed"] + p["arrival_offset"], 0.0)  # [s]
        crossing = self._place(1, 3, p["crossing_speed"] * arrival, p["crossing_speed"], ForwardIDMVehicle)
        crossing.target_speed = p["crossing_speed"]
        crossing.plan_route_to("o3")
        for _ in range(TRAFFIC):
            car = self._spawn_vehicle(float(self.np_random.uniform(0.0, 60.0)), spawn_probability=1.0)
            if (
                car is not None
                and min(np.linalg.norm(car.position - v.position) for v in (ego, crossing)) < 20
            ):
                self.road.vehicles.remove(car)
