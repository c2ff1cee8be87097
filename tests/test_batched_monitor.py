"""The takeover monitor on the batched simulator: triggers, takeover and hand-back, determinism, and
agreement with the highway-env monitor on imported states."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from drivegpt.cli.app import app
from drivegpt.policies.registry import load_policy
from drivegpt.sim import batched
from drivegpt.sim.batched.config import LANE_WIDTH, LENGTH
from drivegpt.sim.batched.human import BatchedHuman
from drivegpt.sim.policy import ConstantPolicy
from drivegpt.sim.rollout import make_env
from drivegpt.takeover import monitor
from drivegpt.takeover.batched import NO_TRIGGER, TTC, WatchedHuman, check_triggers, lead_figures, policy_rows
from drivegpt.takeover.batched_drive import run_monitored_batch
from drivegpt.takeover.monitor import TRIGGERS, MonitorConfig
from drivegpt_envs.actions import encode_accel_lane

ENV = "drivegpt/Highway-v0"
CRUISE = ConstantPolicy("0,keep")  # holds its speed whatever is ahead: the policy that needs a driver
NEVER = MonitorConfig(ttc_threshold=0, headway_threshold=0, offroad=False, lookahead_steps=0)


def scene(ego_speed: float, others: list[tuple[int, float, float]]) -> batched.BatchState:
    """One hand-built episode: the ego in lane 1 at x = 200 m and ``ego_speed`` [m/s], other vehicles
    (lane, bumper-to-bumper gap ahead [m], speed [m/s]); every other slot empty."""
    state = batched.reset([0], batched.make_config(ENV, "accel"))
    n = state.slots
    present = torch.zeros(1, n, dtype=torch.bool)
    x, speed = torch.zeros(1, n, dtype=torch.float64), torch.zeros(1, n, dtype=torch.float64)
    lane = torch.zeros(1, n, dtype=torch.long)
    for slot, (k, gap, v) in enumerate([(1, -LENGTH, ego_speed), *others]):
        present[0, slot], x[0, slot], speed[0, slot], lane[0, slot] = True, 200.0 + gap + LENGTH, v, k
    return state.replace(
        present=present,
        x=x,
        y=lane.to(torch.float64) * LANE_WIDTH,
        heading=torch.zeros_like(x),
        speed=speed,
        target_speed=speed.clone(),
        lane=lane,
        target_lane=lane.clone(),
    )


def test_stopped_car_ahead_fires_ttc_and_the_human_resolves_it() -> None:
    state = scene(20.0, [(1, 28.0, 0.0)])  # a stopped car 28 m ahead: TTC 1.4 s
    ttc, headway = lead_figures(state)
    assert ttc.item() == pytest.approx(1.4) and headway.item() == pytest.approx(1.4)
    cfg = MonitorConfig(lookahead_steps=0)
    out = run_monitored_batch(CRUISE, state.config, [0], cfg, state=state, alone=False, max_steps=25)
    assert out.seg_start[0] == 0 and TRIGGERS[out.seg_trigger[0]] == "ttc"
    assert out.seg_ttc[0] == pytest.approx(1.4)
    assert out.controller[0, 0] == 1 and not out.crashed[0] and out.late_takeovers[0] == 0
    assert (out.executed[0, : out.seg_end[0]] != out.proposal[0, : out.seg_end[0]]).any()  # human drove
    seg = out.segment(0)
    assert seg["obs"].shape[0] == len(seg["chosen"]) == out.seg_end[0] - out.seg_start[0]
    alone = run_monitored_batch(CRUISE, state.config, [0], NEVER, state=state, alone=False, max_steps=25)
    assert alone.crashed[0] and alone.takeovers[0] == 0  # without the safety driver it hits the car


def test_a_takeover_on_the_first_state_counts_as_at_start() -> None:
    state = scene(20.0, [(1, 14.0, 10.0)])  # a slower lead, TTC 1.4 s on the first state
    out = run_monitored_batch(CRUISE, state.config, [0], MonitorConfig(lookahead_steps=0), state=state,
                              alone=False, max_steps=40)  # fmt: skip
    m = out.summary()
    assert out.at_start.tolist() == [1] and m["takeovers_at_start"] == 1 == m["takeovers"]
    assert m["takeovers_after_start_per_100km"] == 0.0 and m["takeovers_per_100km"] > 0
    later = scene(20.0, [(1, 60.0, 0.0)])  # TTC 3 s at first: cruising on, the policy makes it < 2 s
    out = run_monitored_batch(CRUISE, later.config, [0], MonitorConfig(lookahead_steps=0), state=later,
                              alone=False, max_steps=25)  # fmt: skip
    assert out.takeovers[0] == 1 and out.seg_start[0] > 0 and out.at_start[0] == 0
    m = out.summary()
    assert m["takeovers_after_start_per_100km"] == pytest.approx(m["takeovers_per_100km"])


def test_the_human_under_the_safety_driver_is_the_batched_human() -> None:
    """The watched human drives exactly as BatchedHuman alone until a takeover, and a look-ahead
    copy of it does not change it."""
    config = batched.make_config("drivegpt/HighwayDense-v0", "accel")
    seeds = list(range(1_000_000, 1_000_004))
    out = run_monitored_batch(WatchedHuman(config), config, seeds, NEVER, alone=False, record_obs=False,
                              max_steps=20)  # fmt: skip
    state, human = batched.reset(seeds, config), BatchedHuman(config)
    human.reset(seeds, state)
    for t in range(20):
        action = human.act(state)
        np.testing.assert_array_equal(out.executed[:, t], action.numpy())
        state = batched.step(state, action)
    watched = WatchedHuman(config)
    watched.reset_episodes(seeds, batched.reset(seeds, config))
    copy = watched.select(torch.tensor([2, 0]))
    copy.act_state(batched.reset([seeds[2], seeds[0]], config))
    assert int(watched.human.t.sum()) == 0 and int(copy.human.t.sum()) == 2


def test_free_road_fires_nothing() -> None:
    state = scene(25.0, [(0, -40.0, 25.0)])  # one car behind in another lane, nothing ahead
    out = run_monitored_batch(CRUISE, state.config, [0], MonitorConfig(), state=state, max_steps=10)
    assert out.takeovers[0] == 0 and (out.controller[0] == 0).all()
    assert out.policy_distance_m[0] == pytest.approx(out.distance_m[0]) and out.distance_m[0] > 40.0
    assert (out.executed == out.proposal).all()


def test_hand_back_after_the_safe_steps() -> None:
    state = scene(20.0, [(1, 28.0, 0.0)])
    runs = {
        h: run_monitored_batch(
            CRUISE, state.config, [0], MonitorConfig(lookahead_steps=0, handback_safe_steps=h),
            state=state, alone=False, max_steps=40,
        )
        for h in (3, 8)
    }  # fmt: skip
    for h, out in runs.items():
        end = int(out.seg_end[0])
        assert out.takeovers[0] == 1 and (out.controller[0, :end] == 1).all() and out.controller[0, end] == 0
        assert end >= h
    # the safety driver drives the same way whoever hands back when: 5 more safe steps, 5 more steps
    assert runs[8].seg_end[0] - runs[3].seg_end[0] == 5


def test_same_seeds_same_takeovers_whatever_the_batch_size() -> None:
    config = batched.make_config(ENV, "accel")
    policy = ConstantPolicy("1.5,keep")  # accelerates into traffic: takeovers of every kind
    seeds = list(range(1_000_000, 1_000_006))
    cfg = MonitorConfig(lookahead_steps=3)
    full = run_monitored_batch(policy, config, seeds, cfg, alone=False, record_obs=False, max_steps=12)
    part = run_monitored_batch(policy, config, seeds[1:3], cfg, alone=False, record_obs=False, max_steps=12)
    assert part.takeovers.sum() > 0 and full.takeovers.sum() > part.takeovers.sum()
    np.testing.assert_array_equal(full.takeovers[1:3], part.takeovers)
    np.testing.assert_array_equal(full.trigger_counts[1:3], part.trigger_counts)
    T = part.controller.shape[1]
    np.testing.assert_array_equal(full.controller[1:3, :T], part.controller)
    np.testing.assert_array_equal(full.executed[1:3, :T], part.executed)
    rows = np.isin(full.seg_episode, [1, 2])
    np.testing.assert_array_equal(full.seg_episode[rows] - 1, part.seg_episode)
    np.testing.assert_array_equal(full.seg_start[rows], part.seg_start)
    np.testing.assert_array_equal(full.seg_end[rows], part.seg_end)
    np.testing.assert_array_equal(full.seg_trigger[rows], part.seg_trigger)


def test_look_ahead_copies_the_policy_context() -> None:
    policy = load_policy("drivegpt", "accel")
    config = batched.make_config(ENV, "accel", policy.env_config)
    state = batched.reset(range(4), config)
    policy.reset_batch(4)
    policy.act_batch(batched.observe(state).numpy())
    before = {k: v.clone() for k, v in vars(policy).items() if isinstance(v, torch.Tensor)}
    rows = torch.tensor([3, 1])
    copy = policy_rows(policy, rows)
    for k, v in before.items():
        torch.testing.assert_close(getattr(copy, k), v[rows])
    copy.act_batch(batched.observe(state.select(rows)).numpy())
    for k, v in before.items():
        torch.testing.assert_close(getattr(policy, k), v)  # acting on the copy left the policy alone


def _highway_states() -> list:
    """Imported-able highway-env states with the lead set at gaps and closing speeds around the
    thresholds (TTC 0.8 to 6 s, headway 0.3 to 3 s), and one ego off the road."""
    envs = []
    for i, (gap, closing) in enumerate([(8.0, 10.0), (14.0, 10.0), (30.0, 5.0), (60.0, 10.0), (12.0, -3.0)]):
        env = make_env(ENV, "accel")
        env.reset(seed=i)
        base = env.unwrapped
        ego = base.vehicle
        front, _ = base.road.neighbour_vehicles(ego, ego.lane_index)
        ego.speed = max(front.speed + closing, 1.0)
        ego.position[0] = front.position[0] - LENGTH - gap
        envs.append(env)
    env = make_env(ENV, "accel")
    env.reset(seed=9)
    env.unwrapped.vehicle.position[1] = 3 * LANE_WIDTH + 2.5  # [m] 4.5 m beyond the edge of the last lane
    envs.append(env)
    return envs


def test_threshold_triggers_agree_with_highway_env_monitor() -> None:
    envs = _highway_states()
    state = batched.from_highway_env(envs)
    cfg = MonitorConfig(headway_threshold=1.0, lookahead_steps=0)
    token = torch.full((len(envs),), int(encode_accel_lane(0.0, 0)))
    code, ttc, headway, _ = check_triggers(state, None, token, token, cfg)
    fired = {TRIGGERS[c] for c in code.tolist() if c != NO_TRIGGER}
    assert {"ttc", "headway", "offroad"} <= fired and NO_TRIGGER in code.tolist()
    for b, env in enumerate(envs):
        want = monitor.check_triggers(env, None, 24, 24, cfg)
        assert (None if code[b] == NO_TRIGGER else TRIGGERS[code[b]]) == (want and want[0]), b
        t_ref, h_ref = monitor.lead_figures(env)
        assert ttc[b].item() == pytest.approx(t_ref, rel=1e-9) and headway[b].item() == pytest.approx(h_ref)


def test_predicted_failure_agrees_with_highway_env_look_ahead() -> None:
    envs = _highway_states()[:4]
    state = batched.from_highway_env(envs)
    cfg = MonitorConfig(ttc_threshold=0, headway_threshold=0, lookahead_steps=5)
    policy = ConstantPolicy("3,keep")
    token = torch.full((len(envs),), policy.action)
    code, _, _, crash_in = check_triggers(state, policy, token, token, cfg)
    want = [monitor.check_triggers(env, policy, policy.action, policy.action, cfg) for env in envs]
    assert [None if c == NO_TRIGGER else TRIGGERS[c] for c in code.tolist()] == [w and w[0] for w in want]
    assert "predicted_failure" in {w and w[0] for w in want} and None in [w and w[0] for w in want]
    for b, w in enumerate(want):
        assert crash_in[b].item() == (int(w[1]["crash_in_steps"]) if w else 0)
    assert TTC == TRIGGERS.index("ttc")


def test_drive_takeovers_on_the_batched_simulator_through_the_cli(tmp_path) -> None:
    (tmp_path / "m.yaml").write_text("lookahead_steps: 0\n")
    args = ["drive", "--sim", "batched", "--env", ENV, "--episodes", "1", "--takeovers"]
    args += ["--policy", "constant:3,keep", "--monitor-config", str(tmp_path / "m.yaml")]
    r = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert (
        metrics["episodes"] == 1
        and metrics["takeovers"] > 0
        and 0 < metrics["km_policy"] < metrics["km_driven"]
    )
    rows = (tmp_path / "out" / "episodes.csv").read_text().splitlines()
    assert rows[0].split(",")[:2] == ["seed", "steps"] and "takeovers" in rows[0] and len(rows) == 2
    assert json.loads((tmp_path / "out" / "run.json").read_text())["monitor"]["lookahead_steps"] == 0
