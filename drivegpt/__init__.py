"""DriveGPT: learn driving policies from human driving logs and simulated takeovers.

The parts live in subpackages, lowest layer first: ``core``, ``sim``, ``data``, ``model``,
``policies``, ``takeover``, ``corner``, ``eval``, ``rlhf``, ``pipeline``, ``cli`` (docs/architecture.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from drivegpt.policies.registry import load_policy
    from drivegpt.sim.policy import DrivePolicy

__version__ = "0.1.0"
__all__ = ["DrivePolicy", "load_policy", "__version__"]


def __getattr__(name: str) -> Any:  # lazy: ``import drivegpt.core`` does not load torch
    if name == "load_policy":
        from drivegpt.policies.registry import load_policy

        return load_policy
    if name == "DrivePolicy":
        from drivegpt.sim.policy import DrivePolicy

        return DrivePolicy
    raise AttributeError(f"module 'drivegpt' has no attribute {name!r}")
