"""Stop-and-go wave: a platoon ahead of the ego oscillates between crawling and cruising."""

from __future__ import annotations

from drivegpt_envs.families.base import EGO_X, FamilyHighwayEnv
from drivegpt_envs.families.spec import ParamSpec
from drivegpt_envs.families.vehicles import ScriptedVehicle, WaveLeader

HEADWAY = 0.8  # [s] time gap the platoon cars keep (tight: the wave propagates)
JAM_GAP = 7.0  # [m] distance between centres at standstill


class StopAndGoEnv(FamilyHighwayEnv):
    """One lane; ``platoon_size`` tight IDM cars follow a leader whose speed swings between
    ``high_speed`` and ``low_speed`` every ``period``; the ego starts ``ego_gap`` behind the last of them."""

    FAMILY = "stop_and_go"
    PARAMS = {
        "high_speed": ParamSpec(15.0, 28.0, "m/s", "wave's top speed (everyone's initial speed)"),
        "low_speed": ParamSpec(0.0, 8.0, "m/s", "wave's bottom speed"),
        "period": ParamSpec(5.0, 12.0, "s", "leader's speed oscillation period"),
        "leader_deceleration": ParamSpec(4.0, 9.0, "m/s²", "leader's strongest braking"),
        "platoon_size": ParamSpec(0.0, 3.0, "cars", "cars between the leader and the ego (rounded)"),
        "ego_gap": ParamSpec(12.0, 35.0, "m", "initial distance ego → the car ahead, centre to centre"),
    }

    @classmethod
    def default_config(cls) -> dict:
        config = super().default_config()
        config.update({"lanes_count": 1})
        return config

    def _create_vehicles(self) -> None:
        p = self.params
        speed = p["high_speed"]  # [m/s]
        spacing = speed * HEADWAY + JAM_GAP  # [m]
        self._add_ego(lane=0, speed=speed)
        lane = self.road.network.get_lane(self._lane(0))
        followers = int(round(p["platoon_size"]))
        x = EGO_X + p["ego_gap"]  # [m]
        for _ in range(followers):
            car = ScriptedVehicle(self.road, lane.position(x, 0.0), speed, self._lane(0))
            # IDM's jam distance is centre to centre (highway-env's default: 5 m plus a car length)
            car.TIME_WANTED, car.DISTANCE_WANTED = HEADWAY, JAM_GAP
            self._add(car)
            x += spacing
        position = lane.position(x, 0.0)
        leader = WaveLeader(self.road, position, speed, self._lane(0))
        leader.mean_speed = 0.5 * (p["high_speed"] + p["low_speed"])
        leader.amplitude = 0.5 * (p["high_speed"] - p["low_speed"])
        leader.period, leader.max_deceleration = p["period"], p["leader_deceleration"]
        self._add(leader)
