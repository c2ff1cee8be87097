"""Corner-case scenario families: parameterised highway-env scenes registered as ``drivegpt/<Family>-v0``.

Each family is one module with one env class (a :class:`~drivegpt_envs.families.spec.FamilyEnv`):
``FAMILY`` (its name here), ``PARAMS`` (typed ranges), ``check_params`` and ``sample_params``.
Parameters arrive through ``reset(seed=s, options={"params": {...}})``.
"""

from __future__ import annotations

import importlib

from drivegpt_envs.families.spec import FamilyEnv, FamilyParamError, ParamSpec

#: family name → env id.
FAMILIES: dict[str, str] = {
    "stalled_car": "drivegpt/StalledCar-v0",
    "hard_braking_lead": "drivegpt/HardBrakingLead-v0",
    "slower_lead": "drivegpt/SlowerLead-v0",
    "cut_in": "drivegpt/CutIn-v0",
    "side_swipe": "drivegpt/SideSwipe-v0",
    "aggressive_merge": "drivegpt/AggressiveMerge-v0",
    "stop_and_go": "drivegpt/StopAndGo-v0",
    "adversarial_vehicle": "drivegpt/AdversarialVehicle-v0",
    "oncoming_overtake": "drivegpt/OncomingOvertake-v0",
    "intersection": "drivegpt/Intersection-v0",
    "roundabout": "drivegpt/Roundabout-v0",
}

#: env id → entry point (registered by ``drivegpt_envs.register_envs``).
FAMILY_ENTRY_POINTS: dict[str, str] = {
    "drivegpt/StalledCar-v0": "drivegpt_envs.families.stalled_car:StalledCarEnv",
    "drivegpt/HardBrakingLead-v0": "drivegpt_envs.families.hard_braking_lead:HardBrakingLeadEnv",
    "drivegpt/SlowerLead-v0": "drivegpt_envs.families.slower_lead:SlowerLeadEnv",
    "drivegpt/CutIn-v0": "drivegpt_envs.families.cut_in:CutInEnv",
    "drivegpt/SideSwipe-v0": "drivegpt_envs.families.side_swipe:SideSwipeEnv",
    "drivegpt/AggressiveMerge-v0": "drivegpt_envs.families.aggressive_merge:AggressiveMergeEnv",
    "drivegpt/StopAndGo-v0": "drivegpt_envs.families.stop_and_go:StopAndGoEnv",
    "drivegpt/AdversarialVehicle-v0": "drivegpt_envs.families.adversarial_vehicle:AdversarialVehicleEnv",
    "drivegpt/OncomingOvertake-v0": "drivegpt_envs.families.oncoming_overtake:OncomingOvertakeEnv",
    "drivegpt/Intersection-v0": "drivegpt_envs.families.intersection:IntersectionFamilyEnv",
    "drivegpt/Roundabout-v0": "drivegpt_envs.families.roundabout:RoundaboutFamilyEnv",
}


def family_class(name: str) -> type[FamilyEnv]:
    """The env class of family ``name`` (e.g. ``"stalled_car"``)."""
    if name not in FAMILIES:
        raise ValueError(f"unknown scenario family {name!r}; valid: {', '.join(FAMILIES)}")
    module, cls = FAMILY_ENTRY_POINTS[FAMILIES[name]].split(":")
    return getattr(importlib.import_module(module), cls)


__all__ = ["FAMILIES", "FAMILY_ENTRY_POINTS", "FamilyEnv", "FamilyParamError", "ParamSpec", "family_class"]
