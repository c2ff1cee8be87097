import math

import numpy as np
import pytest
import torch

from drivegpt.data.tokenizer import ActionTokenizer, ObsNormalizer, tokenizer_to_json
from drivegpt.model.checkpoint import CheckpointError, load_policy_dir, save_policy
from drivegpt.model.gpt import DriveGPT, DriveGPTConfig
from drivegpt.model.policy import DriveGPTPolicy
from drivegpt_envs.common import action_config, kinematics_observation

CFG = DriveGPTConfig(context=6, n_layer=2, n_head=2, n_embd=16)


def _batch(B=3, T=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(B, T, 10, 7, generator=g)
    obs[..., 0] = (torch.rand(B, T, 10, generator=g) > 0.3).float()
    actions = torch.randint(0, 5, (B, T), generator=g)
    return obs, actions


def test_future_tokens_cannot_change_earlier_predictions():
    torch.manual_seed(0)
    model = DriveGPT(CFG).eval()
    obs, actions = _batch()
    base = model(obs, actions)
    for t in range(CFG.context - 1):
        obs2, actions2 = obs.clone(), actions.clone()
        obs2[:, t + 1 :] = torch.randn_like(obs2[:, t + 1 :])
        actions2[:, t:] = (actions2[:, t:] + 1) % 5  # a_t itself is the target of row t
        out = model(obs2, actions2)
        torch.testing.assert_close(out[:, : t + 1], base[:, : t + 1])
        assert not torch.allclose(out[:, t + 1 :], base[:, t + 1 :])


def test_states_only_model_ignores_past_actions_in_training_and_driving(tmp_path):
    """``show_actions=False``: the action ids cannot change a prediction, in ``forward`` and in the
    driving policy's incremental form, and the setting survives a save/load."""
    cfg = DriveGPTConfig(context=6, n_layer=2, n_head=2, n_embd=16, show_actions=False)
    torch.manual_seed(0)
    model = DriveGPT(cfg).eval()
    obs, actions = _batch()
    with torch.no_grad():
        base = model(obs, actions)
        torch.testing.assert_close(model(obs, (actions + 1) % 5), base, rtol=0, atol=0)
        shown = DriveGPT(CFG).eval()
        shown.load_state_dict(model.state_dict())
        assert not torch.allclose(shown(obs, (actions + 1) % 5), shown(obs, actions))
    save_policy(tmp_path / "p", model, _meta())
    loaded, _ = load_policy_dir(tmp_path / "p")
    assert loaded.cfg.show_actions is False
    pol = DriveGPTPolicy(loaded, _meta())
    pol.reset(0)
    o = np.random.default_rng(0).standard_normal((10, 7)).astype(np.float32)
    o[:, 0] = 1.0
    pol.act(o)
    pol.executed((int(pol.tokens[0, -1]) + 1) % 5)
    pol.push(o[None])
    with torch.inference_mode():
        after_other = pol.model.head(pol.last_hidden())
        pol.tokens[0, -2] = (int(pol.tokens[0, -2]) + 2) % 5
        torch.testing.assert_close(pol.model.head(pol.last_hidden()), after_other, rtol=0, atol=0)


def test_hand_checked_loss_uniform_logits_and_masking():
    model = DriveGPT(CFG)
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
    obs, actions = _batch()
    mask = torch.ones_like(actions, dtype=torch.bool)
    assert float(model.loss(obs, actions, mask).detach()) == pytest.approx(math.log(5), abs=1e-6)
    with torch.no_grad():
        model.head.bias.copy_(torch.tensor([0.0, math.log(3), 0.0, 0.0, 0.0]))  # p(1)=3/7
    ones = torch.ones_like(actions)
    # CE of token 1 = -log(3/7); positions outside the mask must not count
    mask[:, :2] = False
    ones[:, :2] = 0  # their targets differ, but are masked out
    assert float(model.loss(obs, ones, mask).detach()) == pytest.approx(-math.log(3 / 7), abs=1e-6)


def _meta(kind="meta"):
    tok = ActionTokenizer(kind)
    norm = ObsNormalizer(tuple([0.0] * 7), tuple([1.0] * 7))
    return {
        "action": kind,
        "observation": kinematics_observation(),
        "env_config": action_config(kind),
        "tokenizer": tokenizer_to_json(tok, norm),
    }


def test_save_load_gives_identical_actions(tmp_path):
    torch.manual_seed(1)
    model = DriveGPT(CFG)
    save_policy(tmp_path / "p", model, _meta())
    loaded, meta = load_policy_dir(tmp_path / "p")
    a, b = DriveGPTPolicy(model, _meta()), DriveGPTPolicy(loaded, meta)
    rng = np.random.default_rng(0)
    a.reset(0)
    b.reset(0)
    for _ in range(10):  # longer than the context: the history window slides
        o = rng.normal(size=(10, 7)).astype(np.float32)
        o[:, 0] = 1.0
        assert a.act(o) == b.act(o)


def test_batched_form_matches_single(tmp_path):
    torch.manual_seed(2)
    model = DriveGPT(CFG)
    single, batched = DriveGPTPolicy(model, _meta()), DriveGPTPolicy(model, _meta())
    rng = np.random.default_rng(1)
    obs = rng.normal(size=(8, 3, 10, 7)).astype(np.float32)
    obs[..., 0] = 1.0
    batched.reset_batch(3)
    outs = np.stack([batched.act_batch(obs[t]) for t in range(8)])
    for i in range(3):
        single.reset(0)
        np.testing.assert_array_equal([single.act(obs[t, i]) for t in range(8)], outs[:, i])


def test_corrupt_or_missing_checkpoint_is_rejected(tmp_path):
    model = DriveGPT(CFG)
    save_policy(tmp_path / "p", model, _meta())
    w = tmp_path / "p" / "model.safetensors"
    raw = bytearray(w.read_bytes())
    raw[:8] = b"\xff" * 8  # header length
    w.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_policy_dir(tmp_path / "p")
    w.unlink()
    with pytest.raises(CheckpointError, match="missing"):
        load_policy_dir(tmp_path / "p")
    (tmp_path / "q").mkdir()
    (tmp_path / "q" / "policy.json").write_text("{oops")
    save_policy(tmp_path / "r", model, _meta())
    (tmp_path / "q" / "model.safetensors").write_bytes((tmp_path / "r" / "model.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match="corrupt policy config"):
        load_policy_dir(tmp_path / "q")


def test_executed_action_replaces_the_proposal_in_the_history():
    torch.manual_seed(3)
    pol = DriveGPTPolicy(DriveGPT(CFG), _meta())
    pol.reset(0)
    o = np.ones((10, 7), np.float32)
    proposal = pol.act(o)
    other = (int(proposal) + 1) % 5
    pol.executed(other)
    assert int(pol.tokens[0, -1]) == other


def test_policy_sees_exactly_the_training_windows(tiny_logs):
    """The training/inference contract: DriveGPTPolicy's logits at each step equal the logits of
    the training window ending at that step (same padding, alignment and normalisation)."""
    from drivegpt.data.logs import load_logs
    from drivegpt.data.windows import StepTable

    ds = load_logs(tiny_logs)
    torch.manual_seed(4)
    tok = ActionTokenizer(ds.action_kind)  # the language the logs were driven in
    norm = ObsNormalizer.fit(np.concatenate([e.observations for e in ds.episodes()]))
    meta = {**_meta(ds.action_kind), "tokenizer": tokenizer_to_json(tok, norm)}
    gpt = DriveGPTConfig(context=3, n_layer=1, n_head=2, n_embd=16, vocab_size=tok.vocab_size)
    model = DriveGPT(gpt).eval()
    pol = DriveGPTPolicy(model, meta)
    ep = next(ds.episodes([0]))
    table = StepTable.from_logs(ds, [0], tok, norm)
    with torch.no_grad():
        w = table.windows(torch.arange(len(table)), 3)
        expected = model(w.obs, w.actions)[:, -1]
    pol.reset(0)
    for t in range(len(ep.actions)):
        pol.act(ep.observations[t])
        with torch.no_grad():
            got = model(pol.obs, pol.tokens)[:, -1]
        torch.testing.assert_close(got[0], expected[t])
        pol.executed(ep.actions[t])


def test_a_saved_policy_is_readable_by_others_as_any_new_file(tmp_path):
    """Every file of a policy directory gets the permissions a new file gets (0o666 less the umask):
    safetensors alone would leave the weights owner-only, which gets in the way of sharing them."""
    import os

    mask = os.umask(0o022)
    try:
        save_policy(tmp_path / "p", DriveGPT(CFG), _meta())
    finally:
        os.umask(mask)
    for f in ("model.safetensors", "policy.json"):
        assert (tmp_path / "p" / f).stat().st_mode & 0o777 == 0o644, f
