"""The shipped refined checkpoints: the specs ``drivegpt-rlhf`` and ``drivegpt-roads`` load them, they drive,
they are what they say."""

from __future__ import annotations

import json
import re

import pytest
import torch
from safetensors.torch import load_file

from drivegpt.core.config import load_config
from drivegpt.core.errors import UserError
from drivegpt.core.resources import resolve_config
from drivegpt.eval.batched import evaluate_batched
from drivegpt.policies.registry import (
    RLHF_CHECKPOINT,
    ROADS_CHECKPOINT,
    SHIPPED_CHECKPOINT,
    drivegpt_dir,
    load_policy,
    policy_action_kind,
)
from drivegpt.rlhf.flywheel_config import FlywheelConfig


def test_spec_loads_the_shipped_refined_checkpoint_on_the_accel_interface():
    policy = load_policy("drivegpt-rlhf")
    assert policy.action_kind == "accel"
    assert policy_action_kind("drivegpt-rlhf") == "accel"  # read from policy.json, no model load
    meta = json.loads((RLHF_CHECKPOINT / "policy.json").read_text())
    assert meta["action"] == "accel" and meta["env_config"]["action"]["type"] == "AccelLaneAction"
    assert policy.env_config["action"]["type"] == "AccelLaneAction"


@pytest.mark.parametrize("checkpoint", [RLHF_CHECKPOINT, ROADS_CHECKPOINT], ids=["rlhf", "roads"])
def test_shipped_files_are_safetensors_json_and_a_readme_that_reproduces_them(checkpoint):
    names = sorted(p.name for p in checkpoint.iterdir())
    assert names == ["README.md", "model.safetensors", "policy.json"]  # no pickle
    readme = (checkpoint / "README.md").read_text()
    configs = re.findall(r"drivegpt rlhf --config (\S+)", readme)
    assert configs, "the README names the flywheel command"
    for cfg in configs:
        assert load_config(FlywheelConfig, resolve_config(cfg)).method == "dagger", cfg  # validates
    assert f"drivegpt/checkpoints/{checkpoint.name}/" in readme  # where the last command's policy goes
    assert "runs/" not in json.dumps(json.loads((checkpoint / "policy.json").read_text())["model"])


def test_roads_spec_loads_the_checkpoint_the_junction_rounds_started_from():
    policy = load_policy("drivegpt-roads")
    assert policy.action_kind == "accel" and drivegpt_dir("drivegpt-roads") == ROADS_CHECKPOINT
    assert "drivegpt/checkpoints/drivegpt-roads" in (RLHF_CHECKPOINT / "README.md").read_text()
    roads = load_file(str(ROADS_CHECKPOINT / "model.safetensors"))
    refined = load_file(str(RLHF_CHECKPOINT / "model.safetensors"))
    assert roads.keys() == refined.keys()
    assert any(not torch.equal(roads[k], refined[k]) for k in roads)


def test_refined_weights_differ_from_the_pretrained_ones():
    refined = load_file(str(RLHF_CHECKPOINT / "model.safetensors"))
    pretrained = load_file(str(SHIPPED_CHECKPOINT / "model.safetensors"))
    assert refined.keys() == pretrained.keys()
    assert any(not torch.equal(refined[k], pretrained[k]) for k in refined)


def test_refined_policy_drives_a_batched_episode():
    m, per = evaluate_batched("drivegpt-rlhf", "drivegpt/Highway-v0", episodes=1, batch=1, progress=False)
    assert m["episodes"] == 1 and m["km_driven"] > 0 and m["mean_speed_mps"] > 0
    assert (per["steps"] > 0).all()


@pytest.mark.parametrize("spec", ["drivegpt-rlhf", "drivegpt-roads"])
def test_spec_with_an_argument_is_refused_with_the_valid_kinds(spec):
    with pytest.raises(UserError, match=f"valid kinds: .*{spec}"):
        load_policy(f"{spec}:somewhere")
