"""Failure-probability estimation (drivegpt/corner/estimate.py) on Gaussian tails with known answers,
and the naturalistic distributions (drivegpt/corner/naturalistic.py)."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest

from drivegpt.core.errors import UserError
from drivegpt.core.metrics import wilson_interval
from drivegpt.corner.estimate import EstimateConfig, estimate_probability, summarise
from drivegpt.corner.mixture import GaussianMixture, nominal, relvar_from_failures
from drivegpt.corner.naturalistic import (
    DEFAULT_PATH,
    Marginal,
    family_distribution,
    load_naturalistic,
    save_naturalistic,
)

N01 = NormalDist()


def tail(t: float):
    """Failure when any coordinate exceeds ``t``: one mode in 1-D, two modes in 2-D."""

    def simulate_batch(x: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        return (x > t).any(1)

    return simulate_batch


def exact(t: float, dim: int) -> float:
    return 1 - N01.cdf(t) ** dim


def repeated(t: float, dim: int, runs: int = 40, **cfg: object) -> tuple[np.ndarray, float]:
    """Estimates of ``runs`` seeds and the fraction of their 95% intervals that cover the truth."""
    p = exact(t, dim)
    out = [estimate_probability(tail(t), dim, EstimateConfig(seed=s, **cfg)) for s in range(runs)]
    cover = np.mean([e.failure_probability_ci[0] <= p <= e.failure_probability_ci[1] for e in out])
    assert not any(e.degenerate for e in out)
    return np.array([e.failure_probability for e in out]), float(cover)


@pytest.mark.parametrize("dim", [1, 2])
def test_importance_sampling_is_unbiased_and_covers(dim: int) -> None:
    t = 3.0 if dim == 1 else N01.inv_cdf(math.sqrt(1 - 1e-4))  # P = 1.35e-3 (1-D), 1e-4 (two modes)
    p = exact(t, dim)
    est, cover = repeated(t, dim, method="is", max_sims=20_000)
    se = est.std(ddof=1) / math.sqrt(len(est))
    assert abs(est.mean() - p) < max(3 * se, 0.05 * p), (est.mean(), p)
    assert cover >= 0.85, cover


def test_relative_variance_from_monte_carlo_failures_by_hand() -> None:
    """``E_q[(w f)^2] = E_p[f p / q]``: for the 1-D tail x > t and q = N(mu, 1),
    p(x)^2 / q(x) = e^(mu^2) phi(x + mu), so the second moment is e^(mu^2) (1 - Phi(t + mu))."""
    t, mu, draws = 2.0, 2.5, 400_000
    x = np.random.default_rng(0).standard_normal((draws, 1))
    failures = x[x[:, 0] > t]
    p = exact(t, 1)
    q = GaussianMixture(np.ones(1), np.full((1, 1), mu), np.ones((1, 1, 1)))
    truth = math.exp(mu**2) * (1 - N01.cdf(t + mu)) / p**2 - 1  # 2.40: a good proposal (plain MC: 43)
    assert relvar_from_failures(q, failures, draws) == pytest.approx(truth, rel=0.05)
    # the nominal as proposal is plain MC: (1 - P) / P, exactly, with P = failures / draws
    assert relvar_from_failures(nominal(1), failures, draws) == pytest.approx(draws / len(failures) - 1)
    with pytest.raises(ValueError, match="at least one failure"):
        relvar_from_failures(q, failures[:0], draws)


def test_monte_carlo_is_unbiased_and_covers() -> None:
    t = 1.5  # P = 0.067: plain MC reaches a 0.2 relative half-width in ~2,000 simulations
    est, cover = repeated(t, 1, method="mc", max_sims=20_000, batch=200)
    se = est.std(ddof=1) / math.sqrt(len(est))
    assert abs(est.mean() - exact(t, 1)) < 3 * se
    assert cover >= 0.85, cover


def test_importance_sampling_beats_monte_carlo_on_a_rare_tail() -> None:
    e = estimate_probability(tail(4.75), 1, EstimateConfig(method="is", seed=0))  # P = 1.0e-6
    assert e.converged and e.rel_halfwidth is not None and e.rel_halfwidth <= 0.2
    assert e.sims < 3000 and e.acceleration_factor is not None and e.acceleration_factor > 1000
    assert abs(e.failure_probability / exact(4.75, 1) - 1) < 0.5


def test_same_seed_same_estimate() -> None:
    a, b, c = (estimate_probability(tail(3.0), 2, EstimateConfig(seed=s)) for s in (7, 7, 8))
    assert a.failure_probability == b.failure_probability and a.history == b.history
    assert a.failure_probability != c.failure_probability


class BoxProposal:
    """Uniform on [lo, hi]^d: no density outside the box."""

    def __init__(self, lo: float, hi: float):
        self.lo, self.hi = lo, hi

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.uniform(self.lo, self.hi, (n, 1))

    def logpdf(self, z: np.ndarray) -> np.ndarray:
        inside = ((z >= self.lo) & (z <= self.hi)).all(1)
        return np.where(inside, -math.log(self.hi - self.lo), -np.inf)


def test_proposal_without_support_is_refused() -> None:
    cfg = EstimateConfig(method="is", max_sims=500)
    with pytest.raises(UserError, match="no support"):
        estimate_probability(tail(3.0), 1, cfg, proposal=BoxProposal(2.5, 8.0))
    flat = GaussianMixture(np.ones(1), np.full((1, 1), 3.0), np.zeros((1, 1, 1)))  # zero variance
    with pytest.raises(UserError, match="positive definite"):
        estimate_probability(tail(3.0), 1, cfg, proposal=flat)


def test_degenerate_weights_are_flagged() -> None:
    one_heavy = np.r_[1e3, np.full(99, 1e-3), np.zeros(900)]  # one simulation carries the estimate
    s = summarise(one_heavy, "is", min_ess=30)
    assert s["ess"] < 2 and s["degenerate"] and s["ci"] == (0.0, 1.0) and s["rel"] is None
    # a narrow proposal short of the failure region: a handful of failures with unequal weights
    short = GaussianMixture(np.ones(1), np.full((1, 1), 2.2), np.full((1, 1, 1), 0.09))
    e = estimate_probability(tail(3.0), 1, EstimateConfig(max_sims=2000), proposal=short)
    assert e.failures >= 3 and e.effective_sample_size < EstimateConfig().min_ess and e.sims == 2000
    assert e.degenerate and not e.converged and e.rel_halfwidth is None
    assert e.failure_probability_ci == (0.0, 1.0)


def test_importance_sampling_without_any_failure_reports_a_monte_carlo_bound() -> None:
    never = estimate_probability(lambda x, s: np.zeros(len(x), bool), 3, EstimateConfig(max_sims=600))
    assert never.failure_probability == 0 and never.sims == 600 and not never.degenerate
    lo, hi = never.failure_probability_ci
    n = never.sims - never.pilot_sims  # the nominal draws after the pilot
    assert lo == 0 and hi == pytest.approx(wilson_interval(0, n)[1])


def test_nominal_is_standard_normal() -> None:
    z = np.array([[0.0, 0.0], [1.0, -2.0]])
    expected = [-math.log(2 * math.pi), -math.log(2 * math.pi) - 2.5]
    assert np.allclose(nominal(2).logpdf(z), expected)


def test_marginal_maps_standard_space_into_the_box() -> None:
    m = Marginal(kind="lognormal", mu=math.log(2.5), sigma=0.4, low=3.0, high=9.0, source="prior: test")
    z = np.array([-9.0, -1.0, 0.0, 1.0, 9.0])
    x = m.from_standard(z)
    assert np.all(np.diff(x) > 0) and x[0] == pytest.approx(3.0) and x[-1] == pytest.approx(9.0)
    # the median of the truncated marginal: P(X < x) = P(X in box)/2
    a, b = ((math.log(v) - m.mu) / m.sigma for v in (3.0, 9.0))
    assert N01.cdf((math.log(x[2]) - m.mu) / m.sigma) == pytest.approx((N01.cdf(a) + N01.cdf(b)) / 2)


def test_shipped_naturalistic_model_covers_every_family(tmp_path) -> None:
    from drivegpt_envs.families import FAMILIES, family_class

    model = load_naturalistic()
    assert DEFAULT_PATH.is_file() and set(model.families) == set(FAMILIES)
    for family in FAMILIES:
        dist = family_distribution(family, model)
        x = dist.sample(np.random.default_rng(0), 50)
        family_class(family).check_params(dict(zip(dist.names, x[0], strict=True)))  # inside the box
        assert all(m.source.startswith(("logs:", "prior:")) for m in dist.marginals.values())
    save_naturalistic(model, tmp_path / "n.json")
    assert load_naturalistic(tmp_path / "n.json") == model
    (tmp_path / "bad.json").write_text('{"format": "drivegpt-naturalistic", "families": {}}')
    with pytest.raises(UserError, match="created_by"):
        load_naturalistic(tmp_path / "bad.json")
    partial = {"cut_in": {k: v for k, v in model.families["cut_in"].items() if k != "cut_in_gap"}}
    with pytest.raises(UserError, match="cut_in.cut_in_gap"):
        family_distribution("cut_in", model.model_copy(update={"families": partial}))


def graded_tail(t: float, a: np.ndarray):
    """Failure when ``a . z > t`` (a rare half-space in d dimensions); otherwise graded by how close."""

    def simulate_batch(x: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        margin = x @ a - t  # (n,) < 0: no failure
        return np.where(margin > 0, 1.0, np.exp(np.minimum(margin, 0.0)) * (1 - 1e-9))

    return simulate_batch


def test_multilevel_pilot_finds_a_rare_failure_region_from_severities() -> None:
    """A graded simulator: the levels walk to a P = 1e-7 half-space in 6-D; the estimate is right, its
    interval covers, and it is far cheaper than plain MC."""
    a = np.ones(6) / math.sqrt(6)
    t = -N01.inv_cdf(1e-7)  # P(a . z > t) = 1e-7
    cfg = EstimateConfig(method="is", seed=3, batch=400, pilot_batch=200, max_sims=20_000)
    e = estimate_probability(graded_tail(t, a), 6, cfg)
    assert e.converged and not e.degenerate and e.sims < 10_000
    assert abs(e.failure_probability / 1e-7 - 1) < 0.3, e.failure_probability
    lo, hi = e.failure_probability_ci
    assert lo <= 1e-7 <= hi and e.acceleration_factor is not None and e.acceleration_factor > 10_000


def test_severities_outside_zero_one_are_refused() -> None:
    with pytest.raises(ValueError, match=r"severities in \[0, 1\]"):
        estimate_probability(lambda x, s: x[:, 0], 1, EstimateConfig(max_sims=100))


def test_covariance_floor_raises_only_the_small_eigenvalues() -> None:
    from drivegpt.corner.mixture import shape

    rot = np.array([[math.cos(0.3), -math.sin(0.3)], [math.sin(0.3), math.cos(0.3)]])
    cov = rot @ np.diag([0.25, 4.0]) @ rot.T
    out = shape(cov[None], 1.0)[0]
    np.testing.assert_allclose(out, rot @ np.diag([1.0, 4.0]) @ rot.T, atol=1e-12)
    np.testing.assert_allclose(shape(cov[None], 0.0)[0], cov)


def test_human_traits_are_uniform_on_their_ranges_in_standard_space() -> None:
    from drivegpt.corner.naturalistic import WithHumanTraits
    from drivegpt.sim.personality import PersonalityRanges

    base = family_distribution("stalled_car")
    dist = WithHumanTraits(base)
    ranges = PersonalityRanges()
    traits = list(PersonalityRanges.model_fields)
    assert dist.names == base.names + [f"human.{t}" for t in traits] and dist.dim == base.dim + len(traits)
    z = np.zeros((3, dist.dim))
    z[1, base.dim :], z[2, base.dim :] = -40.0, N01.inv_cdf(0.25)
    x = dist.to_params(z)
    np.testing.assert_allclose(x[:, : base.dim], base.to_params(z[:, : base.dim]))
    lo, hi = (np.array([getattr(ranges, t)[i] for t in traits]) for i in (0, 1))
    np.testing.assert_allclose(x[0, base.dim :], (lo + hi) / 2)  # the median of a uniform: its middle
    np.testing.assert_allclose(x[1, base.dim :], lo)
    np.testing.assert_allclose(x[2, base.dim :], lo + 0.25 * (hi - lo))
