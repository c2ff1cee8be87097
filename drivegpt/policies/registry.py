"""The policy API: one protocol for every driver and one string (a *spec*) to name any of them.

Specs: ``human``, ``idm``, ``constant:FASTER``, ``drivegpt`` (the checkpoint shipped with the package),
``drivegpt-rlhf`` (the shipped checkpoint refined by the loop: DAgger on the human's labels, junctions
included, earlier students teaching the families they drive better), ``drivegpt-roads`` (the same
loop on the roads and the braking families only),
``drivegpt-memoryless`` (imitation alone: a one-step DriveGPT trained on noise-injected logs),
``drivegpt:RUN_DIR`` (a pretrain run or a policy directory), ``sb3-dqn:RUN``, ``sb3-ppo:RUN`` (a
``drivegpt baseline train`` run or its ``policy/``: safetensors + JSON, no pickle). ``sb3-*:PATH.zip``
loads a user's own SB3 zip: SB3 zips contain pickled objects, so only load files you trust.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np

from drivegpt.core.errors import MissingInputError, UserError
from drivegpt.core.resources import CHECKPOINTS
from drivegpt.core.rundir import policy_dir
from drivegpt.sim.human import HumanDriver, StockIDMDriver
from drivegpt.sim.personality import PersonalityRanges
from drivegpt.sim.policy import ConstantPolicy, DrivePolicy
from drivegpt.sim.rollout import make_env
from drivegpt_envs.actions import N_TOKENS
from drivegpt_envs.common import DEFAULT_ACTION

#: spec prefix -> what it loads
POLICY_KINDS: dict[str, str] = {
    "human": "the simulated human driver (IDM + MOBIL, personality sampled per episode)",
    "idm": "highway-env's stock IDMVehicle at the wheel of the ego (comparison baseline)",
    "drivegpt": "DriveGPT: `drivegpt` (shipped checkpoint) or `drivegpt:RUN_DIR`",
    "drivegpt-rlhf": "DriveGPT refined by the loop (DAgger: the human's, earlier students' labels), shipped",
    "drivegpt-roads": "DriveGPT refined on the roads and two braking families only (no junction), shipped",
    "drivegpt-memoryless": "DriveGPT by imitation alone (one step of context, noise-injected logs), shipped",
    "constant": "always the same action: `constant:-3,keep` (accel [m/s²], lane intent), `constant:FASTER` "
    "(meta-action) or `constant:0.5,0` (continuous acc,steer)",
    "sb3-dqn": "a stable-baselines3 DQN: `sb3-dqn:RUN` (`baseline train`) or a trusted `PATH.zip`",
    "sb3-ppo": "a stable-baselines3 PPO: `sb3-ppo:RUN` (`baseline train`) or a trusted `PATH.zip`",
}

#: kinds with no driver in the batched corner-case families (``idm`` drives the batched highway roads,
#: ``SimConfig.ego_idm``, but not a family's scripted scenes): their corner cases run on highway-env
NO_BATCHED_FAMILIES = ("idm",)

#: the small pretrained checkpoint that ships with the package: accel tokens, 4 s of context (see README
#: to reproduce it; the earlier meta-action checkpoint stays in ``drivegpt-meta-small``)
SHIPPED_CHECKPOINT = CHECKPOINTS / "drivegpt-accel-small"
#: the shipped checkpoint after the flywheel (DAgger rounds on the roads, the highway families and the
#: junctions, some families labelled by earlier students; its README.md holds the commands that
#: reproduce it): ``drivegpt-rlhf``
RLHF_CHECKPOINT = CHECKPOINTS / "drivegpt-rlhf"
#: where those rounds forked off: 6 DAgger rounds on the batched roads and two braking families, no
#: junction (shipped as ``drivegpt-rlhf`` before the junction rounds): the spec ``drivegpt-roads``
ROADS_CHECKPOINT = CHECKPOINTS / "drivegpt-roads"
#: imitation alone: a DriveGPT with one step of context on human logs with correlated noise injected
#: (its README.md holds the commands and figures): the spec ``drivegpt-memoryless``
MEMORYLESS_CHECKPOINT = CHECKPOINTS / "drivegpt-memoryless"
#: the specs that name a shipped checkpoint
SHIPPED: dict[str, Path] = {
    "drivegpt": SHIPPED_CHECKPOINT,
    "drivegpt-rlhf": RLHF_CHECKPOINT,
    "drivegpt-roads": ROADS_CHECKPOINT,
    "drivegpt-memoryless": MEMORYLESS_CHECKPOINT,
}


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
                raise MissingInputError(f"{path}: no such SB3 model file")
            self.policy = {"sb3-dqn": DQN, "sb3-ppo": PPO}[algo].load(path, device="cpu").policy
        else:
            from drivegpt.policies.sb3 import load_exported_policy

            self.policy, meta = load_exported_policy(path, algo.removeprefix("sb3-"))
            self.env_config = meta["env_config"]
        space = self.policy.action_space
        self.action_kind = (
            "continuous" if isinstance(space, gym.spaces.Box) else "accel" if space.n == N_TOKENS else "meta"
        )

    def reset(self, seed: int, env: gym.Env | None = None) -> None:
        pass

    def act(self, observation: np.ndarray) -> Any:
        action, _ = self.policy.predict(observation, deterministic=True)
        return action if self.action_kind == "continuous" else int(action)

    def act_batch(self, observations: np.ndarray) -> np.ndarray:
        actions, _ = self.policy.predict(observations, deterministic=True)
        return actions


def drivegpt_dir(spec: str | Path) -> Path:
    """The policy directory a DriveGPT spec names: ``drivegpt``, ``drivegpt-rlhf``, ``drivegpt-roads``
    and ``drivegpt-memoryless`` the shipped checkpoints, ``drivegpt:PATH`` or a bare ``PATH`` a run or
    policy directory (what the training commands start from). Other specs fail: only a DriveGPT can be
    fine-tuned."""
    text = str(spec)
    if text in SHIPPED:
        return SHIPPED[text]
    kind, sep, arg = text.partition(":")
    if sep and kind == "drivegpt":
        return policy_dir(arg) if arg else SHIPPED_CHECKPOINT
    if (sep and kind in POLICY_KINDS) or text in POLICY_KINDS:
        raise UserError(
            f"{text}: not a DriveGPT policy; name {', '.join(SHIPPED)}, drivegpt:RUN_DIR or a run dir"
        )
    return policy_dir(text)


def load_policy(spec: str, action: str = DEFAULT_ACTION) -> DrivePolicy:
    """Return the driver named by ``spec``; unknown specs fail with the list of valid ones.

    ``action`` is the action kind for drivers that can use either (human, idm); learned policies
    carry their own.
    """
    kind, _, arg = spec.partition(":")
    if kind == "human":
        driver: Any = HumanDriver(ranges=PersonalityRanges())
    elif kind == "idm":
        driver = StockIDMDriver()
    elif kind == "drivegpt" or (kind in SHIPPED and not arg):
        from drivegpt.model.policy import DriveGPTPolicy

        return DriveGPTPolicy.load(drivegpt_dir(spec))
    elif kind == "constant":
        return ConstantPolicy(arg)
    elif kind in ("sb3-dqn", "sb3-ppo"):
        return SB3Policy(kind, arg)
    else:
        valid = ", ".join(POLICY_KINDS)
        raise UserError(f"unknown policy spec {spec!r}; valid kinds: {valid}")
    driver.action_kind = action
    return driver


def policy_action_kind(spec: str, default: str = DEFAULT_ACTION) -> str:
    """The action kind a spec drives with (learned policies carry it; others use ``default``)."""
    kind = spec.partition(":")[0]
    if kind in ("human", "idm"):
        return default
    if kind == "constant":
        return ConstantPolicy(spec.partition(":")[2]).action_kind
    if kind in SHIPPED:  # read policy.json only: no model load in the parent process
        import json

        from drivegpt.model.checkpoint import CheckpointError

        path = drivegpt_dir(spec)
        meta = policy_dir(path) / "policy.json"
        if not meta.is_file():
            raise CheckpointError(f"{meta}: missing; re-run `drivegpt pretrain` or check the path")
        try:
            return str(json.loads(meta.read_text())["action"])
        except (json.JSONDecodeError, KeyError) as err:
            raise CheckpointError(f"{meta}: corrupt policy config ({err})") from None
    if kind in ("sb3-dqn", "sb3-ppo") and not spec.endswith(".zip"):  # policy.json only
        from drivegpt.policies.sb3 import read_policy_json

        return str(read_policy_json(spec.partition(":")[2], kind.removeprefix("sb3-"))["action"])
    return str(load_policy(spec).action_kind)


class DriveJob(NamedTuple):
    """One episode to drive in a worker process: a policy spec on an env, from a seed."""

    policy: str
    env_id: str
    action: str
    seed: int
    monitor: dict[str, Any] | None = None  # MonitorConfig fields: drive under the safety driver


_CACHE: dict[Any, Any] = {}


def policy_and_env(job: DriveJob) -> tuple[DrivePolicy, gym.Env]:
    """The job's policy and env, built once per worker process (loading a checkpoint is slow)."""
    if job.policy not in _CACHE:
        if job.policy.startswith(("drivegpt", "sb3")):
            import torch

            torch.set_num_threads(1)  # one simulator + one network per worker process
        _CACHE[job.policy] = load_policy(job.policy, job.action)
    policy = _CACHE[job.policy]
    key = (job.env_id, job.action, job.policy)
    if key not in _CACHE:  # a learned policy carries the observation/action config it was trained with
        _CACHE[key] = make_env(job.env_id, job.action, getattr(policy, "env_config", None))
    return policy, _CACHE[key]
