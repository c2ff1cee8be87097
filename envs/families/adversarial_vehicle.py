"""Adversarial background vehicle: a faster car overtakes, cuts in and brake-checks the ego."""

from __future__ import annotations

from drivegpt_envs.families.base import EGO_X, FamilyHighwayEnv
from drivegpt_envs.families.spec import ParamSpec
from drivegpt_envs.families.vehicles import GapVehicle

START_BEHIND = 20.0  # [m] the adversary starts this far behind the ego, in the next lane


class AdversarialVehicleEnv(FamilyHighwayEnv):
    """Two lanes; the adversary passes the ego in the right lane, changes into the ego's lane
    ``cut_in_gap`` ahead of it and, ``brake_delay`` later, brakes at ``deceleration`` by ``speed_drop``."""

    FAMILY = "adversarial_vehicle"
    PARAMS = {
        "ego_speed": ParamSpec(20.0, 28.0, "m/s", "initial ego speed"),
        "speed_difference": ParamSpec(2.0, 8.0, "m/s", "adversary's speed minus the ego's"),
        "cut_in_gap": ParamSpec(3.0, 15.0, "m", "adversary ahead of the ego when it steers in"),
        "brake_delay": ParamSpec(0.0, 1.5, "s", "time from steering in to braking"),
        "deceleration": ParamSpec(4.0, 9.0, "m/s²", "adversary's brake-check deceleration"),
        "speed_drop": ParamSpec(10.0, 25.0, "m/s", "how much speed the brake-check sheds"),
    }

    def _create_vehicles(self) -> None:
        p = self.params
        ego = self._add_ego(lane=0, speed=p["ego_speed"])
        speed = self._cruise_speed(ego) + p["speed_difference"]  # [m/s]
        car = GapVehicle(
            self.road, self.road.network.get_lane(self._lane(1)).position(EGO_X - START_BEHIND, 0.0),
            speed, self._lane(1), script_lane=self._lane(0), brake_delay=p["brake_delay"],
            deceleration=p["deceleration"], brake_to_speed=max(0.0, speed - p["speed_drop"]),
        )
        car.watched, car.trigger_gap = ego, p["cut_in_gap"]
        self._add(car)
