"""The shipped imitation checkpoint: the spec ``drivegpt-memoryless`` loads it, it is a one-step DriveGPT
on the accel interface, its README reproduces it, and it drives."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import yaml

from drivegpt.core.config import load_config
from drivegpt.core.errors import UserError
from drivegpt.data.collect import CollectConfig
from drivegpt.eval.batched import evaluate_batched
from drivegpt.model.pretrain_config import PretrainConfig
from drivegpt.policies.registry import (
    MEMORYLESS_CHECKPOINT,
    drivegpt_dir,
    load_policy,
    policy_action_kind,
)


def test_spec_loads_a_one_step_drivegpt_on_the_accel_interface():
    policy = load_policy("drivegpt-memoryless")
    assert policy.action_kind == "accel" and policy_action_kind("drivegpt-memoryless") == "accel"
    assert drivegpt_dir("drivegpt-memoryless") == MEMORYLESS_CHECKPOINT
    meta = json.loads((MEMORYLESS_CHECKPOINT / "policy.json").read_text())
    assert meta["model"]["context"] == 1 and policy.model.cfg.context == 1
    obs = np.zeros((3, 10, 7), np.float32)
    obs[:, 0, :2] = 1.0  # the ego row present
    policy.reset_batch(3)
    assert policy.act_batch(obs).shape == (3,)  # history of one step: the batch form works too


def test_readme_names_the_configs_that_reproduce_it():
    assert sorted(p.name for p in MEMORYLESS_CHECKPOINT.iterdir()) == [
        "README.md",
        "model.safetensors",
        "policy.json",
    ]  # no pickle
    readme = (MEMORYLESS_CHECKPOINT / "README.md").read_text()
    (collect,) = re.findall(r"drivegpt collect --config (\S+)", readme)
    (pretrain,) = re.findall(r"drivegpt pretrain --config (\S+)", readme)
    cfg = load_config(PretrainConfig, pretrain)
    assert cfg.model.context == 1 and cfg.select is not None
    assert load_config(CollectConfig, collect).noise_correlation > 0
    meta = json.loads((MEMORYLESS_CHECKPOINT / "policy.json").read_text())
    assert meta["iter"] <= cfg.max_iters and meta["val"]["select"]["episodes"] == cfg.select.episodes
    model = {k: v for k, v in meta["model"].items() if k in yaml.safe_load(open(pretrain))["model"]}
    assert model == yaml.safe_load(open(pretrain))["model"]


def test_it_drives_a_batched_episode_and_a_bad_spec_is_refused():
    m, per = evaluate_batched(
        "drivegpt-memoryless", "drivegpt/Highway-v0", episodes=1, batch=1, progress=False
    )
    assert m["episodes"] == 1 and m["km_driven"] > 0 and (per["steps"] > 0).all()
    with pytest.raises(UserError, match="valid kinds: .*drivegpt-memoryless"):
        load_policy("drivegpt-memoryless:somewhere")
