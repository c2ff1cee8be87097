"""A gymnasium ``VectorEnv`` over the batched highway simulator.

Owns ``BatchedHighwayVectorEnv``: ``num_envs`` episodes stepped together, with gymnasium's
``NEXT_STEP`` autoreset (an episode that ended at one ``step`` is reset by the next ``step`` call,
which ignores its action and returns the new episode's first observation, reward 0, not done).
Episode k of env i is spawned from a seed drawn from ``numpy.random.SeedSequence((seed, i, k))``, so
every episode depends only on the base seed and its own indices, never on ``num_envs``. Outputs are
numpy arrays by default, or tensors on the simulator's device with ``tensors=True``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from drivegpt.sim.batched.config import ActionKind, make_config
from drivegpt.sim.batched.ego import ACCEL_RANGE, META_ACTIONS, N_TOKENS, EgoAction
from drivegpt.sim.batched.observation import FEATURES, observe, reward, terminated, truncated
from drivegpt.sim.batched.simulate import step
from drivegpt.sim.batched.spawn import reset
from drivegpt.sim.batched.state import BatchState


def _single_action_space(kind: str) -> spaces.Space:
    if kind == "accel":
        return spaces.Discrete(N_TOKENS)
    if kind == "meta":
        return spaces.Discrete(len(META_ACTIONS))
    if kind == "continuous":
        return spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
    # accel_lane: (acceleration [m/s²], lane intent -1 / 0 / +1; the intent must be an integer)
    return spaces.Box(np.array([ACCEL_RANGE[0], -1.0]), np.array([ACCEL_RANGE[1], 1.0]), dtype=np.float64)


class BatchedHighwayVectorEnv(VectorEnv):
    """``num_envs`` highway episodes of ``env_id`` stepped as one batch (see the module docstring)."""

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(
        self,
        num_envs: int,
        env_id: str = "drivegpt/Highway-v0",
        action: ActionKind = "accel",
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float64,
        tensors: bool = False,
    ) -> None:
        self.config = make_config(env_id, action)
        self.num_envs, self.device, self.dtype, self.tensors = num_envs, torch.device(device), dtype, tensors
        rows = self.config.obs_vehicles
        self.single_observation_space = spaces.Box(-np.inf, np.inf, (rows, len(FEATURES)), dtype=np.float32)
        self.single_action_space = _single_action_space(action)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.state: BatchState | None = None
        self._seed = 0
        self._episodes = torch.zeros(num_envs, dtype=torch.long)  # episodes started per env
        self._needs_reset = torch.zeros(num_envs, dtype=torch.bool, device=self.device)

    def _seeds(self, index: torch.Tensor) -> list[int]:
        """The spawn seed of the next episode of each env ``index``."""
        return [
            int(np.random.SeedSequence((self._seed, i, k)).generate_state(1)[0])
            for i, k in zip(index.tolist(), self._episodes[index].tolist(), strict=True)
        ]

    def _out(self, t: torch.Tensor) -> Any:
        return t if self.tensors else t.cpu().numpy()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        """Start ``num_envs`` new episodes (seeds from ``seed``, or continuing the current sequence)."""
        if seed is not None:
            self._seed = int(seed)
            self._episodes.zero_()
        index = torch.arange(self.num_envs)
        self.state = reset(self._seeds(index), self.config, self.device, self.dtype)
        self._episodes += 1
        self._needs_reset.zero_()
        return self._out(observe(self.state)), {}

    def step(self, actions: EgoAction) -> tuple[Any, Any, Any, Any, dict]:
        """One policy step of every episode; episodes done at the previous call restart instead."""
        if self.state is None:
            raise RuntimeError("call reset() before step()")
        done_before = self._needs_reset
        if bool(done_before.any()) and not torch.is_tensor(actions):
            actions = np.asarray(actions)
        self.state = step(self.state, self._neutral_where(actions, done_before))
        if bool(done_before.any()):
            self._start_next(done_before.nonzero().squeeze(1).cpu())
        state = self.state
        rew = torch.where(done_before, torch.zeros_like(reward(state)), reward(state))
        term = terminated(state) & ~done_before
        trunc = truncated(state) & ~done_before
        self._needs_reset = term | trunc
        info = {"speed": self._out(state.speed[:, 0]), "crashed": self._out(state.crashed[:, 0])}
        return self._out(observe(state)), self._out(rew), self._out(term), self._out(trunc), info

    def restart(self, index: Any) -> Any:
        """Start the next episode of the envs ``index`` now (the same-step autoreset of
        stable-baselines3's ``VecEnv``) and return every env's observation."""
        if self.state is None:
            raise RuntimeError("call reset() before restart()")
        index = torch.as_tensor(np.asarray(index), dtype=torch.long).reshape(-1)
        if index.numel():
            self._start_next(index)
            self._needs_reset[index.to(self.device)] = False
        return self._out(observe(self.state))

    def _start_next(self, index: torch.Tensor) -> None:
        """Replace the episodes of envs ``index`` (K,) by their next ones, in place."""
        assert self.state is not None
        fresh = reset(self._seeds(index), self.config, self.device, self.dtype)
        self._episodes[index] += 1
        self.state = self.state.put(index.to(self.device), fresh)

    def _neutral_where(self, actions: EgoAction, mask: torch.Tensor) -> EgoAction:
        """Actions with a harmless valid one for the episodes about to be reset (their action is ignored)."""
        if not bool(mask.any()):
            return actions
        neutral = {"accel": 0, "meta": 1, "continuous": 0.0, "accel_lane": 0.0}[self.config.action]
        out = torch.as_tensor(actions, dtype=torch.float64).clone()
        out[mask.cpu()] = neutral
        return out
