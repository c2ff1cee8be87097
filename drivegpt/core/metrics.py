"""The metric registry (docs/metrics.md): one place for names, meanings and the maths.

Driving summaries, benchmark tables and reports use these keys (training logs add their own
figures, such as tokens per second); asking for an unknown name fails with the list of valid ones.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

#: key -> meaning (docs/metrics.md).
METRICS: dict[str, str] = {
    "episodes": "episodes run",
    "collision_rate": "fraction of episodes with an ego collision",
    "collision_rate_ci": "Wilson 95% interval [lo, hi] of collision_rate",
    "km_driven": "ego distance driven [km]",
    "km_per_collision": "km_driven / collisions (null if none)",
    "mean_speed_mps": "mean ego speed over all steps [m/s]",
    "takeovers": "monitor takeovers",
    "late_takeovers": "takeovers followed by a collision anyway",
    "km_policy": "ego distance driven under policy control [km] (the exposure of takeover rates)",
    "takeovers_per_100km": "takeovers per 100 km of policy-controlled distance",
    "takeovers_per_100km_ci": "Poisson 95% interval [lo, hi] of takeovers_per_100km",
    "km_per_takeover": "policy-controlled km per takeover (null if none)",
    "takeovers_at_start": "takeovers that fired on an episode's first state, before any policy action took "
    "effect (the spawned traffic, not the policy's driving)",
    "takeovers_after_start_per_100km": "takeovers per 100 km of policy-controlled distance, without "
    "takeovers_at_start: the takeovers the policy's own driving caused",
    "takeovers_after_start_per_100km_ci": "Poisson 95% interval [lo, hi] of takeovers_after_start_per_100km",
    "collisions_per_1e6km": "ego collisions per 10⁶ km of the policy alone in naturalistic traffic (the "
    "batched simulator's dense highway: every car's driver and spacing drawn as in ordinary driving)",
    "collisions_per_1e6km_ci": "Poisson 95% interval [lo, hi] of collisions_per_1e6km",
    "ttc_violation_rate": "fraction of episodes with a step of time-to-collision < 0.95 s",
    "comfort_violation_rate": (
        "fraction of episodes with acceleration outside [-4.05, 2.40] m/s² or jerk > 4.13 m/s³"
    ),
    "progress": "distance driven / the human model's distance in the same scenario and seed",
    "score": "CLS-like score in [0, 1]",
    "action_accuracy": "held-out imitation accuracy",
    "cross_entropy": "held-out imitation cross-entropy [nats]",
    "pairwise_accuracy": "reward model accuracy on held-out pairs",
    "reward_mean": "reward model score: mean centred reward r(h, a) - mean_a' r(h, a') per step",
    "fidelity_max_abs": "max abs state difference at the takeover moment on replay",
    "resolution_rate": "fraction of replays resolved by the new policy",
    "replays": "replays run",
    "failure_rate": "fraction of simulations that failed",
    "sims_to_first_failure": "simulations until the first failure",
    "acceleration_factor": (
        "search failure rate / random failure rate at the same budget; of an estimate: simulations plain"
        " Monte Carlo needs for its relative half-width / simulations it used"
    ),
    "clusters": "distinct failure clusters",
    "sims": "simulations run",
    "failure_probability": "estimated P(failure) of a family under its naturalistic parameter distribution",
    "failure_probability_ci": "95% interval [lo, hi] of failure_probability ([0, 1]: degenerate weights)",
    "rel_halfwidth": "95% half-width / failure_probability (null when not estimable)",
    "effective_sample_size": "(sum w f)^2 / sum (w f)^2 over simulations (w: likelihood ratio, f: failed)",
}


def check_metric_names(names: Iterable[str]) -> None:
    """Raise ``KeyError`` naming every unknown metric and listing the valid ones."""
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise KeyError(f"unknown metric name(s) {unknown}; valid: {', '.join(METRICS)}")


def wilson_interval(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95% by default)."""
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return (lo, hi)


def _poisson_cdf(k: int, mu: float) -> float:
    """P(X <= k) for X ~ Poisson(mu), summed in log space."""
    if mu <= 0:
        return 1.0
    return math.fsum(math.exp(i * math.log(mu) - mu - math.lgamma(i + 1)) for i in range(k + 1))


def _bisect(f: Any, lo: float, hi: float) -> float:
    """The root of an increasing ``f`` on [lo, hi] (f(lo) < 0 < f(hi)), to machine precision."""
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if f(mid) < 0 else (lo, mid)
        if hi - lo <= 1e-12 * max(1.0, hi):
            break
    return (lo + hi) / 2


def poisson_interval(count: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Two-sided interval of a Poisson mean from one ``count`` (95% by default).

    Exact (Garwood: each tail holds ``Φ(-z)``) up to 200 events; above that Byar's approximation,
    within 0.1% of the exact bounds there. Divide by the exposure (e.g. km / 100) for an interval of
    a rate such as takeovers per 100 km.
    """
    tail = 0.5 * math.erfc(z / math.sqrt(2))  # 0.025 for 95%
    n = count
    if n > 200:
        m = n + 1
        lo = n * (1 - 1 / (9 * n) - z / (3 * math.sqrt(n))) ** 3
        hi = m * (1 - 1 / (9 * m) + z / (3 * math.sqrt(m))) ** 3
        return lo, hi
    top = 10.0 * n + 10.0 * z * z + 10.0
    lo = 0.0 if n == 0 else _bisect(lambda mu: (1.0 - _poisson_cdf(n - 1, mu)) - tail, 0.0, top)
    hi = _bisect(lambda mu: tail - _poisson_cdf(n, mu), 0.0, top)  # P(X <= n; hi) = tail
    return lo, hi


def driving_metrics(
    crashed: Sequence[bool], distance_m: Sequence[float], speeds: Sequence[np.ndarray]
) -> dict[str, Any]:
    """Episode-level driving figures: collision rate (Wilson CI), distance, speed.

    ``crashed[i]``: episode i had an ego collision; ``distance_m[i]``: ego distance [m];
    ``speeds[i]``: the ego speed at each step of episode i [m/s].
    """
    n = len(crashed)
    collisions = int(np.sum(crashed))
    km = float(np.sum(distance_m)) / 1000.0
    all_speeds = np.concatenate([np.asarray(s, float) for s in speeds]) if n else np.zeros(0)
    lo, hi = wilson_interval(collisions, n)
    out = {
        "episodes": n,
        "collision_rate": collisions / n if n else 0.0,
        "collision_rate_ci": [lo, hi],
        "km_driven": km,
        "km_per_collision": km / collisions if collisions else None,
        "mean_speed_mps": float(all_speeds.mean()) if all_speeds.size else 0.0,
    }
    check_metric_names(out)
    return out


def takeover_metrics(
    takeovers: int, late_takeovers: int, km_policy: float, at_start: int | None = None
) -> dict[str, Any]:
    """Takeover figures over ``km_policy``, the distance the policy drove [km] (never the safety driver's).

    ``at_start``: how many of the takeovers fired on an episode's first state (when known); they are
    the same for every policy on the same seeds, so the figures without them are added."""
    lo, hi = poisson_interval(takeovers)
    per100 = 100.0 / km_policy if km_policy > 0 else None
    out: dict[str, Any] = {
        "takeovers": takeovers,
        "late_takeovers": late_takeovers,
        "km_policy": km_policy,
        "takeovers_per_100km": takeovers * per100 if per100 else None,
        "takeovers_per_100km_ci": [lo * per100, hi * per100] if per100 else None,
        "km_per_takeover": km_policy / takeovers if takeovers else None,
    }
    if at_start is not None:
        after = takeovers - at_start
        lo, hi = poisson_interval(after)
        out["takeovers_at_start"] = at_start
        out["takeovers_after_start_per_100km"] = after * per100 if per100 else None
        out["takeovers_after_start_per_100km_ci"] = [lo * per100, hi * per100] if per100 else None
    check_metric_names(out)
    return out
