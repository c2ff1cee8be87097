"""Lane-change decisions of highway-env's ``IDMVehicle.change_lane_policy`` and ``mobil``.

Owns ``lane_change_policy``: per traffic vehicle, either (a) a lane change is under way and is
aborted when another controlled vehicle ahead, within its desired gap, is changing into the same
lane, or (b) every ``LANE_CHANGE_DELAY`` the MOBIL model picks a side lane (the right one wins when
both qualify, as in highway-env's loop order).

Only the few vehicles that decide at this sub-step (timer elapsed) are evaluated: they are compacted
into a flat list first. highway-env runs ``act`` vehicle after vehicle, so the abort test of vehicle i
sees the *updated* target lane of vehicles before it and the *old* one of vehicles after it. MOBIL
depends on positions only, so all decisions are computed at once; the abort rule is then resolved on
the vehicles changing lanes, compacted into K columns per episode, by Gauss-Seidel sweeps that reach
the sequential result after at most K sweeps (in practice one or two).
"""

from __future__ import annotations

import torch

from drivegpt.sim.batched.config import SimConfig
from drivegpt.sim.batched.idm import IdmParams, KinTable, acceleration, desired_gap, free_road
from drivegpt.sim.batched.road import Neighbours, reachable
from drivegpt.sim.batched.state import BatchState


def mobil(
    s: BatchState, table: KinTable, nb: Neighbours, rows: torch.Tensor, side_lane: torch.Tensor
) -> torch.Tensor:
    """``IDMVehicle.mobil(lane)`` of vehicles ``rows`` (M,) flat indices, candidate lanes (M, 2) -> bool.

    Each predicted vehicle's free-road term is computed once and shared by its two predictions. When
    every deciding vehicle has zero politeness (highway-env's default) the followers' terms are
    multiplied by 0 and are not computed: the result is bitwise the same.
    """
    b = s.behavior

    def param(t: torch.Tensor) -> torch.Tensor:  # (M, 1) a parameter of the deciding vehicles
        return t.reshape(-1).index_select(0, rows).unsqueeze(1)

    lane = param(s.lane)  # (M, 1)
    me_rows = rows.unsqueeze(1)  # (M, 1)
    both = me_rows.expand_as(side_lane)  # (M, 2)
    new_front, new_rear = nb.around(both, side_lane)  # (M, 2)
    new_preceding, new_following = table.at(new_front), table.at(new_rear)
    politeness = param(b.politeness)
    polite = bool((politeness != 0).any())
    old_front, old_rear = nb.around(me_rows, lane) if polite else (nb.front(me_rows, lane), None)  # (M, 1)
    old_preceding = table.at(old_front)
    me = table.at(me_rows)  # (M, 1)
    p = IdmParams.of(b, rows).map(lambda t: t.unsqueeze(1))  # (M, 1) the deciding vehicle's model
    free_new_following = free_road(new_following, p)  # (M, 2) [m/s²]
    new_following_pred_a = acceleration(new_following, me, p, free_new_following)
    safe = new_following_pred_a >= -param(b.lane_change_max_braking)
    free_me = free_road(me, p)  # (M, 1)
    jerk = acceleration(me, new_preceding, p, free_me) - acceleration(me, old_preceding, p, free_me)
    if polite:
        old_following = table.at(old_rear)  # (M, 1)
        free_old_following = free_road(old_following, p)
        new_following_a = acceleration(new_following, new_preceding, p, free_new_following)
        old_following_a = acceleration(old_following, me, p, free_old_following)
        old_following_pred_a = acceleration(old_following, old_preceding, p, free_old_following)
        jerk = jerk + politeness * (
            new_following_pred_a - new_following_a + old_following_pred_a - old_following_a
        )
    return safe & (jerk >= param(b.lane_change_min_acc_gain))


def _abort(s: BatchState, table: KinTable, changing: torch.Tensor, new_target: torch.Tensor) -> torch.Tensor:
    """Resolve the sequential abort rule for the ``changing`` vehicles; returns final target lanes (B, N)."""
    bsz, n = s.x.shape
    old_target = s.target_lane
    # vehicles whose target lane may be seen by others differ from their lane (before or after MOBIL)
    candidate = s.present & s.controlled & ((s.lane != old_target) | (s.lane != new_target))  # (B, N)
    rank = candidate.cumsum(1) - 1  # (B, N) column of each candidate, in slot order
    k = int(rank[:, -1].max()) + 1
    slots = torch.arange(n, device=s.x.device).expand(bsz, n)
    cols = torch.full((bsz, k + 1), n, dtype=torch.long, device=s.x.device)  # (B, K + 1), column K: others
    cols = cols.scatter(1, torch.where(candidate, rank, k), slots)[:, :k]  # (B, K) candidate slots
    valid = cols < n
    cols = torch.where(valid, cols, torch.zeros_like(cols))
    flat = cols + (torch.arange(bsz, device=s.x.device) * n).unsqueeze(1)  # (B, K)

    def at(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(-1)[flat]

    lane_c, old_c, new_c = at(s.lane), at(old_target), at(new_target)  # (B, K)
    is_i = at(changing) & valid  # (B, K) vehicles that run the abort test
    ego = table.at(flat.unsqueeze(2))  # (B, K, 1) the vehicle testing
    other = table.at(flat.unsqueeze(1))  # (B, 1, K) the vehicle ahead
    p = IdmParams.of(s.behavior, flat.reshape(-1)).map(lambda t: t.view(bsz, k, 1))
    gap = other.x - ego.x  # (B, K, K) [m]
    target_i = new_c.unsqueeze(2)  # (B, K, 1) the lane i is changing into (MOBIL leaves it unchanged)
    close = (0 < gap) & (gap < desired_gap(ego, other, p)) & valid.unsqueeze(1)
    close &= (lane_c.unsqueeze(1) != target_i) & (cols.unsqueeze(2) != cols.unsqueeze(1))
    before = cols.unsqueeze(1) < cols.unsqueeze(2)  # (B, K, K) v acts before i
    final = new_c
    for _ in range(k + 1):  # Gauss-Seidel sweeps, at most K needed
        seen = torch.where(before, final.unsqueeze(1), old_c.unsqueeze(1))  # (B, K, K) v's target seen by i
        abort = is_i & (close & (seen == target_i)).any(2)  # (B, K)
        updated = torch.where(abort, lane_c, new_c)
        if bool((updated == final).all()):
            break
        final = updated
    return (
        new_target.reshape(-1)
        .scatter(0, flat.reshape(-1), torch.where(valid, final, at(new_target)).reshape(-1))
        .view(bsz, n)
    )


def lane_change_policy(
    s: BatchState, table: KinTable, nb: Neighbours, config: SimConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """``change_lane_policy`` of every traffic vehicle: (target lane (B, N), timer (B, N) [s])."""
    b = s.behavior
    acting = s.present & ~s.crashed & b.enable_lane_change  # (B, N) vehicles running change_lane_policy
    acting[:, 0] &= config.ego_idm  # the ego is an IDM vehicle only as the ``idm`` policy
    changing = s.lane != s.target_lane  # (B, N)
    decide = acting & ~changing & (b.lane_change_delay < s.timer)  # (B, N) utils.do_every
    timer = torch.where(decide, torch.zeros_like(s.timer), s.timer)
    target = s.target_lane
    rows = (decide & (s.speed.abs() >= 1)).reshape(-1).nonzero().squeeze(1)  # (M,) flat deciders
    if rows.numel():
        lane = s.lane.reshape(-1).index_select(0, rows)  # (M,)
        side_lane = torch.stack([lane - 1, lane + 1], dim=1)  # (M, 2) side_lanes order: left, right
        x = s.x.reshape(-1).index_select(0, rows).unsqueeze(1)
        y = s.y.reshape(-1).index_select(0, rows).unsqueeze(1)
        ok = (side_lane >= 0) & (side_lane < config.lanes_count) & reachable(x, y, side_lane)
        ok &= mobil(s, table, nb, rows, side_lane)  # (M, 2)
        chosen = torch.where(ok[:, 1], side_lane[:, 1], torch.where(ok[:, 0], side_lane[:, 0], lane))
        target = target.reshape(-1).index_copy(0, rows, chosen).view_as(target)
    if bool((acting & changing).any()):
        target = _abort(s, table, acting & changing, target)
    return target, timer
