"""The settings of ``drivegpt baseline train``: :class:`BaselineConfig`, its SB3 hyperparameters checked
when the config is read (unknown names with the valid ones, values out of range), and the YAML names
of activation functions. The trainer and the exported policies are :mod:`drivegpt.policies.sb3`."""

from __future__ import annotations

import inspect
import math
from typing import Any, Literal

import torch
from pydantic import Field, field_validator, model_validator

from drivegpt.core.config import FrozenConfig
from drivegpt.core.errors import UserError
from drivegpt.sim.rollout import Simulator
from drivegpt_envs.common import ActionKind

Algo = Literal["dqn", "ppo"]

#: constructor arguments that the trainer sets itself or that need Python objects (not YAML)
_NOT_HYPERPARAMS = {
    "self", "policy", "env", "tensorboard_log", "verbose", "seed", "device", "_init_setup_model",
    "replay_buffer_class", "rollout_buffer_class", "replay_buffer_kwargs", "rollout_buffer_kwargs",
}  # fmt: skip
#: policy_kwargs that can be given in YAML (activation functions by name)
_POLICY_KWARGS = {"net_arch", "activation_fn", "ortho_init", "log_std_init", "normalize_images"}
ACTIVATIONS: dict[str, type[torch.nn.Module]] = {
    "tanh": torch.nn.Tanh,
    "relu": torch.nn.ReLU,
    "elu": torch.nn.ELU,
    "leaky_relu": torch.nn.LeakyReLU,
}


def algo_class(algo: str) -> Any:
    """The stable-baselines3 class of ``algo`` (imported when first needed)."""
    from stable_baselines3 import DQN, PPO

    return {"dqn": DQN, "ppo": PPO}[algo]


def valid_hyperparams(algo: str) -> list[str]:
    """The SB3 constructor arguments a YAML config may set for ``algo``."""
    params = inspect.signature(algo_class(algo).__init__).parameters
    return sorted(set(params) - _NOT_HYPERPARAMS)


#: SB3 hyperparameters that must be > 0, and those that lie in [0, 1]
_POSITIVE = {"learning_rate", "n_steps", "batch_size", "n_epochs", "buffer_size", "clip_range",
             "max_grad_norm", "train_freq", "target_update_interval"}  # fmt: skip
_UNIT = {"gamma", "gae_lambda", "tau", "exploration_fraction", "exploration_initial_eps",
         "exploration_final_eps"}  # fmt: skip


class BaselineConfig(FrozenConfig):
    """``drivegpt baseline train``: algorithm, env and SB3 hyperparameters (rl-zoo style)."""

    algo: Algo = "ppo"
    """``dqn`` (discrete: accel or meta) or ``ppo`` (any action interface)."""
    env_id: str = "drivegpt/Highway-v0"
    """Gymnasium id to train on (``drivegpt/`` or stock highway-env)."""
    action: ActionKind = "accel"
    """Action interface: ``accel`` (Discrete(42)), ``meta`` (Discrete(5)) or ``continuous`` (Box(2):
    acceleration, steering)."""
    env_config: dict[str, Any] = {}
    """highway-env config overrides on top of DriveGPT's observation and action settings."""
    total_steps: int = Field(100_000, ge=1)
    """Simulator steps (policy steps, summed over the parallel envs)."""
    sim: Simulator = "highway-env"
    """``highway-env`` (the reference: ``n_envs`` envs in subprocesses) or ``batched`` (``n_envs``
    episodes stepped together on the batched simulator, ``drivegpt/Highway-v0`` and
    ``drivegpt/HighwayDense-v0`` only, no ``env_config``)."""
    n_envs: int | None = Field(None, ge=1)
    """Parallel envs (highway-env: SubprocVecEnv when > 1, None: one per core; batched: episodes
    stepped together, None: 64)."""
    seed: int = Field(0, ge=0)
    """Seed of the networks, the exploration and the envs (env i is seeded ``seed + i``)."""
    checkpoint_every: int = Field(10_000, ge=1)
    """Write the resumable checkpoint every this many steps."""
    hyperparams: dict[str, Any] = {}
    """SB3 constructor arguments (``learning_rate``, ``policy_kwargs``: {net_arch: [...]}, ...)."""

    @field_validator("hyperparams")
    @classmethod
    def _known_keys(cls, value: dict[str, Any], info: Any) -> dict[str, Any]:
        algo = info.data.get("algo", "ppo")
        valid = valid_hyperparams(algo)
        unknown = sorted(set(value) - set(valid))
        if unknown:
            raise UserError(f"unknown {algo} hyperparameter(s) {unknown}; valid: {', '.join(valid)}")
        for k, v in value.items():  # SB3 would fail on these only once training starts, with a traceback
            if isinstance(v, int | float) and not isinstance(v, bool):
                finite = math.isfinite(v) or (k == "max_grad_norm" and v == math.inf)  # inf: no clipping
                ok = finite and (v > 0 if k in _POSITIVE else 0 <= v <= 1 if k in _UNIT else True)
                if not ok:
                    need = "> 0" if k in _POSITIVE else "in [0, 1]" if k in _UNIT else "finite"
                    raise UserError(f"hyperparameter {k}: {v}; it must be {need}")
        pk = value.get("policy_kwargs") or {}
        if not isinstance(pk, dict) or set(pk) - _POLICY_KWARGS:
            raise UserError(f"policy_kwargs: a mapping with keys among {', '.join(sorted(_POLICY_KWARGS))}")
        if "activation_fn" in pk and pk["activation_fn"] not in ACTIVATIONS:
            raise UserError(f"activation_fn {pk['activation_fn']!r}; valid: {', '.join(ACTIVATIONS)}")
        return value

    @model_validator(mode="after")
    def _dqn_is_discrete(self) -> BaselineConfig:
        if self.algo == "dqn" and self.action == "continuous":
            raise UserError("dqn needs discrete actions (accel or meta); use algo ppo for continuous")
        if self.sim == "batched":
            from drivegpt.sim.batched.config import SUPPORTED_ENV_IDS

            if self.env_id not in SUPPORTED_ENV_IDS or self.env_config:
                raise UserError(
                    f"sim batched runs {', '.join(SUPPORTED_ENV_IDS)} without env_config (got {self.env_id!r}"
                    f"{' with env_config' if self.env_config else ''}); use sim highway-env"
                )
        return self


def policy_kwargs(hyperparams: dict[str, Any]) -> dict[str, Any]:
    """YAML ``policy_kwargs`` as SB3 wants them (activation name -> class)."""
    pk = dict(hyperparams.get("policy_kwargs") or {})
    if "activation_fn" in pk:
        pk["activation_fn"] = ACTIVATIONS[pk["activation_fn"]]
    return pk


__all__ = ["ACTIVATIONS", "Algo", "BaselineConfig", "algo_class", "policy_kwargs", "valid_hyperparams"]
