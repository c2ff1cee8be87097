"""What a batch of scenario-family episodes did on the batched simulator, row by row.

Owns :class:`Traces` (the (B,) outcomes and (B, T+1) per-step figures that
:func:`drivegpt.corner.batched.run_episodes` records) and :func:`box_clearance` (the batched form of
``drivegpt.sim.geometry.box_clearance``). ``Traces.outcome`` turns a row into the
:class:`~drivegpt.corner.suite.Outcome` that highway-env's per-step trace gives, through the same
``outcome_of``, so a scenario's figures do not depend on the simulator that drove it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from drivegpt.corner.suite import Outcome, outcome_of
from drivegpt.sim.batched.config import LENGTH, SPEED_LIMIT, WIDTH
from drivegpt.sim.batched.state import BatchState


@dataclass
class Traces:
    """What B family episodes did, row by row (columns: policy steps, the reset state first)."""

    crashed: torch.Tensor  # (B,) bool: the ego collided
    offroad: torch.Tensor  # (B,) bool: the ego left the road at some step
    steps: torch.Tensor  # (B,) int64 policy steps driven
    distance_m: torch.Tensor  # (B,) [m] ego path length
    speed: torch.Tensor  # (B, T+1) [m/s] ego speed; NaN after the episode's end
    ttc: torch.Tensor  # (B, T+1) [s] TTC to the lead in the ego's lane; inf when none or after the end
    gap: torch.Tensor  # (B, T+1) [m] box clearance to the nearest vehicle; inf after the end
    takeovers: torch.Tensor  # (B,) int64 the safety driver's takeovers (0 without a monitor)
    policy_distance_m: torch.Tensor  # (B,) [m] path length while the policy drove (all without a monitor)

    def outcome(self, b: int, dt: float) -> Outcome:
        """Row ``b`` as the :class:`~drivegpt.corner.suite.Outcome` that highway-env's trace gives."""
        n = int(self.steps[b]) + 1  # rows of the trace: the reset state and every step
        speed = self.speed[b, :n].tolist()
        trace = {
            "speed": speed,
            "ttc": self.ttc[b, :n].tolist(),
            "gap": self.gap[b, :n].tolist(),
            "speeding": [float(v > SPEED_LIMIT + 1e-6) for v in speed],
        }
        return outcome_of(
            bool(self.crashed[b]),
            bool(self.offroad[b]),
            float(self.distance_m[b]),
            trace,
            dt,
            int(self.takeovers[b]),
            float(self.policy_distance_m[b]),
        )


def box_clearance(state: BatchState) -> torch.Tensor:
    """(B,) ``drivegpt.sim.geometry.box_clearance``: the smallest ``max(|dx| - length, |dy| - width)``
    from the ego to any other vehicle [m]; inf when the ego is alone."""
    dx = (state.x[:, 1:] - state.x[:, :1]).abs() - LENGTH  # (B, N-1) [m]
    dy = (state.y[:, 1:] - state.y[:, :1]).abs() - WIDTH  # (B, N-1) [m]
    gap = torch.where(state.present[:, 1:], torch.maximum(dx, dy), float("inf"))
    return gap.min(dim=1).values if gap.shape[1] else torch.full_like(state.x[:, 0], float("inf"))


__all__ = ["Traces", "box_clearance"]
