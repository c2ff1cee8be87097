"""The inference fast path (cached state encodings, last-row block) decides exactly as the full
forward pass over the whole context did: same tokens, logits equal up to float rounding."""

import copy
import json

import numpy as np
import torch

from drivegpt.core.resources import CHECKPOINTS
from drivegpt.model.gpt import DriveGPT, DriveGPTConfig
from drivegpt.model.policy import DriveGPTPolicy
from drivegpt.takeover.clips import load_clips

SHIPPED = CHECKPOINTS / "drivegpt-accel-small"
CFG = DriveGPTConfig(context=6, n_layer=2, n_head=2, n_embd=16, vocab_size=42)


def _real_observations() -> np.ndarray:
    """Recorded Kinematics observations (T, 10, 7) from the sample takeover clips."""
    return np.concatenate([c.context_obs for c in load_clips("takeover_data/sample")]).astype(np.float32)


def _full_forward(pol: DriveGPTPolicy) -> torch.Tensor:
    """The previous decision path: the whole K-step history through ``forward`` (B, vocab)."""
    with torch.no_grad():
        return pol.model(pol.obs, pol.tokens)[:, -1]


def test_next_action_logits_equal_the_last_row_of_forward():
    torch.manual_seed(0)
    model = DriveGPT(CFG).eval()
    g = torch.Generator().manual_seed(1)
    for T in (1, 3, CFG.context):  # shorter windows too
        obs = torch.randn(4, T, 10, 7, generator=g)
        obs[..., 0] = (torch.rand(4, T, 10, generator=g) > 0.3).float()
        actions = torch.randint(0, CFG.vocab_size, (4, T), generator=g)
        with torch.no_grad():
            full = model(obs, actions)[:, -1]
            fast = model.next_action_logits(model.state_encoder(obs), actions)
        torch.testing.assert_close(fast, full, rtol=1e-5, atol=1e-5)


def test_shipped_policy_gives_the_same_tokens_as_the_full_forward():
    pol = DriveGPTPolicy.load(SHIPPED)
    obs = _real_observations()[:40]
    assert len(obs) > pol.K + 5  # the window slides
    pol.reset(0)
    tokens = []
    for t, o in enumerate(obs):
        token = int(pol.act(o))
        ref = _full_forward(pol)[0]
        assert token == int(ref.argmax()), t
        with torch.no_grad():
            fast = pol.model.next_action_logits(pol.states, pol.tokens)[0]
        torch.testing.assert_close(fast, ref)
        tokens.append(token)
        if t % 7 == 3:  # a takeover step: the history holds the executed action, not the proposal
            pol.executed((token + 5) % pol.model.cfg.vocab_size)
    assert len(set(tokens)) > 1  # a constant driver would not exercise the comparison much


def test_batched_fast_path_and_deep_copies_match_the_full_forward():
    torch.manual_seed(2)
    meta = json.loads((SHIPPED / "policy.json").read_text())  # its tokenizer: 42 accel tokens
    pol = DriveGPTPolicy(DriveGPT(CFG), meta)
    rng = np.random.default_rng(3)
    obs = rng.normal(size=(12, 3, 10, 7)).astype(np.float32)
    obs[..., 0] = rng.random((12, 3, 10)) > 0.3
    pol.reset_batch(3)
    for t in range(8):
        got = pol.act_batch(obs[t])
        np.testing.assert_array_equal(pol.tokens[:, -1].numpy(), _full_forward(pol).argmax(-1).numpy())
        assert len(got) == 3
    twin = copy.deepcopy(pol)  # the monitor's look-ahead copies the policy mid-episode
    for t in range(8, 12):
        np.testing.assert_array_equal(twin.act_batch(obs[t]), pol.act_batch(obs[t]))
        np.testing.assert_array_equal(pol.tokens[:, -1].numpy(), _full_forward(pol).argmax(-1).numpy())
