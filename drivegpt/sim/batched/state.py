"""The batch state: B independent highway episodes as struct-of-arrays tensors.

Owns ``Behavior`` (per-vehicle IDM/MOBIL parameters) and ``BatchState``. Every tensor has a leading
batch axis B; vehicle tensors are (B, N) with the ego in slot 0 and a ``present`` mask for empty
slots. A state is never mutated in place by the simulator: ``step`` returns a new one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace

import torch

from drivegpt.sim.batched.config import SimConfig


@dataclass(frozen=True)
class Behavior:
    """Per-vehicle IDM / MOBIL parameters, all (B, N); the ego's slot is unused."""

    acc_max: torch.Tensor  # (B, N) [m/s²] acceleration clip
    comfort_acc_max: torch.Tensor  # (B, N) [m/s²]
    comfort_acc_min: torch.Tensor  # (B, N) [m/s²]
    distance_wanted: torch.Tensor  # (B, N) [m] jam distance
    time_wanted: torch.Tensor  # (B, N) [s] time gap
    delta: torch.Tensor  # (B, N) [] velocity exponent (randomised per vehicle)
    politeness: torch.Tensor  # (B, N) []
    lane_change_min_acc_gain: torch.Tensor  # (B, N) [m/s²]
    lane_change_max_braking: torch.Tensor  # (B, N) [m/s²]
    lane_change_delay: torch.Tensor  # (B, N) [s]
    enable_lane_change: torch.Tensor  # (B, N) bool


@dataclass(frozen=True)
class BatchState:
    """B highway episodes. Slot 0 is the ego; ``present`` masks empty slots."""

    config: SimConfig
    present: torch.Tensor  # (B, N) bool
    x: torch.Tensor  # (B, N) [m] longitudinal position
    y: torch.Tensor  # (B, N) [m] lateral position (lane k is centred on y = k * lane width)
    heading: torch.Tensor  # (B, N) [rad]
    speed: torch.Tensor  # (B, N) [m/s]
    lane: torch.Tensor  # (B, N) int64 closest lane index
    target_lane: torch.Tensor  # (B, N) int64 lane followed by the steering controller
    target_speed: torch.Tensor  # (B, N) [m/s] IDM / speed-controller set point (0 for a continuous ego)
    timer: torch.Tensor  # (B, N) [s] MOBIL decision timer
    crashed: torch.Tensor  # (B, N) bool
    impact: torch.Tensor  # (B, N, 2) [m] collision displacement applied at the next sub-step
    has_impact: torch.Tensor  # (B, N) bool
    controlled: torch.Tensor  # (B, N) bool: a highway-env ControlledVehicle (has a target lane)
    behavior: Behavior
    ego_accel: torch.Tensor  # (B,) [m/s²] held ego acceleration (continuous, accel_lane)
    ego_steering: torch.Tensor  # (B,) [rad] held ego steering (continuous)
    time: torch.Tensor  # (B,) [s] episode time, accumulated like AbstractEnv.time
    steps: torch.Tensor  # (B,) int64 simulation sub-steps done

    @property
    def batch_size(self) -> int:
        return self.x.shape[0]

    @property
    def slots(self) -> int:
        return self.x.shape[1]

    @property
    def device(self) -> torch.device:
        return self.x.device

    @property
    def dtype(self) -> torch.dtype:
        return self.x.dtype

    def replace(self, **changes: object) -> BatchState:
        """A copy with some fields changed (the others shared, tensors are never mutated)."""
        return replace(self, **changes)

    def map(self, fn: Callable[..., torch.Tensor], *others: BatchState) -> BatchState:
        """Apply ``fn`` to every tensor (with the matching tensors of ``others`` as further arguments)."""
        out = {
            f.name: fn(getattr(self, f.name), *(getattr(o, f.name) for o in others))
            for f in fields(self)
            if f.name not in ("config", "behavior")
        }
        behavior = Behavior(
            **{
                f.name: fn(getattr(self.behavior, f.name), *(getattr(o.behavior, f.name) for o in others))
                for f in fields(Behavior)
            }
        )
        return BatchState(config=self.config, behavior=behavior, **out)

    def to(self, device: torch.device | str) -> BatchState:
        return self.map(lambda t: t.to(device))

    def select(self, index: torch.Tensor | slice | list[int]) -> BatchState:
        """The episodes ``index`` (along the batch axis)."""
        return self.map(lambda t: t[index])

    def put(self, index: torch.Tensor, other: BatchState) -> BatchState:
        """A copy whose episodes ``index`` (K,) are replaced by the K episodes of ``other`` (auto-reset)."""

        def put(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            out = a.clone()
            out[index] = b
            return out

        return self.map(put, other)


def concat(states: list[BatchState]) -> BatchState:
    """Stack several batches along the batch axis (same config and slot count)."""
    return states[0].map(lambda *ts: torch.cat(ts), *states[1:])
