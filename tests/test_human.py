import numpy as np
import pytest
from highway_env.vehicle.kinematics import Vehicle

from drivegpt.sim.human import FASTER, IDLE, SLOWER, HumanDriver, idm_acceleration
from drivegpt.sim.personality import Personality, PersonalityRanges
from drivegpt.sim.rollout import make_env
from drivegpt_envs.actions import ACCEL_BINS, KEEP, decode_accel_lane


def test_idm_hand_computed():
    p = Personality(max_acceleration=3.0, comfortable_deceleration=4.0, time_headway=1.5, min_gap=2.0)
    # free = 1 - (20/30)^4 = 0.802469; s* = 2 + 20*1.5 + 20*5/(2*sqrt(12)) = 46.43376
    # a = 3 * (0.802469 - (46.43376/30)^2) = -4.779576
    assert idm_acceleration(20.0, 30.0, 30.0, 5.0, p) == pytest.approx(-4.779576, abs=1e-5)
    assert idm_acceleration(20.0, 30.0, None, 0.0, p) == pytest.approx(3 * 0.802469, abs=1e-5)
    assert idm_acceleration(30.0, 30.0, None, 0.0, p) == pytest.approx(0.0)


def test_personality_sampling_is_seeded_and_in_range():
    r = PersonalityRanges()
    a = r.sample(np.random.default_rng(7))
    b = r.sample(np.random.default_rng(7))
    assert a == b
    assert r.desired_speed[0] <= a.desired_speed <= r.desired_speed[1]
    assert r.reaction_delay[0] <= a.reaction_delay <= r.reaction_delay[1]  # [s]


def test_bad_range_is_rejected():
    """A range is refused when it is built, not when a driver is drawn: hi < lo, NaN or infinite."""
    for bad in ((2.0, 1.0), (float("nan"), 2.0), (1.0, float("inf"))):
        with pytest.raises(ValueError, match="lo <= hi"):
            PersonalityRanges(time_headway=bad)
    assert PersonalityRanges(time_headway=(1.5, 1.5)).time_headway == (1.5, 1.5)  # a point is a range


def _stalled_car_ahead(action: str, gap: float):
    env = make_env("drivegpt/Highway-v0", action, {"vehicles_count": 0})
    env.reset(seed=0)
    road, ego = env.unwrapped.road, env.unwrapped.vehicle
    lane = road.network.get_lane(ego.lane_index)
    s, _ = lane.local_coordinates(ego.position)
    road.vehicles.append(Vehicle(road, lane.position(s + gap, 0), lane.heading_at(s + gap), speed=0.0))
    return env


def test_meta_brakes_for_a_stalled_car_and_speeds_up_on_an_empty_road():
    calm = Personality(reaction_delay=0, action_noise=0.0, desired_speed=30.0)
    env = _stalled_car_ahead("meta", gap=40.0)
    driver = HumanDriver(personality=calm)
    driver.reset(seed=0, env=env)
    assert driver.act() == SLOWER
    empty = make_env("drivegpt/Highway-v0", "meta", {"vehicles_count": 0})
    empty.reset(seed=0)
    empty.unwrapped.vehicle.speed = 20.0
    empty.unwrapped.vehicle.target_speed = 20.0
    driver.reset(seed=0, env=empty)
    assert driver.act() == FASTER


def test_reaction_delay_postpones_the_decision():
    late = Personality(reaction_delay=2.0, action_noise=0.0)  # [s]: 2 meta steps at 1 Hz
    env = _stalled_car_ahead("meta", gap=40.0)
    driver = HumanDriver(personality=late)
    driver.reset(seed=0, env=env)
    assert [driver.act(), driver.act(), driver.act()] == [IDLE, IDLE, SLOWER]


def test_accel_brakes_as_hard_as_idm_asks_down_to_emergency_braking():
    calm = Personality(reaction_delay=0.0, action_noise=0.0)
    for gap, lo, hi in ((20.0, -8.0, -8.0), (120.0, -4.5, -2.0), (300.0, -0.2, 3.0)):
        env = _stalled_car_ahead("accel", gap=gap)
        driver = HumanDriver(personality=calm)
        driver.reset(seed=0, env=env)
        acc, intent = decode_accel_lane(driver.act())
        assert lo <= acc <= hi and intent == KEEP, (gap, acc)
        assert acc == ACCEL_BINS[np.abs(np.asarray(ACCEL_BINS) - np.clip(driver.acc, -8, 3)).argmin()]


def test_accel_reaction_delay_is_in_seconds_and_the_driver_is_already_driving():
    late = Personality(reaction_delay=0.4, action_noise=0.0)  # [s]: 2 steps at 5 Hz
    env = _stalled_car_ahead("accel", gap=40.0)
    driver = HumanDriver(personality=late)
    driver.reset(seed=0, env=env)
    assert len(driver.queue) == 2
    first = driver.act()  # the queue starts with the driver's first decision, not with "coast"
    assert decode_accel_lane(first)[0] < -1.0
    assert first == driver.decision


def test_accel_noise_perturbs_the_acceleration_not_the_label():
    noisy = Personality(reaction_delay=0.0, action_noise=0.5, desired_speed=25.0)
    env = make_env("drivegpt/Highway-v0", "accel", {"vehicles_count": 0})
    env.reset(seed=0)
    driver = HumanDriver(personality=noisy)
    driver.reset(seed=0, env=env)
    pairs = [(driver.act(), driver.decision) for _ in range(20)]
    assert any(a != d for a, d in pairs)  # std 2.5 m/s²: executed tokens differ from the decision
    assert len({d for _, d in pairs}) == 1  # the clean decision on an empty road is steady


def test_continuous_brakes_hard_and_actions_are_normalised():
    env = _stalled_car_ahead("continuous", gap=30.0)
    driver = HumanDriver(personality=Personality(action_noise=0.0))
    driver.reset(seed=0, env=env)
    action = driver.act()
    assert action.shape == (2,) and np.all(np.abs(action) <= 1)
    assert action[0] < -0.5  # more than 2.5 m/s² of braking


@pytest.mark.parametrize("action", ["accel", "meta", "continuous"])
def test_stock_idm_ego_drives_every_action_interface(action):
    from drivegpt.sim.human import StockIDMDriver
    from drivegpt.sim.rollout import run_episode

    env = make_env("drivegpt/Highway-v0", action, {"duration": 3})
    ep = run_episode(env, StockIDMDriver(), seed=0)
    assert ep.distance_m > 20  # it drove on its own, whatever the (ignored) actions
    assert type(env.unwrapped.vehicle).__name__ == "IDMVehicle"


def test_continuous_actions_never_share_an_array():
    env = make_env("drivegpt/Highway-v0", "continuous")
    obs, _ = env.reset(seed=0)
    driver = HumanDriver(personality=Personality(reaction_delay=0.6))  # 3 delayed steps at 5 Hz
    driver.reset(0, env)
    actions, decisions = [], []
    for _ in range(5):
        actions.append(driver.act(obs))
        decisions.append(driver.decision)
        obs, *_ = env.step(actions[-1])
    assert len({id(a) for a in actions}) == 5  # a caller keeping them (or the infos) keeps its own
    assert not {id(a) for a in actions} & {id(d) for d in decisions}  # none is a label imitation learns
    np.testing.assert_array_equal(actions[3], decisions[0])  # executed 3 steps after it was decided
    assert all(np.array_equal(a, np.zeros(2)) for a in actions[:3])
