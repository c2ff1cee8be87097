"""Side-swipe: a car alongside the ego changes into its lane without looking."""

from __future__ import annotations

from drivegpt_envs.families.base import EGO_X, FamilyHighwayEnv
from drivegpt_envs.families.spec import ParamSpec
from drivegpt_envs.families.vehicles import TimedVehicle


class SideSwipeEnv(FamilyHighwayEnv):
    """Three lanes; the ego drives in the middle lane, a car in the left lane next to it. At
    ``swerve_time`` that car changes into the middle lane; the right lane carries light traffic."""

    FAMILY = "side_swipe"
    PARAMS = {
        "ego_speed": ParamSpec(20.0, 28.0, "m/s", "initial ego speed"),
        "offset": ParamSpec(-10.0, 12.0, "m", "side car's position ahead of the ego when it swerves"),
        "speed_difference": ParamSpec(-3.0, 3.0, "m/s", "side car's speed minus the ego's cruise speed"),
        "swerve_time": ParamSpec(2.0, 6.0, "s", "when the side car starts its lane change"),
    }

    @classmethod
    def default_config(cls) -> dict:
        config = super().default_config()
        config.update({"lanes_count": 3})
        return config

    def _create_vehicles(self) -> None:
        p = self.params
        ego = self._add_ego(lane=1, speed=p["ego_speed"])
        x = EGO_X + p["offset"] - p["speed_difference"] * p["swerve_time"]  # [m] offset at the swerve
        car = TimedVehicle(
            self.road, self.road.network.get_lane(self._lane(0)).position(x, 0.0),
            self._cruise_speed(ego) + p["speed_difference"], self._lane(0), script_lane=self._lane(1),
        )
        car.trigger_time = p["swerve_time"]
        self._add(car)
        self._add_traffic(2, EGO_X - 60.0, EGO_X + 400.0, speed=p["ego_speed"] - 2.0, spacing=40.0)
