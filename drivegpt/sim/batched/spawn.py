"""Episode creation: ``reset(seeds, config)`` spawns the ego and traffic like ``HighwayEnv._create_vehicles``.

Owns ``reset`` and ``empty_state``. Each episode draws its random numbers from its own
``torch.Generator`` seeded with the episode seed, so an episode depends only on its seed, never on the
batch size or its position in the batch. The *distribution* matches highway-env's
(``Vehicle.create_random``: uniform lane, speed uniform in [0.7, 0.8] x the speed limit for traffic,
25 m/s for the ego, each vehicle placed behind-to-front at ``spacing * (12 + speed) * exp(-5/40 *
lanes)`` x U(0.9, 1.1) ahead of the previous one; ``randomize_behavior``: delta uniform in
``DELTA_RANGE``; MOBIL timers ``(x + y) * pi mod LANE_CHANGE_DELAY``); the random numbers themselves
are not highway-env's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from drivegpt.sim.batched.config import LANE_WIDTH, SPEED_LIMIT, SimConfig
from drivegpt.sim.batched.state import BatchState, Behavior

EGO_SPEED = 25.0  # [m/s] HighwayEnv._create_vehicles
IDM_EGO_TARGET_SPEED = 30.0  # [m/s] StockIDMDriver: the lane's speed limit


def empty_state(
    config: SimConfig, batch: int, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float64
) -> BatchState:
    """A batch with every slot absent and default behaviour parameters (filled in by callers)."""
    n = config.slots
    idm = config.idm

    def full(value: float, shape: tuple[int, ...] = (batch, n)) -> torch.Tensor:
        return torch.full(shape, value, dtype=dtype, device=device)

    behavior = Behavior(
        acc_max=full(idm.acc_max),
        comfort_acc_max=full(idm.comfort_acc_max),
        comfort_acc_min=full(idm.comfort_acc_min),
        distance_wanted=full(idm.distance_wanted),
        time_wanted=full(idm.time_wanted),
        delta=full(idm.delta),
        politeness=full(idm.politeness),
        lane_change_min_acc_gain=full(idm.lane_change_min_acc_gain),
        lane_change_max_braking=full(idm.lane_change_max_braking),
        lane_change_delay=full(idm.lane_change_delay),
        enable_lane_change=torch.ones(batch, n, dtype=torch.bool, device=device),
    )
    zeros_long = torch.zeros(batch, n, dtype=torch.long, device=device)
    false = torch.zeros(batch, n, dtype=torch.bool, device=device)
    return BatchState(
        config=config,
        present=false.clone(),
        x=full(0.0),
        y=full(0.0),
        heading=full(0.0),
        speed=full(0.0),
        lane=zeros_long.clone(),
        target_lane=zeros_long.clone(),
        target_speed=full(0.0),
        timer=full(0.0),
        crashed=false.clone(),
        impact=full(0.0, (batch, n, 2)),
        has_impact=false.clone(),
        controlled=false.clone(),
        behavior=behavior,
        ego_accel=full(0.0, (batch,)),
        ego_steering=full(0.0, (batch,)),
        time=full(0.0, (batch,)),
        steps=torch.zeros(batch, dtype=torch.long, device=device),
    )


def _draws(seed: int, config: SimConfig) -> torch.Tensor:
    """(N, 4) uniforms of one episode: lane, speed, spacing jitter, IDM delta per vehicle."""
    generator = torch.Generator().manual_seed(int(seed))
    return torch.rand(config.slots, 4, generator=generator, dtype=torch.float64)


def reset(
    seeds: Sequence[int] | torch.Tensor,
    config: SimConfig,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float64,
) -> BatchState:
    """New episodes, one per seed (B = len(seeds)), spawned with highway-env's distribution."""
    seeds = [int(x) for x in (seeds.tolist() if torch.is_tensor(seeds) else seeds)]
    if not seeds:
        raise ValueError("reset needs at least one seed")
    u = torch.stack([_draws(seed, config) for seed in seeds]).to(device=device, dtype=dtype)  # (B, N, 4)
    s = empty_state(config, len(seeds), device, dtype)
    k, idm = config.lanes_count, config.idm
    lane = (u[..., 0] * k).floor().long().clamp(max=k - 1)  # (B, N) uniform lane
    speed = 0.7 * SPEED_LIMIT + u[..., 1] * (0.8 * SPEED_LIMIT - 0.7 * SPEED_LIMIT)  # (B, N) [m/s]
    speed[:, 0] = EGO_SPEED
    spacing = torch.full_like(speed, 1 / config.vehicles_density)
    spacing[:, 0] = config.ego_spacing
    offset = spacing * (12 + 1.0 * speed) * math.exp(-5 / 40 * k)  # (B, N) [m] create_random
    jitter = 0.9 + u[..., 2] * (1.1 - 0.9)  # (B, N)
    step = offset * jitter  # (B, N) [m] distance to the previous (farthest) vehicle
    step[:, 0] = step[:, 0] + 3 * offset[:, 0]  # the first vehicle starts at 3 offsets
    x = torch.cumsum(step, dim=1)  # (B, N) [m]
    y = lane.to(dtype) * LANE_WIDTH  # (B, N) [m]
    lo, hi = idm.delta_range
    delta = lo + u[..., 3] * (hi - lo)  # (B, N) randomize_behavior
    timer = torch.remainder((x + y) * math.pi, idm.lane_change_delay)  # (B, N) [s] IDMVehicle.__init__
    target_speed = speed.clone()
    controlled = torch.ones_like(s.present)
    if config.ego_idm:  # StockIDMDriver.reset: a fresh IDMVehicle, default delta, timer from its position
        delta[:, 0], target_speed[:, 0] = idm.delta, IDM_EGO_TARGET_SPEED
    else:
        timer[:, 0] = 0.0
    if config.action == "continuous":  # a plain Vehicle: no target speed, no target lane
        target_speed[:, 0] = 0.0
        controlled[:, 0] = False
    return s.replace(
        present=torch.ones_like(s.present),
        x=x,
        y=y,
        speed=speed,
        lane=lane,
        target_lane=lane.clone(),
        target_speed=target_speed,
        timer=timer,
        controlled=controlled,
        behavior=Behavior(**{**s.behavior.__dict__, "delta": delta}),
    )
