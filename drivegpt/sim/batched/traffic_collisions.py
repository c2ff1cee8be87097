"""Collisions between two non-ego vehicles, for the scenes whose cars can run into each other.

Owns ``traffic_collisions``: highway-env's ``Road.step`` tests every pair of vehicles (HighwayEnvFast
only the ego's pairs, which is all ``collision.ego_collisions`` does). A family whose scripted cars
can hit each other (``stop_and_go``'s platoon, under a wave that brakes harder than its IDM can)
marks them, and their pairs (i, j), 1 <= i < j, are tested after the ego's with the same
bounding-circle pre-check and separating-axis test. As in the env's loop, crashes accumulate and a
vehicle keeps the impact of its last colliding pair in loop order (i ascending, then j), the ego's
pairs coming first.
"""

from __future__ import annotations

import torch

from drivegpt.sim.batched.collision import _corners, _sat
from drivegpt.sim.batched.config import DIAGONAL
from drivegpt.sim.batched.state import BatchState


def traffic_collisions(state: BatchState, checked: torch.Tensor, dt: float) -> BatchState:
    """``handle_collisions`` of the pairs of ``checked`` (B, N) bool non-ego vehicles after a sub-step
    of ``dt`` [s]: ``crashed`` and the pending ``impact`` updated; the state itself where none is near."""
    s = state
    bsz, n = s.x.shape
    if not bool(checked[:, 1:].any()):
        return s
    i, j = torch.triu_indices(n, n, offset=1, device=s.x.device)  # (Q,) pairs in the env's loop order
    i, j = i[i >= 1], j[i >= 1]  # the ego's pairs are ego_collisions'
    dx, dy = s.x[:, j] - s.x[:, i], s.y[:, j] - s.y[:, i]  # (B, Q) [m]
    near = torch.sqrt(dx * dx + dy * dy) <= DIAGONAL + s.speed[:, i] * dt  # (B, Q) the first one's speed
    near &= checked[:, i] & checked[:, j] & s.present[:, i] & s.present[:, j]
    eb, eq = near.nonzero(as_tuple=True)  # (P,) episode and pair, in loop order within an episode
    if eb.numel() == 0:
        return s
    a, b = i[eq], j[eq]  # (P,) slots of each pair's first and second vehicle

    def box(slot: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(corners (P, 4, 2) [m], displacement over dt (P, 2) [m]) of one side of the pairs."""
        x, y, h, v = (t[eb, slot] for t in (s.x, s.y, s.heading, s.speed))  # (P,)
        return _corners(x, y, h), torch.stack([v * torch.cos(h), v * torch.sin(h)], -1) * dt

    (box_a, disp_a), (box_b, disp_b) = box(a), box(b)
    hit, will, translation = _sat(box_a, box_b, disp_a, disp_b)
    crashed = s.crashed.clone()
    crashed[eb[hit], a[hit]] = True
    crashed[eb[hit], b[hit]] = True
    # each vehicle's impact from its last pair that will intersect: + half for the first, - for the second
    rows = torch.cat([eb[will], eb[will]])  # (2W,)
    slots = torch.cat([a[will], b[will]])
    push = torch.cat([translation[will] / 2, -translation[will] / 2])  # (2W, 2) [m]
    order = torch.arange(int(will.sum()), device=s.x.device).repeat(2)  # (2W,) rank in loop order
    flat = rows * n + slots  # (2W,) flat vehicle index
    last = torch.full((bsz * n,), -1, dtype=torch.long, device=s.x.device)
    last = last.scatter_reduce(0, flat, order, reduce="amax")
    win = order == last[flat]  # (2W,) the last pair of its vehicle
    impact, has_impact = s.impact.clone(), s.has_impact.clone()
    impact[rows[win], slots[win]] = push[win]
    has_impact[rows[win], slots[win]] = True
    return s.replace(crashed=crashed, impact=impact, has_impact=has_impact)
