"""The policy API: one protocol for every driver and one string (a *spec*) to name any of them.

Specs: ``human``, ``idm``, ``constant:FASTER``, ``drivegpt`` (the checkpoint shipped with the package),
``drivegpt:RUN_DIR`` (a pretrain run or a policy directory), ``sb3-dqn:RUN``, ``sb3-ppo:RUN`` (a
``drivegpt baseline train`` run or its ``policy/``: safetensors + JSON, no pickle). ``sb3-*:PATH.zip``
loads a user's own SB3 zip: SB3 zips contain pickled objects, so only load files you trust.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np

from drivegpt.human import HumanDriver, PersonalityRanges, StockIDMDriver

#: spec prefix -> what it loads
POLICY_KINDS: dict[str, str] = {
    "human": "the simulated human driver (IDM + MOBIL, personality sampled per episode)",
    "idm": "highway-env's stock IDMVehicle at the wheel of the ego (comparison baseline)",
    "drivegpt": "DriveGPT: `drivegpt` (shipped checkpoint) or `drivegpt:RUN_DIR`",
    "constant": "always the same action: `constant:FASTER` (meta-action) or `constant:0.5,0` (acc,steer)",
    "sb3-dqn": "a stable-baselines3 DQN: `sb3-dqn:RUN` (`baseline train`) or a trusted `PATH.zip`",
    "sb3-ppo": "a stable-baselines3 PPO: `sb3-ppo:RUN` (`baseline train`) or a trusted `PATH.zip`",
}

#: the small pretrained checkpoint that ships with the package (see README to reproduce it)
SHIPPED_CHECKPOINT = Path(__file__).parent / "checkpoints" / "drivegpt-meta-small"


@runtime_checkable
class DrivePolicy(Protocol):
    """Every driver in the project: ``reset`` once per episode, then ``act`` once per step.

    ``env`` is given to drivers that read the simulator (the human model); learned policies
    ignore it. ``action_kind`` is the action interface the policy was built for (``meta`` or
    ``continuous``); ``act_batch`` (optional) drives B envs at once.
    """

    action_kind: str

    def reset(self, seed: int, env: gym.Env | None = None) -> None: ...

    def act(self, observation: np.ndarray) -> Any: ...


class ConstantPolicy:
    """Always the same action (a trivial baseline, and a reliable way to provoke takeovers)."""

    def __init__(self, arg: str):
        from drivegpt.human import META_ACTIONS

        if arg.upper() in META_ACTIONS:
            self.action: Any = META_ACTIONS.index(arg.upper())
            self.action_kind = "meta"
        else:
            try:
                self.action = np.array([float(x) for x in arg.split(",")], np.float32)
            except ValueError:
                raise ValueError(
                    f"constant:{arg}: give a meta-action ({', '.join(META_ACTIONS)}) "
                    "or 'acc,steer' in [-1, 1]"
                ) from None
            if self.action.shape != (2,):
                raise ValueError(f"constant:{arg}: continuous actions are 'acc,steer'")
            self.action_kind = "continuous"

    def reset(self, seed: int, env: gym.Env | None = None) -> None:
        pass

    def act(self, observation: np.ndarray) -> Any:
        return self.action


class SB3Policy:
    """A stable-baselines3 DQN/PPO as a DrivePolicy (deterministic actions).

    ``path``: a ``drivegpt baseline train`` run (or its ``policy/``), rebuilt from ``policy.json`` +
    ``policy.safetensors``; or an SB3 ``.zip`` (pickle inside: trusted files only).
    """

    def __init__(self, algo: str, path: str):
        self.env_config: dict[str, Any] | None = None
        if path.endswith(".zip"):
            from stable_baselines3 import DQN, PPO

            if not Path(path).is_file():
                raise FileNotFoundError(f"{path}: no such SB3 model file")
            self.policy = {"sb3-dqn": DQN, "sb3-ppo": PPO}[algo].load(path, device="cpu").policy
        else:
            from drivegpt.baselines import load_exported_policy

            self.policy, meta = load_exported_policy(path, algo.removeprefix("sb3-"))
            self.env_config = meta["env_config"]
        space = self.policy.action_space
        self.action_kind = "continuous" if isinstance(space, gym.spaces.Box) else "meta"

    def reset(self, seed: int, env: gym.Env | None = None) -> None:
        pass

    def act(self, observation: np.ndarray) -> Any:
        action, _ = self.policy.predict(observation, deterministic=True)
        return action if self.action_kind == "continuous" else int(action)

    def act_batch(self, observations: np.ndarray) -> np.ndarray:
        actions, _ = self.policy.predict(observations, deterministic=True)
        return actions


def load_policy(spec: str, action: str = "meta") -> Any:
    """Return the driver named by ``spec``; unknown specs fail with the list of valid ones.

    ``action`` is the action kind for drivers that can use either (human, idm); learned policies
    carry their own.
    """
    kind, _, arg = spec.partition(":")
    if kind == "human":
        driver: Any = HumanDriver(ranges=PersonalityRanges())
    elif kind == "idm":
        driver = StockIDMDriver()
    elif kind == "drivegpt":
        from drivegpt.gpt_policy import DriveGPTPolicy

        return DriveGPTPolicy.load(arg or SHIPPED_CHECKPOINT)
    elif kind == "constant":
        return ConstantPolicy(arg)
    elif kind in ("sb3-dqn", "sb3-ppo"):
        return SB3Policy(kind, arg)
    else:
        valid = ", ".join(POLICY_KINDS)
        raise ValueError(f"unknown policy spec {spec!r}; valid kinds: {valid}")
    driver.action_kind = action
    return driver


def policy_action_kind(spec: str, default: str = "meta") -> str:
    """The action kind a spec drives with (learned policies carry it; others use ``default``)."""
    kind = spec.partition(":")[0]
    if kind in ("human", "idm"):
        return default
    if kind == "constant":
        return ConstantPolicy(spec.partition(":")[2]).action_kind
    if kind == "drivegpt":  # read policy.json only: no model load in the parent process
        import json

        from drivegpt.checkpoint import CheckpointError

        path = Path(spec.partition(":")[2] or SHIPPED_CHECKPOINT)
        meta = path / "policy" / "policy.json" if (path / "policy").is_dir() else path / "policy.json"
        if not meta.is_file():
            raise CheckpointError(f"{meta}: missing; re-run `drivegpt pretrain` or check the path")
        try:
            return str(json.loads(meta.read_text())["action"])
        except (json.JSONDecodeError, KeyError) as err:
            raise CheckpointError(f"{meta}: corrupt policy config ({err})") from None
    if kind in ("sb3-dqn", "sb3-ppo") and not spec.endswith(".zip"):  # policy.json only
        from drivegpt.baselines import read_policy_json

        return str(read_policy_json(spec.partition(":")[2], kind.removeprefix("sb3-"))["action"])
    return str(load_policy(spec).action_kind)
