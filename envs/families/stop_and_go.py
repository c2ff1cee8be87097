"""Stop-and-go wave: a platoon ahead of the ego oscillates between crawling and cruising."""

from __future__ import annotations

from drivegpt_envs.families.base import EGO_X, FamilyHighwayEnv
from drivegpt_envs.families.spec import ParamSpec
from drivegpt_envs.families.vehicles import ScriptedVehicle, WaveLeader

HEADWAY = 1.2  # [s] initial time gap inside the platoon
JAM_GAP = 7.0  # [m] initial extra distance between centres


class StopAndGoEnv(FamilyHighwayEnv):
    """One lane; ``platoon_size`` IDM cars follow a leader whose speed is
    ``mean_speed + amplitude·sin(2π t / period)`` (never below 0); the ego closes the platoon."""

    FAMILY = "stop_and_go"
    PARAMS = {
        "mean_speed": ParamSpec(10.0, 22.0, "m/s", "leader's mean speed (also everyone's initial speed)"),
        "amplitude": ParamSpec(3.0, 15.0, "m/s", "leader's speed oscillation amplitude"),
        "period": ParamSpec(4.0, 12.0, "s", "leader's speed oscillation period"),
        "platoon_size": ParamSpec(1.0, 5.0, "cars", "cars between the leader and the ego (rounded)"),
    }

    @classmethod
    def default_config(cls) -> dict:
        config = super().default_config()
        config.update({"lanes_count": 1})
        return config

    def _create_vehicles(self) -> None:
        p = self.params
        speed = p["mean_speed"]  # [m/s]
        spacing = speed * HEADWAY + JAM_GAP  # [m]
        self._add_ego(lane=0, speed=speed)
        lane = self.road.network.get_lane(self._lane(0))
        followers = int(round(p["platoon_size"]))
        for k in range(1, followers + 1):
            position = lane.position(EGO_X + k * spacing, 0.0)
            self._add(ScriptedVehicle(self.road, position, speed, self._lane(0)))
        position = lane.position(EGO_X + (followers + 1) * spacing, 0.0)
        leader = WaveLeader(self.road, position, speed, self._lane(0))
        leader.mean_speed, leader.amplitude, leader.period = speed, p["amplitude"], p["period"]
        leader.target_speed = speed + p["amplitude"]
        self._add(leader)
