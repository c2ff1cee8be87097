"""Policy specs: one string names any driver in the project (``human``, ``idm``, ...)."""

from __future__ import annotations

from drivegpt.human import HumanDriver, PersonalityRanges, StockIDMDriver
from drivegpt.rollout import Driver

#: spec prefix -> what it loads
POLICY_KINDS: dict[str, str] = {
    "human": "the simulated human driver (IDM + MOBIL, personality sampled per episode)",
    "idm": "highway-env's stock IDMVehicle at the wheel of the ego (comparison baseline)",
}


def load_policy(spec: str) -> Driver:
    """Return the driver named by ``spec``; unknown specs fail with the list of valid ones."""
    kind, _, _arg = spec.partition(":")
    if kind == "human":
        return HumanDriver(ranges=PersonalityRanges())
    if kind == "idm":
        return StockIDMDriver()
    valid = ", ".join(POLICY_KINDS)
    raise ValueError(f"unknown policy spec {spec!r}; valid kinds: {valid}")
