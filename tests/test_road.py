"""``FastRoad`` answers every neighbour search exactly as highway-env's ``Road`` does."""

import numpy as np
import pytest
from highway_env.road.lane import SineLane, StraightLane
from highway_env.road.road import Road, RoadNetwork
from highway_env.vehicle.kinematics import Vehicle
from highway_env.vehicle.objects import Landmark

import drivegpt_envs
from drivegpt.sim.human import HumanDriver
from drivegpt.sim.rollout import make_env
from drivegpt_envs.road import FastRoad

#: every env whose road is a FastRoad (the junction families keep highway-env's: connected lanes)
FAST_IDS = [*drivegpt_envs.ENV_IDS, *(i for i in drivegpt_envs.FAMILY_IDS if "Intersection" not in i)]
FAST_IDS = [i for i in FAST_IDS if "Roundabout" not in i]


@pytest.mark.parametrize("env_id", FAST_IDS)
def test_every_search_of_a_human_driven_episode_matches_highway_envs(env_id, monkeypatch):
    fast = FastRoad.neighbour_vehicles
    searches = {"in a frame": 0, "outside": 0}

    def checked(road, vehicle, lane_index=None):
        ours, theirs = fast(road, vehicle, lane_index), Road.neighbour_vehicles(road, vehicle, lane_index)
        assert ours[0] is theirs[0] and ours[1] is theirs[1]
        searches["in a frame" if road._frame is not None else "outside"] += 1
        return ours

    monkeypatch.setattr(FastRoad, "neighbour_vehicles", checked)
    env = make_env(env_id, "accel", {"duration": 6})
    obs, _ = env.reset(seed=3)
    assert isinstance(env.unwrapped.road, FastRoad)
    driver, done = HumanDriver(), False
    driver.reset(3, env)
    while not done:
        obs, _, terminated, truncated, _ = env.step(driver.act(obs))
        done = terminated or truncated
    assert searches["in a frame"] > 0 and searches["outside"] > 0  # the cars' and the human's searches


def _road(*positions: tuple[float, float]) -> tuple[FastRoad, list[Vehicle]]:
    """A 3-lane straight road (lanes 4 m apart along +x) with a standing car at each (x, y) [m]."""
    road = FastRoad(network=RoadNetwork.straight_road_network(3), np_random=np.random.RandomState(0))
    cars = [Vehicle(road, np.array(p, dtype=float)) for p in positions]
    road.vehicles.extend(cars)
    return road, cars


def test_ties_margins_and_landmarks_as_highway_envs_loop_has_them():
    # the ego at x=100 in lane 1 (y=4 m); two cars tied 20 m ahead, two tied 20 m behind; one in lane 2,
    # 3.1 m off lane 1's centre (half a width, 2 m, plus the search's 1 m margin: 3 m)
    road, (ego, a1, a2, b1, b2, side) = _road((100, 4), (120, 4), (120, 4.5), (80, 3.5), (80, 4), (110, 7.1))
    assert road.neighbour_vehicles(ego) == (a2, b1)  # of equals: the last ahead, the first behind
    assert road.neighbour_vehicles(a2) == (a1, ego)  # a1 shares a2's x: it counts as ahead
    assert road.neighbour_vehicles(side, ego.lane_index) == (a2, ego)  # side projected onto lane 1
    assert road.neighbour_vehicles(ego, ("0", "1", 2)) == (side, None)  # the ego projected onto lane 2
    side.position[1] = 6.9  # 2.9 m off lane 1's centre: inside the margin
    assert road.neighbour_vehicles(ego) == (side, b1)
    road.objects.append(Landmark(road, np.array([105.0, 4.0])))  # a landmark is never a neighbour
    # on the bounds of the search (AbstractLane.on_lane with a 1 m margin): 3 m off lane 1's centre
    # (inside), 5 m before the lanes' start (inside), 5 m past their end (outside), and beyond each
    for x, y in [(130, 1.0), (131, 0.99), (-5, 4), (-5.01, 4), (10_005, 4), (10_004.99, 4)]:
        road.vehicles.append(Vehicle(road, np.array([x, y], dtype=float)))
    for car in road.vehicles:
        for lane in range(3):
            index = ("0", "1", lane)
            assert road.neighbour_vehicles(car, index) == Road.neighbour_vehicles(road, car, index)


def test_a_sine_lane_along_an_axis_is_searched_by_highway_envs_loop():
    road = FastRoad(network=RoadNetwork(), np_random=np.random.RandomState(0))
    lane = SineLane([0.0, 0.0], [200.0, 0.0], amplitude=5.0, pulsation=0.05, phase=0.0)
    road.network.add_lane("a", "b", lane)
    road.vehicles.extend(Vehicle(road, lane.position(s, 0.0)) for s in range(0, 200, 15))  # on its centre
    for car in road.vehicles:  # as a straight lane, most of them would lie beyond the 3 m of the search
        assert road.neighbour_vehicles(car) == Road.neighbour_vehicles(road, car)
    assert road.neighbour_vehicles(road.vehicles[2]) == (road.vehicles[3], road.vehicles[1])


def test_other_lanes_fall_back_to_highway_envs_loop(monkeypatch):
    road = FastRoad(network=RoadNetwork(), np_random=np.random.RandomState(0))
    road.network.add_lane("a", "b", StraightLane([0.0, 0.0], [100.0, 100.0]))  # diagonal: products round
    cars = [Vehicle(road, np.array([x, x])) for x in (10.0, 30.0, 20.0)]
    road.vehicles.extend(cars)
    stock, calls = Road.neighbour_vehicles, []
    monkeypatch.setattr(Road, "neighbour_vehicles", lambda *a: calls.append(a) or stock(*a))
    assert road.neighbour_vehicles(cars[2]) == (cars[1], cars[0]) and len(calls) == 1


def test_of_keeps_the_roads_lists_and_settings():
    stock = Road(RoadNetwork.straight_road_network(2), neighbour_vehicles_connected_lanes=True)
    stock.vehicles.append(Vehicle(stock, np.array([5.0, 0.0])))
    fast = FastRoad.of(stock)
    assert fast.vehicles is stock.vehicles and fast.objects is stock.objects
    assert fast.network is stock.network and fast.neighbour_vehicles_connected_lanes
    assert FastRoad.of(fast) is fast
