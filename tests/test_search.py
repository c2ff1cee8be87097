import numpy as np
import pytest

from drivegpt.core.metrics import check_metric_names
from drivegpt.corner.search import (
    SearchConfig,
    cluster,
    latin_hypercube,
    search_family,
    to_scenarios,
    truncated_normal,
)


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


@pytest.mark.parametrize("method", ["random", "lhs", "cem"])
def test_certain_failure_is_found_by_every_method(method):
    # Flooring it toward a car stalled in the ego's lane crashes for every parameter in the box.
    cfg = SearchConfig(method=method, budget=4, batch=2, feasibility_refs=1 if method == "cem" else 0)
    r = search_family("stalled_car", "constant:FASTER", cfg, workers=1, progress=False)
    s = r.summary
    check_metric_names(["sims", "failure_rate", "sims_to_first_failure", "clusters"])
    assert s["sims"] == 4 and s["failure_rate"] == 1.0 and s["sims_to_first_failure"] == 1
    assert 1 <= s["clusters"] <= 4 and sum(c["size"] for c in s["cluster_details"]) == 4
    seeds = [x.seed for x in r.sims]
    if method == "cem":  # a fresh seed (seed + index) or one an earlier simulation used
        assert seeds[:2] == [0, 1] and all(sd == i or sd in seeds[:i] for i, sd in enumerate(seeds))
    else:
        assert seeds == [0, 1, 2, 3]
    suite = to_scenarios(r, "meta")
    assert len(suite) == 4 and all(sc.outcome["failed"] for sc in suite)
    if method == "cem":  # every failure checked by an alert human: feasible or flagged unavoidable
        assert set(r.feasible) == {0, 1, 2, 3} and s["unavoidable"] == sum(not v for v in r.feasible.values())
        assert all(sc.feasible is r.feasible[i] for i, sc in enumerate(suite))
    again = search_family("stalled_car", "constant:FASTER", cfg, workers=1, progress=False)
    assert [x.params for x in again.sims] == [x.params for x in r.sims]  # same seed, same search
