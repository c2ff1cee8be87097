import math

import numpy as np
import pytest
import torch

from drivegpt.data.tokenizer import ActionTokenizer, ObsNormalizer
from drivegpt.rlhf.preferences import bradley_terry_loss, clip_pairs, dpo_loss, kl_to_reference
from drivegpt.rlhf.reward_model import ranking_loss
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


def softplus(x: float) -> float:
    return math.log(1 + math.exp(x))  # -log σ(-x)


def test_ranking_loss_by_hand_on_three_segments() -> None:
    # Segment returns of one clip: old policy R0 = 0, takeover-corrected R1 = 1, human R2 = 3; the
    # (worse, better) pairs are (0, 1), (1, 2), (0, 2), each -log σ(R_better - R_worse):
    #   -log σ(1) = 0.313262   -log σ(2) = 0.126928   -log σ(3) = 0.048587
    R = torch.tensor([[0.0, 1.0, 3.0]], requires_grad=True)
    loss = ranking_loss(R, torch.tensor([[True, True, True]]))
    assert float(loss.detach()) == pytest.approx((0.313262 + 0.126928 + 0.048587) / 3, abs=1e-6)
    # d/dR_worse of -log σ(R_b - R_w) is σ(R_w - R_b), d/dR_better is -σ(R_w - R_b): over the mean of 3,
    #   dR0 = (σ(-1) + σ(-3)) / 3, dR1 = (-σ(-1) + σ(-2)) / 3, dR2 = (-σ(-2) - σ(-3)) / 3
    loss.backward()

    def sig(x: float) -> float:
        return 1 / (1 + math.exp(-x))

    expected = [(sig(-1) + sig(-3)) / 3, (-sig(-1) + sig(-2)) / 3, (-sig(-2) - sig(-3)) / 3]
    assert R.grad is not None and R.grad[0].tolist() == pytest.approx(expected, abs=1e-6)  # human: up most
    # Only informative pairs count, averaged over all of them in the batch. Mask out the (1, 2) pair
    # (its segments took the same actions) of the clip above and of a second clip ranked the wrong
    # way (R = 2, 0, 0): (-log σ(1) - log σ(3) - log σ(-2) - log σ(-2)) / 4
    R2 = torch.tensor([[0.0, 1.0, 3.0], [2.0, 0.0, 0.0]])
    mask = torch.tensor([[True, False, True], [True, False, True]])
    want = (softplus(-1) + softplus(-3) + softplus(2) + softplus(2)) / 4
    assert float(ranking_loss(R2, mask)) == pytest.approx(want, abs=1e-6)
    assert float(ranking_loss(R2, torch.zeros(2, 3, dtype=torch.bool))) == 0.0  # nothing informative


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


def test_split_pairs_holds_out_whole_clips_and_none_at_zero():
    """Pairs split by clip: val_fraction 0 holds out nothing; any positive fraction at least one clip,
    never a clip's pairs on both sides."""
    from drivegpt.rlhf.preferences import PreferenceBatch, split_pairs

    group = torch.tensor([0, 0, 1, 2, 2, 2, 3, 4])  # 8 pairs of 5 clips
    b = PreferenceBatch(*(torch.zeros(8, 1) for _ in range(5)), group)
    train, val = split_pairs(b, 0.0, seed=0)
    assert len(train.group) == 8 and len(val.group) == 0
    for fraction, clips in ((0.01, 1), (0.2, 1), (0.4, 2)):
        train, val = split_pairs(b, fraction, seed=0)
        assert len(torch.unique(val.group)) == clips and len(train.group) + len(val.group) == 8
        assert not set(train.group.tolist()) & set(val.group.tolist())
