"""``drivegpt drive --sim batched``: closed-loop figures on the batched simulator."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from drivegpt.cli.app import app

runner = CliRunner()
ARGS = ["drive", "--sim", "batched", "--env", "drivegpt/Highway-v0", "--episodes", "4"]


@pytest.mark.parametrize("policy", ["constant:IDLE", "idm"])  # idm: highway-env's IDMVehicle at the wheel
def test_batched_drive_writes_figures_that_do_not_depend_on_the_batch_size(tmp_path, policy):
    outs = []
    for batch in (4, 3):
        out = tmp_path / f"b{batch}"
        r = runner.invoke(app, [*ARGS, "--policy", policy, "--batch", str(batch), "--out", str(out)])
        assert r.exit_code == 0, r.output
        outs.append(json.loads((out / "metrics.json").read_text()))
        rows = (out / "episodes.csv").read_text().splitlines()
        assert rows[0] == "seed,steps,crashed,distance_m,mean_speed_mps" and len(rows) == 5
        assert json.loads((out / "run.json").read_text())["sim"] == "batched"
    assert outs[0] == outs[1]
    assert outs[0]["episodes"] == 4 and outs[0]["km_driven"] > 0
    if policy == "idm":  # [m/s] IDM follows the traffic (spawned at 21-24 m/s); the neutral token keeps 25
        assert outs[0]["mean_speed_mps"] < 24


def test_batched_drive_refuses_what_it_cannot_simulate(tmp_path):
    r = runner.invoke(app, [*ARGS, "--policy", "human", "--action", "meta", "--out", str(tmp_path / "h")])
    assert r.exit_code == 2 and "--sim highway-env" in r.output
    r = runner.invoke(app, [*ARGS, "--policy", "constant:IDLE", "--takeovers", "--out", str(tmp_path / "t")])
    assert r.exit_code == 2 and "no batched port" in r.output
    r = runner.invoke(app, ["drive", "--sim", "carla", "--out", str(tmp_path / "c")])
    assert r.exit_code == 2 and "highway-env" in r.output and "batched" in r.output
