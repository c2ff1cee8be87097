"""Where the corner-case families put their cars on the batched simulator.

Owns ``SCENES`` (per family: the ego's lane, the scripted slots, the ``_add_traffic`` call as a
``Traffic``) and ``place_scripted``, the batched form of the families' ``_create_vehicles`` for the
scripted cars: positions, speeds, lanes, per-vehicle IDM settings and ``Script`` settings, written
into (B, N) tensors for B parameter rows at once. ``families`` owns the rest of the reset (the ego,
the background traffic, the state) and the stepping.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from operator import itemgetter
from typing import Any, NamedTuple

import torch

from drivegpt.sim.batched.scripted import Script
from drivegpt_envs.families.adversarial_vehicle import START_BEHIND
from drivegpt_envs.families.base import EGO_X
from drivegpt_envs.families.cut_in import LEAD_TIME
from drivegpt_envs.families.stop_and_go import HEADWAY, JAM_GAP


class Traffic(NamedTuple):
    """The arguments of a family's ``_add_traffic`` call."""

    lane: int  #: the traffic's lane
    x_from: float  #: [m] first car's range starts at EGO_X + this
    extra: float  #: [m] the cars end at EGO_X + ``anchor`` + this
    speed_offset: float  #: [m/s] the traffic's speed: ego_speed + this (± 1)
    spacing: float | str  #: [m] mean distance between cars, or the parameter that sets it
    #: [m] initial distance ego → the scripted car the traffic ends past, from the parameters by name
    #: (non-decreasing in each, so the parameter box's top corner gives the most traffic)
    anchor: Callable[[Mapping[str, Any]], Any]


class Scene(NamedTuple):
    """Where a family's ``_create_vehicles`` puts its cars."""

    ego_lane: int  #: the ego's lane (0: leftmost)
    scripted: int  #: scripted cars after the ego (the most: ``stop_and_go``'s platoon varies)
    traffic: Traffic | None  #: its ``_add_traffic`` call (None: no background traffic)
    ego_speed: str = "ego_speed"  #: the parameter that sets the ego's initial speed [m/s]


def _cut_in_start(p: Mapping[str, Any]) -> Any:
    """[m] initial distance ego → cutting car (``CutInEnv``): the cut-in gap plus ``LEAD_TIME`` of closing."""
    return p["cut_in_gap"] + (p["speed_difference"] + 2.0) * LEAD_TIME


def _fixed_end(p: Mapping[str, Any]) -> float:
    """[m] no anchor: the traffic ends at a fixed distance past the ego (``SideSwipeEnv``)."""
    return 0.0


#: the layout of each family with a batched port (``families.BATCHED_FAMILIES``, in this order)
SCENES: dict[str, Scene] = {
    # traffic in the right lane up to 100 m past the stalled car
    "stalled_car": Scene(0, 2, Traffic(1, -60.0, 100.0, -3.0, 45.0, itemgetter("stall_distance"))),
    # traffic in the right lane up to 300 m past the lead
    "hard_braking_lead": Scene(0, 1, Traffic(1, -80.0, 300.0, -2.0, 35.0, itemgetter("gap"))),
    # traffic in the right lane up to 200 m past the lead
    "slower_lead": Scene(0, 1, Traffic(1, -80.0, 200.0, -3.0, "traffic_spacing", itemgetter("distance"))),
    # the ego in the middle lane; traffic in the left lane up to 250 m past the cutting car's start
    "cut_in": Scene(1, 1, Traffic(0, -60.0, 250.0, -2.0, 40.0, _cut_in_start)),
    # the ego and the adversary alone on the road
    "adversarial_vehicle": Scene(0, 1, None),
    # one lane: the ego, up to 3 platoon cars, the wave leader; the ego starts at the wave's top speed
    "stop_and_go": Scene(0, 4, None, "high_speed"),
    # the ego in the middle lane, the side car in the left one; traffic in the right lane to 400 m ahead
    "side_swipe": Scene(1, 1, Traffic(2, -60.0, 400.0, -2.0, 40.0, _fixed_end)),
}


def place_scripted(
    family: str,
    col: dict[str, torch.Tensor],
    cruise: torch.Tensor,
    cars: dict[str, torch.Tensor],
    script: Script,
) -> None:
    """The family's scripted cars (slots 1..) as its ``_create_vehicles`` places them, written in place
    into ``cars`` — (B, N) each: ``x`` [m], ``speed`` [m/s], ``lane``, ``present`` (the scripted slots
    start present), the IDM ``time_wanted`` [s] and ``distance_wanted`` [m] — and ``script``; ``col``
    the parameters (B,) each, ``cruise`` (B,) [m/s] the ego's cruise speed."""
    x, speed, lanes = cars["x"], cars["speed"], cars["lane"]
    if family == "stalled_car":
        stall_x = EGO_X + col["stall_distance"]  # (B,) [m]
        lead_gap = torch.minimum(col["lead_gap"], col["stall_distance"] - col["reveal_distance"] - 10.0)
        x[:, 1], x[:, 2], speed[:, 2] = stall_x, EGO_X + lead_gap, col["ego_speed"]
        script.stalled[:, 1] = True
        script.scripted[:, 2], script.blind[:, 2], script.watched[:, 2] = True, True, 1
        script.trigger_gap[:, 2], script.script_lane[:, 2] = -col["reveal_distance"], 1
        script.collides[:, 1:] = True  # the swerving lead can hit the right lane's traffic, as on the env
    elif family == "hard_braking_lead":
        x[:, 1], speed[:, 1] = EGO_X + col["gap"], col["ego_speed"]
        script.scripted[:, 1], script.trigger_time[:, 1] = True, col["brake_time"]
        script.brake_delay[:, 1], script.deceleration[:, 1] = 0.0, col["deceleration"]
    elif family == "slower_lead":  # a scripted car that never triggers, cruising at its speed
        x[:, 1], speed[:, 1], script.scripted[:, 1] = EGO_X + col["distance"], col["lead_speed"], True
    elif family == "cut_in":  # right lane, slower; cuts in cut_in_gap ahead, speed_difference slower
        dv = col["speed_difference"]  # (B,) [m/s]
        x[:, 1] = EGO_X + col["cut_in_gap"] + (dv + 2.0) * LEAD_TIME
        speed[:, 1], lanes[:, 1], script.scripted[:, 1] = cruise - dv - 2.0, 2, True
        script.watched[:, 1], script.trigger_gap[:, 1], script.script_lane[:, 1] = 0, col["cut_in_gap"], 1
        script.relative_speed[:, 1] = -dv
    elif family == "side_swipe":  # left lane, alongside; changes into the ego's lane at swerve_time
        dv, swerve = col["speed_difference"], col["swerve_time"]  # (B,) [m/s], [s]
        x[:, 1] = EGO_X + col["offset"] - dv * swerve  # offset ahead of a cruising ego at the swerve
        speed[:, 1], lanes[:, 1], script.scripted[:, 1] = cruise + dv, 0, True
        script.trigger_time[:, 1], script.script_lane[:, 1] = swerve, 1
    elif family == "stop_and_go":
        _place_platoon(col, cars, script)
    else:  # adversarial_vehicle: from behind in the right lane, cuts in cut_in_gap ahead, brake-checks
        car_speed = cruise + col["speed_difference"]  # (B,) [m/s]
        x[:, 1], speed[:, 1], lanes[:, 1], script.scripted[:, 1] = EGO_X - START_BEHIND, car_speed, 1, True
        script.watched[:, 1], script.trigger_gap[:, 1], script.script_lane[:, 1] = 0, col["cut_in_gap"], 0
        script.brake_delay[:, 1], script.deceleration[:, 1] = col["brake_delay"], col["deceleration"]
        script.brake_to_speed[:, 1] = (car_speed - col["speed_drop"]).clamp(min=0.0)


def _place_platoon(col: dict[str, torch.Tensor], cars: dict[str, torch.Tensor], script: Script) -> None:
    """``StopAndGoEnv``'s cars: ``round(platoon_size)`` tight IDM cars (``HEADWAY``, ``JAM_GAP``) from
    ``ego_gap`` ahead of the ego, one spacing apart, then the wave leader; the slots past it empty."""
    high = col["high_speed"]  # (B,) [m/s] everyone's initial speed
    slot = torch.arange(cars["x"].shape[1], device=high.device)  # (N,)
    lead = 1 + torch.round(col["platoon_size"]).long()[:, None]  # (B, 1) the leader's slot (half to even)
    platoon = (slot >= 1) & (slot < lead)  # (B, N) the followers
    leader = slot == lead  # (B, N)
    spacing = high * HEADWAY + JAM_GAP  # (B,) [m] centre to centre
    step = torch.where(slot == 1, EGO_X + col["ego_gap"][:, None], spacing[:, None])  # (B, N) [m]
    cars["x"][:, 1:] = torch.cumsum(step[:, 1:], dim=1)  # x += spacing, car after car, as the env
    cars["speed"][:, 1:] = high[:, None]
    cars["present"][:, 1:] = (platoon | leader)[:, 1:]
    script.scripted[:] = platoon | leader
    script.collides[:] = platoon | leader  # as on the env's road, a car braking too late hits the one ahead
    cars["time_wanted"][platoon] = HEADWAY
    cars["distance_wanted"][platoon] = JAM_GAP  # [m] the env's DISTANCE_WANTED, centre to centre
    low = col["low_speed"][:, None]  # (B, 1) [m/s]
    script.wave_period.copy_(torch.where(leader, col["period"][:, None], torch.inf))
    script.wave_mean.copy_(torch.where(leader, 0.5 * (high[:, None] + low), 0.0))
    script.wave_amplitude.copy_(torch.where(leader, 0.5 * (high[:, None] - low), 0.0))
    script.wave_deceleration.copy_(torch.where(leader, col["leader_deceleration"][:, None], 0.0))
