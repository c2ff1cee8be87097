"""The accel driving language: the token mapping by hand, and its execution in highway-env."""

import gymnasium as gym
import numpy as np
import pytest
from highway_env.vehicle.kinematics import Vehicle

import drivegpt_envs  # noqa: F401  (registers AccelLaneAction)
from drivegpt.sim.human import HumanDriver
from drivegpt.sim.personality import Personality
from drivegpt.sim.policy import ConstantPolicy
from drivegpt.sim.rollout import make_env, run_episode
from drivegpt_envs.actions import (
    ACCEL_BINS,
    KEEP,
    LEFT,
    N_TOKENS,
    NEUTRAL_TOKEN,
    RIGHT,
    accel_bin,
    decode_accel_lane,
    encode_accel_lane,
)
from drivegpt_envs.common import POLICY_FREQUENCY, action_config


def test_bin_table():
    assert len(ACCEL_BINS) == 14 and N_TOKENS == 42
    assert ACCEL_BINS[0] == -8.0 and ACCEL_BINS[-1] == 3.0
    assert list(ACCEL_BINS) == sorted(ACCEL_BINS)
    steps = np.diff(ACCEL_BINS)
    assert steps[ACCEL_BINS.index(0.0) - 1] < steps[0]  # finer near zero than at emergency braking
    assert NEUTRAL_TOKEN == 8 * 3 + 0
    assert decode_accel_lane(NEUTRAL_TOKEN) == (0.0, KEEP)


def test_token_layout_by_hand():
    # token = acc_bin * 3 + lane intent
    assert encode_accel_lane(-8.0, KEEP) == 0
    assert encode_accel_lane(-8.0, LEFT) == 1
    assert encode_accel_lane(-8.0, RIGHT) == 2
    assert encode_accel_lane(-6.0, KEEP) == 3
    assert encode_accel_lane(0.3, LEFT) == 9 * 3 + 1
    assert encode_accel_lane(3.0, RIGHT) == 41
    acc, intent = decode_accel_lane(np.array([0, 1, 2, 28, 41]))
    np.testing.assert_array_equal(acc, [-8.0, -8.0, -8.0, 0.3, 3.0])
    np.testing.assert_array_equal(intent, [KEEP, LEFT, RIGHT, LEFT, RIGHT])


def test_bin_edges_are_midpoints_and_ties_go_down():
    # between -0.2 and 0: edge at -0.1; between 0 and 0.3: edge at 0.15; between 1.5 and 2.2: edge at 1.85
    assert accel_bin(-0.1) == 7 and accel_bin(-0.0999) == 8
    assert accel_bin(0.15) == 8 and accel_bin(0.1501) == 9
    assert accel_bin(1.85) == 11 and accel_bin(1.86) == 12
    assert accel_bin(-7.0) == 0 and accel_bin(-6.99) == 1  # edge between -8 and -6


def test_out_of_range_accelerations_clip_to_the_end_bins():
    assert accel_bin(-30.0) == 0 and accel_bin(12.0) == len(ACCEL_BINS) - 1
    assert decode_accel_lane(encode_accel_lane(-30.0, KEEP))[0] == -8.0


def test_round_trip_every_token_and_every_bin_centre():
    tokens = np.arange(N_TOKENS)
    acc, intent = decode_accel_lane(tokens)
    np.testing.assert_array_equal(encode_accel_lane(acc, intent), tokens)
    rng = np.random.default_rng(0)
    a = rng.uniform(-8, 3, 1000)
    back = decode_accel_lane(encode_accel_lane(a, np.zeros(1000, np.int64)))[0]
    nearest = np.asarray(ACCEL_BINS)[np.abs(a[:, None] - np.asarray(ACCEL_BINS)).argmin(1)]
    np.testing.assert_array_equal(back, nearest)


def test_bad_tokens_and_intents_are_errors():
    with pytest.raises(ValueError, match="0..41"):
        decode_accel_lane(42)
    with pytest.raises(ValueError, match="lane intent"):
        encode_accel_lane(0.0, 3)


def test_any_highway_env_config_accepts_the_action_type():
    env = gym.make("highway-fast-v0", config={"action": {"type": "AccelLaneAction"}})
    assert env.action_space == gym.spaces.Discrete(42)
    env.reset(seed=0)
    env.step(NEUTRAL_TOKEN)
    assert action_config("accel")["policy_frequency"] == POLICY_FREQUENCY["accel"] == 5


def _empty_road():
    env = make_env("drivegpt/Highway-v0", "accel", {"vehicles_count": 0, "duration": 10})
    env.reset(seed=0)
    return env


def test_acceleration_is_applied_directly():
    env = _empty_road()
    ego = env.unwrapped.vehicle
    v0 = ego.speed
    env.step(int(encode_accel_lane(-8.0, KEEP)))  # one 0.2 s step at -8 m/s²
    assert ego.speed == pytest.approx(v0 - 1.6)
    env.step(int(encode_accel_lane(1.5, KEEP)))
    assert ego.speed == pytest.approx(v0 - 1.6 + 0.3)


def test_braking_stops_and_never_reverses():
    env = _empty_road()
    ego = env.unwrapped.vehicle
    for _ in range(30):
        env.step(0)  # -8 m/s², keep
    assert ego.speed == 0.0
    assert not ego.crashed


@pytest.mark.parametrize("intent", [LEFT, RIGHT])
def test_a_lane_change_off_the_road_is_refused(intent):
    env = _empty_road()
    ego = env.unwrapped.vehicle
    edge = 0 if intent == LEFT else len(env.unwrapped.road.network.graph["0"]["1"]) - 1
    ego.lane_index = ego.target_lane_index = ("0", "1", edge)
    ego.position = env.unwrapped.road.network.get_lane(ego.lane_index).position(ego.position[0], 0.0)
    y0 = ego.position[1]
    token = int(encode_accel_lane(0.0, intent))
    for _ in range(15):
        _, _, terminated, _, _ = env.step(token)
        assert not terminated
    assert ego.target_lane_index[2] == edge and ego.lane_index[2] == edge
    assert ego.on_road and not ego.crashed
    assert abs(ego.position[1] - y0) < 0.5  # [m] it kept the lane


def test_a_lane_change_inside_the_road_is_executed():
    env = _empty_road()
    ego = env.unwrapped.vehicle
    lane = ego.lane_index[2]
    intent = RIGHT if lane == 0 else LEFT
    env.step(int(encode_accel_lane(0.0, intent)))
    for _ in range(20):
        env.step(NEUTRAL_TOKEN)  # keep: the change runs to its end
    assert ego.lane_index[2] == lane + (1 if intent == RIGHT else -1)
    assert ego.on_road and not ego.crashed


def _stalled_car(action: str, gap: float, speed: float = 25.0):
    env = make_env("drivegpt/Highway-v0", action, {"vehicles_count": 0, "duration": 12})
    env.reset(seed=0)
    road, ego = env.unwrapped.road, env.unwrapped.vehicle
    ego.speed = speed
    lane = road.network.get_lane(ego.lane_index)
    s, _ = lane.local_coordinates(ego.position)
    road.vehicles.append(Vehicle(road, lane.position(s + gap, 0), lane.heading_at(s + gap), speed=0.0))
    return env


def _drive(env, driver, steps: int) -> bool:
    obs = env.unwrapped.observation_type.observe()
    for _ in range(steps):
        obs, _, terminated, truncated, _ = env.step(driver.act(obs))
        if terminated or truncated:
            break
    return bool(env.unwrapped.vehicle.crashed)


def test_the_human_brakes_for_a_hazard_with_accel_where_it_crashed_with_meta():
    """A stalled car 50 m ahead (bumper to bumper) at 25 m/s, no lane change allowed: after 0.2 s of
    reaction 45 m are left, ~7 m/s² of braking (25² / 90); one SLOWER a second cannot give that."""
    calm = Personality(reaction_delay=0.2, action_noise=0.0, lane_change_threshold=1e6)
    crashed = {}
    for action, steps in (("meta", 12), ("accel", 60)):
        env = _stalled_car(action, gap=55.0)
        driver = HumanDriver(personality=calm)
        driver.reset(seed=0, env=env)
        crashed[action] = _drive(env, driver, steps)
    assert crashed == {"meta": True, "accel": False}


def test_constant_accel_policy_drives():
    pol = ConstantPolicy("-0.6,keep")
    assert pol.action_kind == "accel" and pol.action == int(encode_accel_lane(-0.6, KEEP))
    ep = run_episode(make_env("drivegpt/Highway-v0", "accel", {"duration": 2}), pol, seed=0)
    assert np.all(ep.actions == pol.action) and ep.actions.dtype == np.int64
