"""The straight-road base of the highway families: a short multi-lane road, an ego, few scripted cars.

Families override ``default_config`` (lanes, duration) and ``_create_vehicles`` using the helpers
here; randomness (background traffic) comes only from ``self.np_random``, seeded by ``reset``.
"""

from __future__ import annotations

from typing import Any

from highway_env.envs.highway_env import HighwayEnv
from highway_env.road.road import LaneIndex, RoadNetwork
from highway_env.vehicle.behavior import IDMVehicle
from highway_env.vehicle.kinematics import Vehicle

from drivegpt_envs.common import DEFAULT_ACTION, action_config, kinematics_observation
from drivegpt_envs.families.spec import FamilyEnv
from drivegpt_envs.road import FastRoad

EGO_X = 50.0  # [m] ego start along the road


def family_config(duration: float, lanes: int, simulation_frequency: int = 10) -> dict[str, Any]:
    """Config entries every family shares: DriveGPT's observation, meta actions, a short episode."""
    return {
        "observation": kinematics_observation(),
        **action_config(DEFAULT_ACTION),
        "simulation_frequency": simulation_frequency,  # [Hz]
        "duration": duration,  # [s]
        "lanes_count": lanes,
        "vehicles_count": 0,  # families place their own cars
        "offroad_terminal": True,  # leaving the road is a failure
    }


class FamilyHighwayEnv(FamilyEnv, HighwayEnv):
    """Straight ``lanes_count``-lane road (lane 0 leftmost), speed limit 30 m/s."""

    @classmethod
    def default_config(cls) -> dict:
        config = super().default_config()
        config.update(family_config(duration=20, lanes=2))
        return config

    def _create_road(self) -> None:
        network = RoadNetwork.straight_road_network(self.config["lanes_count"], speed_limit=30.0)
        self.road = FastRoad(network=network, np_random=self.np_random, record_history=False)

    def _lane(self, lane: int) -> LaneIndex:
        return ("0", "1", int(lane))

    def _add_ego(self, lane: int, speed: float, x: float = EGO_X) -> Vehicle:
        """The controlled vehicle at ``x`` [m] in ``lane`` driving ``speed`` [m/s]."""
        position = self.road.network.get_lane(self._lane(lane)).position(x, 0.0)
        ego = self.action_type.vehicle_class(self.road, position, 0.0, speed)
        self.controlled_vehicles = [ego]
        self.road.vehicles.append(ego)
        return ego

    @staticmethod
    def _cruise_speed(ego: Vehicle) -> float:
        """Speed the ego will hold [m/s]: meta-action egos snap to their nearest target speed."""
        return float(getattr(ego, "target_speed", ego.speed))

    def _add(self, vehicle: Vehicle) -> Vehicle:
        self.road.vehicles.append(vehicle)
        return vehicle

    def _add_traffic(self, lane: int, x_from: float, x_to: float, speed: float, spacing: float) -> None:
        """IDM cars (no lane changes) in ``lane`` from ``x_from`` to ``x_to`` [m], ``spacing`` [m] apart
        on average (±30 % jitter) at ``speed`` [m/s] ± 1 m/s, drawn from the env's seeded generator."""
        x = x_from + self.np_random.uniform(0.0, spacing)
        while x < x_to:
            position = self.road.network.get_lane(self._lane(lane)).position(x, 0.0)
            v = speed + self.np_random.uniform(-1.0, 1.0)
            car = IDMVehicle(self.road, position, 0.0, v, target_speed=v, enable_lane_change=False)
            self.road.vehicles.append(car)
            x += spacing * self.np_random.uniform(0.7, 1.3)
