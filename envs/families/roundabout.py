"""Roundabout: the ego enters a roundabout as a circulating car reaches its entry."""

from __future__ import annotations

import numpy as np
from highway_env.envs.roundabout_env import RoundaboutEnv

from drivegpt_envs.actions import is_lane_change
from drivegpt_envs.families.base import family_config
from drivegpt_envs.families.spec import FamilyEnv, ParamSpec
from drivegpt_envs.families.vehicles import ForwardIDMVehicle

ENTRY = "se"  #: the ring node where the ego's entry joins it
#: the ring's segments upstream of ``ENTRY``, nearest first (traffic circulates se → ex → ee → ...)
UPSTREAM = (("sx", "se"), ("we", "sx"), ("wx", "we"), ("ne", "wx"), ("nx", "ne"), ("ee", "nx"), ("ex", "ee"))
#: highway-env's entry lanes end 26.1 m from the centre, outside the outer ring lane's edge (24 + 2 m), so
#: a car that follows its entry is off the road for a moment; the outer ring lane is this wide [m]
OUTER_WIDTH = 5.0
EXITS = ("exr", "nxr")  #: exits the circulating car may take (both past the ego's entry)
#: background cars (lane, position along it [m]) as in highway-env's roundabout, but circulating in the
#: outer lane (an inner-lane car leaving the ring cuts across the outer one)
BACKGROUND = ((("we", "sx", 1), 20.0), (("we", "sx", 1), -20.0), (("eer", "ees", 0), 50.0))


class RoundaboutFamilyEnv(FamilyEnv, RoundaboutEnv):
    """highway-env's two-lane roundabout (radii 20 and 24 m; the outer lane 5 m wide): the ego comes
    from the south and leaves to the north; circulating traffic has the right of way. A car in the
    outer lane at ``circulating_speed`` reaches the ego's entry ``arrival_offset`` after the ego would
    (both holding their speeds); three seeded background cars circulate in the outer lane or enter
    from the east (none within 15 m of the two); none changes lane, and none leaves by the south
    exit, just before the ego's entry. The episode ends once the ego is on its exit road."""

    FAMILY = "roundabout"
    PARAMS = {
        "ego_speed": ParamSpec(6.0, 12.0, "m/s", "initial ego speed"),
        "ego_distance": ParamSpec(20.0, 40.0, "m", "initial distance ego → its entry to the ring"),
        "circulating_speed": ParamSpec(6.0, 14.0, "m/s", "speed of the circulating car"),
        "arrival_offset": ParamSpec(
            -2.0, 3.0, "s", "circulating car's arrival minus the ego's, both at constant speed"
        ),
    }

    @classmethod
    def default_config(cls) -> dict:
        config = super().default_config()
        config.update(family_config(duration=20, lanes=2))
        config.update({"neighbour_vehicles_connected_lanes": True})
        return config

    def _make_road(self) -> None:
        super()._make_road()
        for _from, _to in ((ENTRY, "ex"), *UPSTREAM):  # the whole ring
            self.road.network.get_lane((_from, _to, 1)).width = OUTER_WIDTH

    def _make_vehicles(self) -> None:
        p, road, network = self.params, self.road, self.road.network
        sine = network.get_lane(("ses", ENTRY, 0))
        lane = network.get_lane(("ser", "ses", 0))
        s = lane.length + sine.length - p["ego_distance"]  # [m] along the straight access road
        ego = self.action_type.vehicle_class(road, lane.position(s, 0.0), lane.heading_at(s), p["ego_speed"])
        if hasattr(ego, "plan_route_to"):
            ego.plan_route_to("nxs")
        road.vehicles.append(ego)
        self.controlled_vehicles = [ego]
        upstream = p["circulating_speed"] * max(p["ego_distance"] / p["ego_speed"] + p["arrival_offset"], 0.0)
        for _from, _to in UPSTREAM:  # walk back along the outer lane to the car's start
            ring = network.get_lane((_from, _to, 1))
            if upstream <= ring.length:
                break
            upstream -= ring.length
        car = ForwardIDMVehicle.make_on_lane(
            road, (_from, _to, 1), ring.length - upstream, p["circulating_speed"]
        )
        car.target_speed, car.enable_lane_change = p["circulating_speed"], False
        car.plan_route_to(str(self.np_random.choice(EXITS)))
        road.vehicles.append(car)
        for lane_index, s in BACKGROUND:
            other = ForwardIDMVehicle.make_on_lane(road, lane_index, s + 2.0 * self.np_random.normal(), 16.0)
            other.speed += 2.0 * self.np_random.normal()  # [m/s]
            other.plan_route_to(str(self.np_random.choice(("exr", "wxr", "nxr"))))
            other.randomize_behavior()
            other.enable_lane_change = False  # in the outer lane (highway-env's MOBIL cuts across it)
            if min(np.linalg.norm(other.position - v.position) for v in (ego, car)) > 15.0:
                road.vehicles.append(other)

    def _rewards(self, action) -> dict[str, float]:
        # highway-env tests ``action in [0, 2]``: a lane change for meta-actions only
        lane_change = is_lane_change(self.action_type, action)
        return {**super()._rewards(None), "lane_change_reward": float(lane_change)}

    def _is_terminated(self) -> bool:
        arrived = self.vehicle.lane_index[:2] in (("nx", "nxs"), ("nxs", "nxr"))
        return bool(self.vehicle.crashed or arrived or not self.vehicle.on_road)
