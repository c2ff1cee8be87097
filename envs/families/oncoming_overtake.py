"""Oncoming overtake: behind a slow car on a two-way road, the passing lane carries oncoming traffic."""

from __future__ import annotations

import numpy as np
from highway_env.envs.two_way_env import TwoWayEnv
from highway_env.vehicle.behavior import IDMVehicle

from drivegpt_envs.families.base import EGO_X, FamilyHighwayEnv
from drivegpt_envs.families.spec import ParamSpec
from drivegpt_envs.families.vehicles import ScriptedVehicle
from drivegpt_envs.road import FastRoad

ROAD_LENGTH = 800.0  # [m]
ONCOMING_SPACING = 120.0  # [m] between oncoming cars, on average (±30 % jitter)


class OncomingOvertakeEnv(FamilyHighwayEnv):
    """highway-env's two-way road: the ego (right lane ``("a", "b", 1)``) follows a slow car; the left
    lane ``("a", "b", 0)`` is also the oncoming lane ``("b", "a", 0)``, where a stream of cars comes
    toward the ego, the first ``oncoming_distance`` ahead. Meta actions work unchanged (LANE_LEFT moves
    into the oncoming lane); rewards are the highway ones (speed, right lane, on road)."""

    FAMILY = "oncoming_overtake"
    PARAMS = {
        "ego_speed": ParamSpec(20.0, 30.0, "m/s", "initial ego speed"),
        "slow_speed": ParamSpec(8.0, 18.0, "m/s", "speed of the slow car ahead"),
        "slow_distance": ParamSpec(25.0, 70.0, "m", "initial distance ego → slow car, centre to centre"),
        "oncoming_distance": ParamSpec(120.0, 350.0, "m", "initial distance ego → first oncoming car"),
        "oncoming_speed": ParamSpec(15.0, 30.0, "m/s", "speed of the oncoming cars"),
    }

    @classmethod
    def default_config(cls) -> dict:
        config = super().default_config()
        config.update({"duration": 15})  # [s] the road is 800 m long
        return config

    def _create_road(self) -> None:
        TwoWayEnv._make_road(self, length=ROAD_LENGTH)  # type: ignore[arg-type]
        self.road = FastRoad.of(self.road)

    def _create_vehicles(self) -> None:
        p, network = self.params, self.road.network
        ego_lane, oncoming_lane = ("a", "b", 1), ("b", "a", 0)
        position = network.get_lane(ego_lane).position(EGO_X, 0.0)
        ego = self.action_type.vehicle_class(self.road, position, 0.0, p["ego_speed"])
        self.controlled_vehicles = [ego]
        self.road.vehicles.append(ego)
        position = network.get_lane(ego_lane).position(EGO_X + p["slow_distance"], 0.0)
        self._add(ScriptedVehicle(self.road, position, p["slow_speed"], ego_lane))
        x = EGO_X + p["oncoming_distance"]  # [m] along the ego's direction
        while x < ROAD_LENGTH - 10.0:
            lane = network.get_lane(oncoming_lane)
            s = ROAD_LENGTH - x  # [m] along the oncoming lane
            v = p["oncoming_speed"] + self.np_random.uniform(-1.0, 1.0)  # [m/s]
            car = IDMVehicle(self.road, lane.position(s, 0.0), np.pi, v, target_lane_index=oncoming_lane,
                             target_speed=v, enable_lane_change=False)
            self._add(car)
            x += ONCOMING_SPACING * self.np_random.uniform(0.7, 1.3)
