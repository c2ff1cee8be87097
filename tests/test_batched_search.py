"""Corner-case scenarios on the batched simulator: outcomes, search, replay and benchmark."""

from __future__ import annotations

import csv
import json
import math

import imageio.v3 as iio
import numpy as np
import pytest
from typer.testing import CliRunner

from drivegpt.cli.app import app
from drivegpt.core.errors import UserError
from drivegpt.corner.batched import simulate_scenarios
from drivegpt.corner.runner import run_jobs
from drivegpt.corner.search import SearchConfig, search_family, to_scenarios
from drivegpt.corner.suite import (
    ALERT_HUMAN,
    ScenarioJob,
    SuiteError,
    job_of,
    load_suite,
    simulate,
    write_suite,
)
from drivegpt.eval.benchmark import BenchConfig, run_benchmark
from drivegpt.sim.video import is_blank
from drivegpt_envs.families import FAMILIES, family_class

runner = CliRunner()
#: families whose batched scenes hold only scripted cars: the same scenario is the same episode on both
NO_TRAFFIC = ("adversarial_vehicle", "stop_and_go")


def _jobs(family: str, n: int, seed: int, policy: str = "human", sim: str = "batched") -> list[ScenarioJob]:
    rng = np.random.default_rng(seed)
    specs = family_class(family).PARAMS
    out = []
    for i in range(n):
        params = {k: float(s.low + rng.random() * (s.high - s.low)) for k, s in specs.items()}
        out.append(ScenarioJob(policy, FAMILIES[family], "accel", seed + i, params, sim=sim))
    return out


def _assert_as_on_highway_env(jobs: list[ScenarioJob], batched: list) -> None:
    """Every Outcome field of each job equals highway-env's (floats to 1e-9)."""
    for job, b in zip(jobs, batched, strict=True):
        ref = simulate(job._replace(sim="highway-env"))
        for name, want in ref._asdict().items():
            got = getattr(b, name)
            if isinstance(want, float):
                assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9), (job.seed, name, got, want)
            else:
                assert got == want, (job.seed, name, got, want)


@pytest.mark.parametrize("family", NO_TRAFFIC)
def test_outcomes_equal_highway_envs_without_traffic(family):
    """Every Outcome field as highway-env's ScenarioEnv records it: the human and the alert reference."""
    jobs = _jobs(family, 2, 40) + [j._replace(policy=ALERT_HUMAN, reference=1) for j in _jobs(family, 1, 60)]
    batched = simulate_scenarios(jobs)
    _assert_as_on_highway_env(jobs, batched)


def test_monitored_outcomes_equal_highway_envs_without_traffic():
    """Under the safety driver too: takeovers and the policy's distance as highway-env's monitor."""
    from drivegpt.takeover.monitor import MonitorConfig

    watch = MonitorConfig().to_dict()
    jobs = _jobs("adversarial_vehicle", 1, 40, "constant:0") + _jobs("stop_and_go", 1, 40, "constant:3")
    jobs = [j._replace(monitor=watch) for j in jobs]
    batched = simulate_scenarios(jobs)
    assert all(o.takeovers for o in batched)  # the test sees takeovers
    _assert_as_on_highway_env(jobs, batched)


def test_outcomes_do_not_depend_on_the_batch():
    """A scenario's outcome is the same alone and in a batch, in any order (exact replay): the
    human's, and DriveGPT's, whose network sees a batch of observations."""
    jobs = _jobs("stalled_car", 2, 7) + _jobs("cut_in", 1, 9) + _jobs("side_swipe", 2, 5, "drivegpt")
    together = simulate_scenarios(jobs[::-1])[::-1]  # in another order, in one batch per group
    for i in (0, 2, 4):  # alone: stalled_car, cut_in and DriveGPT on side_swipe
        assert simulate_scenarios([jobs[i]]) == [together[i]]


def test_batched_search_finds_failures_that_replay_exactly():
    cfg = SearchConfig(budget=24, batch=12, sim="batched", feasibility_refs=2)
    r = search_family("adversarial_vehicle", "human", cfg, progress=False)
    assert r.summary["sims"] == 24 and r.summary["sim"] == "batched" and r.sim == "batched"
    scenarios = to_scenarios(r, "accel", "all")
    assert {s.sim for s in scenarios} == {"batched"}
    again = run_jobs([job_of(s) for s in scenarios])
    assert [o._asdict() for o in again] == [s.outcome for s in scenarios]
    assert set(r.feasible) == {s.index for s in r.sims if s.outcome.failed}


def test_unported_family_and_unmonitored_actions_are_refused():
    with pytest.raises(UserError, match="no batched port.*stalled_car"):
        simulate_scenarios(_jobs("intersection", 1, 0))
    with pytest.raises(UserError, match="no batched port for 'meta' actions"):
        simulate_scenarios([_jobs("cut_in", 1, 0, "constant:IDLE")[0]._replace(action="meta", monitor={})])
    with pytest.raises(UserError, match="valid simulators are highway-env, batched"):
        run_jobs([_jobs("cut_in", 1, 0)[0]._replace(sim="gpu")])


def test_search_replay_and_bench_on_batched_via_cli(tmp_path):
    suite = tmp_path / "suite"
    args = ["corner-cases", "search", "--family", "hard_braking_lead", "--family", "cut_in"]
    args += ["--budget", "6", "--sim", "batched", "--keep", "all", "--out", str(suite)]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    meta, scenarios = load_suite(suite)
    assert meta["sim"] == "batched" and meta["family_sims"] == {
        "hard_braking_lead": "batched",
        "cut_in": "batched",
    }
    assert len(scenarios) == 12 and {s.sim for s in scenarios} == {"batched"}
    r = runner.invoke(app, ["corner-cases", "replay", str(suite)])
    assert r.exit_code == 0 and "replayed exactly" in r.output, r.output
    r = runner.invoke(app, ["corner-cases", "info", str(suite)])
    assert r.exit_code == 0 and "12 scenarios on batched" in r.output, r.output
    # a tampered outcome is caught: replay runs on the scenario's own simulator
    lines = (suite / "scenarios.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    assert first["sim"] == "batched"
    out = tmp_path / "bench"
    args = ["bench", "--suite", str(suite), "--policy", "human", "--policy", "cruise=constant:0,keep"]
    r = runner.invoke(app, [*args, "--naturalistic-episodes", "0", "--gifs", "1", "--out", str(out)])
    assert r.exit_code == 0, r.output
    episodes = (out / "episodes.csv").read_text().splitlines()
    assert len(episodes) == 1 + 2 * 12
    assert json.loads((out / "run.json").read_text())["config"]["sim"] is None
    failures = sum(row["failed"] == "True" for row in csv.DictReader(episodes))
    gifs = sorted((out / "gifs").glob("*.gif"))
    assert len(gifs) == min(1, failures)
    for gif in gifs:  # the batched episode, drawn by highway-env's renderer: frames that show something
        frames = iio.imread(gif)
        assert frames.shape[0] > 2 and not is_blank(frames[0])
    (tmp_path / "m.yaml").write_text("lookahead_steps: 0\n")  # thresholds only: quick
    args = ["bench", "--suite", str(suite), "--policy", "cruise=constant:0", "--sim", "batched"]
    args += ["--takeovers", "--monitor-config", str(tmp_path / "m.yaml"), "--gifs", "0"]
    args += ["--naturalistic-episodes", "0"]
    r = runner.invoke(app, [*args, "--out", str(tmp_path / "b2")])
    assert r.exit_code == 0, r.output
    with open(tmp_path / "b2" / "results.csv") as f:
        watched = next(x for x in csv.DictReader(f) if x["policy"] == "cruise" and x["family"] == "all")
    assert watched["episodes"] == "12" and float(watched["takeovers_per_100km"]) > 0  # holding 0 m/s²
    args = ["corner-cases", "search", "--family", "roundabout", "--sim", "batched", "--budget", "2"]
    r = runner.invoke(app, [*args, "--out", str(tmp_path / "s2")])
    assert r.exit_code != 0 and "no batched port" in r.output


def test_a_suite_naming_an_unknown_simulator_is_refused(tmp_path):
    cfg = SearchConfig(budget=1, method="random", sim="batched", feasibility_refs=0)
    scenarios = to_scenarios(search_family("cut_in", "human", cfg, progress=False), "accel", "all")
    scenarios[0].sim = "gpu"
    path = write_suite(tmp_path / "s", scenarios, "test")  # a valid checksum: the field is checked
    with pytest.raises(
        SuiteError, match=r"scenarios.jsonl:1: unknown sim 'gpu' \(valid: highway-env, batched\)"
    ):
        load_suite(path)


def test_bench_sim_overrides_the_scenarios_own():
    """``--sim batched`` runs a highway-env suite's scenarios on the batched simulator (same scripts)."""
    cfg = SearchConfig(budget=3, method="random", sim="highway-env", feasibility_refs=0)
    r = search_family("stop_and_go", "human", cfg, workers=1, progress=False)
    scenarios = to_scenarios(r, "accel", "all")
    rows = run_benchmark(scenarios, BenchConfig(policies={"human": "human"}, sim="batched"), progress=False)
    for s, row in zip(scenarios, rows, strict=True):  # no traffic in stop_and_go: the same episodes
        assert row.outcome.crashed == s.outcome["crashed"]
        assert math.isclose(row.outcome.distance_m, s.outcome["distance_m"], rel_tol=1e-9)
