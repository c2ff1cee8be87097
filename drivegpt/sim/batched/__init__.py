"""Batched highway simulator: B independent highway-env episodes stepped at once on torch tensors.

A struct-of-arrays port of highway-env's highway road (``drivegpt/Highway-v0``,
``drivegpt/HighwayDense-v0``): kinematic bicycle model, lane-following and speed controllers, IDM
traffic with MOBIL lane changes, ego-vs-traffic collisions, the Kinematics observation, HighwayEnv's
reward and episode ends. float64 on CPU by default; pass a CUDA device for the same code on GPU.
No Python loop runs over vehicles or episodes inside ``step``.

Files, in reading order: ``config`` (static settings), ``state`` (the tensors), ``road`` (lanes,
neighbour search), ``controller``, ``idm``, ``mobil``, ``kinematics``, ``collision``, ``ego`` (action
interfaces), ``simulate`` (``step``), ``observation`` (observation, reward, termination), ``spawn``
(``reset``), ``transfer`` (to/from highway-env objects), ``vector_env`` (a gymnasium VectorEnv),
``sb3_vec_env`` (a stable-baselines3 VecEnv), ``human`` (the simulated human driver, decision for
decision the same as ``drivegpt.sim.human``), ``scripted`` (the
families' scripted cars), ``scenes`` (where each family places its cars), ``traffic_collisions``
(collisions among a family's own cars), ``families`` (corner-case families ported: stalled car,
hard-braking lead, slower lead, cut-in, adversarial vehicle, stop-and-go, side swipe), ``drive``
(one batch of episodes driven to its end by any driver).

Usage::

    config = make_config("drivegpt/HighwayDense-v0", action="accel")
    state = reset(range(1024), config)  # one episode per seed
    state = step(state, torch.full((1024,), 24))  # accel token 24: 0 m/s², keep lane
    obs, r, done = observe(state), reward(state), terminated(state) | truncated(state)
"""

from __future__ import annotations

from drivegpt.sim.batched.config import ACTION_KINDS, SUPPORTED_ENV_IDS, SimConfig, make_config
from drivegpt.sim.batched.ego import META_ACTIONS, validate_action
from drivegpt.sim.batched.human import BatchedHuman
from drivegpt.sim.batched.observation import FEATURES, observe, on_road, reward, terminated, truncated
from drivegpt.sim.batched.simulate import step
from drivegpt.sim.batched.spawn import empty_state, reset
from drivegpt.sim.batched.state import BatchState, Behavior, concat
from drivegpt.sim.batched.transfer import from_highway_env, to_highway_env
from drivegpt.sim.batched.vector_env import BatchedHighwayVectorEnv

__all__ = [
    "ACTION_KINDS",
    "FEATURES",
    "META_ACTIONS",
    "SUPPORTED_ENV_IDS",
    "BatchState",
    "BatchedHuman",
    "BatchedHighwayVectorEnv",
    "Behavior",
    "SimConfig",
    "concat",
    "empty_state",
    "from_highway_env",
    "make_config",
    "observe",
    "on_road",
    "reset",
    "reward",
    "step",
    "terminated",
    "to_highway_env",
    "truncated",
    "validate_action",
]
