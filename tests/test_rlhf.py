"""Reward model, PPO pieces, DPO and one tiny flywheel round through the CLI."""

import csv
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch.nn import functional as F
from typer.testing import CliRunner

from drivegpt.cli.app import app
from drivegpt.core.errors import UserError
from drivegpt.data.tokenizer import tokenizer_from_json
from drivegpt.data.windows import WindowBatch
from drivegpt.model.checkpoint import CheckpointError, load_policy_dir
from drivegpt.model.gpt import DriveGPT, DriveGPTConfig
from drivegpt.policies.registry import RLHF_CHECKPOINT, SHIPPED_CHECKPOINT, drivegpt_dir
from drivegpt.rlhf.actor_critic import ValueHead, gae, ppo_update
from drivegpt.rlhf.dpo import DPOConfig, dpo
from drivegpt.rlhf.ppo import (
    RLHFConfig,
    Rollout,
    RolloutJob,
    bootstrap_values,
    final_windows,
    rollout_one,
    score_steps,
    windows_of,
)
from drivegpt.rlhf.preferences import policy_steps
from drivegpt.rlhf.reward_model import RewardConfig, load_reward_model, train_reward_model
from drivegpt.takeover.monitor import MonitorConfig

SAMPLE = "takeover_data/sample"  # meta clips
SAMPLE_ACCEL = "takeover_data/sample-accel"  # clips of the shipped checkpoints' accel actions
runner = CliRunner()


def test_gae_by_hand() -> None:
    # λ = 1, V = 0: advantages are the discounted returns-to-go; the episode terminates at its last step
    adv = gae(np.array([1.0, 0.0, -5.0]), np.zeros(3), gamma=0.5, lam=1.0, next_value=None)
    np.testing.assert_allclose(adv, [1.0 + 0.25 * -5.0, 0.5 * -5.0, -5.0])
    # λ = 0: one-step TD errors r + γ V(t+1) - V(t)
    adv = gae(np.array([1.0, 2.0]), np.array([0.5, 1.0]), gamma=0.5, lam=0.0, next_value=None)
    np.testing.assert_allclose(adv, [1.0 + 0.5 * 1.0 - 0.5, 2.0 - 1.0])
    with pytest.raises(ValueError, match="3 rewards but 2 values"):
        gae(np.zeros(3), np.zeros(2), gamma=0.5, lam=0.5, next_value=None)


def test_gae_truncation_bootstraps_and_termination_does_not() -> None:
    r, v = np.array([1.0, 0.0, 2.0]), np.array([0.5, 1.0, 2.0])  # rewards, V(s_0), V(s_1), V(s_2)
    # γ = 0.5, λ = 0.5 (γλ = 0.25). Truncated by the time limit, V(s_3) = 4 from the value head:
    #   δ2 = 2 + 0.5·4 - 2   = 2    A2 = 2
    #   δ1 = 0 + 0.5·2 - 1   = 0    A1 = 0 + 0.25·2   = 0.5
    #   δ0 = 1 + 0.5·1 - 0.5 = 1    A0 = 1 + 0.25·0.5 = 1.125
    np.testing.assert_allclose(gae(r, v, gamma=0.5, lam=0.5, next_value=4.0), [1.125, 0.5, 2.0])
    # Terminated (a collision, or a takeover): nothing follows s_2, whatever V(s_3) would say
    #   δ2 = 2 - 2 = 0    A2 = 0
    #   δ1 = 0            A1 = 0 + 0.25·0 = 0
    #   δ0 = 1            A0 = 1 + 0.25·0 = 1
    np.testing.assert_allclose(gae(r, v, gamma=0.5, lam=0.5, next_value=None), [1.0, 0.0, 0.0])
    # One step ended by a takeover (reward -5, V(s_0) = 1): A = -5 - 1 = -6; the same step cut by
    # the time limit with V(s_1) = 3 would be A = -5 + 0.5·3 - 1 = -4.5
    assert gae(np.array([-5.0]), np.array([1.0]), 0.5, 0.9, next_value=None).tolist() == [-6.0]
    assert gae(np.array([-5.0]), np.array([1.0]), 0.5, 0.9, next_value=3.0).tolist() == [-4.5]


def test_the_bootstrap_value_reads_the_final_observation_after_the_episode() -> None:
    model, meta = load_policy_dir(SHIPPED_CHECKPOINT)
    K = model.cfg.context
    rng = np.random.default_rng(1)

    def obs(n: int) -> np.ndarray:
        o = rng.normal(size=(n, 10, 7)).astype(np.float32)
        o[:, :, 0] = 1.0
        return o

    crashed = Rollout(obs(2), np.array([1, 3]), False, True, 0.0, np.ones(2))
    truncated = Rollout(obs(3), np.array([4, 0, 2]), False, False, 0.0, np.ones(3), obs(1)[0])
    taken_over = Rollout(obs(4), np.array([1, 1, 1, 3]), True, False, 0.0, np.ones(3))
    assert (crashed.truncated, truncated.truncated, taken_over.truncated) == (False, True, False)
    rollouts = [crashed, truncated, taken_over]
    w = final_windows(rollouts, meta, K)
    assert w is not None and w.obs.shape == (1, K, 10, 7)  # one window: the truncated rollout's s_T
    _, norm = tokenizer_from_json(meta["tokenizer"])
    seen = norm(np.concatenate([truncated.obs, truncated.final_obs[None]]))  # s_0..s_2 then s_3
    torch.testing.assert_close(w.obs[0, -4:], torch.from_numpy(seen))
    assert w.mask[0].tolist() == [False] * (K - 4) + [True] * 4  # its own history, not the crashed one's
    assert w.actions[0, -4:-1].tolist() == [4, 0, 2]
    critic = ValueHead(model.cfg.n_embd)
    values = bootstrap_values(model, critic, rollouts, meta, K)
    assert values[0] is None and values[2] is None  # terminated: no bootstrap
    assert values[1] is not None
    for a in range(5):  # V(s_3) is the value head there, whatever token stands at a_3 (never seen)
        actions = w.actions.clone()
        actions[0, -1] = a
        with torch.no_grad():
            assert float(critic(model.hidden(w.obs, actions)[:, -1])[0]) == pytest.approx(values[1], abs=1e-5)
    assert final_windows([crashed, taken_over], meta, K) is None
    assert bootstrap_values(model, critic, [crashed, taken_over], meta, K) == [None, None]


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


def test_kl_is_zero_when_the_policy_is_the_reference() -> None:
    model, meta = load_policy_dir(SHIPPED_CHECKPOINT)
    rng = np.random.default_rng(0)

    def obs(n: int) -> np.ndarray:
        return rng.normal(size=(n, 10, 7)).astype(np.float32)

    rollouts = [Rollout(obs(n), rng.integers(0, 5, n), False, False, 0, np.ones(n)) for n in (3, 6)]
    w = windows_of(rollouts, meta, model.cfg.context)
    assert w.obs.shape == (9, model.cfg.context, 10, 7)
    assert not w.mask[0, :-1].any() and w.mask[3, -1] and not w.mask[3, -2]  # windows stop at episode starts
    s = score_steps(model, model, model, ValueHead(model.cfg.n_embd), w, tau=0.5)
    torch.testing.assert_close(s["kl"], torch.zeros(9), atol=1e-6, rtol=0)
    with torch.no_grad():
        logits = model(w.obs, w.actions)[:, -1]  # (9, vocab)
    a = w.actions[:, -1:]
    # log π(a_t) at temperature 0.5; the reward model's score centred over the vocabulary
    torch.testing.assert_close(s["logp"], F.log_softmax(logits / 0.5, -1).gather(1, a)[:, 0])
    torch.testing.assert_close(s["rm"], (logits - logits.mean(-1, keepdim=True)).gather(1, a)[:, 0])
    torch.manual_seed(0)
    other = DriveGPT(model.cfg)  # another policy: a positive KL to the reference
    s = score_steps(other, model, model, ValueHead(model.cfg.n_embd), w, tau=0.5)
    assert bool((s["kl"] > 0).all())


TINY_GPT = DriveGPTConfig(context=3, n_layer=1, n_head=2, n_embd=16)
UNIFORM_LOGP = -math.log(5)


def _uniform_policy_batch(last: list[int]) -> tuple[DriveGPT, ValueHead, WindowBatch]:
    """A tiny policy with a zero head (π uniform: log π(a) = -log 5 everywhere), a critic whose
    V is 0, and one window per entry of ``last`` (the action taken at the window's last step)."""
    torch.manual_seed(0)
    policy, critic = DriveGPT(TINY_GPT), ValueHead(TINY_GPT.n_embd)
    with torch.no_grad():
        policy.head.weight.zero_()
        policy.head.bias.zero_()
        critic.net[-1].weight.zero_()
        critic.net[-1].bias.zero_()
    g = torch.Generator().manual_seed(0)
    B, K = len(last), TINY_GPT.context
    obs = torch.randn(B, K, 10, 7, generator=g)
    obs[..., 0] = 1.0
    actions = torch.randint(0, 5, (B, K), generator=g)
    actions[:, -1] = torch.tensor(last)
    return policy, critic, WindowBatch(obs, actions, actions, torch.ones(B, K, dtype=torch.bool))


def _logp(policy: DriveGPT, w: WindowBatch) -> torch.Tensor:
    with torch.no_grad():
        return F.log_softmax(policy(w.obs, w.actions)[:, -1], -1).gather(1, w.actions[:, -1:])[:, 0]


PPO = RLHFConfig(epochs=1, minibatch_size=4, temperature=1.0, clip_range=0.2, max_grad_norm=100.0)


def _ppo(
    policy: DriveGPT, critic: ValueHead, w: WindowBatch, old: list[float], adv: list[float]
) -> dict[str, float]:
    opt = torch.optim.SGD(policy.parameters(), lr=0.1)  # plain gradient steps: the sign is the gradient's
    vf_opt = torch.optim.SGD(critic.parameters(), lr=0.01)
    returns = torch.tensor([1.0, 2.0, -1.0, 0.0])
    gen = torch.Generator().manual_seed(0)
    return ppo_update(policy, critic, opt, vf_opt, w, torch.tensor(old), torch.tensor(adv), returns, PPO, gen)


def test_ppo_update_raises_positive_advantage_actions_and_lowers_negative_ones() -> None:
    policy, critic, w = _uniform_policy_batch([1, 1, 3, 3])
    torch.testing.assert_close(_logp(policy, w), torch.full((4,), UNIFORM_LOGP))
    stats = _ppo(policy, critic, w, [UNIFORM_LOGP] * 4, [1.0, 1.0, -1.0, -1.0])
    after = _logp(policy, w)
    assert bool((after[:2] > UNIFORM_LOGP + 1e-3).all()) and bool((after[2:] < UNIFORM_LOGP - 1e-3).all())
    # logged on the batch before the step: ratio 1 (nothing clipped), the uniform policy's entropy
    # log 5, and the critic's MSE with V = 0 against returns (1, 2, -1, 0): (1 + 4 + 1 + 0) / 4
    assert stats["clip_fraction"] == 0.0
    assert stats["entropy"] == pytest.approx(math.log(5), abs=1e-6)
    assert stats["value_loss"] == pytest.approx(1.5, abs=1e-6)
    with torch.no_grad():  # and the critic's step moved V toward the returns
        v = critic(policy.hidden(w.obs, w.actions)[:, -1])
    assert float(F.mse_loss(v, torch.tensor([1.0, 2.0, -1.0, 0.0]))) < 1.5


def test_ppo_clip_stops_the_gradient_only_past_the_trust_region_in_the_advantages_direction() -> None:
    policy, critic, w = _uniform_policy_batch([1, 1, 3, 3])
    adv = [1.0, 1.0, -1.0, -1.0]
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    # old log π = log π - 1 on the positive advantages: ratio e = 2.72 > 1 + 0.2; old = log π + 1 on
    # the negative ones: ratio 1/e = 0.37 < 1 - 0.2. Both already moved past the clip the way their
    # advantage pushes, so min(ratio·A, clip(ratio)·A) = clip(ratio)·A = 1.2 or -0.8: a constant, a zero
    # gradient, and the policy does not move at all.
    stats = _ppo(policy, critic, w, [UNIFORM_LOGP - 1] * 2 + [UNIFORM_LOGP + 1] * 2, adv)
    assert stats["clip_fraction"] == 1.0
    for k, v in policy.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)
    # The same ratios the other way round (1/e on positive advantages, e on negative ones) are outside
    # the range too, but there the unclipped ratio·A is the smaller term: its gradient stays.
    stats = _ppo(policy, critic, w, [UNIFORM_LOGP + 1] * 2 + [UNIFORM_LOGP - 1] * 2, adv)
    assert stats["clip_fraction"] == 1.0
    after = _logp(policy, w)
    assert bool((after[:2] > UNIFORM_LOGP + 1e-3).all()) and bool((after[2:] < UNIFORM_LOGP - 1e-3).all())


def test_rollouts_are_deterministic_and_end_at_the_first_takeover() -> None:
    meta_small = SHIPPED_CHECKPOINT.parent / "drivegpt-meta-small"  # the checkpoint seed 3 was chosen for
    job = RolloutJob(meta_small, 0.5, 0, "drivegpt/HighwayDense-v0", 3, MonitorConfig().to_dict(), 40)
    a, b = rollout_one(job), rollout_one(job)
    np.testing.assert_array_equal(a.actions, b.actions)
    np.testing.assert_array_equal(a.obs, b.obs)
    assert len(a.obs) == len(a.actions) > 0
    # seed 3 is taken over at step 8 of 40: terminal for the policy, so no state to bootstrap from
    assert a.taken_over and len(a.actions) < 40 and not a.truncated and a.final_obs is None
    other = rollout_one(job._replace(seed=4))
    assert len(other.actions) != len(a.actions) or not np.array_equal(other.obs, a.obs)


def test_a_rollout_cut_by_the_step_cap_is_truncated_at_the_next_observation() -> None:
    job = RolloutJob(SHIPPED_CHECKPOINT, 0.5, 0, "drivegpt/HighwayDense-v0", 3, MonitorConfig().to_dict(), 3)
    short, longer = rollout_one(job), rollout_one(job._replace(max_steps=4))
    assert not (short.taken_over or short.crashed) and short.truncated and len(short.actions) == 3
    np.testing.assert_array_equal(short.obs, longer.obs[:3])  # same seed, same first steps
    assert short.final_obs is not None
    np.testing.assert_array_equal(short.final_obs, longer.obs[3])  # s_T: where the policy drives on from


@pytest.fixture(scope="module")
def reward_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("rm") / "rm"
    cfg = RewardConfig(iters=30, val_fraction=0.0, threads=1)
    m = train_reward_model(cfg, [SAMPLE_ACCEL], SHIPPED_CHECKPOINT, out, progress=False)
    return out, m


def test_reward_model_learns_the_pairs_and_round_trips(reward_run):
    out, m = reward_run
    assert m["train_pairwise_accuracy"] >= 0.9 and m["train_pairs"] > 0
    strict = json.loads((out / "metrics.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert strict["ranked_clips"] == 0 and strict["val_ranking_accuracy"] is None  # nothing ranked: null
    model, meta = load_reward_model(out)
    assert meta["role"] == "reward"
    saved = load_policy_dir(out / "reward")[0].state_dict()
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, saved[k], atol=0, rtol=0)
    with pytest.raises(CheckpointError, match="not a reward model"):
        load_reward_model(SHIPPED_CHECKPOINT)
    with pytest.raises(UserError, match="no reward model here; train one with `drivegpt reward train`"):
        load_reward_model(out.parent / "absent")


def test_reward_score_cli(reward_run, tmp_path):
    out, _ = reward_run
    args = ["reward", "score", "--reward", str(out), "--policy", "human", "--policy", "constant:3,keep"]
    r = runner.invoke(app, args + ["--episodes", "1", "--workers", "1", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    scores = json.loads((tmp_path / "scores.json").read_text())["scores"]
    assert set(scores) == {"human", "constant:3,keep"} and scores["human"]["episodes"] == 1
    meta = [*args[:-1], "constant:FASTER", "--out", str(tmp_path / "meta")]  # meta-actions: other tokens
    r = runner.invoke(app, meta)
    assert r.exit_code == 2 and "constant:FASTER: drives meta actions" in r.output, r.output
    assert all(np.isfinite(s["reward_mean"]) for s in scores.values())


def test_clips_of_another_action_interface_are_refused(tmp_path):
    """Meta-action clips would be read as accel tokens by an accel model: refused, naming the folder."""
    with pytest.raises(UserError, match="sample: clips recorded with meta actions .* a model of accel"):
        dpo(DPOConfig(iters=1, threads=1), [SAMPLE], SHIPPED_CHECKPOINT, tmp_path, progress=False)
    assert not (tmp_path / "policy").exists()


def test_dpo_raises_the_chosen_log_ratio(tmp_path, monkeypatch):
    cfg = DPOConfig(iters=40, val_fraction=0.0, threads=1)
    m = dpo(cfg, [SAMPLE_ACCEL], SHIPPED_CHECKPOINT, tmp_path, progress=False)
    assert m["train_pairs"] > 0
    from drivegpt.data.tokenizer import tokenizer_from_json
    from drivegpt.rlhf.dpo import implicit_accuracy
    from drivegpt.rlhf.preferences import load_preferences

    policy, meta = load_policy_dir(tmp_path / "policy")
    ref, _ = load_policy_dir(SHIPPED_CHECKPOINT)
    tok, norm = tokenizer_from_json(meta["tokenizer"])
    pairs = load_preferences([SAMPLE_ACCEL], tok, norm, policy.cfg.context).pairs
    assert implicit_accuracy(policy, ref, pairs) >= 0.9
    before = (tmp_path / "run.json").read_text()
    import drivegpt.rlhf.dpo as dpo_module

    monkeypatch.setattr(dpo_module, "dpo_loss", lambda *a: torch.tensor(float("nan")))  # a diverging run
    with pytest.raises(UserError, match="non-finite DPO loss"):  # re-run into the same folder, seed 1
        dpo(cfg.model_copy(update={"seed": 1}), [SAMPLE_ACCEL], SHIPPED_CHECKPOINT, tmp_path, progress=False)
    assert (tmp_path / "run.json").read_text() == before  # still describes the policy beside it


# One drive on seed 1 of dense traffic (the shipped policy is taken over there: one clip to learn
# from); no look-ahead trigger (the pipeline test runs the flywheel with the default monitor).
TINY = """
method: ppo
rounds: 1
drive_episodes: 1
drive_seed: 1
monitor: {lookahead_steps: 0}
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
    assert json.loads((out / "round_1" / "clips" / "metadata.json").read_text())["clips"]  # clips to learn
    curve = (out / "curve.csv").read_text().splitlines()
    assert curve[0].startswith("round,takeovers") and len(curve) == 3
    assert (out / "learning_curve.png").stat().st_size > 5000
    stamp = (out / "round_1" / "ppo" / "metrics.json").stat().st_mtime_ns
    r = runner.invoke(app, args)  # resume: every step is complete, nothing re-runs
    assert r.exit_code == 0, r.output
    assert (out / "round_1" / "ppo" / "metrics.json").stat().st_mtime_ns == stamp
    # a run resumes only itself: another pretrained policy or another config is refused, nothing re-runs
    other = [*args[:4], "drivegpt-rlhf", *args[5:]]
    r = runner.invoke(app, other)
    assert r.exit_code == 2 and "differs in the pretrained policy" in " ".join(r.output.split()), r.output
    seed2 = tmp_path / "seed2.yaml"
    seed2.write_text(TINY.replace("drive_seed: 1", "drive_seed: 2"))
    r = runner.invoke(app, ["rlhf", "--config", str(seed2), *args[3:]])
    assert r.exit_code == 2 and "differs in drive_seed;" in " ".join(r.output.split()), r.output
    iters = tmp_path / "iters.yaml"  # a nested setting is named by its path
    iters.write_text(TINY.replace("reward: {iters: 5,", "reward: {iters: 6,"))
    r = runner.invoke(app, ["rlhf", "--config", str(iters), *args[3:]])
    assert r.exit_code == 2 and "differs in reward.iters;" in " ".join(r.output.split()), r.output
    threads = tmp_path / "threads.yaml"  # settings that change no result resume the run
    threads.write_text(TINY.replace("reward: {iters: 5,", "reward: {threads: 2, iters: 5,"))
    r = runner.invoke(app, ["rlhf", "--config", str(threads), *args[3:]])
    assert r.exit_code == 0, r.output
    assert (out / "round_1" / "ppo" / "metrics.json").stat().st_mtime_ns == stamp
    assert json.loads((out / "run.json").read_text())["config"]["drive_seed"] == 1
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: ppo\nroundz: 2\n")
    r = runner.invoke(app, ["rlhf", "--config", str(bad), "--policy", SHIPPED_CHECKPOINT, "--out", str(out)])
    assert r.exit_code == 2 and "roundz" in r.output and "rounds" in r.output


def test_a_flywheel_round_without_a_takeover_says_what_to_change(tmp_path, monkeypatch):
    """A round whose drive recorded no takeover leaves PPO nothing to learn from: one line naming the
    round's clips and the setting to raise, before any reward model is trained."""
    from drivegpt.rlhf import flywheel
    from drivegpt.takeover.clips import write_clips

    monkeypatch.setattr(
        flywheel, "_drive", lambda cfg, k, current, clips, command, progress: write_clips(clips, [])
    )
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(TINY.replace("eval_episodes: 1", "eval_episodes: 0"))
    out = tmp_path / "fly"
    r = runner.invoke(app, ["rlhf", "--config", str(cfg), "--policy", SHIPPED_CHECKPOINT, "--out", str(out)])
    said = " ".join(r.output.split())
    assert r.exit_code == 2 and "round 1's drive of 1 episodes had no takeover" in said, r.output
    assert "raise drive_episodes" in said and not (out / "round_1" / "reward").exists()


def test_training_commands_take_drivegpt_specs_and_refuse_other_drivers(tmp_path):
    """``rlhf``, ``dpo`` and ``reward train`` start from a spec (``drivegpt``, ``drivegpt-rlhf``,
    ``drivegpt:RUN``) or a run directory; a driver that is not a DriveGPT fails in one line."""
    run = tmp_path / "run"
    (run / "policy").mkdir(parents=True)
    assert drivegpt_dir("drivegpt") == drivegpt_dir("drivegpt:") == SHIPPED_CHECKPOINT
    assert drivegpt_dir("drivegpt-rlhf") == RLHF_CHECKPOINT
    assert drivegpt_dir(f"drivegpt:{run}") == drivegpt_dir(run) == run / "policy"
    assert drivegpt_dir(run / "policy") == run / "policy"
    for spec in ("human", "idm", "sb3-ppo:runs/x", "constant:FASTER"):
        with pytest.raises(UserError, match="not a DriveGPT"):
            drivegpt_dir(spec)
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(TINY)
    r = runner.invoke(app, ["rlhf", "--config", str(cfg), "--policy", "human", "--out", str(tmp_path / "o")])
    assert r.exit_code != 0 and "human: not a DriveGPT policy" in r.output
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("method", ["dpo", "ppo"])
def test_flywheel_drives_on_the_batched_simulator(method, tmp_path):
    """``sim: batched``: the round's monitored drive runs there, its clips (marked batched) replay
    exactly there, and DPO learns from them and the drive's policy steps, or the reward model does
    and PPO then runs its rollouts there too; a killed PPO round resumes its updates."""
    from drivegpt.takeover.clips import load_clips, load_policy_steps
    from drivegpt.takeover.replay import replay_clip

    cfg = tmp_path / "batched.yaml"
    evals = "eval_episodes: 3\neval_sim: batched\neval_env: drivegpt/Highway-v0\n" if method == "dpo" else ""
    cfg.write_text(
        f"method: {method}\nrounds: 1\nsim: batched\nbatch: 4\ndrive_episodes: 4\ndrive_seed: 1\n"
        "monitor: {lookahead_steps: 0}\nranking_steps: 0\ndpo: {iters: 3, val_fraction: 0.0}\n"
        "reward: {iters: 3, val_fraction: 0.0}\n"
        "ppo_batched: {updates: 2, batch: 3, max_steps: 8, threads: 1}\nworkers: 1\n"
        + (evals or "eval_episodes: 0\n")
    )
    out = tmp_path / "fly"
    if method == "ppo":  # a device PPO cannot use is refused before the round's drive, not after it
        bogus = tmp_path / "bogus.yaml"
        bogus.write_text(cfg.read_text().replace("threads: 1}", "threads: 1, device: bogus}"))
        r = runner.invoke(
            app, ["rlhf", "--config", str(bogus), "--policy", SHIPPED_CHECKPOINT, "--out", str(out)]
        )
        assert r.exit_code == 2 and "unknown device 'bogus'" in r.output and not (out / "round_1").exists()
    args = ["rlhf", "--config", str(cfg), "--policy", SHIPPED_CHECKPOINT, "--out", str(out)]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    clips = load_clips(out / "round_1" / "clips")
    meta = json.loads((out / "round_1" / "clips" / "metadata.json").read_text())
    assert clips and {c.sim for c in clips} == {"batched"} and meta["sim"] == "batched"
    assert meta["drive"]["takeovers"] == len(clips)
    steps = load_policy_steps(out / "round_1" / "clips")
    assert steps is not None and len(steps["obs"]) == meta["policy_steps"] and steps["weak"].any()
    assert replay_clip(clips[0], "human").fidelity_max_abs == 0.0
    assert (out / "round_1" / method / "policy" / "policy.json").is_file()
    if method == "dpo":  # held-out evaluation on the batched simulator: its figures, as driven alone
        from drivegpt.core.rundir import policy_dir
        from drivegpt.eval.closed_loop import EVAL_SEED
        from drivegpt.takeover.batched_clips import evaluate_monitored_batched
        from drivegpt.takeover.monitor import MonitorConfig

        spec = f"drivegpt:{policy_dir(SHIPPED_CHECKPOINT)}"
        watch = MonitorConfig(lookahead_steps=0)
        fresh, _ = evaluate_monitored_batched(spec, "drivegpt/Highway-v0", None, 3, EVAL_SEED, 4, watch)
        round0 = json.loads((out / "round_0" / "eval" / "metrics.json").read_text())
        assert {**fresh, "kl_to_reference": 0.0} == round0 and fresh["episodes"] == 3
        assert (out / "round_1" / "eval" / "metrics.json").is_file()
    if method == "ppo":  # the batched PPO's log: 2 updates of 3 episodes, up to 8 steps each
        log = (out / "round_1" / "ppo" / "log.csv").read_text().splitlines()
        assert len(log) == 3
        (out / "round_1" / "ppo" / "metrics.json").unlink()  # as if killed after its last update
        r = runner.invoke(app, args)
        assert r.exit_code == 0, r.output
        assert (out / "round_1" / "ppo" / "log.csv").read_text().splitlines() == log  # nothing redone
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: ppo\nsim: batched\n")  # ranking segments need highway-env's copies
    r = runner.invoke(app, ["rlhf", "--config", str(bad), "--policy", SHIPPED_CHECKPOINT, "--out", str(out)])
    assert r.exit_code == 2 and "ranking_steps: 0" in r.output


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


def test_the_human_term_needs_logs_and_trains_on_their_states(tiny_logs, tmp_path):
    cfg = RewardConfig(iters=5, val_fraction=0.0, threads=1, human_weight=1.0)
    with pytest.raises(UserError, match="--human-logs"):
        train_reward_model(cfg, [SAMPLE_ACCEL], SHIPPED_CHECKPOINT, tmp_path / "a", progress=False)
    out = tmp_path / "b"
    train_reward_model(cfg, [SAMPLE_ACCEL], SHIPPED_CHECKPOINT, out, progress=False, human_logs=tiny_logs)
    rows = list(csv.DictReader((tmp_path / "b" / "log.csv").open()))
    assert float(rows[-1]["human_loss"]) > 0  # cross-entropy of the human's decisions under the scores
    assert json.loads((tmp_path / "b" / "run.json").read_text())["human_logs"] == str(tiny_logs)


def test_human_logs_without_a_human_term_are_refused(tiny_logs, tmp_path):
    """Logs the reward model would not read (human_weight 0) are refused rather than ignored."""
    cfg = RewardConfig(iters=1, val_fraction=0.0, threads=1, human_weight=0.0)
    with pytest.raises(UserError, match="read only with human_weight > 0"):
        train_reward_model(cfg, [SAMPLE_ACCEL], SHIPPED_CHECKPOINT, tmp_path / "rm", human_logs=tiny_logs)
    assert not (tmp_path / "rm").exists()


def test_human_logs_in_another_driving_language_are_refused(tiny_logs, tmp_path):
    cfg = RewardConfig(iters=1, val_fraction=0.0, threads=1, human_weight=1.0)
    meta_policy = SHIPPED_CHECKPOINT.parent / "drivegpt-meta-small"
    with pytest.raises(UserError, match="accel logs for a reward model that speaks meta"):
        train_reward_model(cfg, [SAMPLE], meta_policy, tmp_path / "rm", progress=False, human_logs=tiny_logs)
