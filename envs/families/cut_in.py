"""Cut-in: a slower car in the next lane cuts in right in front of the ego."""

from __future__ import annotations

from drivegpt_envs.families.base import EGO_X, FamilyHighwayEnv
from drivegpt_envs.families.spec import ParamSpec
from drivegpt_envs.families.vehicles import GapVehicle

LEAD_TIME = 4.0  # [s] time the ego needs to close up to the cut-in point at the initial speeds


class CutInEnv(FamilyHighwayEnv):
    """Three lanes; the ego drives in the middle lane and overtakes a slower car in the right lane,
    which changes into the ego's lane when it is only ``cut_in_gap`` ahead of the ego."""

    FAMILY = "cut_in"
    PARAMS = {
        "ego_speed": ParamSpec(20.0, 30.0, "m/s", "initial ego speed"),
        "speed_difference": ParamSpec(0.0, 8.0, "m/s", "ego speed minus the cutting car's, at the cut-in"),
        "cut_in_gap": ParamSpec(8.0, 35.0, "m", "cutting car ahead of the ego when it steers in"),
    }

    @classmethod
    def default_config(cls) -> dict:
        config = super().default_config()
        config.update({"lanes_count": 3})
        return config

    def _create_vehicles(self) -> None:
        p = self.params
        ego = self._add_ego(lane=1, speed=p["ego_speed"])
        # [m/s] until the cut-in: 2 m/s slower than the ego cruise, so the ego overtakes it
        speed = self._cruise_speed(ego) - p["speed_difference"] - 2.0
        x = EGO_X + p["cut_in_gap"] + (p["speed_difference"] + 2.0) * LEAD_TIME  # [m]
        car = GapVehicle(
            self.road, self.road.network.get_lane(self._lane(2)).position(x, 0.0), speed,
            self._lane(2), script_lane=self._lane(1),
        )
        car.watched, car.trigger_gap, car.relative_speed = ego, p["cut_in_gap"], -p["speed_difference"]
        self._add(car)
        self._add_traffic(0, EGO_X - 60.0, x + 250.0, speed=p["ego_speed"] - 2.0, spacing=40.0)
