"""One policy step of B highway episodes: ``step(state, ego_action) -> state``.

Owns the order of operations of highway-env's ``AbstractEnv.step`` / ``_simulate``: the episode time
advances, the ego action is applied once, then for each simulation sub-step every vehicle acts
(``Road.act``: ego controllers; traffic MOBIL lane decisions, lane-following steering and IDM
acceleration), every vehicle moves (``Road.step``: bicycle model, MOBIL timers), and the ego is
tested against nearby traffic for collisions. Loops run only over the fixed sub-steps.
"""

from __future__ import annotations

import torch

from drivegpt.sim.batched.collision import ego_collisions
from drivegpt.sim.batched.config import MAX_SPEED, MAX_STEERING_ANGLE, MIN_SPEED
from drivegpt.sim.batched.controller import steering_control
from drivegpt.sim.batched.ego import EgoAction, apply_action, ego_commands, ego_speed_range, validate_action
from drivegpt.sim.batched.idm import IdmParams, KinTable, acceleration
from drivegpt.sim.batched.kinematics import bicycle_step
from drivegpt.sim.batched.mobil import lane_change_policy
from drivegpt.sim.batched.road import neighbours
from drivegpt.sim.batched.state import BatchState


def traffic_commands(s: BatchState) -> tuple[BatchState, torch.Tensor, torch.Tensor]:
    """``IDMVehicle.act`` for all vehicles: (state with new target lanes and timers, accel, steering).

    Returns (B, N) commands for every slot; the ego's are replaced by the caller and crashed
    vehicles' are overridden by ``clip_actions``.
    """
    cfg = s.config
    bsz, n = s.x.shape
    table = KinTable(s)
    nb = neighbours(s.x, s.y, s.present, cfg.lanes_count)
    target_lane, timer = lane_change_policy(s, table, nb, cfg)
    s = s.replace(target_lane=target_lane, timer=timer)
    steering = steering_control(s.y, s.heading, s.speed, s.target_lane).clamp(
        -MAX_STEERING_ANGLE, MAX_STEERING_ANGLE
    )  # (B, N) [rad]
    every = torch.arange(bsz * n, device=s.x.device)  # (B * N,) flat index of every vehicle
    front = nb.front(every, s.lane.reshape(-1))  # (B * N,) front vehicle on the current lane
    accel = acceleration(table.all, table.at(front), IdmParams.of(s.behavior))  # (B * N,) [m/s²]
    rows = (s.lane != s.target_lane).reshape(-1).nonzero().squeeze(1)  # (M,) changing lanes
    if rows.numel():  # also keep behind the front vehicle of the target lane
        target_front = nb.front(rows, s.target_lane.reshape(-1).index_select(0, rows))
        acc_target = acceleration(table.at(rows), table.at(target_front), IdmParams.of(s.behavior, rows))
        accel = accel.index_copy(0, rows, torch.minimum(accel.index_select(0, rows), acc_target))
    acc_max = s.behavior.acc_max
    accel = torch.maximum(torch.minimum(accel.view(bsz, n), acc_max), -acc_max)
    return s, accel, steering


def _idm_ego_act(s: BatchState) -> BatchState:
    """The ego's own ``IDMVehicle.act`` before ``Road.act``: its lane-change policy, nobody else's."""
    table = KinTable(s)
    nb = neighbours(s.x, s.y, s.present, s.config.lanes_count)
    target_lane, timer = lane_change_policy(s, table, nb, s.config)
    return s.replace(
        target_lane=torch.cat([target_lane[:, :1], s.target_lane[:, 1:]], dim=1),
        timer=torch.cat([timer[:, :1], s.timer[:, 1:]], dim=1),
    )


def substep(s: BatchState, dt: float) -> BatchState:
    """One simulation step: act, move, collide."""
    idm_ego = s.config.ego_idm  # the ego acts as traffic does (the ``idm`` policy)
    ego_accel, ego_steering = ego_commands(s, dt)  # (B,)
    s, accel, steering = traffic_commands(s)
    if not idm_ego:
        accel = torch.cat([ego_accel.unsqueeze(1), accel[:, 1:]], dim=1)  # (B, N) [m/s²]
        steering = torch.cat([ego_steering.unsqueeze(1), steering[:, 1:]], dim=1)  # (B, N) [rad]
    s = s.replace(timer=s.timer + dt)  # IDMVehicle.step (the ego's and empty slots' timers are unused)
    speeds = (MIN_SPEED, MAX_SPEED) if idm_ego else ego_speed_range(s.config.action)
    s = bicycle_step(s, accel, steering, dt, speeds)
    s = ego_collisions(s, dt)
    return s.replace(steps=s.steps + 1)


def step(state: BatchState, ego_action: EgoAction) -> BatchState:
    """Advance every episode by one policy step under ``ego_action`` (see ``ego.validate_action``).

    Pure: the input state is not modified. Finished episodes keep stepping (a crashed ego brakes to a
    stop); restart them with ``spawn.reset`` and ``BatchState.put`` (as ``vector_env`` does).
    """
    cfg = state.config
    action = validate_action(state, ego_action)
    s = state.replace(time=state.time + 1 / cfg.policy_frequency)
    if cfg.ego_idm:  # ActionType.act calls IDMVehicle.act, which ignores the action: one more lane decision
        s = _idm_ego_act(s)
    else:
        s = apply_action(s, action)
    for _ in range(cfg.frames):
        s = substep(s, cfg.dt)
    return s
