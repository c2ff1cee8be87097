"""Ego-vs-traffic collisions of highway-env's ``RoadObject.handle_collisions`` (HighwayEnvFast).

Owns ``ego_collisions``. HighwayEnvFast disables collision checks between two traffic vehicles, so
only the pairs (ego, other) are tested: a bounding-circle pre-check, then, on the few pairs that pass
it (compacted), the separating-axis test of ``utils.are_polygons_intersecting`` on the two rectangles
with their displacements over one sub-step. Intersecting -> both crash now; will intersect -> both get
half the minimum translation as an impact, applied (and turned into a crash) at the next sub-step.
"""

from __future__ import annotations

import torch

from drivegpt.sim.batched.config import DIAGONAL, LENGTH, WIDTH
from drivegpt.sim.batched.state import BatchState


def _corners(x: torch.Tensor, y: torch.Tensor, heading: torch.Tensor) -> torch.Tensor:
    """``RoadObject.polygon`` without the closing point: (P, 4, 2) [m]."""
    local = torch.tensor(
        [
            [-LENGTH / 2, -WIDTH / 2],
            [-LENGTH / 2, WIDTH / 2],
            [LENGTH / 2, WIDTH / 2],
            [LENGTH / 2, -WIDTH / 2],
        ],
        dtype=x.dtype,
        device=x.device,
    )  # (4, 2)
    c, s = torch.cos(heading).unsqueeze(-1), torch.sin(heading).unsqueeze(-1)  # (P, 1)
    px = c * local[:, 0] - s * local[:, 1] + x.unsqueeze(-1)  # (P, 4)
    py = s * local[:, 0] + c * local[:, 1] + y.unsqueeze(-1)
    return torch.stack([px, py], dim=-1)


def _sat(
    a: torch.Tensor, b: torch.Tensor, disp_a: torch.Tensor, disp_b: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``are_polygons_intersecting`` on P rectangle pairs: (intersecting, will_intersect, translation)."""
    edges = torch.cat([a.roll(-1, 1) - a, b.roll(-1, 1) - b], dim=1)  # (P, 8, 2) p2 - p1 per edge
    normal = torch.stack([-edges[..., 1], edges[..., 0]], dim=-1)  # (P, 8, 2)
    normal = normal / torch.linalg.vector_norm(normal, dim=-1, keepdim=True)
    nx, ny = normal[..., 0:1], normal[..., 1:2]  # (P, 8, 1)
    proj_a = nx * a[:, None, :, 0] + ny * a[:, None, :, 1]  # (P, 8, 4) corners projected on each axis
    proj_b = nx * b[:, None, :, 0] + ny * b[:, None, :, 1]
    min_a, max_a = proj_a.min(-1).values, proj_a.max(-1).values  # (P, 8)
    min_b, max_b = proj_b.min(-1).values, proj_b.max(-1).values

    def interval_distance(lo_a: torch.Tensor, hi_a: torch.Tensor) -> torch.Tensor:
        return torch.where(lo_a < min_b, min_b - hi_a, lo_a - max_b)

    intersecting = (interval_distance(min_a, max_a) <= 0).all(1)  # (P,)
    vp = (normal * (disp_a - disp_b).unsqueeze(1)).sum(-1)  # (P, 8) velocity projection
    distance = interval_distance(
        torch.where(vp < 0, min_a + vp, min_a), torch.where(vp < 0, max_a, max_a + vp)
    )
    will_intersect = (distance <= 0).all(1)  # (P,)
    axis = distance.abs().argmin(1, keepdim=True)  # (P, 1) first axis of minimum |distance|
    best = normal.gather(1, axis.unsqueeze(-1).expand(-1, 1, 2)).squeeze(1)  # (P, 2)
    centre = a.mean(1) - b.mean(1)  # (P, 2)
    best = torch.where(((centre * best).sum(-1) > 0).unsqueeze(-1), best, -best)
    translation = distance.abs().gather(1, axis) * best  # (P, 2) [m]
    return intersecting, will_intersect, translation


def ego_collisions(state: BatchState, dt: float) -> BatchState:
    """Collision checks after a sub-step: update ``crashed`` and the pending ``impact``."""
    s = state
    bsz, n = s.x.shape
    dx, dy = s.x - s.x[:, :1], s.y - s.y[:, :1]  # (B, N) [m]
    near = torch.sqrt(dx * dx + dy * dy) <= DIAGONAL + s.speed[:, :1] * dt  # (diag + diag) / 2 + v dt
    near &= s.present & s.present[:, :1]
    near[:, 0] = False
    eb, ev = near.nonzero(as_tuple=True)  # (P,) episode and slot of each candidate pair
    if eb.numel() == 0:
        return s
    hx, hy, hh, hv = (t[eb, 0] for t in (s.x, s.y, s.heading, s.speed))  # (P,) the ego
    ox, oy, oh, ov = (t[eb, ev] for t in (s.x, s.y, s.heading, s.speed))  # (P,) the other
    disp_a = torch.stack([hv * torch.cos(hh), hv * torch.sin(hh)], -1) * dt  # (P, 2) velocity * dt [m]
    disp_b = torch.stack([ov * torch.cos(oh), ov * torch.sin(oh)], -1) * dt
    hit, will, translation = _sat(_corners(hx, hy, hh), _corners(ox, oy, oh), disp_a, disp_b)
    crashed = s.crashed.clone()
    crashed[eb[hit], ev[hit]] = True
    crashed[eb[hit], 0] = True
    impact, has_impact = s.impact.clone(), s.has_impact.clone()
    impact[eb[will], ev[will]] = -translation[will] / 2
    has_impact[eb[will], ev[will]] = True
    # the ego keeps the impact of its last colliding pair in slot order (highway-env's loop order)
    wb, wt = eb[will], translation[will]
    last = torch.full((bsz,), -1, dtype=torch.long, device=s.x.device).scatter_reduce(
        0, wb, torch.arange(wb.numel(), device=s.x.device), reduce="amax"
    )
    has = last >= 0
    impact[has, 0] = wt[last[has]] / 2
    has_impact[has, 0] = True
    return s.replace(crashed=crashed, impact=impact, has_impact=has_impact)
