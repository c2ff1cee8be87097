"""Hard-braking lead: the car ahead brakes to a stop without warning."""

from __future__ import annotations

from drivegpt_envs.families.base import EGO_X, FamilyHighwayEnv
from drivegpt_envs.families.spec import ParamSpec
from drivegpt_envs.families.vehicles import TimedVehicle


class HardBrakingLeadEnv(FamilyHighwayEnv):
    """Two lanes; the ego follows a lead at the same speed in the left lane. At ``brake_time`` the lead
    brakes at ``deceleration`` to a standstill; the right lane carries light traffic."""

    FAMILY = "hard_braking_lead"
    PARAMS = {
        "ego_speed": ParamSpec(20.0, 30.0, "m/s", "speed of the ego and its lead"),
        "gap": ParamSpec(12.0, 40.0, "m", "initial distance ego → lead, centre to centre"),
        "brake_time": ParamSpec(1.0, 6.0, "s", "when the lead starts braking"),
        "deceleration": ParamSpec(3.0, 9.0, "m/s²", "the lead's braking deceleration"),
    }

    def _create_vehicles(self) -> None:
        p = self.params
        self._add_ego(lane=0, speed=p["ego_speed"])
        lead_x = EGO_X + p["gap"]  # [m]
        lead = TimedVehicle(
            self.road, self.road.network.get_lane(self._lane(0)).position(lead_x, 0.0), p["ego_speed"],
            self._lane(0), brake_delay=0.0, deceleration=p["deceleration"], brake_to_speed=0.0,
        )
        lead.trigger_time = p["brake_time"]
        self._add(lead)
        self._add_traffic(1, EGO_X - 80.0, lead_x + 300.0, speed=p["ego_speed"] - 2.0, spacing=35.0)
