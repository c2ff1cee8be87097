import json

import numpy as np
import pytest
from highway_env.vehicle.kinematics import Vehicle
from typer.testing import CliRunner

from drivegpt.cli.app import app
from drivegpt.eval.closed_loop import evaluate_monitored
from drivegpt.policies.registry import load_policy
from drivegpt.sim.geometry import lead_figures
from drivegpt.sim.human import FASTER, SLOWER
from drivegpt.sim.rollout import make_env
from drivegpt.sim.video import is_blank
from drivegpt.takeover.clips import REPLAY_TOLERANCE, ClipError, load_clips, write_clips
from drivegpt.takeover.monitor import MonitorConfig, check_triggers
from drivegpt.takeover.replay import replay_clip, restore

runner = CliRunner()


def _stalled(gap: float):
    """Empty 3-lane road, ego at 25 m/s, a stalled car ``gap`` metres (bumper to bumper) ahead."""
    env = make_env("drivegpt/Highway-v0", "meta", {"vehicles_count": 0})
    env.reset(seed=0)
    road, ego = env.unwrapped.road, env.unwrapped.vehicle
    ego.speed = 25.0
    lane = road.network.get_lane(ego.lane_index)
    s, _ = lane.local_coordinates(ego.position)
    d = gap + ego.LENGTH  # centre to centre
    road.vehicles.append(Vehicle(road, lane.position(s + d, 0), lane.heading_at(s + d), speed=0.0))
    return env


def test_ttc_and_headway_figures_hand_computed():
    ttc, headway = lead_figures(_stalled(30.0))
    assert ttc == pytest.approx(30.0 / 25.0)
    assert headway == pytest.approx(30.0 / 25.0)


def test_ttc_trigger_fires_below_threshold_only():
    cfg = MonitorConfig(lookahead_steps=0)
    fired = check_triggers(_stalled(30.0), None, FASTER, FASTER, cfg)  # TTC 1.2 s < 1.5 s
    assert fired is not None and fired[0] == "ttc" and fired[1]["ttc_s"] == pytest.approx(1.2)
    assert check_triggers(_stalled(150.0), None, FASTER, FASTER, cfg) is None  # TTC 6 s


def test_headway_trigger():
    cfg = MonitorConfig(ttc_threshold=0, headway_threshold=1.5, lookahead_steps=0)
    assert check_triggers(_stalled(30.0), None, 1, 1, cfg)[0] == "headway"  # 1.2 s
    assert check_triggers(_stalled(60.0), None, 1, 1, cfg) is None  # 2.4 s


def test_predicted_failure_rolls_the_policy_forward_in_a_copy():
    cfg = MonitorConfig(ttc_threshold=0, headway_threshold=0, lookahead_steps=2)
    env = _stalled(45.0)  # TTC 1.8 s: thresholds off, only the look-ahead can fire
    before = env.unwrapped.vehicle.position.copy()
    fired = check_triggers(env, load_policy("constant:FASTER"), FASTER, SLOWER, cfg)
    assert fired is not None and fired[0] == "predicted_failure"
    np.testing.assert_array_equal(env.unwrapped.vehicle.position, before)  # the real env did not move
    assert check_triggers(_stalled(150.0), load_policy("constant:FASTER"), FASTER, SLOWER, cfg) is None


def test_offroad_and_disagreement_triggers():
    env = _stalled(150.0)
    env.unwrapped.vehicle.position[1] = 40.0  # [m] far off the 3 lanes
    assert check_triggers(env, None, 1, 1, MonitorConfig(lookahead_steps=0))[0] == "offroad"
    cfg = MonitorConfig(ttc_threshold=0, headway_threshold=0, lookahead_steps=0, disagreement_ttc=3.0)
    assert check_triggers(_stalled(45.0), None, FASTER, SLOWER, cfg)[0] == "disagreement"
    assert check_triggers(_stalled(45.0), None, SLOWER, SLOWER, cfg) is None


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    m, eps, clips = evaluate_monitored(
        "constant:FASTER", "drivegpt/Highway-v0", episodes=2, workers=1, progress=False
    )
    assert m["takeovers"] == len(clips) > 0
    out = tmp_path_factory.mktemp("clips") / "c"
    write_clips(out, clips)
    return out, m, eps


def test_takeover_metrics_and_one_clip_per_takeover(clips):
    path, m, eps = clips
    loaded = load_clips(path)
    assert m["takeovers_per_100km"] > 0 and m["km_per_takeover"] > 0
    by_seed: dict[int, list] = {}
    for c in loaded:
        by_seed.setdefault(c.seed, []).append(c)
        assert c.horizon >= 1 and len(c.rejected) == len(c.chosen) == c.horizon
        assert len(c.action_prefix) == c.step
    for cs in by_seed.values():  # a takeover in progress never opens a second clip
        for a, b in zip(cs, cs[1:], strict=False):
            assert b.step >= a.step + a.horizon
    controller = np.concatenate([e.controller for e in eps])
    assert controller.sum() == sum(c.horizon for c in loaded)


def test_replay_is_exact_and_human_resolves(clips):
    path, _, _ = clips
    c = load_clips(path)[0]
    env, _, fidelity, _ = restore(c)
    assert fidelity == 0.0
    r = replay_clip(c, "constant:FASTER", MonitorConfig())
    assert r.fidelity_max_abs == 0.0 and not r.resolved


def test_tampered_clip_is_rejected(clips, tmp_path):
    import shutil

    path, _, _ = clips
    bad = tmp_path / "bad"
    shutil.copytree(path, bad)
    header = bad / "clip_00000.json"
    d = json.loads(header.read_text())
    d["seed"] += 1
    header.write_text(json.dumps(d))
    with pytest.raises(ClipError, match="clip_00000.json.*checksum mismatch"):
        load_clips(bad)
    with pytest.raises(ClipError, match="no clip 'nope'"):
        load_clips(path, ["nope"])


def test_drive_takeovers_and_replay_cli(tmp_path):
    r = runner.invoke(
        app,
        [
            "drive",
            "--policy",
            "constant:FASTER",
            "--episodes",
            "1",
            "--workers",
            "1",
            "--takeovers",
            "--clips-out",
            str(tmp_path / "clips"),
            "--out",
            str(tmp_path / "d"),
        ],
    )
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "d" / "metrics.json").read_text())
    assert m["takeovers"] >= 1 and "km_per_takeover" in m
    cmd = json.loads((tmp_path / "clips" / "metadata.json").read_text())["command"]
    assert " --takeovers " in cmd and "True" not in cmd  # a runnable command line
    gif = tmp_path / "r" / "replay.gif"
    r = runner.invoke(
        app,
        [
            "replay",
            str(tmp_path / "clips"),
            "--clip",
            "clip_00000",
            "--policy",
            "human",
            "--video",
            str(gif),
            "--out",
            str(tmp_path / "r"),
        ],
    )
    assert r.exit_code == 0, r.output
    s = json.loads((tmp_path / "r" / "replay.json").read_text())
    assert s["replays"] == 1 and s["fidelity_max_abs"] == 0.0
    import imageio.v3 as iio

    frames = iio.imread(gif)
    assert len(frames) >= 3 and not any(is_blank(f) for f in frames)


def test_every_sample_clip_replays_exactly():
    """The shipped clips replay on any machine, to REPLAY_TOLERANCE (bit for bit where they were made)."""
    clips = load_clips("takeover_data/sample")
    assert len(clips) >= 3
    for c in clips:
        assert restore(c)[2] <= REPLAY_TOLERANCE


def test_replay_mismatch_is_an_error(clips, tmp_path):
    from drivegpt.takeover.clips import ReplayError

    path, _, _ = clips
    c = load_clips(path)[0]
    c.snapshot = c.snapshot.copy()
    c.snapshot[0, 0] += 0.5  # a recorded state the simulation will not reproduce
    write_clips(tmp_path / "moved", [c])  # consistent checksums: only replay can tell
    with pytest.raises(ReplayError, match="differs from the recording by 0.5"):
        restore(load_clips(tmp_path / "moved")[0])


def test_cli_rejects_unknown_clip_and_bad_monitor_config(clips, tmp_path):
    path, _, _ = clips
    r = runner.invoke(
        app, ["replay", str(path), "--clip", "nope", "--policy", "human", "--out", str(tmp_path / "r")]
    )
    assert r.exit_code == 2 and "no clip 'nope'" in r.output
    bad = tmp_path / "m.yaml"
    bad.write_text("ttc: 2.0\n")
    r = runner.invoke(
        app,
        [
            "drive",
            "--policy",
            "human",
            "--episodes",
            "1",
            "--takeovers",
            "--monitor-config",
            str(bad),
            "--out",
            str(tmp_path / "d"),
        ],
    )
    assert r.exit_code == 2 and "ttc_threshold" in r.output
    r = runner.invoke(
        app, ["drive", "--policy", "human", "--clips-out", str(tmp_path / "c"), "--out", str(tmp_path / "d")]
    )
    assert r.exit_code == 2 and "--takeovers" in r.output


def test_human_resolves_sample_clips_and_fast_policy_does_not():
    clips = load_clips("takeover_data/sample")[:3]
    human = [replay_clip(c, "human", MonitorConfig()) for c in clips]
    assert any(r.resolved for r in human)  # the clips are solvable
    assert all(r.handed_back for r in human if r.resolved)
    fast = [replay_clip(c, "constant:FASTER", MonitorConfig()) for c in clips]
    assert not any(r.resolved for r in fast)


def test_replay_rejects_a_policy_with_another_action_interface():
    c = load_clips("takeover_data/sample")[0]
    with pytest.raises(ValueError, match="drives continuous actions"):
        replay_clip(c, "constant:0.5,0", MonitorConfig())


def _stalled_at(action: str, speed: float, gap: float):
    """Empty road, ego at ``speed`` [m/s], a stalled car ``gap`` metres (bumper to bumper) ahead."""
    env = make_env("drivegpt/Highway-v0", action, {"vehicles_count": 0, "duration": 20})
    env.reset(seed=0)
    road, ego = env.unwrapped.road, env.unwrapped.vehicle
    ego.speed = speed
    if action == "meta":
        ego.target_speed = speed
    lane = road.network.get_lane(ego.lane_index)
    s, _ = lane.local_coordinates(ego.position)
    d = gap + ego.LENGTH
    road.vehicles.append(Vehicle(road, lane.position(s + d, 0), lane.heading_at(s + d), speed=0.0))
    return env


def test_the_safety_driver_brakes_as_hard_as_needed_with_accel():
    """TTC trigger at 1.45 s, 20 m/s toward a stalled car: stopping needs ~7 m/s² (20² / (2 · 29))."""
    from drivegpt.takeover.monitor import safety_driver

    outcome = {}
    for action, steps in (("accel", 50), ("meta", 10)):
        env = _stalled_at(action, speed=20.0, gap=29.0)
        assert check_triggers(env, None, None, None, MonitorConfig(lookahead_steps=0))[0] == "ttc"
        driver = safety_driver()
        driver.reset(seed=3, env=env)
        obs = None
        for _ in range(steps):
            obs, _, terminated, truncated, _ = env.step(driver.act(obs))
            if terminated or truncated:
                break
        outcome[action] = bool(env.unwrapped.vehicle.crashed)
    assert outcome == {"accel": False, "meta": True}  # meta: one SLOWER a second is not enough
