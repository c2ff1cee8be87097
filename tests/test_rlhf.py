"""Reward model, PPO pieces, DPO and one tiny flywheel round through the CLI."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from drivegpt.cli.app import app
from drivegpt.model.checkpoint import CheckpointError, load_policy_dir
from drivegpt.policies.registry import SHIPPED_CHECKPOINT
from drivegpt.rlhf.dpo import DPOConfig, dpo
from drivegpt.rlhf.ppo import Rollout, RolloutJob, ValueHead, gae, rollout_one, score_steps, windows_of
from drivegpt.rlhf.preferences import policy_steps
from drivegpt.rlhf.reward_model import RewardConfig, load_reward_model, train_reward_model
from drivegpt.takeover.monitor import MonitorConfig

SAMPLE = "takeover_data/sample"
runner = CliRunner()


def test_gae_by_hand():
    # λ = 1, V = 0: advantages are the discounted returns-to-go; the episode ends at its last step
    adv = gae(np.array([1.0, 0.0, -5.0]), np.zeros(3), gamma=0.5, lam=1.0)
    np.testing.assert_allclose(adv, [1.0 + 0.25 * -5.0, 0.5 * -5.0, -5.0])
    # λ = 0: one-step TD errors r + γ V(t+1) - V(t)
    adv = gae(np.array([1.0, 2.0]), np.array([0.5, 1.0]), gamma=0.5, lam=0.0)
    np.testing.assert_allclose(adv, [1.0 + 0.5 * 1.0 - 0.5, 2.0 - 1.0])


def test_weak_steps_are_policy_steps_far_from_a_takeover():
    ep = SimpleNamespace(
        actions=np.arange(8),
        observations=np.zeros((9, 10, 7), np.float32),
        controller=np.array([0, 0, 0, 0, 0, 1, 1, 0], np.int8),
        crashed=False,
    )
    steps = policy_steps([ep], margin=2)
    # takeover at step 5: steps 3, 4 (within 2 steps of it) and the human's 5, 6 are not weak
    assert steps["weak"].tolist() == [True, True, True, False, False, False, False, True]
    crashed = SimpleNamespace(**{**vars(ep), "controller": np.zeros(8, np.int8), "crashed": True})
    assert policy_steps([crashed], margin=2)["weak"].tolist() == [True] * 5 + [False] * 3


def test_kl_is_zero_when_the_policy_is_the_reference():
    model, meta = load_policy_dir(SHIPPED_CHECKPOINT)
    rng = np.random.default_rng(0)

    def obs(n):
        return rng.normal(size=(n, 10, 7)).astype(np.float32)

    rollouts = [Rollout(obs(n), rng.integers(0, 5, n), False, False, 0, np.ones(n)) for n in (3, 6)]
    w = windows_of(rollouts, meta, model.cfg.context)
    assert w.obs.shape == (9, model.cfg.context, 10, 7)
    assert not w.mask[0, :-1].any() and w.mask[3, -1] and not w.mask[3, -2]  # windows stop at episode starts
    s = score_steps(model, model, model, ValueHead(model.cfg.n_embd), w, tau=0.5)
    torch.testing.assert_close(s["kl"], torch.zeros(9), atol=1e-6, rtol=0)
    assert torch.all(s["logp"] <= 0)


def test_rollouts_are_deterministic_and_end_at_the_first_takeover():
    job = RolloutJob(SHIPPED_CHECKPOINT, 0.5, 0, "drivegpt/HighwayDense-v0", 3, MonitorConfig().to_dict(), 40)
    a, b = rollout_one(job), rollout_one(job)
    np.testing.assert_array_equal(a.actions, b.actions)
    np.testing.assert_array_equal(a.obs, b.obs)
    assert len(a.obs) == len(a.actions) > 0
    other = rollout_one(job._replace(seed=4))
    assert len(other.actions) != len(a.actions) or not np.array_equal(other.obs, a.obs)


@pytest.fixture(scope="module")
def reward_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("rm") / "rm"
    cfg = RewardConfig(iters=60, val_fraction=0.0, threads=1)
    m = train_reward_model(cfg, [SAMPLE], SHIPPED_CHECKPOINT, out, progress=False)
    return out, m


def test_reward_model_learns_the_pairs_and_round_trips(reward_run):
    out, m = reward_run
    assert m["train_pairwise_accuracy"] >= 0.9 and m["train_pairs"] > 0
    model, meta = load_reward_model(out)
    assert meta["role"] == "reward"
    saved = load_policy_dir(out / "reward")[0].state_dict()
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, saved[k], atol=0, rtol=0)
    with pytest.raises(CheckpointError, match="not a reward model"):
        load_reward_model(SHIPPED_CHECKPOINT)


def test_reward_score_cli(reward_run, tmp_path):
    out, _ = reward_run
    args = ["reward", "score", "--reward", str(out), "--policy", "human", "--policy", "constant:FASTER"]
    r = runner.invoke(app, args + ["--episodes", "2", "--workers", "1", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    scores = json.loads((tmp_path / "scores.json").read_text())["scores"]
    assert set(scores) == {"human", "constant:FASTER"}
    assert all(np.isfinite(s["reward_mean"]) for s in scores.values())


def test_dpo_raises_the_chosen_log_ratio(tmp_path):
    cfg = DPOConfig(iters=40, val_fraction=0.0, threads=1)
    m = dpo(cfg, [SAMPLE], SHIPPED_CHECKPOINT, tmp_path, progress=False)
    assert m["train_pairs"] > 0
    from drivegpt.data.tokenizer import tokenizer_from_json
    from drivegpt.rlhf.dpo import implicit_accuracy
    from drivegpt.rlhf.preferences import load_preferences

    policy, meta = load_policy_dir(tmp_path / "policy")
    ref, _ = load_policy_dir(SHIPPED_CHECKPOINT)
    tok, norm = tokenizer_from_json(meta["tokenizer"])
    pairs = load_preferences([SAMPLE], tok, norm, policy.cfg.context).pairs
    assert implicit_accuracy(policy, ref, pairs) >= 0.9


TINY = """
method: ppo
rounds: 1
drive_episodes: 2
ranking_steps: 2
reward: {iters: 5, val_fraction: 0.0}
ppo: {updates: 1, episodes_per_update: 2, max_steps: 5}
eval_episodes: 1
workers: 1
"""


def test_flywheel_one_tiny_round_through_the_cli_and_resume(tmp_path):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(TINY)
    out = tmp_path / "fly"
    args = ["rlhf", "--config", str(cfg), "--policy", SHIPPED_CHECKPOINT, "--out", str(out)]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    for f in (
        "round_1/clips/metadata.json",
        "round_1/reward/reward/model.safetensors",
        "round_1/ppo/log.csv",
        "round_0/eval/metrics.json",
        "round_1/eval/metrics.json",
        "policy/policy.json",
        "run.json",
    ):
        assert (out / f).is_file(), f
    curve = (out / "curve.csv").read_text().splitlines()
    assert curve[0].startswith("round,takeovers") and len(curve) == 3
    assert (out / "learning_curve.png").stat().st_size > 5000
    stamp = (out / "round_1" / "ppo" / "metrics.json").stat().st_mtime_ns
    r = runner.invoke(app, args)  # resume: every step is complete, nothing re-runs
    assert r.exit_code == 0, r.output
    assert (out / "round_1" / "ppo" / "metrics.json").stat().st_mtime_ns == stamp
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: ppo\nroundz: 2\n")
    r = runner.invoke(app, ["rlhf", "--config", str(bad), "--policy", SHIPPED_CHECKPOINT, "--out", str(out)])
    assert r.exit_code == 2 and "roundz" in r.output and "rounds" in r.output


def test_ranked_segments_leave_the_episode_unchanged_and_feed_the_ranking():
    from drivegpt.data.tokenizer import ActionTokenizer, ObsNormalizer
    from drivegpt.eval.closed_loop import drive_monitored_one
    from drivegpt.policies.registry import DriveJob
    from drivegpt.rlhf.preferences import ranked_batch

    job = DriveJob("constant:FASTER", "drivegpt/Highway-v0", "meta", 1_000_000, {"ranking_steps": 3})
    ep, clips = drive_monitored_one(job)
    plain, plain_clips = drive_monitored_one(job._replace(monitor={}))
    np.testing.assert_array_equal(ep.observations, plain.observations)  # copies only: same episode
    assert clips and plain_clips and plain_clips[0].ranked is None
    r = clips[0].ranked
    assert r["ranked_obs"].shape == (3, 3, 10, 7) and r["ranked_actions"].shape == (3, 3)
    n = int(r["ranked_len"][0])
    assert (r["ranked_actions"][0][:n] == 3).all()  # the old policy keeps going FASTER
    assert r["ranked_actions"][2][0] == clips[0].chosen[0]  # the human's first action is the correction
    rb = ranked_batch(clips, ActionTokenizer("meta"), ObsNormalizer((0.0,) * 7, (1.0,) * 7), K=8)
    assert rb is not None and rb.obs.shape[1:3] == (3, 8) and rb.pairs.any()
    assert int(rb.segment[0, 0].sum()) == n
    short = ranked_batch(clips, ActionTokenizer("meta"), ObsNormalizer((0.0,) * 7, (1.0,) * 7), K=2)
    assert short is not None and short.obs.shape[2] == 2  # segments longer than the context are cropped
