"""stable-baselines3 baselines (DQN, PPO) trained on the env reward, exported without pickle.

``RUN/`` holds: ``run.json`` (command + resolved config), ``progress.csv`` and TensorBoard events
(SB3's logger), ``checkpoint/`` (SB3's own zip, for ``--resume`` on the machine that wrote it),
``train.json`` (steps, wall time, steps/s) and ``policy/`` — what users share: ``policy.safetensors``
(the policy network's state dict) and ``policy.json`` (algo, env, action kind, the network's
hyperparameters, observation/action spaces), enough to rebuild the network without pickle.
"""

from __future__ import annotations

import json
import math
import os
import time
from functools import partial
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from drivegpt.core.atomic import replace_dir, write_json
from drivegpt.core.errors import MissingInputError, OutputExistsError, UserError
from drivegpt.core.rundir import policy_dir
from drivegpt.model.checkpoint import CheckpointError
from drivegpt.policies.sb3_config import BaselineConfig, algo_class, policy_kwargs
from drivegpt.sim.rollout import default_workers, make_env
from drivegpt_envs.common import action_config, kinematics_observation

POLICY_FORMAT = "drivegpt-sb3-policy"
POLICY_VERSION = 1


def _sb3_kwargs(cfg: BaselineConfig) -> dict[str, Any]:
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.hyperparams.items()}
    kwargs["policy_kwargs"] = policy_kwargs(cfg.hyperparams)
    return kwargs


def make_vec_env(cfg: BaselineConfig) -> Any:
    """``n_envs`` Monitor-wrapped envs, in subprocesses when more than one; with ``sim: batched``
    one batched simulator stepping ``n_envs`` episodes."""
    from stable_baselines3.common.env_util import make_vec_env as sb3_make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    if cfg.sim == "batched":
        from drivegpt.sim.batched.sb3_vec_env import BatchedSB3VecEnv

        return BatchedSB3VecEnv(n_envs(cfg), cfg.env_id, cfg.action, seed=cfg.seed)
    n = n_envs(cfg)
    factory = partial(make_env, cfg.env_id, cfg.action, dict(cfg.env_config))
    vec_cls = SubprocVecEnv if n > 1 else DummyVecEnv
    return sb3_make_vec_env(factory, n_envs=n, seed=cfg.seed, vec_env_cls=vec_cls)


def n_envs(cfg: BaselineConfig) -> int:
    """The parallel envs ``cfg`` trains with (its ``n_envs``, or the simulator's default)."""
    return cfg.n_envs or (64 if cfg.sim == "batched" else default_workers())


def _checkpoint_callback(out: Path, every: int, with_buffer: bool) -> Any:
    from stable_baselines3.common.callbacks import BaseCallback

    class Checkpoint(BaseCallback):
        """Rewrites ``out/checkpoint`` atomically every ``every`` steps."""

        def __init__(self) -> None:
            super().__init__()
            self.last = 0

        def _on_training_start(self) -> None:
            self.last = self.num_timesteps  # a resumed run counts from where it stopped

        def _on_step(self) -> bool:
            if self.num_timesteps - self.last >= every:
                self.save()
            return True

        def save(self) -> None:
            save_checkpoint(self.model, out / "checkpoint", with_buffer)
            self.last = self.num_timesteps

    return Checkpoint()


def _progress_callback(total: int, desc: str) -> Any:
    from stable_baselines3.common.callbacks import BaseCallback

    from drivegpt.core.progress import progress_bar

    class Progress(BaseCallback):
        """The run's steps on ``progress_bar`` (a live bar on a terminal, plain lines in a log), where
        SB3's own bar would pile its redraws onto one line of a log."""

        def _on_training_start(self) -> None:
            self.start = self.num_timesteps
            self.bar = progress_bar(total=total, desc=desc, unit="step")

        def _on_step(self) -> bool:
            self.bar.update(self.num_timesteps - self.start - self.bar.n)
            return True

        def _on_training_end(self) -> None:
            self.close()

        def close(self) -> None:
            """Close the bar (also where ``learn`` raised before its end)."""
            if hasattr(self, "bar"):
                self.bar.close()

    return Progress()


def save_checkpoint(model: Any, dest: Path, with_buffer: bool) -> None:
    """SB3's zip (+ DQN replay buffer): trainer state for resuming, never shared with users."""
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    model.save(tmp / "model.zip")
    if with_buffer:
        model.save_replay_buffer(tmp / "replay_buffer.pkl")
    replace_dir(tmp, dest)


def train_baseline(
    cfg: BaselineConfig, out: str | Path, command: str = "", resume: bool = False, progress: bool = True
) -> dict[str, Any]:
    """Train ``cfg.algo`` for ``cfg.total_steps`` steps; export ``out/policy``; return training figures."""
    from stable_baselines3.common.callbacks import CallbackList
    from stable_baselines3.common.logger import configure

    out = Path(out)
    ckpt = out / "checkpoint" / "model.zip"
    if ckpt.exists() and not resume:
        raise OutputExistsError(f"{out}: a run already exists there; pass --resume or choose another --out")
    if resume and not ckpt.exists():
        raise MissingInputError(f"{ckpt}: nothing to resume; drop --resume to start over")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the envs use the other cores (restored below)
    env = make_vec_env(cfg)
    try:
        cls = algo_class(cfg.algo)
        if resume:  # our own checkpoint, written by this trainer (SB3's zip format: trusted input only)
            was = json.loads((out / "run.json").read_text())["config"] if (out / "run.json").is_file() else {}
            for key, flag in (("algo", "--algo"), ("action", "--action"), ("env_id", "--env")):
                if was.get(key, getattr(cfg, key)) != getattr(cfg, key):
                    raise UserError(f"{out}: a run of {key} {was[key]}; resume it with {flag} {was[key]}")
            try:
                model = cls.load(ckpt, env=env, device="cpu")
            except Exception as err:  # a truncated or foreign zip: SB3 raises whatever its reader hits
                raise CheckpointError(
                    f"{ckpt}: unreadable checkpoint ({err}); delete {out} to start over"
                ) from None
            if cfg.algo == "dqn" and (out / "checkpoint" / "replay_buffer.pkl").exists():
                model.load_replay_buffer(out / "checkpoint" / "replay_buffer.pkl")
        else:
            model = cls("MlpPolicy", env, seed=cfg.seed, device="cpu", verbose=1, **_sb3_kwargs(cfg))
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "run.json", {"command": command, "config": cfg.to_dict()})
        model.set_logger(configure(str(out), ["csv", "tensorboard", *(["stdout"] if progress else [])]))
        checkpoint = _checkpoint_callback(out, cfg.checkpoint_every, cfg.algo == "dqn")
        start, t0 = model.num_timesteps, time.perf_counter()
        remaining = max(0, cfg.total_steps - start)
        bar = _progress_callback(remaining, f"baseline {cfg.algo}") if progress else None
        try:
            if remaining:
                callback = CallbackList([checkpoint, bar]) if bar is not None else checkpoint
                model.learn(remaining, callback=callback, reset_num_timesteps=not resume)
        finally:
            if bar is not None:
                bar.close()  # also where learn raised
        seconds = time.perf_counter() - t0
        model.logger.close()  # flushes and closes progress.csv and the TensorBoard events
        save_checkpoint(model, out / "checkpoint", cfg.algo == "dqn")
    finally:
        env.close()
        torch.set_num_threads(threads)
    export_policy(model, cfg, out / "policy")
    figures = {
        "steps": int(model.num_timesteps),
        "seconds": seconds,
        "steps_per_s": (model.num_timesteps - start) / seconds if seconds > 0 else None,
        "n_envs": n_envs(cfg),
    }
    write_json(out / "train.json", figures)
    return figures


def _num(x: float) -> float | str:
    return float(x) if math.isfinite(x) else str(float(x))  # ±inf as "inf"/"-inf": strict JSON


def space_to_json(space: gym.Space) -> dict[str, Any]:
    """A Discrete or Box space as plain JSON (Box bounds as one value when uniform)."""
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n)}
    if isinstance(space, gym.spaces.Box):
        bounds = {}
        for name, arr in (("low", space.low), ("high", space.high)):
            uniform = bool(np.all(arr == arr.flat[0]))
            bounds[name] = _num(arr.flat[0]) if uniform else [_num(x) for x in arr.ravel().tolist()]
        return {"type": "Box", "shape": list(space.shape), "dtype": str(space.dtype), **bounds}
    raise ValueError(f"cannot describe space {space!r}: only Discrete and Box are supported")


def space_from_json(d: dict[str, Any]) -> gym.Space:
    if d["type"] == "Discrete":
        return gym.spaces.Discrete(int(d["n"]))
    shape = tuple(d["shape"])

    def bound(v: Any) -> np.ndarray:
        vals = np.asarray([float(x) for x in v] if isinstance(v, list) else float(v), d["dtype"])
        return np.broadcast_to(vals.reshape(shape) if vals.ndim else vals, shape).copy()

    return gym.spaces.Box(bound(d["low"]), bound(d["high"]), shape, np.dtype(d["dtype"]))


def export_policy(model: Any, cfg: BaselineConfig, dest: str | Path) -> Path:
    """``policy.safetensors`` + ``policy.json``, written atomically: the shareable policy."""
    from safetensors.torch import save_file

    dest = Path(dest)
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.policy.state_dict().items()}
    save_file(state, str(tmp / "policy.safetensors"))
    meta = {
        "format": POLICY_FORMAT,
        "version": POLICY_VERSION,
        "algo": cfg.algo,
        "env_id": cfg.env_id,
        "action": cfg.action,
        "env_config": {
            "observation": kinematics_observation(),
            **action_config(cfg.action),
            **cfg.env_config,
        },
        "policy_kwargs": cfg.hyperparams.get("policy_kwargs") or {},
        "use_sde": bool(cfg.hyperparams.get("use_sde", False)),
        "observation_space": space_to_json(model.observation_space),
        "action_space": space_to_json(model.action_space),
        "steps": int(model.num_timesteps),
    }
    write_json(tmp / "policy.json", meta)
    replace_dir(tmp, dest)
    return dest


def read_policy_json(path: str | Path, algo: str | None = None) -> dict[str, Any]:
    """``policy.json`` of an exported ``algo`` baseline (no model load); :class:`CheckpointError` if bad."""
    meta_path = policy_dir(path) / "policy.json"
    fix = "train one with `drivegpt baseline train` or point to its run directory"
    if not meta_path.is_file():
        raise CheckpointError(f"{meta_path}: missing; {fix}")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{meta_path}: corrupt policy config ({err}); {fix}") from None
    if meta.get("format") != POLICY_FORMAT or meta.get("version") != POLICY_VERSION:
        raise CheckpointError(f"{meta_path}: not a {POLICY_FORMAT} v{POLICY_VERSION} file; {fix}")
    if algo is not None and meta.get("algo") != algo:
        raise CheckpointError(f"{meta_path}: a {meta.get('algo')} policy; load it as sb3-{meta.get('algo')}:")
    return meta


def load_exported_policy(path: str | Path, algo: str | None = None) -> tuple[Any, dict[str, Any]]:
    """Rebuild the SB3 policy network from ``policy.json`` and load ``policy.safetensors``."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    from stable_baselines3.common.policies import ActorCriticPolicy
    from stable_baselines3.dqn.policies import DQNPolicy

    meta = read_policy_json(path, algo)
    obs_space = space_from_json(meta["observation_space"])
    act_space = space_from_json(meta["action_space"])
    kwargs = policy_kwargs(meta)
    if meta["algo"] == "ppo":
        policy = ActorCriticPolicy(obs_space, act_space, lambda _: 0.0, use_sde=meta["use_sde"], **kwargs)
    else:
        policy = DQNPolicy(obs_space, act_space, lambda _: 0.0, **kwargs)
    weights = policy_dir(path) / "policy.safetensors"
    try:
        policy.load_state_dict(load_file(str(weights)))
    except (SafetensorError, RuntimeError, OSError) as err:
        raise CheckpointError(f"{weights}: corrupt or mismatched weights ({str(err)[:120]})") from None
    policy.set_training_mode(False)
    return policy, meta
