"""Checkpoints: safetensors tensors + JSON, written atomically; no pickle anywhere.

A *policy directory* (what users share) holds ``model.safetensors`` and ``policy.json`` (model
config, tokenizer, observation/action configuration). A *trainer checkpoint* adds the optimizer
moments and RNG states (``optimizer.safetensors``, ``trainer.json``) so a killed run resumes.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from drivegpt.core.atomic import replace_dir, write_json
from drivegpt.core.errors import UserError
from drivegpt.model.gpt import DriveGPT, DriveGPTConfig

POLICY_FORMAT = "drivegpt-policy"
POLICY_VERSION = 1


class CheckpointError(UserError):
    """A checkpoint is missing or corrupt."""


def _tmp_dir(dest: Path) -> Path:
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def save_policy(dest: str | Path, model: DriveGPT, info: dict[str, Any]) -> Path:
    """Write a policy directory atomically. ``info``: tokenizer + env configuration."""
    dest = Path(dest)
    tmp = _tmp_dir(dest)
    save_file(
        {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
        str(tmp / "model.safetensors"),
    )
    write_json(
        tmp / "policy.json",
        {"format": POLICY_FORMAT, "version": POLICY_VERSION, "model": model.cfg.to_dict(), **info},
    )
    replace_dir(tmp, dest)
    return dest


def load_policy_dir(path: str | Path) -> tuple[DriveGPT, dict[str, Any]]:
    """Load a policy directory; raise :class:`CheckpointError` naming the bad file."""
    path = Path(path)
    meta_path, weights = path / "policy.json", path / "model.safetensors"
    fix = "re-run `drivegpt pretrain` or point to a run directory that holds policy/"
    for f in (meta_path, weights):
        if not f.is_file():
            raise CheckpointError(f"{f}: missing; {fix}")
    try:
        meta = json.loads(meta_path.read_text())
        cfg = DriveGPTConfig(**meta["model"])
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise CheckpointError(f"{meta_path}: corrupt policy config ({err}); {fix}") from None
    if meta.get("format") != POLICY_FORMAT or meta.get("version") != POLICY_VERSION:
        raise CheckpointError(f"{meta_path}: not a {POLICY_FORMAT} v{POLICY_VERSION} file; {fix}")
    model = DriveGPT(cfg)
    try:
        state = load_file(str(weights))
        model.load_state_dict(state)
    except (SafetensorError, RuntimeError, OSError) as err:
        raise CheckpointError(f"{weights}: corrupt or mismatched weights ({str(err)[:120]}); {fix}") from None
    model.eval()
    return model, meta


def check_action_interface(meta: dict[str, Any], source: str | Path, env: Any) -> None:
    """Raise :class:`CheckpointError` (one line naming ``source`` and the fix) when ``env`` does not use
    the action interface the policy was trained on (``policy.json`` ``action``)."""
    from drivegpt_envs.actions import env_action_kind

    trained, used = str(meta.get("action")), env_action_kind(env)
    if trained != used:
        raise CheckpointError(
            f"{source}: the policy was trained on the '{trained}' action interface, the env uses '{used}'; "
            f"build the env from the policy (make_env(env_id, '{trained}', policy.env_config), as `drivegpt "
            f"drive` does) or retrain it on '{used}' logs"
        )


def save_trainer(
    dest: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]
) -> None:
    """Model + optimizer moments + RNG + progress, atomically, for ``--resume``."""
    dest = Path(dest)
    tmp = _tmp_dir(dest)
    save_file(
        {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
        str(tmp / "model.safetensors"),
    )
    opt = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, pstate in opt["state"].items():
        for k, v in pstate.items():
            if torch.is_tensor(v):
                tensors[f"{pid}.{k}"] = v.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(pid), {})[k] = v
    tensors["__torch_rng__"] = torch.get_rng_state()
    save_file(tensors, str(tmp / "optimizer.safetensors"))
    write_json(tmp / "trainer.json", {**state, "param_groups": opt["param_groups"], "scalars": scalars})
    replace_dir(tmp, dest)


def load_trainer(
    path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer
) -> dict[str, Any]:
    """Restore what :func:`save_trainer` wrote; returns the saved progress dict."""
    path = Path(path)
    fix = "delete it to start over, or resume from an intact run"
    try:
        meta = json.loads((path / "trainer.json").read_text())
        weights = load_file(str(path / "model.safetensors"))
        tensors = load_file(str(path / "optimizer.safetensors"))
    except FileNotFoundError as err:
        raise CheckpointError(f"{err.filename}: missing trainer checkpoint file; {fix}") from None
    except (json.JSONDecodeError, SafetensorError, RuntimeError, OSError) as err:
        raise CheckpointError(f"{path}: corrupt trainer checkpoint ({str(err)[:120]}); {fix}") from None
    try:
        model.load_state_dict(weights)
    except RuntimeError as err:  # intact, but of another model: the run's config was changed
        first = next((line.strip() for line in str(err).splitlines()[1:] if line.strip()), str(err))[:120]
        raise CheckpointError(
            f"{path}: the checkpoint holds another model than the config describes ({first}); resume "
            f"with the config it was trained with (run.json beside it), or start over in a new --out"
        ) from None
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        if key == "__torch_rng__":
            continue
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = v
    for pid, extra in meta.pop("scalars").items():
        state.setdefault(int(pid), {}).update(extra)
    optimizer.load_state_dict({"state": state, "param_groups": meta.pop("param_groups")})
    torch.set_rng_state(tensors["__torch_rng__"])
    return meta
