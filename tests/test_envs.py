import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import drivegpt_envs
from drivegpt.sim.human import HumanDriver
from drivegpt.sim.rollout import make_env, run_episode
from drivegpt_envs.actions import KEEP, LEFT, encode_accel_lane, env_action_kind

IDS = list(drivegpt_envs.ENV_IDS)


def test_registration_is_idempotent_and_namespaced():
    drivegpt_envs.register_envs()
    drivegpt_envs.register_envs()
    for env_id in IDS:
        assert env_id.startswith("drivegpt/")
        assert env_id in gym.registry


@pytest.mark.parametrize("env_id", IDS)
@pytest.mark.parametrize("action", ["accel", "meta", "continuous"])
def test_check_env(env_id, action):
    env = make_env(env_id, action)
    check_env(env.unwrapped, skip_render_check=True)
    assert env.observation_space.shape == (10, 7)


@pytest.mark.parametrize("env_id", IDS)
@pytest.mark.parametrize("action", ["accel", "meta", "continuous"])
def test_same_seed_same_episode_exactly(env_id, action):
    env = make_env(env_id, action, {"duration": 8})
    a = run_episode(env, HumanDriver(), seed=123)
    b = run_episode(make_env(env_id, action, {"duration": 8}), HumanDriver(), seed=123)
    assert len(a.rewards) > 3
    np.testing.assert_array_equal(a.observations, b.observations)
    np.testing.assert_array_equal(a.actions, b.actions)
    np.testing.assert_array_equal(a.rewards, b.rewards)
    c = run_episode(env, HumanDriver(), seed=124, max_steps=3)  # another seed: other first steps
    assert not np.array_equal(a.observations[:4], c.observations[:4])


def test_module_prefixed_make_imports_the_package():
    env = gym.make("drivegpt_envs:drivegpt/Highway-v0")
    assert env.observation_space.shape == (10, 7)


@pytest.mark.parametrize("env_id", [*IDS, *drivegpt_envs.FAMILY_IDS])
def test_the_default_action_interface_is_accel(env_id):
    env = gym.make(env_id)
    assert env.action_space == gym.spaces.Discrete(42)
    assert env.unwrapped.config["policy_frequency"] == 5  # [Hz] a decision every 0.2 s
    assert env_action_kind(env) == "accel" == drivegpt_envs.DEFAULT_ACTION
    assert make_env(env_id).action_space == gym.spaces.Discrete(42)


def test_merge_reward_counts_accel_lane_intents_as_lane_changes():
    env = make_env("drivegpt/Merge-v0", "accel")
    env.reset(seed=0)
    keep = env.unwrapped._rewards(int(encode_accel_lane(0.0, KEEP)))
    left = env.unwrapped._rewards(int(encode_accel_lane(0.0, LEFT)))
    assert keep["lane_change_reward"] == 0.0 and left["lane_change_reward"] == 1.0


def test_unknown_env_id_is_a_clear_error():
    with pytest.raises(ValueError, match="cannot make env 'drivegpt/Nope-v0'"):
        make_env("drivegpt/Nope-v0")


@pytest.mark.parametrize(
    "observation",
    [
        {},
        {"absolute": True, "see_behind": True, "features": ["presence", "x", "heading", "cos_d", "lat_off"]},
    ],
    ids=["default", "absolute-other-features"],
)
def test_fast_kinematics_equals_highway_envs_observation_on_every_scenario(observation):
    from highway_env.envs.common.observation import KinematicObservation

    from drivegpt_envs.observation import FastKinematics

    for env_id in [*IDS, *drivegpt_envs.FAMILY_IDS]:
        env = gym.make(env_id)
        config = {**env.unwrapped.config["observation"], **observation}
        env.unwrapped.configure({"observation": config})
        obs, _ = env.reset(seed=7)
        fast, stock = env.unwrapped.observation_type, KinematicObservation(env.unwrapped, **config)
        assert type(fast) is FastKinematics
        driver = HumanDriver()
        driver.reset(7, env)
        for _ in range(12):  # the human drives: lane changes, braking, the merge's obstacle in view
            obs, _, terminated, truncated, _ = env.step(driver.act(obs))
            want = stock.observe()
            assert want.dtype == obs.dtype and np.array_equal(obs, want, equal_nan=True), env_id
            if terminated or truncated:
                break
