"""Aggressive on-ramp merge: a car on the ramp forces its way into the ego's lane."""

from __future__ import annotations

from highway_env.vehicle.behavior import IDMVehicle

from drivegpt_envs.families.base import family_config
from drivegpt_envs.families.spec import FamilyEnv, ParamSpec
from drivegpt_envs.families.vehicles import ScriptedVehicle
from drivegpt_envs.merge import DriveMergeEnv

MERGE_X = 230.0  # [m] where the acceleration lane starts (highway-env's merge road)
ARRIVAL_TIME = 6.0  # [s] when both cars would reach MERGE_X at their initial speeds


class ForcingMerger(ScriptedVehicle):
    """Changes to the right highway lane as soon as it is on the acceleration lane, without yielding."""

    def trigger(self) -> bool:
        return self.lane_index[:2] == ("b", "c")


class AggressiveMergeEnv(FamilyEnv, DriveMergeEnv):
    """highway-env's two-lane merge road; the ego drives in the right lane, timed to meet the merger
    at the start of the acceleration lane with the merger ``arrival_offset`` ahead; the left lane
    carries light traffic."""

    FAMILY = "aggressive_merge"
    PARAMS = {
        "ego_speed": ParamSpec(20.0, 30.0, "m/s", "initial ego speed"),
        "merger_speed": ParamSpec(15.0, 30.0, "m/s", "the merging car's speed"),
        "arrival_offset": ParamSpec(-15.0, 20.0, "m", "merger ahead of the ego when it reaches the merge"),
    }

    @classmethod
    def default_config(cls) -> dict:
        config = super().default_config()
        config.update(family_config(duration=20, lanes=2))
        return config

    def _make_road(self) -> None:
        super()._make_road()
        for lane in self.road.network.lanes_list():
            lane.speed_limit = 30.0  # [m/s] (highway-env's default 20 m/s would slow the merger down)

    def _make_vehicles(self) -> None:
        p, road = self.params, self.road
        ego_x = MERGE_X - p["arrival_offset"] - p["ego_speed"] * ARRIVAL_TIME  # [m]
        ego = self.action_type.vehicle_class(
            road, road.network.get_lane(("a", "b", 1)).position(ego_x, 0.0), 0.0, p["ego_speed"]
        )
        road.vehicles.append(ego)
        self.vehicle = ego
        merger_x = MERGE_X - p["merger_speed"] * ARRIVAL_TIME  # [m]
        merger = ForcingMerger(
            road, road.network.get_lane(("j", "k", 0)).position(merger_x, 0.0), p["merger_speed"],
            ("j", "k", 0), script_lane=("b", "c", 1),
        )
        road.vehicles.append(merger)
        x = ego_x - 40.0 + self.np_random.uniform(0.0, 30.0)  # [m] left-lane traffic
        while x < MERGE_X + 150.0:
            v = p["ego_speed"] - 2.0 + self.np_random.uniform(-1.0, 1.0)  # [m/s]
            position = road.network.get_lane(("a", "b", 0)).position(x, 0.0)
            road.vehicles.append(IDMVehicle(road, position, 0.0, v, target_speed=v, enable_lane_change=False))
            x += 40.0 * self.np_random.uniform(0.7, 1.3)

    def _is_terminated(self) -> bool:
        return bool(super()._is_terminated() or not self.vehicle.on_road)
