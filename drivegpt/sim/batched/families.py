"""Corner-case families on the batched simulator: scripted scenes spawned and stepped B at a time.

Owns the batched port of the straight-road families of ``drivegpt_envs.families`` (``stalled_car``,
``hard_braking_lead``, ``slower_lead``, ``cut_in``, ``adversarial_vehicle``, ``stop_and_go``,
``side_swipe``): ``family_config`` (their ``SimConfig``), ``family_reset`` (B initial states from a
(B, d) parameter array in the family's own ``PARAMS`` order) and ``family_step`` (one policy step
with the scripted vehicles' behaviour of ``drivegpt_envs.families.vehicles``, ported in
``scripted``: ``Script`` and ``script_commands``).

Layout per episode, as in the highway-env family (``scenes``: ``SCENES``, ``place_scripted``): the
ego in slot 0 (the family's ego lane, x = ``EGO_X``), then the family's scripted cars, then the
background traffic of one lane (IDM, no lane changes) if the family has any, drawn from a per-episode
``torch.Generator`` seeded with the episode seed: the same distribution as the env's
``_add_traffic``, not its random numbers. The scripted cars are exact: same positions, speeds,
triggers, manoeuvres and IDM settings. Cars placed by the ego's cruise speed (``cut_in``,
``adversarial_vehicle``, ``side_swipe``) take ``FamilyHighwayEnv._cruise_speed``: the ego's speed,
snapped to the nearest set point for a ``meta`` ego. ``stop_and_go``'s platoon has
``round(platoon_size)`` cars (0 to 3, half to even as Python rounds): its slots run ego, platoon,
wave leader, then empty slots, as the env's vehicle list.

As in the rest of the batched simulator only the ego's collisions are tested, but for the cars a
family marks ``Script.collides`` (``stop_and_go``'s platoon, which can pile up under the hardest
waves; every car of ``stalled_car``, whose lead swerves into the right lane's traffic): their pairs
are tested too (``traffic_collisions``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch

from drivegpt.sim.batched.collision import ego_collisions
from drivegpt.sim.batched.config import ENV_ACTION_KIND, LANE_WIDTH, ActionKind, SimConfig, make_config
from drivegpt.sim.batched.ego import (
    EgoAction,
    _speed_to_index,
    apply_action,
    ego_commands,
    ego_speed_range,
    validate_action,
)
from drivegpt.sim.batched.kinematics import bicycle_step
from drivegpt.sim.batched.scenes import SCENES, Scene, place_scripted
from drivegpt.sim.batched.scripted import Script, script_commands
from drivegpt.sim.batched.spawn import empty_state
from drivegpt.sim.batched.state import BatchState, Behavior
from drivegpt.sim.batched.traffic_collisions import traffic_collisions
from drivegpt_envs.common import action_config
from drivegpt_envs.families import FAMILIES, family_class
from drivegpt_envs.families.base import EGO_X

#: the families with a batched port
BATCHED_FAMILIES: tuple[str, ...] = tuple(SCENES)


class BatchedFamilyError(ValueError):
    """A family without a batched port, or parameters of the wrong shape or out of range."""


def _family_spec(family: str) -> tuple[type, Scene]:
    if family not in SCENES:
        raise BatchedFamilyError(
            f"scenario family {family!r} has no batched port; batched families: {', '.join(SCENES)}"
        )
    return family_class(family), SCENES[family]


def traffic_slots(family: str) -> int:
    """Most background cars ``_add_traffic`` can place in this family (over its whole parameter box)."""
    cls, scene = _family_spec(family)
    t = scene.traffic
    if t is None:
        return 0
    far = t.anchor({name: spec.high for name, spec in cls.PARAMS.items()})  # [m] x_to - EGO_X - extra
    spacing = cls.PARAMS[t.spacing].low if isinstance(t.spacing, str) else t.spacing  # [m] the densest
    # the first car within one spacing of x_from, then at least 0.7 spacing apart, all before x_to
    return int(math.floor((far + t.extra - t.x_from) / (0.7 * spacing))) + 1


def family_config(
    family: str, action: ActionKind = "accel", env_config: dict | None = None, duration: float | None = None
) -> SimConfig:
    """The ``SimConfig`` of a family: its road, frequencies and episode length, the ego interface of
    ``action`` (plus a policy's ``env_config``), slots for its scripted cars and traffic.
    ``duration`` [s] shortens the episode (default: the family's)."""
    cls, scene = _family_spec(family)
    env = cls.default_config()
    env.update(action_config(ENV_ACTION_KIND[action]))  # type: ignore[arg-type]
    env.update(env_config or {})
    base = make_config("drivegpt/Highway-v0", action, env_config)  # ego interface settings
    return replace(
        base,
        env_id=FAMILIES[family],
        lanes_count=int(env["lanes_count"]),
        vehicles_count=scene.scripted + traffic_slots(family),
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


def _cruise_speed(ego_speed: torch.Tensor, config: SimConfig) -> torch.Tensor:
    """``FamilyHighwayEnv._cruise_speed`` (B,) [m/s]: the ego's speed; a ``meta`` ego's target speed
    (``MDPVehicle``) is snapped to the nearest set point."""
    if config.action != "meta":
        return ego_speed
    speeds = torch.tensor(config.target_speeds, dtype=ego_speed.dtype, device=ego_speed.device)  # (S,)
    return speeds[_speed_to_index(ego_speed, speeds)]


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
    cls, scene = _family_spec(family)
    k, t = scene.scripted, scene.traffic
    col = {name: p[:, j] for j, name in enumerate(cls.PARAMS)}  # each (B,)
    n = config.slots
    s = empty_state(config, p.shape[0], device, dtype)
    x, speed, lanes = s.x.clone(), s.speed.clone(), s.lane.clone()
    present = s.present.clone()
    headway, jam = s.behavior.time_wanted.clone(), s.behavior.distance_wanted.clone()
    script = Script.inert(s.present, s.x)
    ego_speed = col[scene.ego_speed]  # [m/s]
    x[:, 0], speed[:, 0], lanes[:, 0], present[:, : 1 + k] = EGO_X, ego_speed, scene.ego_lane, True
    cars = {"x": x, "speed": speed, "lane": lanes, "present": present}  # (B, N) each, written in place
    cars |= {"time_wanted": headway, "distance_wanted": jam}  # (B, N) [s], [m] per-vehicle IDM
    place_scripted(family, col, _cruise_speed(ego_speed, config), cars, script)
    side = x - x.gather(1, script.watched.clamp(min=0)) - script.trigger_gap  # (B, N) [m]
    script.start_side.copy_(torch.where(side >= 0, 1.0, -1.0))
    if t is not None:
        start = torch.full_like(ego_speed, EGO_X + t.x_from)  # (B,) [m]
        x_to = torch.as_tensor(EGO_X + t.anchor(col) + t.extra).to(ego_speed).expand_as(ego_speed)  # (B,) [m]
        spacing = col[t.spacing] if isinstance(t.spacing, str) else torch.full_like(ego_speed, t.spacing)
        on, tx, tv = _traffic(seeds, n - 1 - k, start, x_to, ego_speed + t.speed_offset, spacing)
        present[:, 1 + k :], x[:, 1 + k :], speed[:, 1 + k :], lanes[:, 1 + k :] = on, tx, tv, t.lane
    x, speed = torch.where(present, x, 0.0), torch.where(present, speed, 0.0)
    y = lanes.to(dtype) * LANE_WIDTH  # (B, N) [m]
    controlled = present & ~script.stalled  # the stalled car is a plain Vehicle
    idm = config.idm
    no_mobil = torch.zeros_like(present)  # (B, N) no lane changes
    behavior = Behavior(
        **{
            **s.behavior.__dict__,
            "enable_lane_change": no_mobil,
            "time_wanted": headway,
            "distance_wanted": jam,
        }
    )
    timer = torch.remainder((x + y) * math.pi, idm.lane_change_delay)  # (B, N) [s] IDMVehicle.__init__
    timer[:, 0] = 0.0
    target_speed = torch.where(script.stalled, 0.0, speed)  # (B, N) [m/s] IDM cruise at the start speed
    if config.action == "continuous":  # a plain Vehicle ego: no target speed, no target lane
        target_speed[:, 0] = 0.0
    else:  # an MDPVehicle ego (meta) snaps its target speed to the nearest set point
        target_speed[:, 0] = _cruise_speed(ego_speed, config)
        controlled[:, 0] = True
    state = s.replace(
        present=present, x=x, y=y, speed=speed, lane=lanes, target_lane=lanes.clone(),
        target_speed=target_speed, timer=torch.where(present, timer, 0.0), controlled=controlled,
        behavior=behavior,
    )  # fmt: skip
    return state, script


def family_substep(s: BatchState, script: Script, dt: float) -> tuple[BatchState, Script]:
    """One simulation step of ``simulate.substep`` with the scripts: act, move, collide."""
    ego_accel, ego_steering = ego_commands(s, dt)  # (B,)
    s, script, accel, steering = script_commands(s, script, dt)
    accel = torch.cat([ego_accel.unsqueeze(1), accel[:, 1:]], dim=1)  # (B, N) [m/s²]
    steering = torch.cat([ego_steering.unsqueeze(1), steering[:, 1:]], dim=1)  # (B, N) [rad]
    s = s.replace(timer=s.timer + dt)
    s = bicycle_step(s, accel, steering, dt, ego_speed_range(s.config.action))
    s = s.replace(speed=torch.where(script.scripted, s.speed.clamp(min=0.0), s.speed))  # never reverses
    s = traffic_collisions(ego_collisions(s, dt), script.collides, dt)
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
