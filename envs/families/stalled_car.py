"""Stalled car: a car stands still in the ego's lane, hidden behind a lead that changes lane away."""

from __future__ import annotations

from drivegpt_envs.families.base import EGO_X, FamilyHighwayEnv
from drivegpt_envs.families.spec import ParamSpec
from drivegpt_envs.families.vehicles import GapVehicle, stalled_vehicle


class StalledCarEnv(FamilyHighwayEnv):
    """Two lanes; the ego follows a lead in the left lane toward a stalled car. The lead swerves to the
    right lane ``reveal_distance`` before the stalled car, where light traffic drives."""

    FAMILY = "stalled_car"
    PARAMS = {
        "ego_speed": ParamSpec(20.0, 30.0, "m/s", "speed of the ego and its lead"),
        "lead_gap": ParamSpec(15.0, 40.0, "m", "initial distance ego → lead, centre to centre"),
        "stall_distance": ParamSpec(120.0, 250.0, "m", "initial distance ego → stalled car"),
        "reveal_distance": ParamSpec(20.0, 80.0, "m", "lead's distance to the stalled car when it swerves"),
    }

    def _create_vehicles(self) -> None:
        p = self.params
        self._add_ego(lane=0, speed=p["ego_speed"])
        stall_x = EGO_X + p["stall_distance"]  # [m]
        stalled = self._add(stalled_vehicle(self.road, self._lane(0), stall_x))
        lead_x = EGO_X + min(p["lead_gap"], p["stall_distance"] - p["reveal_distance"] - 10.0)
        lead = GapVehicle(
            self.road, self.road.network.get_lane(self._lane(0)).position(lead_x, 0.0), p["ego_speed"],
            self._lane(0), script_lane=self._lane(1),
        )
        lead.watched, lead.trigger_gap, lead.blind = stalled, -p["reveal_distance"], True
        self._add(lead)
        self._add_traffic(1, EGO_X - 60.0, stall_x + 100.0, speed=p["ego_speed"] - 3.0, spacing=45.0)
