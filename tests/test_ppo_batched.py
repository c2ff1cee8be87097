"""PPO on the batched simulator: segment advantages, the crawl trigger, the Lagrangian, the command."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from drivegpt.cli.app import app
from drivegpt.core.config import ConfigError, config_from_dict
from drivegpt.core.resources import CHECKPOINTS
from drivegpt.model.checkpoint import load_policy_dir, save_policy
from drivegpt.model.policy import DriveGPTPolicy
from drivegpt.rlhf.actor_critic import ValueHead, segment_gae
from drivegpt.rlhf.ppo_batched import lagrange_step, rollout
from drivegpt.rlhf.ppo_batched_config import BatchedPPOConfig
from drivegpt.sim import batched
from drivegpt_envs.actions import ACCEL_BINS, LANE_INTENTS

ACCEL_POLICY = CHECKPOINTS / "drivegpt-accel-small"
runner = CliRunner()


def test_segment_gae_by_hand():
    # row 0: two policy steps ending in a takeover at t1, the human at t2, a new segment at t3 cut by
    # the time limit (V of the next state 2.0); row 1: four policy steps, the last one terminal-free
    policy = np.array([[1, 1, 0, 1], [1, 1, 1, 1]], bool)
    terminal = np.array([[0, 1, 0, 0], [0, 0, 0, 0]], bool)
    next_value = np.array([[0, 0, 0, 2.0], [0, 0, 0, 0]])
    rewards = np.array([[1.0, 2.0, 0.0, 3.0], [1.0, 1.0, 1.0, 1.0]])
    values = np.array([[0.5, 1.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    adv = segment_gae(rewards, values, policy, terminal, next_value, gamma=0.9, lam=0.5)
    # t3: 3 + 0.9·2 − 1 = 3.8; t1: 2 − 1 = 1 (terminal); t0: (1 + 0.9·1 − 0.5) + 0.45·1 = 1.85
    np.testing.assert_allclose(adv[0], [1.85, 1.0, 0.0, 3.8])
    # 1, 1 + 0.45·1, 1 + 0.45·1.45, 1 + 0.45·1.6525
    np.testing.assert_allclose(adv[1], [1.743625, 1.6525, 1.45, 1.0])


def test_lagrange_step_by_hand():
    assert lagrange_step(5.0, rate=20.0, limit=5.0, lr=1.0) == pytest.approx(8.0)  # 3× over: +3
    assert lagrange_step(5.0, rate=0.0, limit=5.0, lr=1.0) == pytest.approx(4.0)  # none: −1
    assert lagrange_step(0.5, rate=0.0, limit=5.0, lr=1.0) == 0.0  # never below 0


def test_config_refuses_held_out_seeds_and_unknown_keys():
    with pytest.raises(ConfigError, match="held-out"):
        config_from_dict(BatchedPPOConfig, {"seed": 999_000, "batch": 256, "updates": 8})
    with pytest.raises(ConfigError, match="crawl_ratio"):
        config_from_dict(BatchedPPOConfig, {"crawl_rate": 0.5})


def _braking_policy() -> DriveGPTPolicy:
    """The shipped accel DriveGPT with its head forced to one token: −1.2 m/s², keep lane."""
    model, meta = load_policy_dir(ACCEL_POLICY)
    token = ACCEL_BINS.index(-1.2) * len(LANE_INTENTS) + LANE_INTENTS.index("keep")
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.fill_(-50.0)
        model.head.bias[token] = 50.0
    return DriveGPTPolicy(model, meta)


def _rollout(pol: DriveGPTPolicy, **settings: object) -> dict[str, np.ndarray]:
    cfg = config_from_dict(BatchedPPOConfig, {"env_id": "drivegpt/Highway-v0", "max_steps": 20, **settings})
    ref = DriveGPTPolicy.load(ACCEL_POLICY)
    config = batched.make_config(cfg.env_id, "accel", pol.env_config)
    pol.sampler = torch.Generator().manual_seed(0)
    torch.manual_seed(0)  # the value head's initial weights
    critic = ValueHead(pol.model.cfg.n_embd)
    with torch.inference_mode():
        return rollout(pol, ref, None, critic, config, list(range(500_000, 500_006)), cfg)


def test_crawl_triggered_takeover_fires_on_a_braking_policy_and_only_when_on():
    on = _rollout(_braking_policy(), crawl_ratio=0.95, crawl_steps=3, max_steps=30)
    off = _rollout(_braking_policy())
    assert on["crawl"].sum() > 0 and off["crawl"].sum() == 0
    assert (on["takeover"] >= on["crawl"]).all()  # a crawl is a takeover: the human drives
    b, t = np.argwhere(on["crawl"])[0]
    assert not on["acted"][b, t + 1] and on["executed"][b, t + 1] != on["proposal"][b, t + 1]
    # the scores are the policy's: log π of a forced token is ~0, KL to the shipped policy is large
    assert np.abs(on["logp"][on["valid"]]).max() < 1e-3 and on["kl"][on["valid"]].min() > 0.1


def test_rollout_is_deterministic():
    a = _rollout(DriveGPTPolicy.load(ACCEL_POLICY), max_steps=12)
    b = _rollout(DriveGPTPolicy.load(ACCEL_POLICY), max_steps=12)
    assert a["valid"].shape == (6, 12) and a["truncated"][:, -1].all()  # the step cap truncates
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_ppo_command_runs_resumes_and_refuses_to_overwrite(tmp_path):
    model, meta = load_policy_dir(ACCEL_POLICY)
    save_policy(tmp_path / "rm" / "reward", model, {**meta, "role": "reward"})
    cfg = tmp_path / "ppo.yaml"
    cfg.write_text("env_id: drivegpt/Highway-v0\nupdates: 1\nbatch: 3\nmax_steps: 12\nminibatch_size: 8\n")
    args = ["ppo", "--config", str(cfg), "--policy", str(ACCEL_POLICY), "--out", str(tmp_path / "run")]
    args += ["--reward", str(tmp_path / "rm")]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "policy steps" in r.output
    assert (tmp_path / "run" / "policy" / "model.safetensors").is_file()
    assert DriveGPTPolicy.load(tmp_path / "run").action_kind == "accel"
    r = runner.invoke(app, args)
    assert r.exit_code != 0 and "--resume" in r.output
    r = runner.invoke(app, [*args, "--resume", "--updates", "2"])
    assert r.exit_code == 0, r.output
    rows = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["1", "2"]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["update"] == 2 and metrics["policy_steps"] > 0 and np.isfinite(metrics["kl"])
    r = runner.invoke(app, ["ppo", "--config", str(cfg), "--out", str(tmp_path / "x")])
    assert r.exit_code != 0 and "--reward" in r.output  # rm_coef 1 without a reward model
    r = runner.invoke(app, [*args[:-4], "--out", str(tmp_path / "new"), "--resume"])
    assert r.exit_code != 0 and "nothing to resume" in r.output
    merge = "drivegpt/Merge-v0"
    for line, says in (("device: bogus", "unknown device 'bogus'"),
                       (f"env_id: {merge}", f"does not support env id '{merge}'")):  # fmt: skip
        bad = tmp_path / "bad.yaml"
        bad.write_text(cfg.read_text().replace("env_id: drivegpt/Highway-v0", line))
        given = ["--config", str(bad), *args[3:5], *args[7:], "--out", str(tmp_path / "b")]
        r = runner.invoke(app, ["ppo", *given])
        assert r.exit_code == 2 and says in r.output, r.output  # one line, before any work
        assert not (tmp_path / "b").exists()
