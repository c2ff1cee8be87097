import csv
import json

import imageio.v3 as iio
import pytest
from typer.testing import CliRunner

from drivegpt.cli.app import app
from drivegpt.core.metrics import METRICS, poisson_interval
from drivegpt.corner.suite import outcome_of
from drivegpt.eval.benchmark import episode_score, parse_policies
from drivegpt.eval.naturalistic import running_rate, write_naturalistic

runner = CliRunner()


def test_parse_policies():
    assert parse_policies(["h=human", "drivegpt"]) == {"h": "human", "drivegpt": "drivegpt"}
    with pytest.raises(ValueError, match="unique NAME"):
        parse_policies(["a=human", "a=idm"])


def test_score_by_hand():
    trace = {"ttc": [9.0, 9.0, 9.0], "gap": [9.0] * 3, "speed": [20.0, 20.0, 20.0], "speeding": [0, 0, 1]}
    o = outcome_of(False, False, 40.0, trace, 1.0)  # half the steps above the limit, no other violation
    assert episode_score(o, 0.5) == pytest.approx((5 * 0.5 + 5 + 4 * 0.5 + 2) / 16)
    assert episode_score(o, 2.0) == pytest.approx((5 + 5 + 2 + 2) / 16)  # progress capped at 1
    assert episode_score(o, 0.1) == 0.0  # not making progress
    assert episode_score(o._replace(crashed=True), 1.0) == 0.0


def test_running_rate_by_hand():
    """Four episodes of 1, 1, 2 and 1 km with collisions in the second and fourth: after each, the
    collisions so far per 10⁶ km so far, and the Poisson 95% bounds of that count over that exposure."""
    r = running_rate([False, True, False, True], [1000.0, 1000.0, 2000.0, 1000.0])
    assert r["km"].tolist() == [1.0, 2.0, 4.0, 5.0] and r["collisions"].tolist() == [0, 1, 1, 2]
    assert r["collisions_per_1e6km"] == pytest.approx([0.0, 5e5, 2.5e5, 4e5])
    assert r["hi"][0] == pytest.approx(poisson_interval(0)[1] * 1e6) and r["lo"][0] == 0.0  # 3.69 / 1e-6
    assert r["lo"][3] == pytest.approx(poisson_interval(2)[0] * 2e5)  # two over 5 km = 5e-6 of 10⁶ km
    assert r["hi"][2] == pytest.approx(poisson_interval(1)[1] * 2.5e5)


def test_no_naturalistic_drive_leaves_no_earlier_plot(tmp_path):
    """A benchmark re-run into the same folder without naturalistic drives removes the earlier run's
    running estimate, which would otherwise stand beside a table without the figure."""
    for stale in (tmp_path / "naturalistic.csv", tmp_path / "plots" / "naturalistic_rate.png"):
        stale.parent.mkdir(parents=True, exist_ok=True)
        stale.write_text("earlier run")
    assert write_naturalistic(tmp_path, {"idm": None}) == []
    assert not (tmp_path / "naturalistic.csv").exists()
    assert not (tmp_path / "plots" / "naturalistic_rate.png").exists()


def test_search_replay_and_bench_through_cli(tmp_path):
    suite = tmp_path / "suite"
    r = runner.invoke(
        app,
        ["corner-cases", "search", "--family", "stalled_car", "--policy", "human", "--budget", "2",
         "--method", "lhs", "--keep", "all", "--workers", "1", "--out", str(suite)],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    summary = json.loads((suite / "summary.json").read_text())["stalled_car"]
    assert {"failure_rate", "sims", "sims_to_first_failure", "clusters"} <= set(summary)
    assert "corner-cases search" in json.loads((suite / "metadata.json").read_text())["created_by"]
    r = runner.invoke(app, ["corner-cases", "replay", str(suite), "--workers", "1"])
    assert r.exit_code == 0 and "replayed exactly" in r.output, r.output

    out = tmp_path / "bench"
    r = runner.invoke(
        app,
        ["bench", "--suite", str(suite), "--policy", "human=human", "--policy", "fast=constant:FASTER",
         "--gifs", "1", "--naturalistic-episodes", "6", "--workers", "1", "--out", str(out)],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader((out / "results.csv").open()))
    fast = float(rows[3]["collisions_per_1e6km"])  # full throttle in dense traffic: it crashes on the road
    lo, hi = (float(v) for v in rows[3]["collisions_per_1e6km_ci"].strip("[]").split(","))
    assert fast > 0 and lo < fast < hi and rows[2]["collisions_per_1e6km"] == "—"  # "all" rows only
    assert [(x["policy"], x["family"]) for x in rows] == [
        ("human", "stalled_car"), ("human", "all"), ("fast", "stalled_car"), ("fast", "all")
    ]  # fmt: skip
    assert set(rows[0]) - {"policy", "family"} <= set(METRICS)
    assert rows[2]["collision_rate"] == "1.0000"  # flooring it into a stalled car always crashes
    assert float(rows[0]["progress"]) == pytest.approx(1.0)  # the human is the progress reference
    md = (out / "results.md").read_text()
    assert md.count("| fast | stalled_car | 2 | 1.000 [") == 1
    assert (out / "plots" / "collision_rate.png").stat().st_size > 1000
    running = list(csv.DictReader((out / "naturalistic.csv").open()))  # 6 episodes a policy, in seed order
    assert [x["policy"] for x in running] == ["human"] * 6 + ["fast"] * 6
    assert float(running[-1]["collisions_per_1e6km"]) == pytest.approx(fast, rel=1e-3)  # = the column
    assert int(running[-1]["collisions"]) == sum(int(x["crashed"]) for x in running[6:]) > 0
    plot = iio.imread(out / "plots" / "naturalistic_rate.png")
    assert plot.std() > 10  # curves and bands, not a blank canvas
    gif = next((out / "gifs").glob("*.gif"))
    assert iio.imread(gif).std() > 1.0  # frames show something
    assert "drivegpt bench" in json.loads((out / "run.json").read_text())["command"]

    (suite / "scenarios.jsonl").write_text("{}\n")
    args = ["bench", "--suite", str(suite), "--policy", "human", "--out", str(tmp_path / "x")]
    r = runner.invoke(app, args)
    assert r.exit_code == 2 and "checksum mismatch" in r.output
    assert not (tmp_path / "x").exists()
