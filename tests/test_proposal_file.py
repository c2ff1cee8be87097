"""A fitted proposal's file (drivegpt/corner/proposal_file.py): written by one estimate, reused by the next
without a pilot (unbiased, covering), marginalised onto fewer dimensions, and refused with one line."""

from __future__ import annotations

import json
import math
from statistics import NormalDist

import numpy as np
import pytest

from drivegpt.core.errors import UserError
from drivegpt.corner.estimate import EstimateConfig, estimate_probability
from drivegpt.corner.mixture import GaussianMixture, marginal, with_defensive
from drivegpt.corner.proposal_file import load_proposal, save_proposal

N01 = NormalDist()


def tail(t: float):
    """Failure when any coordinate exceeds ``t`` (two modes in 2-D)."""
    return lambda x, seeds: (x > t).any(1)


def test_marginal_of_a_mixture_by_hand() -> None:
    """Diagonal components: the marginal's density is the product of the kept coordinates' normals."""
    mix = GaussianMixture(
        np.array([0.25, 0.75]),
        np.array([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]]),
        np.stack([np.diag([1.0, 4.0, 0.25]), np.diag([2.0, 1.0, 9.0])]),
    )
    m = marginal(mix, [2, 0])  # the third coordinate first, then the first
    z = np.array([[0.3, -0.7]])
    by_hand = sum(
        w * math.exp(-((z[0, 0] - mu[2]) ** 2) / (2 * v[2, 2])) / math.sqrt(2 * math.pi * v[2, 2])
        * math.exp(-((z[0, 1] - mu[0]) ** 2) / (2 * v[0, 0])) / math.sqrt(2 * math.pi * v[0, 0])
        for w, mu, v in zip(mix.weights, mix.means, mix.covs, strict=True)
    )  # fmt: skip
    assert m.means.tolist() == [[0.5, 1.0], [-1.0, 0.0]]
    assert math.exp(m.logpdf(z)[0]) == pytest.approx(by_hand, rel=1e-12)


def test_a_stored_proposal_restarts_the_estimate_without_a_pilot(tmp_path) -> None:
    """One estimate's fitted mixture, saved and loaded, drives 40 more (other seeds) with no pilot:
    unbiased, intervals covering the exact tail, and fewer simulations than the run that fitted it."""
    t, dim = N01.inv_cdf(math.sqrt(1 - 1e-4)), 2  # P = 1e-4 exactly, two modes
    p = 1 - N01.cdf(t) ** dim
    first = estimate_probability(tail(t), dim, EstimateConfig(seed=0, max_sims=20_000))
    assert first.mixture is not None and first.pilot_sims > 0 and first.converged
    path = save_proposal(
        tmp_path / "proposal.json", first.mixture, "toy", ["a", "b"], pilot_sims=first.pilot_sims
    )
    mix, meta = load_proposal(path, "toy", ["a", "b"])
    assert np.allclose(mix.means, first.mixture.means) and meta["pilot_sims"] == first.pilot_sims
    q = with_defensive(mix, EstimateConfig().defensive)
    runs = [estimate_probability(tail(t), dim, EstimateConfig(seed=s), proposal=q) for s in range(1, 41)]
    assert all(r.pilot_sims == 0 and r.mixture is None and not r.degenerate for r in runs)  # no refit asked
    est = np.array([r.failure_probability for r in runs])
    se = est.std(ddof=1) / math.sqrt(len(est))
    assert abs(est.mean() - p) < 3 * se, (est.mean(), p)
    assert np.mean([r.failure_probability_ci[0] <= p <= r.failure_probability_ci[1] for r in runs]) >= 0.85
    assert np.mean([r.sims for r in runs]) < first.sims  # no pilot
    # marginalised onto one coordinate: the 1-D tail P(b > t)
    one, _ = load_proposal(path, "toy", ["b"])
    assert one.means.shape == (len(mix.weights), 1)
    r = estimate_probability(tail(t), 1, EstimateConfig(seed=3), proposal=with_defensive(one, 0.3))
    assert r.failure_probability_ci[0] <= 1 - N01.cdf(t) <= r.failure_probability_ci[1]


def test_refit_on_the_estimates_failures_is_the_cross_entropy_optimum_by_hand() -> None:
    """The 1-D tail x > 3: the failures' law is the nominal truncated at 3, with mean phi(3) / (1 - Phi(3))
    = 3.283 and variance 1 + 3 * 3.283 - 3.283^2 = 0.070 (truncated normal), which the refit's mean
    recovers, its variance raised to the floor ``refit_floor``."""
    t = 3.0
    lam = math.exp(-t * t / 2) / math.sqrt(2 * math.pi) / (1 - N01.cdf(t))  # inverse Mills ratio: 3.283
    start = with_defensive(GaussianMixture(np.ones(1), np.full((1, 1), 3.5), np.ones((1, 1, 1))), 0.02)
    cfg = EstimateConfig(seed=1, components=1, rel_halfwidth=0.05, max_sims=5000, refit_floor=0.3)
    r = estimate_probability(tail(t), 1, cfg, proposal=start)
    assert r.mixture is not None and r.effective_sample_size > 300
    assert r.mixture.means[0, 0] == pytest.approx(lam, abs=0.05)
    assert r.mixture.covs[0, 0, 0] == pytest.approx(cfg.refit_floor)  # 0.070 + reg 0.2 < the floor, 0.3


def test_proposal_file_errors_name_the_file_and_the_fix(tmp_path) -> None:
    mix = GaussianMixture(np.ones(1), np.zeros((1, 2)), np.eye(2)[None])
    good = save_proposal(tmp_path / "good.json", mix, "slower_lead", ["a", "b"])
    doc = json.loads(good.read_text())

    def bad(name: str, text: str, family: str = "slower_lead", names: tuple[str, ...] = ("a", "b")) -> str:
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(UserError) as err:
            load_proposal(path, family, list(names))
        msg = str(err.value)
        assert str(path) in msg and "\n" not in msg, msg
        return msg

    with pytest.raises(UserError, match="no such proposal file.*--method is"):
        load_proposal(tmp_path / "absent.json", "slower_lead", ["a", "b"])
    assert "not a proposal file" in bad("trunc.json", good.read_text()[:40])
    assert "format" in bad("other.json", json.dumps({"weights": [1]}))
    assert "fitted on family 'slower_lead', not 'cut_in'" in bad(
        "fam.json", good.read_text(), family="cut_in"
    )
    assert "lacks the parameters ['c']" in bad("dims.json", good.read_text(), names=("a", "c"))
    # a trait the file's run left to the seed stays at the naturalistic law: N(0, 1), independent
    two = GaussianMixture(np.ones(1), np.array([[1.0, 2.0]]), np.array([[[2.0, 0.5], [0.5, 1.0]]]))
    path = save_proposal(tmp_path / "two.json", two, "slower_lead", ["a", "b"])
    mix, _ = load_proposal(path, "slower_lead", ["human.time_headway", "b", "a"])
    assert mix.means.tolist() == [[0.0, 2.0, 1.0]]
    assert mix.covs[0].tolist() == [[1.0, 0.0, 0.0], [0.0, 1.0, 0.5], [0.0, 0.5, 2.0]]
    assert "covs" in bad("shape.json", json.dumps({**doc, "covs": [[[1.0]]]}))
    assert "non-finite" in bad("nan.json", json.dumps({**doc, "means": [[float("nan"), 0.0]]}))
    assert "positive definite" in bad("flat.json", json.dumps({**doc, "covs": [[[1.0, 1.0], [1.0, 1.0]]]}))
    assert "distribution" in bad("weights.json", json.dumps({**doc, "weights": [0.0]}))
    assert "distribution" in bad("inf.json", json.dumps({**doc, "weights": [float("inf")]}))
    assert "reads versions (1, 2)" in bad("v3.json", json.dumps({**doc, "version": 3}))
    assert "fit_sims is 'x', not a count" in bad("cost.json", json.dumps({**doc, "fit_sims": "x"}))
    assert "pilot_sims is -3, not a count" in bad("neg.json", json.dumps({**doc, "pilot_sims": -3}))


def test_a_pool_of_files_is_their_mixtures_averaged_and_covers_what_each_misses(tmp_path) -> None:
    """Two files, each fitted to one of the two failure modes of a 2-D tail: their pool's density is
    the mean of theirs (by hand), its cost the sum of theirs, and its relative variance, measured on
    a million nominal draws' failures, a fraction of either file's alone (each leaves the other mode
    to the defensive nominal). A file with a half-space is refused in a pool, naming it."""
    from drivegpt.corner.halfspace import HalfSpace
    from drivegpt.corner.mixture import relvar_from_failures
    from drivegpt.corner.proposal_file import pool_proposals

    t = N01.inv_cdf(1 - 5e-4)  # each coordinate beyond t with probability 5e-4: P = 1 - (1 - 5e-4)^2
    one = GaussianMixture(np.ones(1), np.array([[t + 0.4, 0.0]]), np.array([np.diag([0.2, 1.0])]))
    other = GaussianMixture(np.ones(1), np.array([[0.0, t + 0.4]]), np.array([np.diag([1.0, 0.2])]))
    paths = [
        save_proposal(tmp_path / "x.json", one, "toy", ["a", "b"], fit_sims=300),
        save_proposal(tmp_path / "y.json", other, "toy", ["a", "b"], fit_sims=500),
    ]
    pool, meta = pool_proposals(paths, "toy", ["a", "b"])
    z = np.array([[0.3, -1.2], [t + 0.5, 0.1], [-0.4, t + 1.0]])
    by_hand = 0.5 * (np.exp(one.logpdf(z)) + np.exp(other.logpdf(z)))
    assert np.allclose(np.exp(pool.logpdf(z)), by_hand, rtol=1e-12)
    assert meta["fit_sims"] == 800 and meta["pooled"] == [str(p) for p in paths]
    assert meta["halfspace"] is None and str(paths[0]) in meta["path"]
    alone, _ = pool_proposals(paths[:1], "toy", ["a", "b"])
    assert np.allclose(alone.means, one.means)  # one file: that file
    draws = np.random.default_rng(0).standard_normal((1_000_000, 2))
    failures = draws[(draws > t).any(1)]
    rv = {
        name: relvar_from_failures(with_defensive(m, 0.02), failures, len(draws))
        for name, m in (("one", one), ("other", other), ("pool", pool))
    }
    assert rv["pool"] < 0.2 * min(rv["one"], rv["other"]), rv
    hs = save_proposal(tmp_path / "h.json", one, "toy", ["a", "b"], HalfSpace(np.array([1.0, 0.0]), t, 0.5))
    with pytest.raises(UserError) as err:
        pool_proposals([paths[0], hs], "toy", ["a", "b"])
    assert str(hs) in str(err.value) and "takes mixtures only" in str(err.value)
