"""Static settings of the batched highway simulator: road geometry, model constants, env config.

Owns ``SimConfig`` (one frozen value per batch, never a tensor) and ``make_config``, which reads the
settings of a supported DriveGPT env id from its highway-env ``default_config`` so both simulators
share one source of truth. Model constants (controller gains, IDM/MOBIL defaults, vehicle size) are
read from highway-env's classes rather than copied.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from highway_env.envs.common.abstract import AbstractEnv
from highway_env.road.lane import AbstractLane
from highway_env.road.road import RoadNetwork
from highway_env.vehicle.behavior import IDMVehicle
from highway_env.vehicle.controller import ControlledVehicle
from highway_env.vehicle.kinematics import Vehicle

from drivegpt.core.errors import UserError
from drivegpt_envs.common import FEATURES, action_config
from drivegpt_envs.highway import DriveHighwayDenseEnv, DriveHighwayEnv

ActionKind = Literal["accel", "accel_lane", "meta", "continuous"]
#: ego action interfaces: ``accel`` tokens and ``accel_lane`` (acceleration, lane intent) pairs drive
#: highway-env's ``AccelLaneAction`` ego (drivegpt_envs.actions); ``meta`` and ``continuous`` are
#: highway-env's DiscreteMetaAction and ContinuousAction.
ACTION_KINDS: tuple[str, ...] = ("accel", "accel_lane", "meta", "continuous")
#: the env action kind (drivegpt_envs.common.action_config) behind each simulator action kind.
ENV_ACTION_KIND: dict[str, str] = {
    "accel": "accel",
    "accel_lane": "accel",
    "meta": "meta",
    "continuous": "continuous",
}

#: env ids the batched simulator reproduces -> their highway-env class.
SUPPORTED_ENV_IDS: dict[str, type] = {
    "drivegpt/Highway-v0": DriveHighwayEnv,
    "drivegpt/HighwayDense-v0": DriveHighwayDenseEnv,
}

_LANE = RoadNetwork.straight_road_network(1, speed_limit=30).get_lane(("0", "1", 0))

# --- vehicle and controller constants (highway_env.vehicle.*) ---
LENGTH: float = Vehicle.LENGTH  # [m]
WIDTH: float = Vehicle.WIDTH  # [m]
DIAGONAL: float = math.sqrt(LENGTH**2 + WIDTH**2)  # [m]
MAX_SPEED: float = Vehicle.MAX_SPEED  # [m/s]
MIN_SPEED: float = Vehicle.MIN_SPEED  # [m/s]
KP_A: float = ControlledVehicle.KP_A  # [1/s]
KP_HEADING: float = ControlledVehicle.KP_HEADING  # [1/s]
KP_LATERAL: float = ControlledVehicle.KP_LATERAL  # [1/s]
TAU_PURSUIT: float = ControlledVehicle.TAU_PURSUIT  # [s]
MAX_STEERING_ANGLE: float = ControlledVehicle.MAX_STEERING_ANGLE  # [rad]
# --- road constants (highway_env.road.lane) ---
LANE_WIDTH: float = AbstractLane.DEFAULT_WIDTH  # [m]
LANE_VEHICLE_LENGTH: float = AbstractLane.VEHICLE_LENGTH  # [m] longitudinal margin of on_lane
ROAD_LENGTH: float = float(_LANE.length)  # [m] straight_road_network's lane length
SPEED_LIMIT: float = float(_LANE.speed_limit)  # [m/s]
NEIGHBOUR_MARGIN: float = 1.0  # [m] lateral margin of Road.neighbour_vehicles' on_lane test


@dataclass(frozen=True)
class IdmDefaults:
    """IDM / MOBIL parameters of a highway-env ``IDMVehicle`` before ``randomize_behavior``."""

    acc_max: float = IDMVehicle.ACC_MAX  # [m/s²]
    comfort_acc_max: float = IDMVehicle.COMFORT_ACC_MAX  # [m/s²]
    comfort_acc_min: float = IDMVehicle.COMFORT_ACC_MIN  # [m/s²]
    distance_wanted: float = IDMVehicle.DISTANCE_WANTED  # [m]
    time_wanted: float = IDMVehicle.TIME_WANTED  # [s]
    delta: float = IDMVehicle.DELTA  # [] velocity exponent
    delta_range: tuple[float, float] = tuple(IDMVehicle.DELTA_RANGE)  # [] randomize_behavior's range
    politeness: float = IDMVehicle.POLITENESS  # []
    lane_change_min_acc_gain: float = IDMVehicle.LANE_CHANGE_MIN_ACC_GAIN  # [m/s²]
    lane_change_max_braking: float = IDMVehicle.LANE_CHANGE_MAX_BRAKING_IMPOSED  # [m/s²]
    lane_change_delay: float = IDMVehicle.LANE_CHANGE_DELAY  # [s]


@dataclass(frozen=True)
class SimConfig:
    """Everything static about a batch: road, traffic, ego interface, reward, observation."""

    env_id: str
    action: ActionKind
    lanes_count: int  # []
    vehicles_count: int  # [] traffic vehicles per episode (the ego excluded)
    vehicles_density: float  # []
    ego_spacing: float  # []
    simulation_frequency: int  # [Hz]
    policy_frequency: int  # [Hz]
    duration: float  # [s]
    target_speeds: tuple[float, ...]  # [m/s] meta-action speed set points
    acceleration_range: tuple[float, float]  # [m/s²] continuous ego acceleration (from [-1, 1])
    steering_range: tuple[float, float]  # [rad] continuous ego steering
    collision_reward: float
    right_lane_reward: float
    high_speed_reward: float
    reward_speed_range: tuple[float, float]  # [m/s]
    normalize_reward: bool
    offroad_terminal: bool
    obs_vehicles: int  # [] rows of the Kinematics observation
    perception_distance: float  # [m]
    see_behind: bool
    idm: IdmDefaults = field(default_factory=IdmDefaults)
    #: the ego is highway-env's stock ``IDMVehicle`` (the ``idm`` policy, ``StockIDMDriver``): IDM and
    #: MOBIL with the default parameters and a 30 m/s target speed; ego actions are accepted and ignored
    ego_idm: bool = False

    @property
    def slots(self) -> int:
        """Vehicle slots per episode: the ego (slot 0) and the traffic."""
        return 1 + self.vehicles_count

    @property
    def frames(self) -> int:
        """Simulation sub-steps per policy step."""
        return int(self.simulation_frequency // self.policy_frequency)

    @property
    def dt(self) -> float:
        """Simulation time step [s]."""
        return 1 / self.simulation_frequency


def _check_env_id(env_id: str) -> type:
    if env_id not in SUPPORTED_ENV_IDS:
        raise UserError(
            f"the batched simulator does not support env id {env_id!r}; "
            f"supported: {', '.join(SUPPORTED_ENV_IDS)}"
        )
    return SUPPORTED_ENV_IDS[env_id]


def make_config(
    env_id: str = "drivegpt/Highway-v0",
    action: ActionKind = "accel",
    env_config: dict | None = None,
    ego_idm: bool = False,
) -> SimConfig:
    """The ``SimConfig`` of a supported env id with one ego action interface.

    Settings come from the env class's ``default_config`` updated with ``env_config`` (a live env's
    ``config``, used when importing states) or, without it, with the project's action config
    (``drivegpt_envs.common.action_config``). ``accel`` and ``accel_lane`` share the ``accel`` env
    settings (policy frequency included). ``ego_idm``: the ego is highway-env's stock IDMVehicle.
    """
    env_class = _check_env_id(env_id)
    if action not in ACTION_KINDS:
        raise ValueError(f"unknown action kind {action!r}; valid: {', '.join(ACTION_KINDS)}")
    config = env_class.default_config()
    config.update(action_config(ENV_ACTION_KIND[action]))
    if env_config is not None:
        config.update(env_config)
    meta = action_config("meta")["action"]
    continuous = action_config("continuous")["action"]
    act = config["action"]
    speeds = act.get("target_speeds", meta["target_speeds"]) if action == "meta" else meta["target_speeds"]
    if action == "continuous":
        continuous = {
            **continuous,
            **{k: act[k] for k in ("acceleration_range", "steering_range") if k in act},
        }
    obs = config["observation"]
    if (
        obs.get("type") != "Kinematics"
        or obs.get("absolute", False)
        or not obs.get("normalize", True)
        or obs.get("order", "sorted") != "sorted"
        or tuple(obs.get("features", ())) != FEATURES
        or obs.get("features_range")
    ):
        raise ValueError(
            f"{env_id}: only the project's sorted, relative, normalised Kinematics observation is supported"
        )
    if config.get("other_vehicles_type") != "highway_env.vehicle.behavior.IDMVehicle":
        raise ValueError(
            f"{env_id}: only IDMVehicle traffic is supported, got {config.get('other_vehicles_type')}"
        )
    if config.get("initial_lane_id") is not None:
        raise ValueError(f"{env_id}: a fixed initial_lane_id is not supported")
    if config.get("controlled_vehicles", 1) != 1 or config.get("manual_control", False):
        raise ValueError(f"{env_id}: exactly one ego vehicle, without manual control, is supported")
    return SimConfig(
        env_id=env_id,
        action=action,
        lanes_count=int(config["lanes_count"]),
        vehicles_count=int(config["vehicles_count"]),
        vehicles_density=float(config["vehicles_density"]),
        ego_spacing=float(config["ego_spacing"]),
        simulation_frequency=int(config["simulation_frequency"]),
        policy_frequency=int(config["policy_frequency"]),
        duration=float(config["duration"]),
        target_speeds=tuple(float(v) for v in speeds),
        acceleration_range=tuple(float(a) for a in continuous["acceleration_range"]),
        steering_range=tuple(float(v) for v in continuous["steering_range"]),
        collision_reward=float(config["collision_reward"]),
        right_lane_reward=float(config["right_lane_reward"]),
        high_speed_reward=float(config["high_speed_reward"]),
        reward_speed_range=tuple(float(v) for v in config["reward_speed_range"]),
        normalize_reward=bool(config["normalize_reward"]),
        offroad_terminal=bool(config["offroad_terminal"]),
        obs_vehicles=int(obs.get("vehicles_count", 5)),
        perception_distance=float(AbstractEnv.PERCEPTION_DISTANCE),
        see_behind=bool(obs.get("see_behind", False)),
        ego_idm=ego_idm,
    )
