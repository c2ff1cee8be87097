"""The naturalistic model's fit from human logs: its moments by hand, its priors, its CLI, its errors."""

import math

import numpy as np
import pytest
from typer.testing import CliRunner

from drivegpt.cli.app import app
from drivegpt.core.config import config_from_dict
from drivegpt.core.errors import UserError
from drivegpt.corner.naturalistic import load_naturalistic
from drivegpt.corner.naturalistic_fit import FITTED, PRIORS, fit_naturalistic, log_statistics
from drivegpt.data.collect import CollectConfig, collect
from drivegpt_envs.families import FAMILIES, family_class


@pytest.fixture(scope="module")
def dense_logs(tmp_path_factory):
    """Three short dense-highway episodes: enough cars beside and ahead for every fitted statistic."""
    scenario = {"env_id": "drivegpt/HighwayDense-v0", "weight": 1, "config": {"duration": 8}}
    cfg = config_from_dict(
        CollectConfig, {"action": "accel", "episodes": 3, "seed": 0, "workers": 1, "scenarios": [scenario]}
    )
    out = tmp_path_factory.mktemp("natural") / "dense"
    collect(cfg, out, progress=False)
    return out


def test_the_cli_fits_the_logs_moments_and_keeps_the_priors(dense_logs, tmp_path):
    out = tmp_path / "naturalistic.json"
    result = CliRunner().invoke(
        app, ["corner-cases", "fit-naturalistic", "--logs", str(dense_logs), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    model = load_naturalistic(out)
    stats, info = log_statistics(dense_logs)
    assert info["episodes"] == 3 and model.logs["steps"] == info["steps"] == len(stats["ego_speed"])
    assert "fit-naturalistic" in model.created_by

    speed = model.families["stalled_car"]["ego_speed"]  # normal: the logged speeds' moments
    assert speed.kind == "normal" and speed.source == f"logs: ego_speed (n={len(stats['ego_speed'])})"
    assert math.isclose(speed.mu, stats["ego_speed"].mean()) and math.isclose(
        speed.sigma, stats["ego_speed"].std()
    )
    gap = model.families["stalled_car"]["lead_gap"]  # log-normal: moments of log(gap)
    log_gap = np.log(stats["lead_gap"][stats["lead_gap"] > 0])
    assert (
        gap.kind == "lognormal"
        and math.isclose(gap.mu, log_gap.mean())
        and math.isclose(gap.sigma, log_gap.std())
    )
    cut = model.families["cut_in"]["speed_difference"]  # ego minus the cutting car: the statistic negated
    assert math.isclose(cut.mu, -stats["side_speed_difference"].mean()) and cut.source.startswith("logs: -")

    for family in FAMILIES:  # every parameter of every family: fitted where FITTED says, else its prior
        specs = family_class(family).PARAMS
        assert set(model.families[family]) == set(specs)
        for name, m in model.families[family].items():
            assert (m.low, m.high) == (specs[name].low, specs[name].high)
            if name in FITTED.get(family, {}):
                assert m.source.startswith("logs: ")
            else:
                kind, centre, sigma, why = PRIORS[family][name]
                mu = math.log(centre) if kind == "lognormal" else centre
                assert (m.kind, m.mu, m.sigma, m.source) == (kind, mu, sigma, f"prior: {why}")


def test_too_few_logged_samples_are_refused_naming_the_logs(tiny_logs):
    with pytest.raises(UserError, match=rf"{tiny_logs}: only \d+ samples of \w+; collect more episodes"):
        fit_naturalistic(tiny_logs, "test")
