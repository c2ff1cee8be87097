import math

import numpy as np
import pytest
import torch

from drivegpt.data.tokenizer import ActionTokenizer, ObsNormalizer
from drivegpt.rlhf.preferences import bradley_terry_loss, clip_pairs, dpo_loss, kl_to_reference
from drivegpt.takeover.clips import load_clips


def test_bradley_terry_by_hand():
    # -log σ(1) = log(1 + e^-1) = 0.3132617; -log σ(0) = log 2
    loss = bradley_terry_loss(torch.tensor([2.0, 0.5]), torch.tensor([1.0, 0.5]))
    assert float(loss) == pytest.approx((math.log(1 + math.exp(-1)) + math.log(2)) / 2, abs=1e-6)


def test_dpo_by_hand():
    # margin = (-1 - -2) - (-3 - -2) = 2; beta 0.5 -> -log σ(1)
    loss = dpo_loss(
        torch.tensor([-1.0]), torch.tensor([-3.0]), torch.tensor([-2.0]), torch.tensor([-2.0]), 0.5
    )
    assert float(loss) == pytest.approx(math.log(1 + math.exp(-1)), abs=1e-6)
    # the policy equal to the reference: margin 0 -> log 2 whatever beta
    same = torch.tensor([-1.2])
    assert float(dpo_loss(same, same - 1, same, same - 1, 3.0)) == pytest.approx(math.log(2), abs=1e-6)


def test_kl_is_zero_for_the_reference_itself_and_positive_otherwise():
    logits = torch.randn(4, 5)
    torch.testing.assert_close(kl_to_reference(logits, logits), torch.zeros(4), atol=1e-6, rtol=0)
    p = torch.tensor([[math.log(0.5), math.log(0.5)]])
    q = torch.tensor([[math.log(0.25), math.log(0.75)]])
    expected = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert float(kl_to_reference(p, q)) == pytest.approx(expected, abs=1e-6)


def test_pairs_from_sample_clips():
    clips = load_clips("takeover_data/sample")
    tok = ActionTokenizer("meta")
    norm = ObsNormalizer(tuple([0.0] * 7), tuple([1.0] * 7))
    b = clip_pairs(clips, tok, norm, K=4)
    n = sum(
        int(np.sum(tok.encode(np.asarray(c.chosen)) != tok.encode(np.asarray(c.rejected)))) for c in clips
    )
    assert len(b.chosen) == n > 0
    assert b.obs.shape == (n, 4, 10, 7) and b.mask[:, -1].all()
    assert bool((b.chosen != b.rejected).all())
