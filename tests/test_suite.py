import json
import math

import pytest

from drivegpt.corner.suite import (
    Scenario,
    ScenarioJob,
    SuiteError,
    job_of,
    load_suite,
    outcome_of,
    replay_mismatches,
    simulate,
    write_suite,
)

STALL = "drivegpt/StalledCar-v0"


def _corner(speed: str, distance: str) -> dict[str, float]:
    """Stalled-car parameters at a corner of the box: ego speed and stall distance at low/high."""
    from drivegpt_envs.families import family_class

    spec = family_class("stalled_car").PARAMS
    return {
        "ego_speed": getattr(spec["ego_speed"], speed),
        "stall_distance": getattr(spec["stall_distance"], distance),
    }


def test_outcome_by_hand():
    # speeds 20 -> 20 -> 25 m/s at 1 s steps: accelerations 0 and 5 m/s² (> 2.40: a comfort violation)
    trace = {"ttc": [math.inf, 3.0, 0.5], "gap": [10.0, 4.0, 2.0], "speed": [20.0, 20.0, 25.0]}
    trace["speeding"] = [0, 0, 1]
    o = outcome_of(False, False, 45.0, trace, dt=1.0)
    assert (o.steps, o.distance_m, o.mean_speed_mps) == (2, 45.0, 22.5)
    assert o.min_ttc_s == 0.5 and o.ttc_violation and o.comfort_violation
    assert o.speeding_fraction == 0.5 and not o.failed
    assert o.risk == pytest.approx(0.5 * max(math.exp(-0.25), math.exp(-2.0)))
    calm = outcome_of(False, False, 40.0, {**trace, "ttc": [math.inf] * 3, "speed": [20.0] * 3}, 1.0)
    assert calm.min_ttc_s == 100.0 and not calm.ttc_violation and not calm.comfort_violation
    assert outcome_of(True, False, 1.0, trace, 1.0).risk == 1.0


def test_same_scenario_same_outcome_and_params_matter():
    job = ScenarioJob("human", STALL, "meta", 3, _corner("high", "low"))
    a, b = simulate(job), simulate(job)
    assert a == b
    c = simulate(job._replace(params=_corner("low", "high")))
    assert c != a


def _scenarios() -> list[Scenario]:
    out = []
    for i, p in enumerate([_corner("high", "low"), _corner("low", "high")]):
        s = Scenario(f"stalled_car-{i:05d}", "stalled_car", STALL, p, 10 + i, "constant:FASTER", "meta", {})
        s.outcome = simulate(job_of(s))._asdict()
        out.append(s)
    return out


def test_suite_round_trip_replays_exactly(tmp_path):
    scenarios = _scenarios()
    write_suite(tmp_path / "s", scenarios, "test")
    meta, loaded = load_suite(tmp_path / "s")
    assert meta["format"] == "drivegpt-suite" and meta["families"] == ["stalled_car"]
    assert loaded == scenarios
    for s in loaded:
        assert replay_mismatches(s, simulate(job_of(s))) == {}
    other = simulate(job_of(loaded[0], policy="human"))
    assert replay_mismatches(loaded[0], other)  # another driver: a different outcome, reported


def test_corrupt_suites_are_rejected(tmp_path):
    path = write_suite(tmp_path / "s", _scenarios()[:1], "test")
    data = path / "scenarios.jsonl"
    good = data.read_bytes()
    data.write_bytes(good.replace(b'"seed": 10', b'"seed": 11'))
    with pytest.raises(SuiteError, match="checksum mismatch"):
        load_suite(path)
    data.write_bytes(good[:-20])
    with pytest.raises(SuiteError, match="scenarios.jsonl: checksum"):
        load_suite(path)
    data.write_bytes(good)
    load_suite(path)
    meta = json.loads((path / "metadata.json").read_text())
    (path / "metadata.json").write_text(json.dumps({**meta, "version": 99}))
    with pytest.raises(SuiteError, match="not drivegpt-suite v1"):
        load_suite(path)
    (path / "metadata.json").unlink()
    with pytest.raises(SuiteError, match="missing"):
        load_suite(path)


def test_shipped_standard_suite_loads_and_covers_every_family():
    from drivegpt.corner.suite import resolve_suite
    from drivegpt_envs.families import FAMILIES

    meta, scenarios = load_suite(resolve_suite("standard"))
    assert meta["families"] == sorted(FAMILIES)  # regenerate with the command in metadata.json
    assert meta["created_by"].startswith("drivegpt corner-cases search --family all")
    assert all(s.policy == "human" and s.env_id == FAMILIES[s.family] for s in scenarios)
