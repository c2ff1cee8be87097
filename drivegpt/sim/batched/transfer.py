"""State transfer between highway-env objects and a ``BatchState``.

Owns ``from_highway_env`` (import every vehicle of one or more live envs: kinematics, lanes, targets,
IDM/MOBIL parameters, timers, crash and pending impacts, episode time) and ``to_highway_env`` (write
one episode back into an env's objects, for rendering and parity checks). Only what the batched
simulator reproduces is accepted; anything else raises ``ValueError`` naming what is unsupported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch
from highway_env.envs.common.abstract import AbstractEnv
from highway_env.envs.common.action import ContinuousAction, DiscreteMetaAction
from highway_env.vehicle.behavior import IDMVehicle
from highway_env.vehicle.controller import ControlledVehicle, MDPVehicle
from highway_env.vehicle.kinematics import Vehicle

from drivegpt.sim.batched.config import (
    LENGTH,
    MAX_SPEED,
    MIN_SPEED,
    SUPPORTED_ENV_IDS,
    WIDTH,
    SimConfig,
    make_config,
)
from drivegpt.sim.batched.ego import ego_speed_range
from drivegpt.sim.batched.spawn import empty_state
from drivegpt.sim.batched.state import BatchState, Behavior
from drivegpt_envs.actions import AccelLaneAction, AccelVehicle

#: BatchState.behavior field -> IDMVehicle attribute.
BEHAVIOR_ATTRIBUTES: dict[str, str] = {
    "acc_max": "ACC_MAX",
    "comfort_acc_max": "COMFORT_ACC_MAX",
    "comfort_acc_min": "COMFORT_ACC_MIN",
    "distance_wanted": "DISTANCE_WANTED",
    "time_wanted": "TIME_WANTED",
    "delta": "DELTA",
    "politeness": "POLITENESS",
    "lane_change_min_acc_gain": "LANE_CHANGE_MIN_ACC_GAIN",
    "lane_change_max_braking": "LANE_CHANGE_MAX_BRAKING_IMPOSED",
    "lane_change_delay": "LANE_CHANGE_DELAY",
}


def _env_config(env: object, accel_kind: str = "accel") -> SimConfig:
    u = env.unwrapped if hasattr(env, "unwrapped") else env
    ids = [i for i, cls in SUPPORTED_ENV_IDS.items() if type(u) is cls]
    if not isinstance(u, AbstractEnv) or not ids:
        raise ValueError(
            f"cannot import {type(u).__name__}: the batched simulator supports {', '.join(SUPPORTED_ENV_IDS)}"
        )
    action = u.action_type
    if type(action) is AccelLaneAction:
        kind = accel_kind
    elif type(action) is DiscreteMetaAction and action.longitudinal and action.lateral:
        kind = "meta"
    elif (
        type(action) is ContinuousAction
        and action.longitudinal
        and action.lateral
        and action.clip
        and not action.dynamical
        and not action.speed_range
    ):
        kind = "continuous"
    else:
        raise ValueError(
            f"unsupported action type {type(action).__name__} (supported: AccelLaneAction, "
            "DiscreteMetaAction, ContinuousAction with throttle and steering)"
        )
    return make_config(ids[0], kind, env_config=u.config)


def _lane_id(index: tuple, what: str) -> int:
    if index is None or tuple(index[:2]) != ("0", "1"):
        raise ValueError(f"{what} lane index {index} is not on the straight highway road ('0', '1', k)")
    return int(index[2])


def _ego_idm(env: object) -> bool:
    """Whether the env's ego is a stock IDMVehicle (``StockIDMDriver``, the ``idm`` policy)."""
    u = env.unwrapped if hasattr(env, "unwrapped") else env
    return bool(u.road.vehicles) and type(u.road.vehicles[0]) is IDMVehicle


def _check_vehicle(v: Vehicle, i: int, ego_kind: str, ego_idm: bool = False) -> None:
    if i == 0 and not ego_idm:
        expected = {"meta": MDPVehicle, "continuous": Vehicle}.get(ego_kind, AccelVehicle)
        if type(v) is not expected:
            raise ValueError(
                f"the ego is a {type(v).__name__}; with {ego_kind} actions it must be {expected.__name__}"
            )
    elif type(v) is not IDMVehicle:
        raise ValueError(f"vehicle {i} is a {type(v).__name__}: only IDMVehicle traffic can be represented")
    speeds = ego_speed_range(ego_kind) if i == 0 and not ego_idm else (MIN_SPEED, MAX_SPEED)
    if (v.LENGTH, v.WIDTH, v.MIN_SPEED, v.MAX_SPEED) != (LENGTH, WIDTH, *speeds):
        raise ValueError(f"vehicle {i} has a non-default size or speed limit")
    if not (v.collidable and v.solid) or v.check_collisions != (i == 0):
        raise ValueError(
            f"vehicle {i}: only HighwayEnvFast collision settings (ego-vs-traffic) are supported"
        )
    route = getattr(v, "route", None)
    if route and any(r[2] is not None for r in route[:1]):
        raise ValueError(f"vehicle {i} follows a route with a fixed lane, which is not supported")


def from_highway_env(
    envs: Sequence[object],
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float64,
    accel_kind: str = "accel",
) -> BatchState:
    """Import the current state of live highway-env envs (one episode each) as a batch.

    Envs driven by ``AccelLaneAction`` import as ``accel`` (tokens) or, with ``accel_kind="accel_lane"``,
    as (acceleration, lane intent) pairs. An ego that is a stock ``IDMVehicle`` (the ``idm`` policy)
    imports with ``SimConfig.ego_idm``.
    """
    if not envs:
        raise ValueError("from_highway_env needs at least one env")
    if accel_kind not in ("accel", "accel_lane"):
        raise ValueError(f"accel_kind must be accel or accel_lane, got {accel_kind!r}")
    configs = [replace(_env_config(env, accel_kind), ego_idm=_ego_idm(env)) for env in envs]
    config = configs[0]
    if any(c != config for c in configs):
        raise ValueError("all envs of a batch must share one configuration")
    n, bsz = config.slots, len(envs)
    f = {
        k: np.zeros((bsz, n))
        for k in ("x", "y", "heading", "speed", "target_speed", "timer", "ego_accel", "ego_steering", "time")
    }
    i64 = {k: np.zeros((bsz, n), dtype=np.int64) for k in ("lane", "target_lane", "steps")}
    flags = {
        k: np.zeros((bsz, n), dtype=bool)
        for k in ("present", "crashed", "has_impact", "controlled", "enable_lane_change")
    }
    impact = np.zeros((bsz, n, 2))
    params = {
        k: np.full((bsz, n), getattr(IDMVehicle, a), dtype=np.float64) for k, a in BEHAVIOR_ATTRIBUTES.items()
    }
    for b, env in enumerate(envs):
        u = env.unwrapped if hasattr(env, "unwrapped") else env
        road = u.road
        if road.objects:
            raise ValueError("road objects (obstacles, landmarks) are not supported")
        if len(u.controlled_vehicles) != 1 or not road.vehicles or road.vehicles[0] is not u.vehicle:
            raise ValueError(
                "the ego must be the single controlled vehicle and the first vehicle of the road"
            )
        if len(road.vehicles) > n:
            raise ValueError(f"{len(road.vehicles)} vehicles do not fit in {n} slots")
        for i, v in enumerate(road.vehicles):
            _check_vehicle(v, i, config.action, config.ego_idm)
            f["x"][b, i], f["y"][b, i] = v.position
            f["heading"][b, i], f["speed"][b, i] = v.heading, v.speed
            i64["lane"][b, i] = _lane_id(v.lane_index, f"vehicle {i}")
            controlled = isinstance(v, ControlledVehicle)
            flags["controlled"][b, i] = controlled
            flags["present"][b, i] = True
            flags["crashed"][b, i] = v.crashed
            i64["target_lane"][b, i] = (
                _lane_id(v.target_lane_index, f"vehicle {i} target") if controlled else i64["lane"][b, i]
            )
            f["target_speed"][b, i] = getattr(v, "target_speed", 0)
            if v.impact is not None:
                flags["has_impact"][b, i] = True
                impact[b, i] = v.impact
            if isinstance(v, IDMVehicle):
                f["timer"][b, i] = v.timer
                flags["enable_lane_change"][b, i] = v.enable_lane_change
                for k, a in BEHAVIOR_ATTRIBUTES.items():
                    params[k][b, i] = getattr(v, a)
        if config.ego_idm:
            pass  # an IDMVehicle holds no commanded action between steps
        elif config.action == "continuous":
            f["ego_accel"][b, 0] = float(u.vehicle.action["acceleration"])
            f["ego_steering"][b, 0] = float(u.vehicle.action["steering"])
        elif config.action in ("accel", "accel_lane"):
            f["ego_accel"][b, 0] = float(u.vehicle.commanded_acceleration)
        f["time"][b, 0], i64["steps"][b, 0] = u.time, u.steps
    s = empty_state(config, bsz, device, dtype)

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a, device=device, dtype=dtype if a.dtype == np.float64 else None)

    return s.replace(
        **{k: t(f[k]) for k in ("x", "y", "heading", "speed", "target_speed", "timer")},
        **{k: t(i64[k]) for k in ("lane", "target_lane")},
        **{k: t(flags[k]) for k in ("present", "crashed", "has_impact", "controlled")},
        impact=t(impact),
        behavior=Behavior(
            **{k: t(v) for k, v in params.items()}, enable_lane_change=t(flags["enable_lane_change"])
        ),
        ego_accel=t(f["ego_accel"][:, 0]),
        ego_steering=t(f["ego_steering"][:, 0]),
        time=t(f["time"][:, 0]),
        steps=t(i64["steps"][:, 0]),
    )


def to_highway_env(state: BatchState, b: int, env: object) -> None:
    """Write episode ``b`` of ``state`` into ``env`` (same env id and action kind), replacing its vehicles.

    The ego becomes the env's action vehicle class (AccelVehicle, MDPVehicle or Vehicle), or an
    IDMVehicle under ``SimConfig.ego_idm``; the traffic IDMVehicles with their parameters.
    """
    u = env.unwrapped if hasattr(env, "unwrapped") else env
    cfg = state.config
    kind = cfg.action if cfg.action in ("accel", "accel_lane") else "accel"
    if replace(_env_config(u, kind), ego_idm=cfg.ego_idm) != cfg:
        raise ValueError("the env's configuration differs from the state's")
    s = state.select([b]).to("cpu")
    road = u.road
    vehicles: list[Vehicle] = []
    for i in np.flatnonzero(s.present[0].numpy()):
        pos = np.array([s.x[0, i].item(), s.y[0, i].item()])
        heading, speed = s.heading[0, i].item(), s.speed[0, i].item()
        if i == 0 and not cfg.ego_idm:
            v = u.action_type.vehicle_class(road, pos, heading, speed)
        else:
            v = IDMVehicle(road, pos, heading, speed)
            v.timer = s.timer[0, i].item()
            v.enable_lane_change = bool(s.behavior.enable_lane_change[0, i])
            for k, a in BEHAVIOR_ATTRIBUTES.items():
                setattr(v, a, getattr(s.behavior, k)[0, i].item())
            v.check_collisions = i == 0
        lane = int(s.lane[0, i])
        v.lane_index = ("0", "1", lane)
        v.lane = road.network.get_lane(v.lane_index)
        if isinstance(v, ControlledVehicle):
            v.target_lane_index = ("0", "1", int(s.target_lane[0, i]))
            v.target_speed = s.target_speed[0, i].item()
            if isinstance(v, MDPVehicle):
                v.speed_index = v.speed_to_index(v.target_speed)
        v.crashed = bool(s.crashed[0, i])
        v.impact = s.impact[0, i].numpy().copy() if bool(s.has_impact[0, i]) else None
        vehicles.append(v)
    if cfg.ego_idm:
        pass
    elif cfg.action == "continuous":
        vehicles[0].action = {"acceleration": s.ego_accel[0].item(), "steering": s.ego_steering[0].item()}
    elif cfg.action in ("accel", "accel_lane"):
        vehicles[0].commanded_acceleration = s.ego_accel[0].item()
    road.vehicles = vehicles
    u.controlled_vehicles = [vehicles[0]]
    u.time, u.steps = s.time[0].item(), int(s.steps[0])
