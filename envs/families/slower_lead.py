"""Slower lead: the ego closes in on a much slower car in its lane."""

from __future__ import annotations

from drivegpt_envs.families.base import EGO_X, FamilyHighwayEnv
from drivegpt_envs.families.spec import ParamSpec
from drivegpt_envs.families.vehicles import ScriptedVehicle


class SlowerLeadEnv(FamilyHighwayEnv):
    """Two lanes; a slow car drives ``distance`` ahead of the ego in the left lane; the right lane
    carries traffic at ``traffic_speed``, so overtaking needs a gap."""

    FAMILY = "slower_lead"
    PARAMS = {
        "ego_speed": ParamSpec(22.0, 30.0, "m/s", "initial ego speed"),
        "lead_speed": ParamSpec(0.0, 15.0, "m/s", "constant speed of the slow lead"),
        "distance": ParamSpec(30.0, 120.0, "m", "initial distance ego → lead, centre to centre"),
        "traffic_spacing": ParamSpec(20.0, 60.0, "m", "mean distance between right-lane cars"),
    }

    def _create_vehicles(self) -> None:
        p = self.params
        self._add_ego(lane=0, speed=p["ego_speed"])
        lead_x = EGO_X + p["distance"]  # [m]
        position = self.road.network.get_lane(self._lane(0)).position(lead_x, 0.0)
        self._add(ScriptedVehicle(self.road, position, p["lead_speed"], self._lane(0)))
        self._add_traffic(1, EGO_X - 80.0, lead_x + 200.0, speed=p["ego_speed"] - 3.0,
                          spacing=p["traffic_spacing"])
