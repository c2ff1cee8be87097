import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import drivegpt_envs
from drivegpt.sim.human import FASTER, IDLE, LANE_LEFT, HumanDriver
from drivegpt.sim.rollout import make_env, run_episode
from drivegpt_envs.actions import KEEP, NEUTRAL_TOKEN, encode_accel_lane
from drivegpt_envs.families import FAMILIES, FamilyParamError, family_class

NAMES = list(FAMILIES)


def _rollout(env, seed, params, actions):
    """Observations, rewards and infos of a fixed action sequence (stops at termination)."""
    obs, info = env.reset(seed=seed, options={"params": params})
    observations, rewards, infos = [obs], [], [info]
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        observations.append(obs)
        rewards.append(reward)
        infos.append(info)
        if terminated or truncated:
            break
    return np.asarray(observations), np.asarray(rewards), infos


def test_every_family_is_registered_under_its_id():
    drivegpt_envs.register_envs()
    assert drivegpt_envs.FAMILY_IDS == tuple(FAMILIES.values())
    for name, env_id in FAMILIES.items():
        assert env_id in gym.registry
        assert family_class(name).FAMILY == name
    with pytest.raises(ValueError, match="unknown scenario family 'nope'; valid: stalled_car"):
        family_class("nope")


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("action", ["accel", "meta", "continuous"])
def test_check_env(name, action):
    env = make_env(FAMILIES[name], action)
    check_env(env.unwrapped, skip_render_check=True)
    assert env.observation_space.shape == (10, 7)


@pytest.mark.parametrize("name", NAMES)
def test_same_params_and_seed_same_episode_exactly(name):
    cls = family_class(name)
    params = cls.sample_params(np.random.default_rng(7))
    hold, faster = NEUTRAL_TOKEN, int(encode_accel_lane(1.5, KEEP))  # the default interface: accel
    actions = [hold, faster, hold, hold, faster, hold, hold, hold]
    a = _rollout(make_env(FAMILIES[name]), 3, params, actions)
    b = _rollout(make_env(FAMILIES[name]), 3, params, actions)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert a[2] == b[2]
    assert a[2][0]["params"] == cls.check_params(params)
    other = cls.sample_params(np.random.default_rng(8))
    c = _rollout(make_env(FAMILIES[name]), 3, other, actions)
    assert not np.array_equal(a[0][:3], c[0][:3])


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("action", ["accel", "meta"])
def test_human_driven_episode_is_reproducible(name, action):
    params = family_class(name).sample_params(np.random.default_rng(11))
    short = {"duration": 10}  # [s]
    a = run_episode(make_env(FAMILIES[name], action, short), HumanDriver(), 5, options={"params": params})
    b = run_episode(make_env(FAMILIES[name], action, short), HumanDriver(), 5, options={"params": params})
    np.testing.assert_array_equal(a.observations, b.observations)
    np.testing.assert_array_equal(a.rewards, b.rewards)
    np.testing.assert_array_equal(a.states["x"], b.states["x"])


@pytest.mark.parametrize("name", NAMES)
def test_missing_params_default_to_midpoints(name):
    cls = family_class(name)
    env = make_env(FAMILIES[name])
    _, info = env.reset(seed=0)
    assert info["params"] == {k: 0.5 * (s.low + s.high) for k, s in cls.PARAMS.items()}


@pytest.mark.parametrize("name", NAMES)
def test_bad_params_are_clear_errors(name):
    cls = family_class(name)
    param, spec = next(iter(cls.PARAMS.items()))
    env = make_env(FAMILIES[name])
    with pytest.raises(FamilyParamError, match=rf"'{name}': parameter '{param}' = .* out of its range"):
        env.reset(seed=0, options={"params": {param: spec.high + 1.0}})
    unknown = rf"'{name}' has no parameter 'bogus'; valid parameters: {param},"
    with pytest.raises(FamilyParamError, match=unknown):
        cls.check_params({"bogus": 1.0})
    with pytest.raises(ValueError, match=f"parameter '{param}' = nan"):
        cls.check_params({param: float("nan")})


#: family → (parameters, constant meta-action) that must crash: hand-built worst cases.
CERTAIN_FAILURES = {
    "stalled_car": (
        {"ego_speed": 30.0, "lead_gap": 15.0, "stall_distance": 120.0, "reveal_distance": 20.0}, FASTER
    ),
    "hard_braking_lead": ({"ego_speed": 30.0, "gap": 12.0, "brake_time": 1.0, "deceleration": 9.0}, IDLE),
    "slower_lead": ({"ego_speed": 30.0, "lead_speed": 0.0, "distance": 30.0}, FASTER),
    "cut_in": ({"ego_speed": 30.0, "speed_difference": 8.0, "cut_in_gap": 10.0}, FASTER),
    "side_swipe": ({"offset": 0.0, "speed_difference": 0.0, "swerve_time": 2.0}, IDLE),
    "aggressive_merge": ({"ego_speed": 25.0, "merger_speed": 25.0, "arrival_offset": 0.0}, IDLE),
    "stop_and_go": (
        {"high_speed": 28.0, "low_speed": 0.0, "period": 5.0, "leader_deceleration": 9.0,
         "platoon_size": 0.0, "ego_gap": 12.0},
        FASTER,
    ),
    "adversarial_vehicle": (
        {"speed_difference": 2.0, "cut_in_gap": 3.0, "brake_delay": 0.0, "deceleration": 9.0,
         "speed_drop": 25.0},
        IDLE,
    ),
    "oncoming_overtake": ({"oncoming_distance": 120.0, "oncoming_speed": 30.0}, LANE_LEFT),
    "intersection": ({"ego_speed": 10.0, "crossing_speed": 10.0, "arrival_offset": 0.0}, IDLE),
    "roundabout": ({"ego_speed": 10.0, "circulating_speed": 10.0, "arrival_offset": 0.0}, IDLE),
}


def test_every_family_has_a_certain_failure_case():
    assert set(CERTAIN_FAILURES) == set(FAMILIES)


@pytest.mark.parametrize("name", NAMES)
def test_worst_case_parameters_crash_a_careless_driver(name):
    params, action = CERTAIN_FAILURES[name]
    env = make_env(FAMILIES[name], "meta")
    _, rewards, infos = _rollout(env, 0, params, [action] * 25)
    assert infos[-1]["crashed"] and env.unwrapped.vehicle.crashed
    assert len(rewards) < 25  # terminated on the crash, before the time limit
