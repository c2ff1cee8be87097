"""The physics surrogates (drivegpt/corner/surrogate.py): the two-car model by hand, the stalled car's
against the simulator, its wide scale and traffic term by hand and on Monte Carlo failures, each
family's own proposal settings, and ``corner-cases estimate --surrogate``. The proposal on toy
problems: tests/test_surrogate_proposal.py."""

from __future__ import annotations

import json
import math
from statistics import NormalDist

import numpy as np
import pytest

from drivegpt.core.errors import UserError
from drivegpt.corner import surrogate, surrogate_proposal
from drivegpt.corner.estimate import EstimateConfig
from drivegpt.corner.naturalistic import WithHumanTraits, family_distribution
from drivegpt.corner.surrogate import adversarial_margin, stalled_margin
from drivegpt.corner.surrogate_proposal import SurrogateProposal

N01 = NormalDist()
NAMES = WithHumanTraits(family_distribution("adversarial_vehicle")).names


def point(**values: float) -> np.ndarray:
    """One row of ``adversarial_vehicle`` parameters and traits: an ego holding 25 m/s (its desired
    speed), an adversary 2 m/s faster that never brakes, overridden by ``values``."""
    row = {"ego_speed": 25.0, "speed_difference": 2.0, "cut_in_gap": 10.0, "brake_delay": 100.0,
           "deceleration": 4.0, "speed_drop": 10.0, "human.desired_speed": 25.0, "human.time_headway": 1.5,
           "human.min_gap": 3.0, "human.politeness": 0.2, "human.lane_change_threshold": 0.2,
           "human.reaction_delay": 0.2, "human.action_noise": 0.0}  # fmt: skip
    row.update({k if k in row else "human." + k: v for k, v in values.items()})
    return np.array([[row[n] for n in NAMES]])


def test_adversarial_margin_by_hand() -> None:
    """The adversary starts 20 m behind and closes at its speed difference; it steers in at the first
    0.1 s step at least ``cut_in_gap`` ahead, and overlaps the ego's lane (offset below a car's width,
    2 m) 0.5 s later, between the lateral profile's 0.4 s (2.25 m) and 0.6 s (1.44 m)."""
    # 2 m/s faster, 3.05 m: steers in at 11.6 s, 3.2 m ahead; overlaps at 12.1 s, 4.2 m ahead (centre to
    # centre), so the bumpers overlap by 5 - 4.2 = 0.8 m: a crash. Its braking (at 1.5 s) never closes in
    # again: the ego, 1.4 m behind it then, brakes at 8 m/s² against its 4.
    crash = point(cut_in_gap=3.05, brake_delay=1.5)
    assert adversarial_margin(crash, NAMES)[0] == pytest.approx(4.2 - 5.0, abs=1e-9)
    # 8 m/s faster, 12.05 m: steers in at 4.1 s, 12.8 m ahead; overlaps at 4.6 s, 16.8 m ahead, and the gap
    # only grows after (it never brakes): margin 16.8 - 5 = 11.8 m
    wide = point(speed_difference=8.0, cut_in_gap=12.05)
    assert adversarial_margin(wide, NAMES)[0] == pytest.approx(16.8 - 5.0, abs=1e-9)
    # an ego that accelerates from 20 m/s to its 30 is never passed by a car doing 22: no cut-in at all
    never = point(ego_speed=20.0, desired_speed=30.0)
    assert adversarial_margin(never, NAMES)[0] == math.inf
    both = np.concatenate([crash, wide, never])  # rows are independent of each other
    assert adversarial_margin(both, NAMES) == pytest.approx([-0.8, 11.8, math.inf], abs=1e-9)


STALLED = WithHumanTraits(family_distribution("stalled_car")).names
#: ``stalled_car`` points (parameters, then the human's traits, in STALLED's order): three the model
#: says end about 9-11 m into the stalled car, two about 4.7 m, two it says stop about 3 m short
STALLED_POINTS = np.array([
    [24.58, 28.82, 190.91, 21.82, 29.27, 1.23, 4.17, 0.25, 0.29, 0.59, 0.03],
    [27.29, 27.52, 130.14, 21.13, 29.21, 1.29, 3.54, 0.42, 0.18, 0.35, 0.0],
    [27.83, 20.82, 234.19, 21.79, 29.77, 1.22, 2.61, 0.34, 0.33, 0.42, 0.02],
    [26.17, 35.17, 234.19, 22.74, 29.87, 1.24, 3.80, 0.11, 0.11, 0.41, 0.03],
    [20.95, 34.30, 198.50, 20.37, 29.59, 1.27, 2.27, 0.35, 0.27, 0.53, 0.03],
    [21.31, 31.95, 155.43, 71.12, 25.86, 1.28, 2.86, 0.29, 0.15, 0.41, 0.01],
    [20.04, 34.93, 219.91, 58.18, 27.64, 1.54, 3.43, 0.49, 0.32, 0.27, 0.02],
])  # fmt: skip


def test_stalled_margin_agrees_with_the_simulator() -> None:
    """The stalled car's model against the batched simulator on seven points, two seeds each: where it
    says the ego ends 4 m or more into the stalled car the human crashes, where it says it stops short
    it does not; the margin rises with the room the swerve leaves (``reveal_distance``)."""
    from drivegpt.corner.batched import batched_family_simulator

    margin = stalled_margin(STALLED_POINTS, STALLED)
    assert np.all(margin[:3] < -8) and np.all((margin[3:5] > -5) & (margin[3:5] < -4))
    assert np.all((margin[5:] > 2.5) & (margin[5:] < 3.5))
    sim = batched_family_simulator("stalled_car", "human", STALLED, "accel", 16, None, "cpu")
    for seeds in (np.arange(7), np.arange(7) + 10**6):
        assert (sim(STALLED_POINTS, seeds) >= 1).tolist() == [True] * 5 + [False] * 2
    more_room = STALLED_POINTS[:1].copy()
    more_room[0, STALLED.index("reveal_distance")] += 20.0
    assert stalled_margin(more_room, STALLED)[0] > margin[0] + 10
    assert stalled_margin(np.zeros((0, len(STALLED))), STALLED).shape == (0,)


def test_each_family_has_its_own_scale_and_defensive_weight(monkeypatch) -> None:
    """``SurrogateProposal`` takes σ, δ, the wide scale and the traffic term from the family's
    ``Surrogate`` unless given: ``stalled_car``'s proposal draws scenario seeds for its lane changes."""
    monkeypatch.setattr(surrogate_proposal, "Z_DRAWS", 2**12)
    law = WithHumanTraits(family_distribution("stalled_car"))
    q = SurrogateProposal(law, seed=1)
    assert (q.defensive, q.sigma, q.weight, q.seeded) == (0.02, 0.5, 0.08, True) and 0 < q.z < 0.1
    assert (q.wide_sigma, q.wide_weight) == (2.0, 0.8)
    alone = SurrogateProposal(law, seed=1, traffic=False)
    assert not alone.seeded and alone.weight == 0 and alone.z < q.z
    q = SurrogateProposal(WithHumanTraits(family_distribution("adversarial_vehicle")), 0.1, seed=1)
    assert (q.defensive, q.sigma) == (0.1, 1.5)
    with pytest.raises(UserError, match="missing: human.desired_speed"):
        SurrogateProposal(family_distribution("stalled_car"))


def test_estimate_from_python_takes_the_familys_defensive_weight_unless_set(monkeypatch) -> None:
    """``estimate(..., surrogate=True)``: a config that leaves ``defensive`` at its default (or none)
    gets the family's own weight; one that sets it keeps it."""
    from drivegpt.corner.estimate_family import estimate

    monkeypatch.setattr(surrogate_proposal, "Z_DRAWS", 2**12)
    for cfg, delta in ((None, 0.02), (EstimateConfig(batch=20), 0.02), (EstimateConfig(defensive=0.2), 0.2)):
        est = estimate("stalled_car", "human", "is", 0.2, 20, 1, cfg, sim="batched", progress=False,
                       surrogate=True, duration=2.0)  # fmt: skip
        assert est.proposal["defensive"] == delta and est.sims == 20


def test_a_family_without_a_surrogate_is_refused() -> None:
    with pytest.raises(
        UserError, match="has no physics surrogate; --surrogate works on: adversarial_vehicle, stalled_car"
    ):
        SurrogateProposal(family_distribution("slower_lead"), 0.02)


def test_cli_estimate_with_the_surrogate(tmp_path, monkeypatch) -> None:
    """``corner-cases estimate --surrogate``: no pilot, the proposal recorded; refused with --method mc,
    with --proposal, on a family without a surrogate and without the human's sampled traits (left to
    the seed, as on highway-env, they decide a large part of the failures, which the model misses), in
    one line before any simulation."""
    from typer.testing import CliRunner

    from drivegpt.cli.app import app

    monkeypatch.setattr(
        surrogate_proposal, "Z_DRAWS", 2**14
    )  # Z from fewer draws: a quicker, rougher proposal
    args = ["corner-cases", "estimate", "--family", "adversarial_vehicle", "--surrogate", "--device", "cpu"]
    result = CliRunner().invoke(app, [*args, "--max-sims", "100", "--out", str(tmp_path / "e")])
    assert result.exit_code == 0, result.output
    assert "(0 pilot)" in result.output
    est = json.loads((tmp_path / "e" / "estimate.json").read_text())
    assert est["sims"] == 100 and est["pilot_sims"] == 0 and est["run"]["surrogate"] is True
    assert est["proposal"]["kind"] == "surrogate" and est["proposal"]["z_draws"] == 2**14
    assert est["proposal"]["defensive"] == est["run"]["defensive"] == 0.02  # adversarial_vehicle's own
    assert est["failures"] > 0  # about one draw in eight fails, against one in 2,000 from the nominal
    assert not (tmp_path / "e" / "proposal.json").exists()  # nothing fitted: nothing to reuse
    for extra, says in (
        (["--method", "mc"], "it needs --method is"),
        (["--proposal", str(tmp_path / "e" / "estimate.json")], "no --proposal"),
        (["--family", "slower_lead"], "has no physics surrogate"),
        (["--refit-floor", "0.3"], "drop --refit-floor and --halfspace-share"),
        (["--no-human-traits"], "it needs --policy human on the batched simulator with --human-traits"),
        (["--sim", "highway-env"], "missing: human.desired_speed"),
    ):
        bad = CliRunner().invoke(app, [*args, *extra, "--out", str(tmp_path / "bad")])
        assert bad.exit_code != 0 and says in " ".join(bad.output.replace("│", " ").split()), (
            extra,
            bad.output,
        )


def test_cli_surrogate_takes_the_familys_defensive_weight(tmp_path, monkeypatch) -> None:
    """``--surrogate`` on ``stalled_car`` without ``--defensive`` uses the family's 0.02, recorded in
    estimate.json; a given ``--defensive`` wins."""
    from typer.testing import CliRunner

    from drivegpt.cli.app import app

    monkeypatch.setattr(surrogate_proposal, "Z_DRAWS", 2**12)
    args = ["corner-cases", "estimate", "--family", "stalled_car", "--surrogate", "--device", "cpu",
            "--max-sims", "50", "--duration", "5"]  # fmt: skip
    for extra, delta in (([], 0.02), (["--defensive", "0.3"], 0.3)):
        out = tmp_path / str(delta)
        result = CliRunner().invoke(app, [*args, *extra, "--out", str(out)])
        assert result.exit_code == 0, result.output
        est = json.loads((out / "estimate.json").read_text())
        assert est["proposal"]["defensive"] == delta and est["run"]["defensive"] == delta
        assert est["sims"] == 50 and est["pilot_sims"] == 0


def test_rearmost_after_stop_by_hand() -> None:
    """The right lane's rearmost car spawns ``45 u`` past 60 m behind the ego at its speed less 3 m/s
    ± 1 (``u`` the seed's first uniforms, as ``family_reset`` draws them) and reaches the stalled car at
    that speed; the human stops ``swerve + 2 room / v`` after the start, the swerve timed from the
    lead's gap as the family caps it (10 m short of its reveal point). The next car spawns
    ``45 (0.7 + 0.6 u')`` ahead of it; the human, creeping at 1.5 m/s, predicts by its IDM (a = 3,
    b = 4 m/s²) the rearmost car, 2.5 m/s slower than spawned, to brake behind it over that spacing
    less two lengths and its ``min_gap``."""
    import torch

    from drivegpt.sim.batched.families import family_config

    capped = STALLED_POINTS[5].copy()  # a lead 38 m ahead, capped at 125 - 78 - 10 = 37 m by the family
    capped[[STALLED.index(n) for n in ("stall_distance", "reveal_distance", "lead_gap")]] = 125.0, 78.0, 38.0
    rows, seed = np.stack([STALLED_POINTS[5], capped]), 123
    got = surrogate.rearmost_after_stop(rows, STALLED, np.array([seed, seed]))
    slots = family_config("stalled_car").slots - 3  # the ego, the stalled car and the lead first
    generator = torch.Generator().manual_seed(seed)
    uniforms = torch.rand(slots, 3, generator=generator, dtype=torch.float64).numpy()
    u, spacing = uniforms[0], 45.0 * (0.7 + 0.6 * uniforms[1, 0])  # [m] to the next car
    for row, lead, out in zip(rows, (31.95, 37.0), got, strict=True):
        c = dict(zip(STALLED, row, strict=True))
        speed = c["ego_speed"] - 3.0 + (2 * u[1] - 1)  # [m/s]
        arrive = (c["stall_distance"] + 60.0 - 45.0 * u[0]) / speed  # [s]
        v = min(c["ego_speed"], c["human.desired_speed"])  # [m/s]
        room = c["reveal_distance"] + c["human.min_gap"]
        room += (c["human.time_headway"] - c["human.reaction_delay"]) * v  # [m]
        stop = (c["stall_distance"] - lead - c["reveal_distance"]) / c["ego_speed"] + 2 * room / v  # [s]
        follower, s0, headway = speed - 2.5, c["human.min_gap"], c["human.time_headway"]  # [m/s], [m], [s]
        s_star = s0 + follower * headway + follower * (follower - 1.5) / (2 * math.sqrt(12.0))  # [m]
        free = 1 - (follower / c["human.desired_speed"]) ** 4
        braking = 3.0 * (free - (s_star / (spacing - 10.0 - s0)) ** 2)  # [m/s²]
        assert out == pytest.approx([arrive - stop, speed, braking], rel=1e-9)


def test_hard_stop_by_hand() -> None:
    """A stop is hard where ``v² / (2 room)`` reaches 5.5 m/s²: ``v = min(ego_speed, desired_speed)``
    over ``room = reveal_distance + min_gap + (time_headway − reaction_delay) v``, at least 1 m."""
    rows = np.repeat(STALLED_POINTS[:1], 3, axis=0)
    c = dict(zip(STALLED, rows[0], strict=True))
    v = min(c["ego_speed"], c["human.desired_speed"])  # [m/s]
    lag = (c["human.time_headway"] - c["human.reaction_delay"]) * v + c["human.min_gap"]  # [m]
    for row, a in zip(rows, (5.4, 5.6, 100.0), strict=True):  # reveal_distance for each deceleration
        row[STALLED.index("reveal_distance")] = v**2 / (2 * a) - lag
    assert surrogate.hard_stop(rows, STALLED).tolist() == [False, True, True]


def test_stalled_traffic_holds_every_lane_change_of_the_monte_carlo_streams() -> None:
    """On the stored failures of Monte Carlo streams 7 to 10 (1.6 million draws), each lane change (the
    human needed under 5 m/s² to stop) lies in the traffic term's window, which holds about one draw in
    eight, and most at its full weight, where the human would predict the rearmost car to brake gently:
    about one draw in 110. Both were read off these failures: a check that they still hold them."""
    from pathlib import Path

    streams = Path(__file__).parents[1] / "bench/results/is_second_moment"
    law = WithHumanTraits(family_distribution("stalled_car"))
    changes, full = 0, 0
    for s in (7, 8, 9, 10):
        stream = np.load(next(streams.glob(f"**/stalled_car-failures-{s}.npz")))
        params, seeds = law.to_params(stream["z"]), stream["seeds"]  # the stream's failures
        c = {n: params[:, j] for j, n in enumerate(law.names)}
        v = np.minimum(c["ego_speed"], c["human.desired_speed"])
        room = c["reveal_distance"] + c["human.min_gap"]
        room = room + (c["human.time_headway"] - c["human.reaction_delay"]) * v
        change = v**2 / (2 * np.maximum(room, 1.0)) < 5.0
        term = surrogate.stalled_traffic(params[change], law.names, seeds[change])
        assert term.all()
        changes, full = changes + int(change.sum()), full + int((term == 1).sum())
    assert (changes, full) == (43, 35)
    nominal = np.random.default_rng(0).standard_normal((20_000, law.dim))
    term = surrogate.stalled_traffic(law.to_params(nominal), law.names, np.arange(20_000))
    assert set(np.unique(term)) == {0.0, 0.2, 1.0}
    assert 0.08 < (term > 0).mean() < 0.16 and 0.005 < (term == 1).mean() < 0.015
