"""DriveGPT scenario environments (import name ``drivegpt_envs``; source folder ``envs/``).

Ids live under the ``drivegpt/`` namespace. Importing this package registers them (idempotently)
together with highway-env's stock ids; without an import, ``gym.make("drivegpt_envs:drivegpt/Highway-v0")``
imports it for you.
"""

from __future__ import annotations

import highway_env  # noqa: F401  (registers the stock highway-env ids)
from gymnasium.envs.registration import register, registry

from drivegpt_envs.actions import register_action_type
from drivegpt_envs.common import (
    ACTION_KINDS,
    DEFAULT_ACTION,
    FEATURES,
    POLICY_FREQUENCY,
    VEHICLES_COUNT,
    action_config,
)
from drivegpt_envs.families import FAMILIES, FAMILY_ENTRY_POINTS

#: id -> entry point of every registered DriveGPT environment.
ENV_IDS: dict[str, str] = {
    "drivegpt/Highway-v0": "drivegpt_envs.highway:DriveHighwayEnv",
    "drivegpt/HighwayDense-v0": "drivegpt_envs.highway:DriveHighwayDenseEnv",
    "drivegpt/Merge-v0": "drivegpt_envs.merge:DriveMergeEnv",
}

#: ids of the corner-case scenario families (``drivegpt_envs.families``), in ``FAMILIES`` order.
FAMILY_IDS: tuple[str, ...] = tuple(FAMILIES.values())


def register_envs() -> None:
    """Register every DriveGPT env id, scenario families included, and the ``AccelLaneAction`` action
    type once (calling it again is a no-op)."""
    register_action_type()
    for env_id, entry_point in {**ENV_IDS, **FAMILY_ENTRY_POINTS}.items():
        if env_id not in registry:
            register(id=env_id, entry_point=entry_point)


register_envs()

__all__ = [
    "ACTION_KINDS",
    "DEFAULT_ACTION",
    "ENV_IDS",
    "FAMILY_IDS",
    "FEATURES",
    "POLICY_FREQUENCY",
    "VEHICLES_COUNT",
    "action_config",
    "register_envs",
]
