"""Takeover clips of the batched simulator: cut from the monitored batch, written, replayed exactly."""

from __future__ import annotations

import json

import imageio.v3 as iio
import numpy as np
import pytest
from typer.testing import CliRunner

from drivegpt.cli.app import app
from drivegpt.sim.policy import ConstantPolicy
from drivegpt.sim.video import is_blank
from drivegpt.takeover.batched_clips import evaluate_monitored_batched, restore
from drivegpt.takeover.clips import ClipError, ReplayError, load_clips, write_clips
from drivegpt.takeover.monitor import TRIGGERS, MonitorConfig
from drivegpt.takeover.replay import replay_clip

ENV = "drivegpt/HighwayDense-v0"
FAST = MonitorConfig(lookahead_steps=0)  # threshold triggers only: quick
CRUISE = "constant:0,keep"  # 0 m/s², keep lane: holds its speed into slower traffic
HOLD = ConstantPolicy("0,keep").action  # its token


@pytest.fixture(scope="module")
def clips():
    out: list = []
    metrics, per = evaluate_monitored_batched(CRUISE, ENV, None, 6, 100, 6, FAST, out)
    assert len(out) == metrics["takeovers"] == int(per["takeovers"].sum()) > 0
    return out


def test_clips_hold_the_takeover(clips) -> None:
    for c in clips:
        assert c.sim == "batched" and c.action == "accel" and c.trigger in TRIGGERS and c.policy == CRUISE
        assert len(c.action_prefix) == c.step and c.horizon >= 1
        assert len(c.obs) == len(c.rejected) == len(c.chosen) == c.horizon
        assert len(c.context_obs) == len(c.context_actions) + 1 == min(c.step, FAST.context_steps) + 1
        assert np.array_equal(c.context_obs[-1], c.obs[0])  # the observation at the takeover
        assert all(r == HOLD for r in c.rejected)  # the constant policy's proposals, rejected
        assert c.snapshot[0, 6] == 1 and c.snapshot[1:, 6].sum() == 0  # the ego first
        assert c.personality["reaction_delay"] == 0 and c.personality["action_noise"] == 0  # alert
        if c.trigger == "ttc":
            assert c.figures["ttc_s"] < FAST.ttc_threshold


def test_clips_replay_exactly_after_a_round_trip(clips, tmp_path) -> None:
    write_clips(tmp_path / "c", clips, {"monitor": FAST.to_dict()})
    loaded = load_clips(tmp_path / "c")
    assert [c.sim for c in loaded] == ["batched"] * len(clips)
    for c in loaded:  # episodes stepped 6 at a time, replayed alone: the same state, bit for bit
        state, fidelity = restore(c)
        assert fidelity == 0.0 and int(state.steps[0]) == c.step * state.config.frames
    odd = load_clips(tmp_path / "c")[:1]
    odd[0].sim = "gpu"
    write_clips(tmp_path / "odd", odd, {})  # a valid checksum: the field itself is checked
    with pytest.raises(
        ClipError, match=r"clip_00000.json: unknown sim 'gpu' \(valid: highway-env, batched\)"
    ):
        load_clips(tmp_path / "odd")
    odd[0].sim, odd[0].device = "batched", "tpu"
    write_clips(tmp_path / "odd", odd, {})
    with pytest.raises(ClipError, match=r"clip_00000.json: unknown device 'tpu' \(valid: cpu, cuda\)"):
        load_clips(tmp_path / "odd")
    result = replay_clip(loaded[0], "human", FAST)
    assert result.fidelity_max_abs == 0.0 and result.steps >= 1
    bad = loaded[0]
    bad.snapshot = bad.snapshot.copy()
    bad.snapshot[0, 0] += 1e-8  # beyond REPLAY_TOLERANCE (1e-9): not the last bits of another CPU
    with pytest.raises(ReplayError, match=r"differs from the recording by 1e-08 \(max abs, tolerance 1e-09"):
        restore(bad)


def test_batched_clips_replay_on_highway_env_as_on_the_batched_simulator(clips) -> None:
    """The restored state written into highway-env's objects is the clip's snapshot exactly, and the
    replay there ends as on the batched simulator, step for step."""
    for c in clips[:3]:
        here, there = replay_clip(c, "human", FAST), replay_clip(c, "human", FAST, sim="highway-env")
        assert there.fidelity_max_abs == 0.0
        assert (here.resolved, here.collision, here.steps) == (there.resolved, there.collision, there.steps)
        assert here.min_ttc_s == pytest.approx(there.min_ttc_s, rel=1e-9)


def test_drive_clips_and_replay_on_the_batched_simulator_via_cli(tmp_path) -> None:
    (tmp_path / "m.yaml").write_text("lookahead_steps: 0\n")
    args = ["drive", "--sim", "batched", "--env", ENV, "--episodes", "3", "--batch", "3", "--takeovers"]
    args += ["--policy", CRUISE, "--monitor-config", str(tmp_path / "m.yaml"), "--seed", "100"]
    r = CliRunner().invoke(app, [*args, "--clips-out", str(tmp_path / "c"), "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    meta = json.loads((tmp_path / "c" / "metadata.json").read_text())
    assert len(meta["clips"]) == json.loads((tmp_path / "o" / "metrics.json").read_text())["takeovers"] > 0
    gif = tmp_path / "first.gif"
    args = ["replay", str(tmp_path / "c"), "--policy", "human", "--video", str(gif), "--workers", "1"]
    r = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "r")])
    assert r.exit_code == 0, r.output
    summary = json.loads((tmp_path / "r" / "replay.json").read_text())
    assert summary["replays"] == len(meta["clips"]) and summary["fidelity_max_abs"] == 0.0
    frames = iio.imread(gif)
    assert frames.shape[0] > 2 and not is_blank(frames[0])
    args = ["replay", str(tmp_path / "c"), "--policy", "human", "--sim", "highway-env", "--workers", "1"]
    r = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "h")])
    assert r.exit_code == 0, r.output
    on_highway_env = json.loads((tmp_path / "h" / "replay.json").read_text())
    assert on_highway_env["fidelity_max_abs"] == 0.0 and on_highway_env["sim"] == "highway-env"
    assert on_highway_env["resolution_rate"] == summary["resolution_rate"]
    args = ["replay", "takeover_data/sample", "--policy", "human", "--sim", "batched", "--workers", "1"]
    r = CliRunner().invoke(app, [*args, "--clip", "clip_00000", "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "recorded on highway-env: it replays there only" in r.output
