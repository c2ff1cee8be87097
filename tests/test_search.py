import math

import numpy as np
import pytest

import drivegpt.corner.runner as runner
from drivegpt.corner.search import (
    SearchConfig,
    SearchResult,
    acceleration_factor,
    cluster,
    latin_hypercube,
    search_family,
    search_simulator,
    to_scenarios,
    truncated_normal,
)
from drivegpt.corner.suite import Outcome, ScenarioJob
from drivegpt_envs.families import family_class

RARE_FAMILY = "stalled_car"
RARE_CENTRE = np.array([0.75, 0.25, 0.7, 0.3])  # in the normalised box [0, 1]^4
RARE_RADIUS = 0.2  # the failure ball fills pi²/2 · 0.2⁴ = 0.79% of the box


def rare_failure(job: ScenarioJob) -> Outcome:
    """A stand-in simulator: the policy fails only inside a small ball of the family's normalised box;
    outside it, the risk is a smooth closeness to the ball (the shape the real risk has before a crash)."""
    specs = family_class(RARE_FAMILY).PARAMS
    u = np.array([(job.params[k] - spec.low) / (spec.high - spec.low) for k, spec in specs.items()])
    d = float(np.linalg.norm(u - RARE_CENTRE))
    failed = d < RARE_RADIUS
    risk = 1.0 if failed else 0.5 * math.exp(-d / 0.3)
    return Outcome(failed, failed, False, 10, 200.0, 20.0, 100.0, d, False, False, 0.0, risk, 0, 200.0)


def test_latin_hypercube_one_point_per_stratum():
    u = latin_hypercube(np.random.default_rng(0), 8, 3)
    assert u.shape == (8, 3)
    for d in range(3):
        assert sorted(np.floor(u[:, d] * 8).astype(int)) == list(range(8))


def test_truncated_normal_stays_in_box():
    x = truncated_normal(np.random.default_rng(1), np.array([0.0, 1.0]), np.array([0.5, 0.05]), 500)
    assert x.min() >= 0 and x.max() <= 1
    assert abs(x[:, 1].mean() - 0.96) < 0.02  # half-normal below 1 with std 0.05: mean 1 - 0.04


def test_single_linkage_clusters_by_hand():
    pts = np.array([[0.0, 0.0], [0.1, 0.0], [0.9, 0.9], [0.2, 0.0], [0.95, 0.9], [0.5, 0.5]])
    # 0-1-3 chain (steps of 0.1), 2-4 close, 5 alone
    assert cluster(pts, 0.15) == [[0, 1, 3], [2, 4], [5]]
    assert cluster(pts, 2.0) == [[0, 1, 2, 3, 4, 5]]
    assert cluster(pts[:0], 0.1) == []


def test_config_rejects_unknown_method():
    with pytest.raises(ValueError, match="method"):
        SearchConfig(method="grid")


def test_cem_finds_rare_failures_far_more_often_than_random_at_the_same_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runner, "simulate", rare_failure)  # workers=1: simulations run in this process
    hwe = (
        "highway-env"  # the stub replaces highway-env's simulate (a search's default, auto, is batched here)
    )
    runs: dict[str, list[SearchResult]] = {"random": [], "lhs": [], "cem": []}
    for seed in range(10):
        for method, out in runs.items():
            cfg = SearchConfig(method=method, budget=200, batch=20, seed=seed, feasibility_refs=0, sim=hwe)
            out.append(search_family(RARE_FAMILY, "human", cfg, workers=1, progress=False))
    rate = {m: float(np.mean([r.summary["failure_rate"] for r in rs])) for m, rs in runs.items()}
    # uniform sampling fails about as often as the ball's share of the box (0.79%): rare
    assert 0.001 < rate["random"] < 0.02 and rate["lhs"] < 0.02
    assert rate["cem"] > 0.4  # the adaptive search finds the ball and stays in it
    factor = acceleration_factor(rate["cem"], rate["random"])
    assert factor is not None and factor > 20
    for cem, rnd in zip(runs["cem"], runs["random"], strict=True):  # on every seed, not just on average
        s = cem.summary
        assert s["failure_rate"] > 10 * rnd.summary["failure_rate"] and s["sims"] == 200
        assert s["sims_to_first_failure"] <= 60 and s["clusters"] == 1  # one failure mode, one cluster
        failed = [x for x in cem.sims if x.outcome.failed]
        assert s["failures"] == len(failed) > 0
        assert all(np.linalg.norm(x.u - RARE_CENTRE) < RARE_RADIUS for x in failed)  # inside the ball
    for method, rs in runs.items():  # same seed, same search
        cfg = SearchConfig(method=method, budget=200, batch=20, seed=9, feasibility_refs=0, sim=hwe)
        again = search_family(RARE_FAMILY, "human", cfg, workers=1, progress=False)
        assert [x.params for x in again.sims] == [x.params for x in rs[9].sims]
        assert [x.seed for x in again.sims] == [x.seed for x in rs[9].sims]


@pytest.mark.parametrize("method", ["random", "lhs", "cem"])
def test_every_method_reports_real_simulations_of_a_certain_failure(method: str) -> None:
    # Flooring it (+3 m/s², keeping the lane) toward a car stalled in the ego's lane crashes for every
    # parameter in the box: the real simulator end to end (seeds, summary, feasibility, suite lines).
    cfg = SearchConfig(method=method, budget=4, batch=2, feasibility_refs=1 if method == "cem" else 0)
    r = search_family("stalled_car", "constant:3,keep", cfg, "accel", workers=1, progress=False)
    s = r.summary
    assert r.sim == s["sim"] == "batched"  # auto: the batched simulator has the family and the driver
    assert s["sims"] == 4 and s["failure_rate"] == 1.0 and s["sims_to_first_failure"] == 1
    assert all(x.outcome.crashed and x.outcome.risk == 1.0 for x in r.sims)
    assert 1 <= s["clusters"] <= 4 and sum(c["size"] for c in s["cluster_details"]) == 4
    seeds = [x.seed for x in r.sims]
    if method == "cem":  # a fresh seed (seed + index) or one an earlier simulation used
        assert seeds[:2] == [0, 1] and all(sd == i or sd in seeds[:i] for i, sd in enumerate(seeds))
    else:
        assert seeds == [0, 1, 2, 3]
    suite = to_scenarios(r, "accel")
    assert len(suite) == 4 and all(sc.outcome["failed"] for sc in suite)
    if method == "cem":  # every failure checked by an alert human: feasible or flagged unavoidable
        assert set(r.feasible) == {0, 1, 2, 3} and s["unavoidable"] == sum(not v for v in r.feasible.values())
        assert all(sc.feasible is r.feasible[i] for i, sc in enumerate(suite))
    else:  # not checked: no feasibility verdicts, none counted
        assert r.feasible == {} and s["unavoidable"] == 0 and all(sc.feasible is None for sc in suite)


def test_auto_searches_on_the_batched_simulator_where_it_has_the_family_and_the_driver() -> None:
    assert SearchConfig().sim == "auto"
    assert search_simulator("auto", "cut_in", "human") == "batched"
    assert search_simulator("auto", "cut_in", "drivegpt") == "batched"
    assert search_simulator("auto", "roundabout", "human") == "highway-env"  # no batched port
    assert search_simulator("auto", "cut_in", "idm") == "highway-env"  # highway-env's stock driver
    assert search_simulator("highway-env", "cut_in", "human") == "highway-env"  # an explicit choice
