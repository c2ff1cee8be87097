import math
from collections.abc import Callable

import pytest

from drivegpt.core.metrics import (
    check_metric_names,
    driving_metrics,
    poisson_interval,
    takeover_metrics,
    wilson_interval,
)


def _poisson_cdf(k: int, mu: float) -> float:
    """P(X <= k) for X ~ Poisson(mu)."""
    return sum(math.exp(i * math.log(mu) - mu - math.lgamma(i + 1)) for i in range(k + 1)) if mu > 0 else 1.0


def _solve(f: Callable[[float], float], lo: float, hi: float) -> float:
    """Root of the decreasing function ``f`` on [lo, hi] by bisection."""
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if f(mid) > 0 else (lo, mid)
    return (lo + hi) / 2


def garwood(n: int) -> tuple[float, float]:
    """Exact (Garwood) 95% interval of a Poisson mean from a count n, without chi-square tables:
    chi2_{2n} quantiles are Poisson tail inversions, P(X >= n; lo) = 0.025 and P(X <= n; hi) = 0.025."""
    lo = 0.0 if n == 0 else _solve(lambda mu: 0.025 - (1 - _poisson_cdf(n - 1, mu)), 0.0, 10.0 * n + 10)
    return lo, _solve(lambda mu: _poisson_cdf(n, mu) - 0.025, 0.0, 10.0 * n + 10)


def test_wilson_hand_computed():
    lo, hi = wilson_interval(2, 10)  # textbook: (0.0567, 0.5098)
    assert lo == pytest.approx(0.05668, abs=1e-4)
    assert hi == pytest.approx(0.50985, abs=1e-4)
    assert wilson_interval(0, 200)[0] == pytest.approx(0.0, abs=1e-12)
    assert wilson_interval(0, 200)[1] == pytest.approx(0.01884, abs=1e-4)


def test_exact_poisson_reference_matches_the_published_table() -> None:
    assert garwood(10) == pytest.approx((4.795, 18.390), abs=1e-3)  # exact 95% interval for 10 events
    assert garwood(0) == pytest.approx((0.0, 3.689), abs=1e-3)
    assert garwood(1) == pytest.approx((0.0253, 5.572), abs=1e-3)


def test_poisson_interval_against_the_exact_interval() -> None:
    assert poisson_interval(0) == pytest.approx((0.0, 3.689), abs=1e-3)  # exact: -ln 0.025 events
    assert poisson_interval(10) == pytest.approx((4.795, 18.390), rel=0.01)  # exact (Garwood)
    for n in (5, 6, 8, 10, 20, 50, 100, 1000):  # exact to 200 events, Byar above: within 1% of Garwood
        (lo, hi), (elo, ehi) = poisson_interval(n), garwood(n)
        assert lo == pytest.approx(elo, rel=0.01) and hi == pytest.approx(ehi, rel=0.01), n
    for n in range(1, 5):  # the upper bound is within 1% from one event on
        assert poisson_interval(n)[1] == pytest.approx(garwood(n)[1], rel=0.01), n
    # a rate: the count's interval over the exposure (10 takeovers in 50 km -> per 100 km)
    m = takeover_metrics(10, 1, 50.0)
    assert m["takeovers_per_100km"] == pytest.approx(20.0)
    assert m["takeovers_per_100km_ci"] == pytest.approx([2 * 4.795, 2 * 18.390], rel=0.01)
    assert "takeovers_at_start" not in m  # unknown: not reported
    # 4 of the 10 fired on an episode's first state: 6 remain, 12 per 100 km
    m = takeover_metrics(10, 1, 50.0, at_start=4)
    assert m["takeovers_at_start"] == 4 and m["takeovers_per_100km"] == pytest.approx(20.0)
    assert m["takeovers_after_start_per_100km"] == pytest.approx(12.0)
    assert m["takeovers_after_start_per_100km_ci"] == pytest.approx(
        [2 * x for x in poisson_interval(6)], rel=1e-9
    )


def test_poisson_lower_bound_is_within_one_percent_for_small_counts() -> None:
    for n in range(1, 5):
        assert poisson_interval(n)[0] == pytest.approx(garwood(n)[0], rel=0.01), n


def test_driving_metrics() -> None:
    m = driving_metrics(
        [True, False, False, False], [1000.0, 500.0, 500.0, 0.0], [[10.0, 20.0], [30.0], [20.0], []]
    )
    assert m["collision_rate"] == 0.25 and m["collision_rate_ci"] == list(wilson_interval(1, 4))
    assert m["km_driven"] == pytest.approx(2.0)
    assert m["km_per_collision"] == pytest.approx(2.0)
    assert m["mean_speed_mps"] == pytest.approx(20.0)


def test_unknown_metric_lists_valid_names():
    with pytest.raises(KeyError, match="valid: episodes"):
        check_metric_names(["collisions_per_day"])
