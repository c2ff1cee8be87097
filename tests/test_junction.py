"""The human's junction rules: hand-computed kinematics, route geometry, and yielding in the families."""

import math

import numpy as np
import pytest
from highway_env.road.lane import CircularLane

from drivegpt.sim.human import HumanDriver
from drivegpt.sim.junction import (
    A_LATERAL,
    RoutePath,
    along_route,
    curve_speed,
    predicted_positions,
    travel_time,
    uses_junction_rules,
)
from drivegpt.sim.rollout import make_env
from drivegpt_envs.actions import AccelLaneAction, encode_accel_lane, is_lane_change
from drivegpt_envs.families import FAMILIES
from drivegpt_envs.families.vehicles import ForwardIDMVehicle


def test_travel_time_hand_computed():
    assert travel_time(0.0, 5.0, 2.0, 10.0) == 0.0
    assert travel_time(30.0, 10.0, 2.0, 10.0) == pytest.approx(3.0)  # at the top speed already
    # from 4 m/s at 2 m/s²: 12 m ramp to 8 m/s (2 s), then 8 m at 8 m/s (1 s)
    assert travel_time(20.0, 4.0, 2.0, 8.0) == pytest.approx(3.0)
    # within the ramp: 4 t + t² = 5 -> t = 1
    assert travel_time(5.0, 4.0, 2.0, 8.0) == pytest.approx(1.0)
    # a standing driver is assumed to drive off at MIN_GO_SPEED (2 m/s): 2 t + t² = 3 -> t = 1
    assert travel_time(3.0, 0.0, 2.0, 8.0) == pytest.approx(1.0)


def test_curve_speed_hand_computed():
    d = np.arange(0.0, 41.0)  # [m]
    one_lane, xy = np.zeros(len(d), int), np.zeros((len(d), 2))
    assert curve_speed(RoutePath(d, xy, np.zeros_like(d), one_lane), 4.0) == math.inf  # straight
    radius = 20.0  # [m] a bend from 30 m ahead on: v_curve = sqrt(3.5 * 20)
    headings = np.where(d > 30.0, (d - 30.0) / radius, 0.0)
    v_curve = math.sqrt(A_LATERAL * radius)
    # the binding point is the bend's first sample: 30 m to slow down at 4 m/s²
    expected = math.sqrt(v_curve**2 + 2 * 4.0 * 30.0)
    assert curve_speed(RoutePath(d, xy, headings, one_lane), 4.0) == pytest.approx(expected)
    in_bend = d / radius  # already in it: the curve's own speed
    assert curve_speed(RoutePath(d, xy, in_bend, one_lane), 4.0) == pytest.approx(v_curve)
    # a heading step where one lane meets the next is no curve
    step = np.where(d >= 10.0, 0.5, 0.0)  # [rad]
    assert curve_speed(RoutePath(d, xy, step, (d >= 10.0).astype(int)), 4.0) == math.inf


def test_route_into_the_roundabout_takes_the_lane_highway_env_takes():
    env = make_env(FAMILIES["roundabout"])
    env.reset(seed=0)
    ego = env.unwrapped.vehicle
    s = ego.lane.local_coordinates(ego.position)[0]
    ahead = ego.lane.length - s + env.unwrapped.road.network.get_lane(("ses", "se", 0)).length + 5.0  # [m]
    positions, _, segments = along_route(ego, np.array([0.0, ahead]))
    assert segments[0] == 0 and segments[1] == 2  # access road, entry, ring
    np.testing.assert_allclose(positions[0], ego.position, atol=1e-9)
    ring = env.unwrapped.road.network.get_lane(("se", "ex", 1))  # the outer lane: next_lane's choice
    assert isinstance(ring, CircularLane)
    np.testing.assert_allclose(np.linalg.norm(positions[1] - ring.center), ring.radius, atol=1e-6)


def test_junction_rules_only_where_there_are_junctions():
    assert uses_junction_rules(make_env(FAMILIES["intersection"]))
    assert uses_junction_rules(make_env(FAMILIES["roundabout"]))
    assert uses_junction_rules(make_env("intersection-v0"))
    assert not uses_junction_rules(make_env("drivegpt/Highway-v0"))
    assert not uses_junction_rules(make_env("drivegpt/Merge-v0"))
    assert not uses_junction_rules(make_env("intersection-v0", overrides={"junction_rules": False}))


def _human(family, params, seed=0, background=True):
    """Min speed [m/s], crashed, arrived of the human driving the family (optionally alone with the
    scripted car: the ego and the car placed next are the road's first two vehicles)."""
    env = make_env(FAMILIES[family])
    obs, _ = env.reset(seed=seed, options={"params": params})
    base = env.unwrapped
    if not background:
        base.road.vehicles = base.road.vehicles[:2]
    human, speeds = HumanDriver(), [base.vehicle.speed]
    human.reset(seed, env)
    for _ in range(200):
        obs, _, terminated, truncated, _ = env.step(human.act(obs))
        speeds.append(base.vehicle.speed)
        if terminated or truncated:
            break
    return min(speeds), base.vehicle.crashed, base._is_terminated() and not base.vehicle.crashed


def _params(family, other_speed, offset):
    speed = "crossing_speed" if family == "intersection" else "circulating_speed"
    return {"ego_speed": 9.0, "ego_distance": 30.0, speed: other_speed, "arrival_offset": offset}


@pytest.mark.parametrize("family", ["intersection", "roundabout"])
def test_human_yields_to_a_car_arriving_with_it(family):
    for background in (False, True):
        min_speed, crashed, arrived = _human(family, _params(family, 10.0, 0.0), background=background)
        assert not crashed and arrived
        assert min_speed < 1.0  # it stopped to let the other car go first


@pytest.mark.parametrize("family", ["intersection", "roundabout"])
def test_human_goes_when_the_gap_is_wide(family):
    min_speed, crashed, arrived = _human(family, _params(family, 6.0, 3.0), background=False)
    assert not crashed and arrived
    assert min_speed > 3.0  # never stopped: it enters 3 s ahead of the other car


def test_forward_idm_vehicle_never_reverses():
    env = make_env(FAMILIES["intersection"])
    env.reset(seed=0)
    road = env.unwrapped.road
    car = ForwardIDMVehicle.make_on_lane(road, ("o1", "ir1", 0), 10.0, speed=1.0)
    car.action = {"steering": 0.0, "acceleration": -8.0}  # [m/s²] would reach -0.6 m/s in 0.2 s
    car.step(0.2)
    assert car.speed == 0.0


def test_is_lane_change():
    action_type = AccelLaneAction(make_env(FAMILIES["intersection"]).unwrapped)
    assert not is_lane_change(action_type, int(encode_accel_lane(0.0, 0)))
    assert is_lane_change(action_type, int(encode_accel_lane(0.0, 1)))
    assert not is_lane_change(action_type, None)


def test_human_stops_for_a_wreck_across_its_path():
    env = make_env(FAMILIES["intersection"])
    obs, _ = env.reset(seed=0, options={"params": _params("intersection", 6.0, 3.0)})
    base = env.unwrapped
    base.road.vehicles = base.road.vehicles[:1]  # the ego alone, then a wreck 25 m ahead, sideways
    lane = base.road.network.get_lane(base.vehicle.lane_index)
    s = lane.local_coordinates(base.vehicle.position)[0] + 25.0  # [m]
    wreck = ForwardIDMVehicle(base.road, lane.position(s, 1.0), lane.heading_at(s) + math.pi / 2, 0.0)
    wreck.crashed = True
    wreck.plan_route_to("o2")  # highway-env's intersection clears cars without a route
    base.road.vehicles.append(wreck)
    human = HumanDriver()
    human.reset(0, env)
    for _ in range(50):  # 10 s
        obs, *_ = env.step(human.act(obs))
    assert not base.vehicle.crashed and base.vehicle.speed < 0.5
    assert np.linalg.norm(base.vehicle.position - wreck.position) > 4.0  # [m] stopped short of it


def test_a_wreck_is_predicted_to_slide_to_rest():
    env = make_env(FAMILIES["intersection"])
    env.reset(seed=0)
    road = env.unwrapped.road
    car = ForwardIDMVehicle(road, np.array([0.0, 50.0]), 0.0, 5.0)  # heading east at 5 m/s
    car.crashed = True  # highway-env then brakes it at -speed: x(t) = 5 (1 - e^-t)
    times = np.array([0.0, 1.0, 6.0])
    expected = np.array([[0.0, 50.0], [5.0 * (1 - math.exp(-1.0)), 50.0], [5.0 * (1 - math.exp(-6.0)), 50.0]])
    np.testing.assert_allclose(predicted_positions(car, times), expected, atol=1e-9)
    # and highway-env agrees (1 s at 10 Hz: within its Euler steps)
    for _ in range(10):
        car.act()
        car.step(0.1)
    assert car.position[0] == pytest.approx(5.0 * (1 - math.exp(-1.0)), abs=0.2)


def test_a_waiting_car_is_predicted_to_speed_up_to_its_cruise_speed():
    env = make_env(FAMILIES["intersection"])
    env.reset(seed=0)
    road = env.unwrapped.road
    car = ForwardIDMVehicle.make_on_lane(road, ("o1", "ir1", 0), 10.0, speed=0.0)  # eastward, y = 2
    car.target_speed = 10.0  # [m/s]: 5 s at OTHERS_ACCELERATION (2 m/s²), then cruising
    x = predicted_positions(car, np.array([0.0, 1.0, 6.0]))[:, 0] - car.position[0]  # [m] along x
    np.testing.assert_allclose(x, [0.0, 1.0, 25.0 + 10.0], atol=1e-9)
    car.speed = car.target_speed = 8.0  # at its cruise speed: constant speed
    x = predicted_positions(car, np.array([0.0, 2.0]))[:, 0] - car.position[0]
    np.testing.assert_allclose(x, [0.0, 16.0], atol=1e-9)


def test_stock_intersection_leaves_highway_envs_idm_alone():
    """highway-env's intersection-v0 writes IDM constants onto its other vehicles' class at reset;
    ``make_env`` gives it a subclass of its own, so later envs of the process keep highway-env's IDM."""
    from highway_env.vehicle.behavior import IDMVehicle

    names = ("DISTANCE_WANTED", "COMFORT_ACC_MAX", "COMFORT_ACC_MIN")
    before = {n: getattr(IDMVehicle, n) for n in names}
    env = make_env("intersection-v0")
    env.reset(seed=0)
    assert {n: getattr(IDMVehicle, n) for n in names} == before
    others = {type(v).__name__ for v in env.unwrapped.road.vehicles if v is not env.unwrapped.vehicle}
    assert others == {"IntersectionIDMVehicle"}


def test_intersection_observation_sees_the_approach():
    """highway-env scales ``y`` by the road's lateral extent (±4 m here) and clips it; the ego approaches
    along y, so the family sets ±50 m, which a policy's carried observation config keeps too."""
    from drivegpt_envs.common import kinematics_observation
    from drivegpt_envs.families.intersection import CONFLICT

    params = {"ego_speed": 8.0, "ego_distance": 40.0, "crossing_speed": 10.0, "arrival_offset": 2.0}
    for overrides in (None, {"observation": kinematics_observation()}):  # as a checkpoint passes it
        env = make_env(FAMILIES["intersection"], overrides=overrides)
        obs, _ = env.reset(seed=0, options={"params": params})
        ego, crossing = env.unwrapped.road.vehicles[:2]  # the ego, the car on the priority road
        assert ego.position[1] == pytest.approx(CONFLICT[1] + 40.0)  # [m] 40 m south of the crossing
        assert obs[0, 2] == pytest.approx(ego.position[1] / 50.0, abs=1e-6)  # its own y, unclipped
        dx, dy = crossing.position - ego.position  # [m]
        row = next(r for r in obs[1:] if r[0] == 1 and r[1] == pytest.approx(dx / 200.0, abs=1e-6))
        assert row[2] == pytest.approx(dy / 50.0, abs=1e-6) and -1 < row[2] < -0.75  # 40 m ahead
