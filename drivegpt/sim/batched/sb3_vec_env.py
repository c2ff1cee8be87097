"""The batched simulator as a stable-baselines3 ``VecEnv``, so SB3 algorithms train on it unchanged.

Owns ``BatchedSB3VecEnv``: a thin adapter over
:class:`~drivegpt.sim.batched.vector_env.BatchedHighwayVectorEnv` with SB3's conventions instead of
gymnasium's: an episode that ends is restarted in the same ``step`` (its last observation in
``infos[i]["terminal_observation"]``, ``infos[i]["TimeLimit.truncated"]`` set when the time limit, not
a crash, ended it), ``dones = terminated | truncated``, and ``infos[i]["episode"]`` = ``{"r", "l",
"t"}`` as SB3's ``Monitor`` writes it, so ``ep_rew_mean`` and ``ep_len_mean`` are logged. Seeds follow
the vector env's scheme: the episodes depend only on the base seed (``seed()`` or the constructor's)
and their indices, never on ``num_envs``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.vec_env import VecEnv

from drivegpt.sim.batched.config import ActionKind
from drivegpt.sim.batched.vector_env import BatchedHighwayVectorEnv


class BatchedSB3VecEnv(VecEnv):
    """``num_envs`` episodes of ``env_id`` on the batched simulator, behind SB3's ``VecEnv`` API."""

    render_mode = None

    def __init__(
        self,
        num_envs: int,
        env_id: str = "drivegpt/Highway-v0",
        action: ActionKind = "accel",
        seed: int = 0,
        device: torch.device | str = "cpu",
    ) -> None:
        self.venv = BatchedHighwayVectorEnv(num_envs, env_id, action, device)
        self.base_seed = int(seed)
        super().__init__(num_envs, self.venv.single_observation_space, self.venv.single_action_space)
        self._actions: np.ndarray | None = None
        self._return = np.zeros(num_envs)  # reward summed over the running episode of each env
        self._length = np.zeros(num_envs, dtype=np.int64)  # policy steps of the running episode
        self._t0 = time.time()

    def reset(self) -> np.ndarray:
        """Start ``num_envs`` episodes from the base seed (or the one given to ``seed()``)."""
        if self._seeds[0] is not None:
            self.base_seed = int(self._seeds[0])
        self._reset_seeds()
        obs, _ = self.venv.reset(seed=self.base_seed)
        self._return[:], self._length[:] = 0.0, 0
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        if self._actions is None:
            raise RuntimeError("step_async must come before step_wait")
        obs, rew, term, trunc, _ = self.venv.step(self._actions)
        self._actions = None
        self._return += rew
        self._length += 1
        dones = term | trunc
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        ended = np.flatnonzero(dones)
        for i in ended:
            episode = {"r": float(self._return[i]), "l": int(self._length[i]), "t": time.time() - self._t0}
            infos[i] = {
                "terminal_observation": obs[i],
                "TimeLimit.truncated": bool(trunc[i] and not term[i]),
                "episode": episode,
            }
        if ended.size:
            obs = self.venv.restart(ended)
            self._return[ended], self._length[ended] = 0.0, 0
        return obs, rew.astype(np.float32), dones, infos

    def close(self) -> None:
        self.venv.state = None

    # -- the attribute API SB3 uses on sub-environments: one simulator stands for all of them -----------
    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        value = getattr(self, attr_name) if attr_name == "render_mode" else getattr(self.venv, attr_name)
        return [value for _ in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        setattr(self.venv, attr_name, value)

    def env_method(self, method_name: str, *args: Any, indices: Any = None, **kwargs: Any) -> list[Any]:
        raise NotImplementedError(f"{method_name}: the batched simulator has no per-env objects to call")

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False for _ in self._indices(indices)]

    def _indices(self, indices: Any) -> Sequence[int]:
        if indices is None:
            return range(self.num_envs)
        return [indices] if isinstance(indices, int) else list(indices)
