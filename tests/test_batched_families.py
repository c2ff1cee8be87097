"""The batched corner-case families against their highway-env families: initial states and scripts."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from highway_env.vehicle.behavior import IDMVehicle

from drivegpt.sim.batched import observe
from drivegpt.sim.batched.config import KP_A, LANE_WIDTH, LENGTH
from drivegpt.sim.batched.families import (
    SCENES,
    BatchedFamilyError,
    family_config,
    family_reset,
    family_step,
    traffic_slots,
)
from drivegpt.sim.batched.scripted import wave_reference
from drivegpt.sim.rollout import make_env
from drivegpt_envs.families import FAMILIES, family_class
from drivegpt_envs.families.adversarial_vehicle import START_BEHIND
from drivegpt_envs.families.base import EGO_X
from drivegpt_envs.families.stop_and_go import HEADWAY, JAM_GAP
from drivegpt_envs.families.vehicles import WaveLeader

BRAKE = 0  # accel token: -8 m/s², keep lane (the ego stays out of the scripted cars' way)
CLOSE_IN = 27  # accel token: +0.3 m/s², keep lane (the ego catches up with the car that cuts in)
HOLD = 24  # accel token: 0 m/s², keep lane (the ego holds its speed)
CASES = {
    "stalled_car": {"ego_speed": 24.0, "lead_gap": 25.0, "stall_distance": 150.0, "reveal_distance": 40.0},
    "hard_braking_lead": {"ego_speed": 25.0, "gap": 20.0, "brake_time": 2.0, "deceleration": 7.0},
    "slower_lead": {"ego_speed": 26.0, "lead_speed": 8.0, "distance": 60.0, "traffic_spacing": 30.0},
    "cut_in": {"ego_speed": 24.0, "speed_difference": 4.0, "cut_in_gap": 20.0},
    "adversarial_vehicle": {
        "ego_speed": 24.0,
        "speed_difference": 5.0,
        "cut_in_gap": 8.0,
        "brake_delay": 0.5,
        "deceleration": 7.0,
        "speed_drop": 15.0,
    },
    "stop_and_go": {
        "high_speed": 24.0,
        "low_speed": 2.0,
        "period": 6.0,
        "leader_deceleration": 6.0,
        "platoon_size": 3.0,
        "ego_gap": 20.0,
    },
    # the side car changes lanes 8 m behind the ego, 1 m/s faster: it brakes for the ego in its new lane
    "side_swipe": {"ego_speed": 24.0, "offset": -8.0, "speed_difference": 1.0, "swerve_time": 2.0},
}
#: the slot whose script fires within the parity run (slower_lead, stop_and_go: none)
TRIGGERED = {"stalled_car": 2, "hard_braking_lead": 1, "cut_in": 1, "adversarial_vehicle": 1, "side_swipe": 1}
ACTION = {"cut_in": CLOSE_IN, "side_swipe": HOLD}  #: the ego's token in the parity run (default: BRAKE)


def _row(family: str, params: dict[str, float]) -> np.ndarray:
    return np.array([[params[name] for name in family_class(family).PARAMS]])


def _env(family: str, params: dict[str, float], seed: int):
    env = make_env(FAMILIES[family], "accel")
    env.reset(seed=seed, options={"params": params})
    return env


def _columns(state, b: int, slots: int) -> np.ndarray:
    """(slots, 4) x, y, speed, heading of episode ``b``."""
    return torch.stack([state.x, state.y, state.speed, state.heading], -1)[b, :slots].numpy()


def _vehicles(env) -> np.ndarray:
    return np.array([[*v.position, v.speed, v.heading] for v in env.unwrapped.road.vehicles])


@pytest.mark.parametrize("family", list(CASES))
def test_initial_state_matches_highway_env(family: str) -> None:
    cls = family_class(family)
    scene = SCENES[family]
    rng = np.random.default_rng(0)
    rows = [cls.sample_params(rng) for _ in range(3)]
    seeds = [11, 12, 13]
    config = family_config(family, "accel")
    state, script = family_reset(family, np.concatenate([_row(family, p) for p in rows]), seeds, config)
    scripted = 1 + scene.scripted  # the ego and the family's scripted cars
    assert config.lanes_count == cls.default_config()["lanes_count"]
    assert config.simulation_frequency == 10 and config.policy_frequency == 5
    for b, (p, seed) in enumerate(zip(rows, seeds, strict=True)):
        env = _env(family, p, seed)
        expected, road = _vehicles(env), env.unwrapped.road.vehicles
        k = min(scripted, len(expected))  # stop_and_go: the platoon's size varies
        assert bool(state.present[b, :k].all()) and not bool(state.present[b, k:scripted].any())
        np.testing.assert_allclose(_columns(state, b, k), expected[:k], atol=1e-9)
        _check_scripts(state, script, b, road[:k])
        traffic = state.present[b, scripted:]
        if scene.traffic is None:
            assert len(expected) == k and config.slots == scripted
            continue
        assert 1 <= int(traffic.sum()) <= traffic_slots(family)
        assert bool((state.lane[b, scripted:][traffic] == scene.traffic.lane).all())  # the env's lane
        cruise = p["ego_speed"] + scene.traffic.speed_offset  # [m/s]
        assert bool(((state.speed[b, scripted:][traffic] - cruise).abs() <= 1.0).all())
        env.close()
    assert bool(script.stalled[:, 1].all()) == (family == "stalled_car")
    assert not bool(state.behavior.enable_lane_change.any())


def _check_scripts(state, script, b: int, vehicles: list) -> None:
    """Episode ``b``'s per-vehicle IDM settings and wave settings are those of highway-env's ``vehicles``
    (the ego and the family's scripted cars, in slot order)."""
    for slot, v in enumerate(vehicles[1:], start=1):
        if isinstance(v, IDMVehicle):  # a stalled car is a plain Vehicle
            assert float(state.behavior.time_wanted[b, slot]) == v.TIME_WANTED
            assert float(state.behavior.distance_wanted[b, slot]) == v.DISTANCE_WANTED
        wave = [script.wave_mean, script.wave_amplitude, script.wave_period, script.wave_deceleration]
        if isinstance(v, WaveLeader):
            expected = [v.mean_speed, v.amplitude, v.period, v.max_deceleration]
            np.testing.assert_allclose([float(t[b, slot]) for t in wave], expected, rtol=1e-15)
        else:
            assert float(script.wave_period[b, slot]) == np.inf


@pytest.mark.parametrize("kind", ["meta", "continuous"])
@pytest.mark.parametrize("family", ["cut_in", "adversarial_vehicle", "side_swipe"])
def test_cars_placed_by_the_cruise_speed_follow_the_ego_interface(family: str, kind: str) -> None:
    """``cut_in``, ``adversarial_vehicle`` and ``side_swipe`` set their car's speed from the ego's cruise
    speed: a meta ego's snaps to its nearest set point (23 -> 25 m/s), a continuous ego's is its speed."""
    params = {**CASES[family], "ego_speed": 23.0}
    env = make_env(FAMILIES[family], kind)
    env.reset(seed=0, options={"params": params})
    state, _ = family_reset(family, _row(family, params), [0], family_config(family, kind))
    np.testing.assert_allclose(_columns(state, 0, 2)[1], _vehicles(env)[1], atol=1e-9)
    env.close()


@pytest.mark.parametrize("family", [f for f in CASES if SCENES[f].traffic is not None])
def test_traffic_is_placed_like_highway_env(family: str) -> None:
    """The background traffic over many seeds, highway-env's and ours: both within the bounds of the
    family's ``_add_traffic`` call as ``SCENES`` states it (lane, first car within one spacing of the
    start, 0.7 to 1.3 spacings apart, the last before the end and no room for one more, speeds ± 1 m/s),
    and the same distribution: count, first car, spacing and speed per episode agree in mean within
    four standard errors."""
    params, t = CASES[family], SCENES[family].traffic
    k = 1 + SCENES[family].scripted
    spacing = params[t.spacing] if isinstance(t.spacing, str) else t.spacing  # [m]
    x_from, x_to = EGO_X + t.x_from, EGO_X + t.anchor(params) + t.extra  # [m]
    cruise = params["ego_speed"] + t.speed_offset  # [m/s]

    def figures(cars: np.ndarray) -> list[float]:
        """One episode's traffic (M, 4) x, y, speed, heading: bounds checked, then its figures."""
        x, v = np.sort(cars[:, 0]), cars[:, 2]  # [m], [m/s]
        steps = np.diff(x) / spacing
        assert np.all(cars[:, 1] == t.lane * LANE_WIDTH) and np.all(np.abs(v - cruise) <= 1.0)
        assert 0.0 <= x[0] - x_from < spacing and np.all((steps >= 0.7 - 1e-9) & (steps <= 1.3 + 1e-9))
        assert x[-1] < x_to <= x[-1] + 1.3 * spacing + 1e-9
        return [len(x), x[0] - x_from, float(steps.mean()), float(v.mean()) - cruise]

    env = make_env(FAMILIES[family], "accel")
    theirs = []
    for seed in range(60):
        env.reset(seed=seed, options={"params": params})
        theirs.append(figures(_vehicles(env)[k:]))
    env.close()
    seeds = list(range(1000, 1600))
    state, _ = family_reset(
        family, np.repeat(_row(family, params), len(seeds), 0), seeds, family_config(family)
    )
    present = state.present[:, k:].numpy()
    cars = torch.stack([state.x, state.y, state.speed, state.heading], -1)[:, k:].numpy()  # (B, M, 4)
    ours = np.array([figures(cars[b][present[b]]) for b in range(len(seeds))])
    theirs = np.array(theirs)
    se = np.sqrt(theirs.var(0) / len(theirs) + ours.var(0) / len(ours))  # (4,)
    np.testing.assert_array_less(np.abs(theirs.mean(0) - ours.mean(0)), 4 * se)


@pytest.mark.parametrize("family", list(CASES))
def test_dynamics_match_highway_env_with_the_same_traffic(family: str) -> None:
    """With highway-env's background cars copied in, every vehicle follows the same trajectory."""
    _, script = _check_parity(family, CASES[family], ACTION.get(family, BRAKE), steps=25)  # 5 s
    if family in TRIGGERED:  # the trigger fired and the script ran
        assert not bool(torch.isnan(script.triggered_at[0, TRIGGERED[family]]))
    else:
        assert bool(torch.isnan(script.triggered_at).all())


def test_stop_and_go_platoon_piles_up_like_highway_env() -> None:
    """Even with a jam distance longer than a car, a wave from the top of the speed range down to a stop
    at 9 m/s², harder than IDM's 6 m/s² limit, makes the follower run into the leader. Both crash at
    the same sub-step in both simulators (the batched one tests the platoon's pairs), and every
    trajectory (the crashed cars braking to a stop) stays the same."""
    params = {  # the parameter box's worst corner, one follower; the two collide at about 5 s
        "high_speed": 28.0,
        "low_speed": 0.0,
        "period": 8.0,
        "leader_deceleration": 9.0,
        "platoon_size": 1.0,
        "ego_gap": 20.0,
    }
    state, _ = _check_parity("stop_and_go", params, BRAKE, steps=40)  # 8 s
    assert state.crashed[0, :3].tolist() == [False, True, True]  # the follower and the leader, not the ego


def test_stalled_car_lead_swerving_into_traffic_crashes_like_highway_env() -> None:
    """The lead swerves into the right lane where a traffic car drives: in both simulators the two
    crash at the same sub-step (the batched one tests every pair of this family's cars) and every
    trajectory, the crashed cars' included, stays the same."""
    params = {"ego_speed": 26.15, "lead_gap": 24.59, "stall_distance": 249.64, "reveal_distance": 78.85}
    state, _ = _check_parity("stalled_car", params, BRAKE, steps=40, seed=6)  # 8 s; they crash at ~6 s
    assert not bool(state.crashed[0, 0]) and bool(state.crashed[0, 2])  # the lead, not the ego
    assert int(state.crashed[0, 3:].sum()) == 1  # and one traffic car


def test_stop_and_go_platoon_keeps_its_jam_distance() -> None:
    """The platoon's IDM jam distance is ``JAM_GAP`` between centres, as highway-env's IDM measures it:
    a wave down to a crawl at 6 m/s² takes the platoon through it without a collision, its cars more
    than a car length apart in both simulators (with a jam distance shorter than a car all four pile up)."""
    params = {
        "high_speed": 24.2,
        "low_speed": 0.01,
        "period": 8.52,
        "leader_deceleration": 6.18,
        "platoon_size": 3.0,
        "ego_gap": 19.47,
    }
    env = _env("stop_and_go", params, 3)
    assert [v.DISTANCE_WANTED for v in env.unwrapped.road.vehicles[1:-1]] == [JAM_GAP] * 3
    env.close()
    state, _ = _check_parity("stop_and_go", params, BRAKE, steps=40)  # 8 s
    assert not bool(state.crashed[0].any())
    gaps = (state.x[0, 2:5] - state.x[0, 1:4]).numpy()  # [m] centre to centre, platoon and leader
    assert np.all(gaps > LENGTH), gaps


def _check_parity(family: str, params: dict[str, float], action: int, steps: int, seed: int = 3):
    """Run ``family`` in both simulators with highway-env's cars copied in, ``steps`` policy steps of
    ``action``: every vehicle's x, y, speed, heading within 1e-6, the same crashes, the same
    observation; the final (state, script)."""
    env = _env(family, params, seed)
    config = family_config(family, "accel")
    state, script = family_reset(family, _row(family, params), [seed], config)
    expected = _vehicles(env)
    m = len(expected)
    assert m <= config.slots
    present = torch.arange(config.slots) < m
    pad = lambda a: torch.tensor(np.pad(a, (0, config.slots - m)))[None]  # noqa: E731
    state = state.replace(
        present=present[None], x=pad(expected[:, 0]), y=pad(expected[:, 1]), speed=pad(expected[:, 2]),
        target_speed=pad([getattr(v, "target_speed", 0.0) for v in env.unwrapped.road.vehicles]),
    )  # fmt: skip
    for _ in range(steps):
        obs = env.step(action)[0]
        state, script = family_step(state, script, torch.tensor([action]))
        np.testing.assert_allclose(_columns(state, 0, m), _vehicles(env), atol=1e-6)
        assert state.crashed[0, :m].tolist() == [v.crashed for v in env.unwrapped.road.vehicles]
        np.testing.assert_allclose(observe(state)[0].numpy(), obs, atol=1e-5)  # what the policy sees
    env.close()
    return state, script


def test_stalled_car_stays_still_and_lead_swerves() -> None:
    family = "stalled_car"
    params = np.array([[20.0, 15.0, 120.0, 20.0], [30.0, 40.0, 250.0, 80.0]])
    config = family_config(family, "accel", duration=8.0)
    state, script = family_reset(family, params, [0, 1], config)
    x0 = state.x[:, 1].clone()
    while not bool((state.time >= config.duration).all()):
        state, script = family_step(state, script, torch.full((2,), BRAKE))
        assert torch.equal(state.x[:, 1], x0) and bool((state.speed[:, 1] == 0).all())
    fired = script.triggered_at[:, 2]  # [s] when the lead swerved
    gap = params[:, 2] - params[:, 3] - np.minimum(params[:, 1], params[:, 2] - params[:, 3] - 10)  # [m]
    np.testing.assert_allclose(fired.numpy(), gap / params[:, 0], atol=0.1 + 1e-9)  # one sub-step
    assert bool((state.target_lane[:, 2] == 1).all())


def test_lead_brakes_as_specified() -> None:
    family = "hard_braking_lead"
    params = np.array([[20.0, 30.0, 1.0, 3.0], [30.0, 40.0, 3.0, 9.0]])  # ego_speed, gap, time, decel
    config = family_config(family, "accel", duration=8.0)
    state, script = family_reset(family, params, [5, 6], config)
    speeds, times = [], []
    while not bool((state.time >= config.duration).all()):
        state, script = family_step(state, script, torch.full((2,), BRAKE))
        speeds.append(state.speed[:, 1].clone())
        times.append(float(state.time[0]))
    v, t = torch.stack(speeds).numpy(), np.array(times)  # (T, 2) [m/s], (T,) [s]
    for b, (v0, _, t_brake, decel) in enumerate(params):
        before = t <= t_brake
        np.testing.assert_allclose(v[before, b], v0, atol=1e-9)
        expected = np.maximum(v0 - decel * (t - t_brake), 0.0)  # [m/s]
        braking = (t > t_brake) & (expected > 1.0)
        np.testing.assert_allclose(v[braking, b], expected[braking], atol=1e-6)
        assert v[-1, b] == 0.0
    np.testing.assert_allclose(script.triggered_at[:, 1].numpy(), params[:, 2], atol=1e-9)


def _substeps(family: str, params: np.ndarray, action: int, duration: float) -> tuple[list, object]:
    """Run ``family`` one simulation sub-step per step: (the B-episode states, reset first, script)."""
    config = replace(family_config(family, "accel", duration=duration), policy_frequency=10)
    state, script = family_reset(family, params, list(range(len(params))), config)
    states = [state]
    while not bool((state.time >= config.duration - 1e-9).all()):
        state, script = family_step(state, script, torch.full((len(params),), action))
        states.append(state)
    return states, script


def _at_trigger(states: list, script, slot: int) -> np.ndarray:
    """(B,) index into ``states`` of the act at which ``slot``'s trigger fired (0.1 s sub-steps)."""
    fired = script.triggered_at[:, slot].numpy()
    assert not np.isnan(fired).any()
    return np.round(fired / 0.1).astype(int)


def test_cut_in_car_takes_its_relative_speed_at_the_gap() -> None:
    """The cutting car fires at the first act where it is at most ``cut_in_gap`` ahead of the ego, takes
    the ego's speed less ``speed_difference`` there and then, and moves into the ego's lane."""
    params = np.array([[20.0, 0.0, 8.0], [30.0, 8.0, 35.0], [25.0, 3.0, 15.0]])  # ego_speed, dv, gap
    states, script = _substeps("cut_in", params, CLOSE_IN, duration=6.0)
    k = _at_trigger(states, script, 1)
    rows = np.arange(len(params))
    offset = np.array([(s.x[:, 1] - s.x[:, 0]).numpy() for s in states])  # (T, B) [m] car ahead of the ego
    assert np.all(offset[k, rows] <= params[:, 2]) and np.all(offset[k - 1, rows] > params[:, 2])
    ego = np.array([s.speed[:, 0].numpy() for s in states])  # (T, B) [m/s]
    car = np.array([s.speed[:, 1].numpy() for s in states])
    target = np.array([s.target_speed[:, 1].numpy() for s in states])
    np.testing.assert_allclose(car[k - 1, rows], params[:, 0] - params[:, 1] - 2.0, atol=1e-9)  # cruising
    matched = ego[k, rows] - params[:, 1]  # [m/s] the ego's speed at the trigger, less the difference
    np.testing.assert_allclose(target[k + 1, rows], matched, atol=1e-9)
    np.testing.assert_allclose(car[k + 1, rows], matched, atol=1e-9)  # IDM at its cruise speed: no change
    np.testing.assert_allclose(car[-1], matched, atol=1e-9)  # nothing ahead of it in the ego's lane
    last = states[-1]
    assert bool((last.target_lane[:, 1] == 1).all()) and bool((last.lane[:, 1] == 1).all())
    assert not bool(last.crashed[:, 0].any())


def test_adversary_cuts_in_and_brake_checks() -> None:
    """The adversary fires once ``cut_in_gap`` ahead of the ego, changes into its lane, and
    ``brake_delay`` later brakes at ``deceleration`` to its speed less ``speed_drop``, then holds it."""
    params = np.array(  # ego_speed, speed_difference, cut_in_gap, brake_delay, deceleration, speed_drop
        [
            [20.0, 8.0, 3.0, 0.25, 9.0, 25.0],
            [28.0, 2.0, 15.0, 1.05, 4.0, 10.0],
            [24.0, 5.0, 8.0, 0.55, 6.0, 15.0],
        ]
    )
    states, script = _substeps("adversarial_vehicle", params, BRAKE, duration=10.0)
    k = _at_trigger(states, script, 1)
    rows = np.arange(len(params))
    offset = np.array([(s.x[:, 1] - s.x[:, 0]).numpy() for s in states])  # (T, B) [m]
    np.testing.assert_allclose(offset[0], -START_BEHIND)
    assert np.all(offset[k, rows] >= params[:, 2]) and np.all(offset[k - 1, rows] < params[:, 2])
    v0 = params[:, 0] + params[:, 1]  # [m/s] the adversary's speed until it brakes
    to = np.maximum(v0 - params[:, 5], 0.0)  # [m/s]
    np.testing.assert_allclose(script.triggered_at[:, 1].numpy() - k * 0.1, 0.0, atol=1e-9)
    v = np.array([s.speed[:, 1].numpy() for s in states])  # (T, B) [m/s]
    j = np.arange(len(states))[:, None]  # (T, 1) sub-steps done
    start = k + np.ceil(params[:, 3] / 0.1 - 1e-9).astype(int)  # (B,) the first act that brakes
    expected = v0 - params[:, 4] * np.clip(j - start, 0, None) * 0.1  # (T, B) [m/s]
    exact = expected >= to + 0.5 + params[:, 4] * 0.1  # still braking at the full deceleration
    np.testing.assert_allclose(v[exact], expected[exact], atol=1e-9)
    np.testing.assert_allclose(v[-1], to, atol=0.02)  # then held at the brake-to speed
    last = states[-1]
    assert bool((last.target_lane[:, 1] == 0).all()) and bool((last.lane[:, 1] == 0).all())
    assert not bool(last.crashed[:, 0].any())


def test_wave_reference_at_hand_computed_times() -> None:
    """The leader's reference ``mean + amplitude·cos(2π t / period)``: the top speed at 0 and after a
    period, the mean at a quarter and three quarters, the bottom at a half, mean + amplitude / 2 at a
    sixth; no wave (the ego, the platoon) is inert."""
    rows = np.array([[20.0, 4.0, 8.0, 6.0, 1.0, 20.0], [28.0, 0.0, 5.0, 9.0, 0.0, 12.0]])  # high, low, period
    _, script = family_reset("stop_and_go", rows, [0, 1], family_config("stop_and_go"))
    leader = [2, 1]  # one follower, then none
    times = np.array([0.0, 1 / 6, 1 / 4, 1 / 2, 3 / 4, 1.0])  # [periods]
    expected = {0: [20.0, 16.0, 12.0, 4.0, 12.0, 20.0], 1: [28.0, 21.0, 14.0, 0.0, 14.0, 28.0]}  # [m/s]
    for b in (0, 1):
        clock = torch.tensor(times * rows[b, 2])[:, None]  # (T, 1) [s]
        reference = wave_reference(script.select([b] * len(times)), clock)  # (T, N) [m/s]
        np.testing.assert_allclose(reference[:, leader[b]].numpy(), expected[b], atol=1e-12)
        assert bool((script.wave_period[b, : leader[b]] == torch.inf).all())


def test_wave_leader_tracks_its_reference() -> None:
    """A leader alone ahead of a braking ego, one sub-step per step: its acceleration is, step by step,
    ``min(IDM free road, clip(KP_A (reference - v), -leader_deceleration, 6))`` with the IDM free road
    ``3 (1 - (v / high_speed)^4)`` (nothing ahead of it, cruise speed the top speed); the braking
    saturates at ``leader_deceleration`` where the reference falls faster than that."""
    rows = np.array([[28.0, 0.0, 5.0, 4.0, 0.0, 35.0], [18.0, 6.0, 12.0, 9.0, 0.4, 20.0]])
    states, script = _substeps("stop_and_go", rows, BRAKE, duration=12.0)
    v = np.array([s.speed[:, 1].numpy() for s in states])  # (T, B) [m/s] the leader (no platoon)
    t = np.arange(len(states))[:-1, None] * 0.1  # (T - 1, 1) [s] the clock at each act
    high, low, period, decel = rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3]
    reference = np.maximum(0.5 * (high + low) + 0.5 * (high - low) * np.cos(2 * np.pi * t / period), 0.0)
    track = np.clip(KP_A * (reference - v[:-1]), -decel, 6.0)  # (T - 1, B) [m/s²]
    expected = np.minimum(3.0 * (1 - (v[:-1] / high) ** 4), track)
    np.testing.assert_allclose(np.diff(v, axis=0) / 0.1, expected, atol=1e-9)
    assert np.isclose(np.diff(v[:, 0]) / 0.1, -decel[0], atol=1e-9).sum() >= 10  # saturated
    assert v.min() >= 0.0 and bool(torch.isnan(script.triggered_at).all())


def test_platoon_size_rounds_half_to_even_and_keeps_its_headway() -> None:
    """``round(platoon_size)`` followers as the env rounds (0.5 -> 0, 1.5 -> 2, 2.5 -> 2), one spacing
    ``high_speed · HEADWAY + JAM_GAP`` apart from ``ego_gap`` ahead of the ego, with the platoon's IDM
    time headway and jam distance; the wave leader next, the slots past it empty."""
    sizes = [0.5, 1.5, 2.5, 0.49, 2.51, 3.0]
    rows = np.array([[22.0, 3.0, 8.0, 6.0, size, 15.0] for size in sizes])
    state, script = family_reset("stop_and_go", rows, list(range(len(sizes))), family_config("stop_and_go"))
    followers = [0, 2, 2, 0, 3, 3]
    spacing = 22.0 * HEADWAY + JAM_GAP  # [m]
    for b, f in enumerate(followers):
        env = _env("stop_and_go", dict(zip(family_class("stop_and_go").PARAMS, rows[b], strict=True)), 0)
        assert len(env.unwrapped.road.vehicles) == 2 + f
        env.close()
        assert state.present[b].tolist() == [True] * (2 + f) + [False] * (3 - f)
        np.testing.assert_allclose(state.x[b, 1 : 2 + f].numpy(), EGO_X + 15.0 + spacing * np.arange(f + 1))
        assert state.behavior.time_wanted[b, 1 : 1 + f].tolist() == [HEADWAY] * f
        assert state.behavior.distance_wanted[b, 1 : 1 + f].tolist() == [JAM_GAP] * f
        assert float(script.wave_period[b, 1 + f]) == 8.0
        assert bool(script.scripted[b, 1 : 2 + f].all()) and not bool(script.scripted[b, 2 + f :].any())


def test_side_car_swerves_at_its_time_and_offset() -> None:
    """Ahead of (or behind) an ego holding its speed, the side car cruises at the ego's speed plus
    ``speed_difference``, fires at ``swerve_time`` exactly ``offset`` ahead of the ego, and changes into
    the ego's lane."""
    params = np.array([[20.0, 12.0, 2.0, 2.0], [28.0, -10.0, -3.0, 3.5], [24.0, 8.0, 0.5, 6.0]])
    states, script = _substeps("side_swipe", params, HOLD, duration=9.0)
    k = _at_trigger(states, script, 1)
    rows = np.arange(len(params))
    np.testing.assert_allclose(script.triggered_at[:, 1].numpy(), params[:, 3], atol=1e-9)
    offset = np.array([(s.x[:, 1] - s.x[:, 0]).numpy() for s in states])  # (T, B) [m]
    np.testing.assert_allclose(offset[k, rows], params[:, 1], atol=1e-9)
    car = np.array([s.speed[:, 1].numpy() for s in states])  # (T, B) [m/s]
    before = np.arange(len(states))[:, None] <= k  # (T, B) up to the act that fires
    np.testing.assert_allclose(car[before], np.broadcast_to(params[:, 0] + params[:, 2], car.shape)[before])
    target = np.array([s.target_lane[:, 1].numpy() for s in states])  # (T, B)
    assert np.all(target[k, rows] == 0) and np.all(target[k + 1, rows] == 1)  # the act at k changes it
    last = states[-1]
    assert bool((last.target_lane[:, 1] == 1).all()) and bool((last.lane[:, 1] == 1).all())
    assert not bool(last.crashed[:, 0].any())


def test_bad_input_is_refused() -> None:
    config = family_config("hard_braking_lead", "accel")
    with pytest.raises(BatchedFamilyError, match="out of its range"):
        family_reset("hard_braking_lead", np.array([[25.0, 20.0, 2.0, 12.0]]), [0], config)
    with pytest.raises(BatchedFamilyError, match=r"shape \(B, 4\)"):
        family_reset("hard_braking_lead", np.zeros((2, 3)), [0, 1], config)
    with pytest.raises(BatchedFamilyError, match="no batched port"):
        family_config("aggressive_merge")


def test_cli_estimate_on_the_batched_simulator(tmp_path) -> None:
    """``corner-cases estimate --sim batched``: a constant full-throttle ego hits the stalled car."""
    import json

    from typer.testing import CliRunner

    from drivegpt.cli.app import app

    out = tmp_path / "est"
    args = ["corner-cases", "estimate", "--family", "stalled_car", "--method", "mc", "--sim", "batched"]
    args += ["--policy", "constant:39", "--max-sims", "8", "--duration", "8", "--out", str(out)]
    result = CliRunner().invoke(app, args)  # token 39: +3 m/s², keep lane
    assert result.exit_code == 0, result.output
    est = json.loads((out / "estimate.json").read_text())
    assert est["sims"] == 8 and est["run"]["sim"] == "batched"
    assert est["failure_probability"] == 1.0  # 8 of 8: nothing brakes for the stalled car
    bad = CliRunner().invoke(app, [a if a != "stalled_car" else "aggressive_merge" for a in args])
    assert bad.exit_code != 0 and "no batched port" in bad.output
    result = CliRunner().invoke(app, [*args, "--defensive", "0.5"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "estimate.json").read_text())["run"]["defensive"] == 0.5
    bad = CliRunner().invoke(app, [*args, "--defensive", "1.5"])  # a weight, not a factor
    assert bad.exit_code != 0 and "--defensive" in bad.output and "defensive" in bad.output.splitlines()[-1]
    for option, value, valid in (("--sim", "gpu", "'batched'"), ("--method", "cem", "'mc', 'is'")):
        wrong = [*args[: args.index(option) + 1], value, *args[args.index(option) + 2 :]]
        bad = CliRunner().invoke(app, wrong)
        assert bad.exit_code == 2 and valid in bad.output, bad.output  # typer names the valid values


def test_cli_estimate_defaults_to_the_batched_simulator_and_checks_its_input_first(tmp_path) -> None:
    """With no --sim an estimate of a ported family runs on the batched simulator (highway-env's stock
    idm on highway-env, where --duration is refused); a run that stops short of its half-width says so;
    a run that fits no proposal removes one an earlier run left in its folder; an --out that is a file,
    a non-positive --duration, a --proposal folder and seeds out of range fail in one line before any
    simulation."""
    import json

    from typer.testing import CliRunner

    from drivegpt.cli.app import app

    out = tmp_path / "est"
    out.mkdir()
    (out / "proposal.json").write_text("{}")  # an earlier run's
    args = ["corner-cases", "estimate", "--family", "side_swipe", "--method", "mc", "--device", "cpu"]
    result = CliRunner().invoke(app, [*args, "--max-sims", "40", "--sims-per-check", "10", "--out", str(out)])
    assert result.exit_code == 0, result.output
    est = json.loads((out / "estimate.json").read_text())
    assert est["run"]["sim"] == "batched" and est["run"]["human_traits"] is True and est["sims"] == 40
    assert est["run"]["duration"] is None  # the family's own length
    assert (
        not est["converged"] and "not converged: ±" in result.output and "raise --max-sims" in result.output
    )
    assert not (out / "proposal.json").exists()
    for extra, says in (
        (["--out", str(out / "estimate.json")], "is a file, not a directory"),
        (["--duration", "-3", "--out", str(tmp_path / "d")], "bad value for --duration"),
        (
            ["--method", "is", "--proposal", str(out), "--out", str(tmp_path / "p")],
            "a directory, not a proposal",
        ),
        (["--rel-halfwidth", "0", "--out", str(tmp_path / "r")], "bad value for --rel-halfwidth"),
        (["--seed", "-1", "--out", str(tmp_path / "s")], "'--seed'"),
        (["--seed", str(2**70), "--out", str(tmp_path / "s")], "'--seed'"),
        (["--policy", "idm", "--duration", "5", "--out", str(tmp_path / "i")], "highway-env runs"),  # no port
    ):
        bad = CliRunner().invoke(app, [*args, *extra])
        assert bad.exit_code == 2 and says in bad.output, (extra, bad.output)
    fit = ["corner-cases", "fit-proposal", "--family", "side_swipe"]
    for extra, says in ((["--seed", "-1"], "'--seed'"), (["--duration", "0"], "bad value for --duration")):
        bad = CliRunner().invoke(app, [*fit, *extra, "--out", str(tmp_path / "f")])
        assert bad.exit_code == 2 and says in bad.output, (extra, bad.output)
    bad = CliRunner().invoke(app, [*fit, "--out", str(out / "estimate.json")])
    assert bad.exit_code == 2 and "is a file, not a directory" in bad.output
    assert not (tmp_path / "d").exists() and not (tmp_path / "f").exists()  # nothing ran


def test_cli_estimate_writes_a_proposal_the_next_estimate_starts_from(tmp_path) -> None:
    """``--method is`` writes ``proposal.json``; ``--proposal`` starts another estimate from it, no pilot."""
    import json

    from typer.testing import CliRunner

    from drivegpt.cli.app import app

    args = ["corner-cases", "estimate", "--family", "stalled_car", "--method", "is", "--sim", "batched"]
    args += ["--policy", "constant:39", "--max-sims", "80", "--pilot-batch", "8", "--duration", "8"]
    first = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "a")])
    assert first.exit_code == 0, first.output
    est = json.loads((tmp_path / "a" / "estimate.json").read_text())
    assert est["pilot_sims"] > 0 and est["proposal_file"] == "proposal.json"
    saved = json.loads((tmp_path / "a" / "proposal.json").read_text())
    assert saved["family"] == "stalled_car" and saved["policy"] == "constant:39" and len(saved["names"]) == 4
    again = [*args, "--seed", "1", "--proposal", str(tmp_path / "a" / "proposal.json")]
    second = CliRunner().invoke(app, [*again, "--out", str(tmp_path / "b")])
    assert second.exit_code == 0 and "(0 pilot)" in second.output, second.output
    est = json.loads((tmp_path / "b" / "estimate.json").read_text())
    assert est["pilot_sims"] == 0 and est["failure_probability"] > 0.5
    assert est["run"]["proposal"] == [str(tmp_path / "a" / "proposal.json")]
    assert not (tmp_path / "b" / "proposal.json").exists()  # no pilot, no refit asked: nothing new
    inplace = CliRunner().invoke(app, [*again, "--out", str(tmp_path / "a")])  # into its proposal's folder
    assert inplace.exit_code == 0 and json.loads((tmp_path / "a" / "proposal.json").read_text()) == saved
    refitted = CliRunner().invoke(app, [*again, "--refit-floor", "0.3", "--out", str(tmp_path / "b")])
    assert refitted.exit_code == 0 and "refitted to its failures" in refitted.output, refitted.output
    refit = json.loads((tmp_path / "b" / "proposal.json").read_text())
    assert refit["pilot_sims"] == 0 and refit["started_from"] == [str(tmp_path / "a" / "proposal.json")]
    assert refit["fit_sims"] == est["sims"] + saved["fit_sims"] and refit["fitted_to"] == "estimate"
    # a half-space beside the start's mixture, fitted to the estimate's simulations; the next draws from both
    short = ["--duration", "5"]  # episodes too short for some runs to reach the stalled car: mixed outcomes
    with_h = CliRunner().invoke(
        app, [*again, *short, "--halfspace-share", "0.5", "--out", str(tmp_path / "h")]
    )
    assert with_h.exit_code == 0 and "a half-space fitted to its simulations" in with_h.output, with_h.output
    saved_h = json.loads((tmp_path / "h" / "proposal.json").read_text())
    assert (
        saved_h["version"] == 2
        and saved_h["halfspace"]["share"] == 0.5
        and saved_h["weights"] == saved["weights"]
    )
    third = [*args, "--seed", "2", "--proposal", str(tmp_path / "h" / "proposal.json")]
    from_h = CliRunner().invoke(app, [*third, *short, "--out", str(tmp_path / "i")])
    assert from_h.exit_code == 0 and "(0 pilot)" in from_h.output, from_h.output
    est_h = json.loads((tmp_path / "i" / "estimate.json").read_text())
    assert est_h["proposal"]["kind"] == "halfspace_blend" and est_h["failure_probability"] > 0.5
    # two files pool: the equal-weight mixture of their mixtures; a file with a half-space is refused there
    files = [str(tmp_path / d / "proposal.json") for d in ("a", "b")]
    both = ["--proposal", files[0], "--proposal", files[1]]
    pooled = CliRunner().invoke(app, [*args, "--seed", "3", *both, "--out", str(tmp_path / "p")])
    assert pooled.exit_code == 0 and "(0 pilot)" in pooled.output, pooled.output
    est_p = json.loads((tmp_path / "p" / "estimate.json").read_text())
    k = len(saved["weights"]) + len(refit["weights"])  # the defensive nominal first, then both files' parts
    assert est_p["run"]["proposal"] == files and len(est_p["proposal"]["weights"]) == 1 + k
    with_hs = [*args, "--proposal", files[0], "--proposal", str(tmp_path / "h" / "proposal.json")]
    bad = CliRunner().invoke(app, [*with_hs, "--out", str(tmp_path / "q")])
    assert bad.exit_code != 0 and "a pool of proposals takes mixtures only" in bad.output.splitlines()[-1]
    mc = [a if a != "is" else "mc" for a in again]
    bad = CliRunner().invoke(app, [*mc, "--out", str(tmp_path / "c")])
    assert bad.exit_code != 0 and "needs --method is" in bad.output.splitlines()[-1], bad.output
    bad = CliRunner().invoke(app, [*mc, "--halfspace-share", "0.5", "--out", str(tmp_path / "c")])
    assert bad.exit_code != 0 and "needs --method is" in bad.output.splitlines()[-1], bad.output
    for option, value in (
        ("--refit-floor", "-1"),
        ("--pilot-batch", "0"),
        ("--halfspace-share", "1.5"),
        ("--sims-per-check", "0"),
        ("--halfspace-margin", "-1"),
    ):
        bad = CliRunner().invoke(app, [*args, option, value, "--out", str(tmp_path / "c")])
        assert bad.exit_code != 0 and option in bad.output.splitlines()[-1], bad.output
    absent = [a if not a.endswith("proposal.json") else str(tmp_path / "none.json") for a in again]
    bad = CliRunner().invoke(app, [*absent, "--out", str(tmp_path / "c")])
    assert bad.exit_code != 0 and "none.json: no such proposal file" in bad.output, bad.output


def test_severity_is_one_for_failures_and_graded_below() -> None:
    """The batched ``simulate_batch``: 1 where the ego crashed, ``1 / (1 + TTC_min)`` below 1 elsewhere."""
    from drivegpt.corner.batched import batched_family_simulator

    names = list(family_class("stalled_car").PARAMS)
    rows = np.array([[28.0, 15.0, 120.0, 20.0], [20.0, 40.0, 250.0, 80.0]])  # late reveal; early reveal
    crash = batched_family_simulator("stalled_car", "constant:39", names, duration=8.0)  # full throttle
    assert crash(rows, np.array([1, 2])).tolist() == [1.0, 1.0]
    human = batched_family_simulator("stalled_car", "human", names, duration=15.0)
    sev = human(np.repeat(rows[1:], 4, 0), np.arange(4))
    assert np.all((sev > 0) & (sev < 1)), sev  # it closed in on the stalled car and braked in time


def test_episodes_do_not_depend_on_autograd_recording(monkeypatch) -> None:
    """``run_episodes`` runs under ``torch.inference_mode()`` (faster at small batches): the same
    severities, to the bit, as with autograd recording every operation."""
    import drivegpt.corner.batched as corner_batched

    names = list(family_class("stalled_car").PARAMS)
    rows = np.array([[28.0, 15.0, 120.0, 20.0], [20.0, 40.0, 250.0, 80.0], [25.0, 20.0, 150.0, 30.0]])
    sim = corner_batched.batched_family_simulator("stalled_car", "human", names, duration=10.0)
    shipped = sim(rows, np.arange(3))
    monkeypatch.setattr(corner_batched, "run_episodes", corner_batched.run_episodes.__wrapped__)
    assert sim(rows, np.arange(3)).tolist() == shipped.tolist()


@pytest.mark.parametrize(
    ("family", "rows", "crash"),
    [  # cut_in: closing at 6 m/s from 5 m bumper to bumper; matched speed 20 m ahead
        ("cut_in", [[25.0, 6.0, 10.0], [25.0, 0.0, 20.0]], [True, False]),
        ("adversarial_vehicle", [[20.0, 8.0, 3.0, 0.0, 9.0, 25.0]], [True]),  # 3 m ahead, brakes to 3 m/s
    ],
)
def test_constant_speed_ego_against_the_car_that_cuts_in(family: str, rows: list, crash: list) -> None:
    """The failure estimators' ``simulate_batch`` on the cut-in families: an ego that holds its speed
    (``constant:0``, 0 m/s²) hits a car that cuts in slower, and stays far (in time) from one that
    matches its speed."""
    from drivegpt.corner.batched import batched_family_simulator

    sim = batched_family_simulator(family, "constant:0", list(family_class(family).PARAMS), duration=10.0)
    sev = sim(np.array(rows), np.arange(len(rows)))
    assert np.array_equal(sev == 1.0, crash) and np.all((sev >= 0) & ((sev < 0.1) | crash)), sev


def test_human_traits_drive_the_batched_human() -> None:
    """``--human-traits`` rows: the personality columns choose the driver; the seed keeps its noise."""
    from drivegpt.core.errors import UserError
    from drivegpt.corner.batched import batched_family_simulator
    from drivegpt.corner.naturalistic import WithHumanTraits, family_distribution
    from drivegpt.sim.batched.human import SEED_STREAM, BatchedHuman
    from drivegpt.sim.personality import PersonalityRanges

    dist = WithHumanTraits(family_distribution("stalled_car"))
    config = family_config("stalled_car", "accel")
    row = np.array([[24.0, 25.0, 150.0, 40.0]])
    state, _ = family_reset("stalled_car", row, [7], config)
    drawn = PersonalityRanges().sample(np.random.default_rng([7, SEED_STREAM]))
    given = drawn.model_copy(update={"time_headway": 1.9, "reaction_delay": 0.6})
    own, chosen = BatchedHuman(config), BatchedHuman(config)
    own.reset([7], state)
    chosen.reset([7], state, [given])
    assert float(own.p.time_headway[0]) == pytest.approx(drawn.time_headway)
    assert float(chosen.p.time_headway[0]) == pytest.approx(1.9) and int(chosen.delay[0]) == 3
    assert torch.equal(own.noise, chosen.noise)  # the seed's noise whatever the personality
    sim = batched_family_simulator("stalled_car", "human", dist.names, duration=15.0)
    traits = [getattr(drawn, t) for t in PersonalityRanges.model_fields]
    plain = batched_family_simulator("stalled_car", "human", dist.names[:4], duration=15.0)
    assert sim(np.c_[row, [traits]], np.array([7])) == plain(row, np.array([7]))  # same driver, same run
    with pytest.raises(UserError, match="only the simulated human"):
        batched_family_simulator("stalled_car", "constant:39", dist.names)
    with pytest.raises(UserError, match="human.desired_speed"):
        batched_family_simulator("stalled_car", "human", dist.names[:4] + ["human.politeness"])


def test_cli_estimate_with_human_traits(tmp_path) -> None:
    import json

    from typer.testing import CliRunner

    from drivegpt.cli.app import app

    args = ["corner-cases", "estimate", "--family", "stalled_car", "--method", "mc", "--sim", "batched"]
    args += ["--max-sims", "8", "--duration", "8", "--out", str(tmp_path / "est")]
    result = CliRunner().invoke(app, args)  # the human on the batched simulator: traits sampled by default
    assert result.exit_code == 0, result.output
    est = json.loads((tmp_path / "est" / "estimate.json").read_text())
    assert est["sims"] == 8 and est["run"]["human_traits"] is True
    result = CliRunner().invoke(app, [*args, "--no-human-traits"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "est" / "estimate.json").read_text())["run"]["human_traits"] is False
    bad = CliRunner().invoke(app, [*args, "--human-traits", "--policy", "constant:39"])
    assert bad.exit_code != 0 and "--policy human" in bad.output


def test_cli_fit_proposal_pools_the_last_rounds_refits_and_an_estimate_starts_from_it(tmp_path):
    """``corner-cases fit-proposal``: a pilot and two rounds of two refits, the second drawn from the
    first's pool; the file holds the pool of the last round's refits and every simulation behind it,
    and an estimate starts from it with no pilot. Bad counts are refused naming the flag."""
    import json

    from typer.testing import CliRunner

    from drivegpt.cli.app import app

    base = ["corner-cases", "fit-proposal", "--family", "stalled_car", "--policy", "constant:39"]
    small = ["--refits", "2", "--rounds", "2", "--fit-sims", "64", "--pilot-sims", "80", "--pilot-batch", "8"]
    r = CliRunner().invoke(app, [*base, *small, "--duration", "8", "--out", str(tmp_path / "f")])
    assert r.exit_code == 0 and "a pool of" in r.output, r.output
    fit = json.loads((tmp_path / "f" / "fit.json").read_text())
    saved = json.loads((tmp_path / "f" / "proposal.json").read_text())
    assert [x["round"] for x in fit["runs"]] == [0, 1, 1, 2, 2] and fit["runs"][0]["sims"] <= 80
    assert all(x["sims"] == 64 for x in fit["runs"][1:])
    assert saved["fit_sims"] == fit["sims"] == sum(x["sims"] for x in fit["runs"])
    assert saved["fitted_to"] == "pooled refits" and saved["refits"] == sum(
        x["refitted"] for x in fit["runs"][3:]
    )
    assert len({x["seed"] for x in fit["runs"]}) == 5  # every run its own scenario seeds
    assert abs(sum(saved["weights"]) - 1) < 1e-9 and len(saved["names"]) == 4
    args = ["corner-cases", "estimate", "--family", "stalled_car", "--method", "is", "--sim", "batched"]
    args += ["--policy", "constant:39", "--max-sims", "80", "--duration", "8"]
    est = CliRunner().invoke(
        app, [*args, "--proposal", str(tmp_path / "f" / "proposal.json"), "--out", str(tmp_path / "e")]
    )
    assert est.exit_code == 0 and "(0 pilot)" in est.output, est.output
    for option, value in (("--refits", "0"), ("--fit-sims", "0"), ("--pilot-batch", "0")):
        bad = CliRunner().invoke(app, [*base, option, value, "--out", str(tmp_path / "x")])
        assert bad.exit_code != 0 and f"bad value for {option}" in bad.output.splitlines()[-1], bad.output
    assert not (tmp_path / "x").exists()
