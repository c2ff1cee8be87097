import pytest

from drivegpt.core.metrics import check_metric_names, driving_metrics, wilson_interval


def test_wilson_hand_computed():
    lo, hi = wilson_interval(2, 10)  # textbook: (0.0567, 0.5098)
    assert lo == pytest.approx(0.05668, abs=1e-4)
    assert hi == pytest.approx(0.50985, abs=1e-4)
    assert wilson_interval(0, 200)[0] == pytest.approx(0.0, abs=1e-12)
    assert wilson_interval(0, 200)[1] == pytest.approx(0.01884, abs=1e-4)


def test_driving_metrics():
    m = driving_metrics(
        [True, False, False, False], [1000.0, 500.0, 500.0, 0.0], [[10.0, 20.0], [30.0], [20.0], []]
    )
    assert m["collision_rate"] == 0.25
    assert m["km_driven"] == pytest.approx(2.0)
    assert m["km_per_collision"] == pytest.approx(2.0)
    assert m["mean_speed_mps"] == pytest.approx(20.0)


def test_unknown_metric_lists_valid_names():
    with pytest.raises(KeyError, match="valid: episodes"):
        check_metric_names(["collisions_per_day"])
