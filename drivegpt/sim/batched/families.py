"""Corner-case families on the batched simulator: scripted scenes spawned and stepped B at a time.

Owns the batched port of the straight-road families of ``drivegpt_envs.families`` (``stalled_car``,
``hard_braking_lead``, ``slower_lead``): ``family_config`` (their ``SimConfig``), ``family_reset`` (B
initial states from a (B, d) parameter array in the family's own ``PARAMS`` order) and
``family_step`` (one policy step with the scripted vehicles' behaviour of
``drivegpt_envs.families.vehicles``).

Layout per episode, as in the highway-env family: the ego in slot 0 (lane 0, x = ``EGO_X``), then the
family's scripted cars, then the background traffic of one lane (IDM, no lane changes), drawn from a
per-episode ``torch.Generator`` seeded with the episode seed: the same distribution as the env's
``_add_traffic``, not its random numbers. The scripted cars are exact: same positions, speeds,
triggers and manoeuvres. ``Script`` holds their per-slot settings and trigger state:

* a *stalled* car (``stalled_vehicle``: a plain ``Vehicle``) never acts: it stands still;
* a slow lead (``ScriptedVehicle`` without a trigger) cruises at its initial speed by IDM;
* a *scripted* car (``ScriptedVehicle``) drives IDM in its lane until its trigger fires — at a time
  (``TimedVehicle``) or when its offset to a watched car reaches a gap (``GapVehicle``) — then changes
  to its script lane, if any, and ``brake_delay`` later brakes at ``deceleration`` down to
  ``brake_to_speed`` and holds it; a *blind* one ignores the car ahead until its trigger fires.

As in the rest of the batched simulator only the ego's collisions are tested.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import NamedTuple

import numpy as np
import torch

from drivegpt.sim.batched.collision import ego_collisions
from drivegpt.sim.batched.config import ENV_ACTION_KIND, KP_A, LANE_WIDTH, ActionKind, SimConfig, make_config
from drivegpt.sim.batched.ego import EgoAction, apply_action, ego_commands, ego_speed_range, validate_action
from drivegpt.sim.batched.idm import IdmParams, KinTable, free_road
from drivegpt.sim.batched.kinematics import bicycle_step
from drivegpt.sim.batched.simulate import traffic_commands
from drivegpt.sim.batched.spawn import empty_state
from drivegpt.sim.batched.state import BatchState, Behavior
from drivegpt_envs.common import action_config
from drivegpt_envs.families import FAMILIES, family_class
from drivegpt_envs.families.base import EGO_X


class Traffic(NamedTuple):
    """The arguments of a family's ``_add_traffic`` call, and its scripted cars."""

    lane: int  #: the traffic's lane
    x_from: float  #: [m] first car's range starts at EGO_X + this
    extra: float  #: [m] the cars end at (the scripted car named by ``anchor``) + this
    speed_offset: float  #: [m/s] the traffic's speed: ego_speed + this (± 1)
    spacing: float | str  #: [m] mean distance between cars, or the parameter that sets it
    scripted: int  #: scripted cars after the ego
    anchor: str  #: the parameter (distance from the ego [m]) that places the end of the traffic


#: the families with a batched port
TRAFFIC: dict[str, Traffic] = {
    "stalled_car": Traffic(1, -60.0, 100.0, -3.0, 45.0, 2, "stall_distance"),  # to the stalled car + 100 m
    "hard_braking_lead": Traffic(1, -80.0, 300.0, -2.0, 35.0, 1, "gap"),  # to the lead + 300 m
    "slower_lead": Traffic(1, -80.0, 200.0, -3.0, "traffic_spacing", 1, "distance"),  # to the lead + 200 m
}
BATCHED_FAMILIES: tuple[str, ...] = tuple(TRAFFIC)


class BatchedFamilyError(ValueError):
    """A family without a batched port, or parameters of the wrong shape or out of range."""


@dataclass(frozen=True)
class Script:
    """Per-slot script settings and trigger state, all (B, N); unscripted slots are inert."""

    stalled: torch.Tensor  # (B, N) bool: never acts (speed 0, no steering)
    scripted: torch.Tensor  # (B, N) bool: a ScriptedVehicle (speed floored at 0)
    blind: torch.Tensor  # (B, N) bool: ignores the car ahead until triggered
    trigger_time: torch.Tensor  # (B, N) [s] time trigger (inf: none)
    watched: torch.Tensor  # (B, N) int64 slot whose offset triggers (-1: none)
    trigger_gap: torch.Tensor  # (B, N) [m] offset x - x_watched that fires the trigger
    start_side: torch.Tensor  # (B, N) [] sign of the initial offset - trigger_gap
    script_lane: torch.Tensor  # (B, N) int64 lane to change to when triggered (-1: none)
    brake_delay: torch.Tensor  # (B, N) [s] after the trigger (inf: never brakes)
    deceleration: torch.Tensor  # (B, N) [m/s²]
    brake_to_speed: torch.Tensor  # (B, N) [m/s]
    triggered_at: torch.Tensor  # (B, N) [s] clock when the trigger fired (NaN: not yet)

    def select(self, index: torch.Tensor | slice | list[int]) -> Script:
        """The episodes ``index`` (along the batch axis)."""
        return Script(**{f.name: getattr(self, f.name)[index] for f in fields(self)})


def _family_spec(family: str) -> tuple[type, Traffic]:
    if family not in TRAFFIC:
        raise BatchedFamilyError(
            f"scenario family {family!r} has no batched port; batched families: {', '.join(TRAFFIC)}"
        )
    return family_class(family), TRAFFIC[family]


def traffic_slots(family: str) -> int:
    """Most background cars ``_add_traffic`` can place in this family (over its whole parameter box)."""
    cls, t = _family_spec(family)
    far = cls.PARAMS[t.anchor].high  # [m] x_to - EGO_X - extra
    spacing = cls.PARAMS[t.spacing].low if isinstance(t.spacing, str) else t.spacing  # [m] the densest
    # the first car within one spacing of x_from, then at least 0.7 spacing apart, all before x_to
    return int(math.floor((far + t.extra - t.x_from) / (0.7 * spacing))) + 1


def family_config(
    family: str, action: ActionKind = "accel", env_config: dict | None = None, duration: float | None = None
) -> SimConfig:
    """The ``SimConfig`` of a family: its road, frequencies and episode length, the ego interface of
    ``action`` (plus a policy's ``env_config``), slots for its scripted cars and traffic.
    ``duration`` [s] shortens the episode (default: the family's)."""
    cls, t = _family_spec(family)
    scripted = t.scripted
    env = cls.default_config()
    env.update(action_config(ENV_ACTION_KIND[action]))  # type: ignore[arg-type]
    env.update(env_config or {})
    base = make_config("drivegpt/Highway-v0", action, env_config)  # ego interface settings
    return replace(
        base,
        env_id=FAMILIES[family],
        lanes_count=int(env["lanes_count"]),
        vehicles_count=scripted + traffic_slots(family),
        simulation_frequency=int(env["simulation_frequency"]),
        policy_frequency=int(env["policy_frequency"]),
        duration=float(env["duration"] if duration is None else duration),
        collision_reward=float(env["collision_reward"]),
        right_lane_reward=float(env["right_lane_reward"]),
        high_speed_reward=float(env["high_speed_reward"]),
        reward_speed_range=tuple(float(v) for v in env["reward_speed_range"]),
        normalize_reward=bool(env["normalize_reward"]),
        offroad_terminal=bool(env["offroad_terminal"]),
    )


def check_family_params(family: str, params: np.ndarray | torch.Tensor) -> np.ndarray:
    """(B, d) float64 parameters in ``PARAMS`` order, each within its range; else one clear error."""
    cls, _ = _family_spec(family)
    p = np.asarray(params.cpu() if torch.is_tensor(params) else params, dtype=np.float64)
    names = list(cls.PARAMS)
    if p.ndim != 2 or p.shape[1] != len(names) or p.shape[0] == 0:
        raise BatchedFamilyError(
            f"{family}: params must have shape (B, {len(names)}) in the order {', '.join(names)}; "
            f"got {p.shape}"
        )
    low = np.array([s.low for s in cls.PARAMS.values()])
    high = np.array([s.high for s in cls.PARAMS.values()])
    bad = ~((p >= low) & (p <= high))  # also NaN
    if bad.any():
        i, j = np.argwhere(bad)[0]
        spec = cls.PARAMS[names[j]]
        raise BatchedFamilyError(
            f"{family}: parameter '{names[j]}' = {p[i, j]!r} (row {i}) is out of its range "
            f"[{spec.low:g}, {spec.high:g}] {spec.unit}"
        )
    return p


def _traffic(
    seeds: list[int],
    slots: int,
    x_from: torch.Tensor,
    x_to: torch.Tensor,
    speed: torch.Tensor,
    spacing: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``_add_traffic`` for B episodes (``spacing`` (B,) [m]): (present, x [m], speed [m/s]), each (B, M)."""
    u = torch.stack(
        [torch.rand(slots, 3, generator=torch.Generator().manual_seed(s), dtype=torch.float64) for s in seeds]
    ).to(x_from)  # (B, M, 3) uniforms: first offset / spacing jitter, speed jitter, spare
    step = spacing[:, None] * (0.7 + 0.6 * u[..., 0])  # (B, M) [m] distance to the previous car
    step[:, 0] = spacing * u[:, 0, 0]  # the first car: uniform in [x_from, x_from + spacing)
    x = x_from[:, None] + torch.cumsum(step, dim=1)  # (B, M) [m]
    v = speed[:, None] + (2 * u[..., 1] - 1)  # (B, M) [m/s] speed ± 1 m/s
    return x < x_to[:, None], x, v


def family_reset(
    family: str,
    params: np.ndarray | torch.Tensor,
    seeds: Sequence[int] | np.ndarray | torch.Tensor,
    config: SimConfig,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float64,
) -> tuple[BatchState, Script]:
    """B new episodes of ``family``: row i of ``params`` (B, d) with traffic seed ``seeds[i]``."""
    p = torch.as_tensor(check_family_params(family, params), dtype=dtype, device=device)  # (B, d)
    seeds = [int(s) for s in (seeds.tolist() if hasattr(seeds, "tolist") else seeds)]
    if len(seeds) != p.shape[0]:
        raise BatchedFamilyError(f"{family}: {p.shape[0]} parameter rows but {len(seeds)} seeds")
    cls, t = _family_spec(family)
    k, extra = t.scripted, t.extra
    col = {name: p[:, j] for j, name in enumerate(cls.PARAMS)}  # each (B,)
    bsz, n = p.shape[0], config.slots
    s = empty_state(config, bsz, device, dtype)
    inf, nan = torch.full((bsz, n), math.inf, dtype=dtype, device=device), math.nan
    x, speed, lanes = s.x.clone(), s.speed.clone(), s.lane.clone()
    present = s.present.clone()
    script = Script(
        stalled=s.present.clone(), scripted=s.present.clone(), blind=s.present.clone(),
        trigger_time=inf.clone(), watched=torch.full_like(lanes, -1), trigger_gap=s.x.clone(),
        start_side=s.x.clone(), script_lane=torch.full_like(lanes, -1), brake_delay=inf.clone(),
        deceleration=s.x.clone(), brake_to_speed=s.x.clone(), triggered_at=torch.full_like(inf, nan),
    )  # fmt: skip
    ego_speed = col["ego_speed"]  # [m/s]
    x[:, 0], speed[:, 0], present[:, : 1 + k] = EGO_X, ego_speed, True
    if family == "stalled_car":
        stall_x = EGO_X + col["stall_distance"]  # (B,) [m]
        lead_gap = torch.minimum(col["lead_gap"], col["stall_distance"] - col["reveal_distance"] - 10.0)
        x[:, 1], x[:, 2], speed[:, 2] = stall_x, EGO_X + lead_gap, ego_speed
        script.stalled[:, 1] = True
        script.scripted[:, 2], script.blind[:, 2], script.watched[:, 2] = True, True, 1
        script.trigger_gap[:, 2], script.script_lane[:, 2] = -col["reveal_distance"], 1
        x_to = stall_x + extra
    elif family == "hard_braking_lead":
        x[:, 1], speed[:, 1] = EGO_X + col["gap"], ego_speed
        script.scripted[:, 1], script.trigger_time[:, 1] = True, col["brake_time"]
        script.brake_delay[:, 1], script.deceleration[:, 1] = 0.0, col["deceleration"]
        x_to = x[:, 1] + extra
    else:  # slower_lead: a scripted car that never triggers, cruising at its speed
        x[:, 1], speed[:, 1], script.scripted[:, 1] = EGO_X + col["distance"], col["lead_speed"], True
        x_to = x[:, 1] + extra
    side = x - x.gather(1, script.watched.clamp(min=0)) - script.trigger_gap  # (B, N) [m]
    script.start_side.copy_(torch.where(side >= 0, 1.0, -1.0))
    start = torch.full_like(ego_speed, EGO_X + t.x_from)  # (B,) [m]
    spacing = col[t.spacing] if isinstance(t.spacing, str) else torch.full_like(ego_speed, t.spacing)
    on, tx, tv = _traffic(seeds, n - 1 - k, start, x_to, ego_speed + t.speed_offset, spacing)
    present[:, 1 + k :], x[:, 1 + k :], speed[:, 1 + k :], lanes[:, 1 + k :] = on, tx, tv, t.lane
    x, speed = torch.where(present, x, 0.0), torch.where(present, speed, 0.0)
    y = lanes.to(dtype) * LANE_WIDTH  # (B, N) [m]
    controlled = present & ~script.stalled  # the stalled car is a plain Vehicle
    idm = config.idm
    behavior = Behavior(
        **{**s.behavior.__dict__, "enable_lane_change": torch.zeros_like(present)}  # no MOBIL
    )
    timer = torch.remainder((x + y) * math.pi, idm.lane_change_delay)  # (B, N) [s] IDMVehicle.__init__
    timer[:, 0] = 0.0
    target_speed = torch.where(script.stalled, 0.0, speed)  # (B, N) [m/s] IDM cruise at the start speed
    if config.action == "continuous":  # a plain Vehicle ego: no target speed, no target lane
        target_speed[:, 0] = 0.0
    else:
        controlled[:, 0] = True
    state = s.replace(
        present=present, x=x, y=y, speed=speed, lane=lanes, target_lane=lanes.clone(),
        target_speed=target_speed, timer=torch.where(present, timer, 0.0), controlled=controlled,
        behavior=behavior,
    )  # fmt: skip
    return state, script


def script_commands(
    s: BatchState, script: Script, dt: float
) -> tuple[BatchState, Script, torch.Tensor, torch.Tensor]:
    """``act`` of every vehicle with the scripts applied: (state, script, accel (B, N), steering (B, N)).

    Triggers fire first (a lane change steers and follows IDM toward the new lane in the same act),
    then the IDM commands are overridden: blind cars see no car ahead, braking cars brake, stalled
    cars stand still."""
    clock = (s.steps.to(s.dtype) * dt)[:, None]  # (B, 1) [s] ScriptedVehicle.clock at this act
    waiting = script.scripted & torch.isnan(script.triggered_at) & ~s.crashed & s.present
    side = s.x - s.x.gather(1, script.watched.clamp(min=0)) - script.trigger_gap  # (B, N) [m]
    fire = waiting & (
        (clock >= script.trigger_time - 1e-9) | ((script.watched >= 0) & (side * script.start_side <= 0))
    )
    triggered_at = torch.where(fire, clock.expand_as(s.x), script.triggered_at)
    target_lane = torch.where(fire & (script.script_lane >= 0), script.script_lane, s.target_lane)
    s = s.replace(target_lane=target_lane)
    s, accel, steering = traffic_commands(s)  # (B, N) each
    triggered = ~torch.isnan(triggered_at)
    acting = script.scripted & ~s.crashed
    free = free_road(KinTable(s).all, IdmParams.of(s.behavior)).view_as(accel)  # (B, N) [m/s²]
    acc_max = s.behavior.acc_max
    free = torch.maximum(torch.minimum(free, acc_max), -acc_max)
    accel = torch.where(acting & script.blind & ~triggered, free, accel)
    braking = acting & triggered & (clock - triggered_at >= script.brake_delay)
    fast = s.speed > script.brake_to_speed + 0.5  # (B, N)
    brake = torch.where(fast, -script.deceleration, KP_A * (script.brake_to_speed - s.speed))  # [m/s²]
    accel = torch.where(braking, torch.minimum(accel, brake), accel)
    hold = braking & ~fast  # reached: IDM cruises at brake_to_speed from the next act on
    s = s.replace(target_speed=torch.where(hold, script.brake_to_speed, s.target_speed))
    accel = torch.where(script.stalled, 0.0, accel)
    steering = torch.where(script.stalled, 0.0, steering)
    return s, replace(script, triggered_at=triggered_at), accel, steering


def family_substep(s: BatchState, script: Script, dt: float) -> tuple[BatchState, Script]:
    """One simulation step of ``simulate.substep`` with the scripts: act, move, collide."""
    ego_accel, ego_steering = ego_commands(s, dt)  # (B,)
    s, script, accel, steering = script_commands(s, script, dt)
    accel = torch.cat([ego_accel.unsqueeze(1), accel[:, 1:]], dim=1)  # (B, N) [m/s²]
    steering = torch.cat([ego_steering.unsqueeze(1), steering[:, 1:]], dim=1)  # (B, N) [rad]
    s = s.replace(timer=s.timer + dt)
    s = bicycle_step(s, accel, steering, dt, ego_speed_range(s.config.action))
    s = s.replace(speed=torch.where(script.scripted, s.speed.clamp(min=0.0), s.speed))  # never reverses
    s = ego_collisions(s, dt)
    return s.replace(steps=s.steps + 1), script


def family_step(state: BatchState, script: Script, ego_action: EgoAction) -> tuple[BatchState, Script]:
    """``simulate.step`` for family episodes: one policy step under ``ego_action``; pure."""
    cfg = state.config
    action = validate_action(state, ego_action)
    s = state.replace(time=state.time + 1 / cfg.policy_frequency)
    s = apply_action(s, action)
    for _ in range(cfg.frames):
        s, script = family_substep(s, script, cfg.dt)
    return s, script
