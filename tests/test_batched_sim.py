"""Batched highway simulator: one-step parity with highway-env, determinism, action checks, hand checks."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from highway_env.vehicle.behavior import IDMVehicle, LinearVehicle

import drivegpt_envs
from drivegpt.sim.batched import (
    from_highway_env,
    make_config,
    observe,
    reset,
    reward,
    step,
    terminated,
    to_highway_env,
    truncated,
)
from drivegpt.sim.batched.config import KP_A, LENGTH
from drivegpt.sim.batched.idm import IdmParams, Kin, acceleration
from drivegpt.sim.batched.kinematics import bicycle_step
from drivegpt.sim.batched.spawn import IDM_EGO_TARGET_SPEED, empty_state
from drivegpt.sim.human import StockIDMDriver
from drivegpt_envs.actions import NEUTRAL_TOKEN

TOL = 1e-6  # [m], [m/s], [rad]
DENSE = "drivegpt/HighwayDense-v0"


def _env(kind: str, env_id: str = DENSE) -> gym.Env:
    env = gym.make(env_id)
    env.unwrapped.configure(drivegpt_envs.action_config(kind))
    return env


def _benign_action(kind: str, rng: np.random.Generator) -> object:
    """Mostly cruising actions, so episodes survive long enough for lane changes to be under way."""
    if kind == "meta":
        return int(rng.choice([1, 1, 1, 4, 0, 2]))
    if kind == "continuous":
        return np.array([rng.uniform(-0.3, 0.1), rng.uniform(-0.02, 0.02)])
    return int(
        rng.choice([NEUTRAL_TOKEN, NEUTRAL_TOKEN, NEUTRAL_TOKEN - 3, NEUTRAL_TOKEN - 6, NEUTRAL_TOKEN + 1])
    )


def _compare(state, b: int, env: gym.Env) -> dict[str, float]:
    """Max abs error of every vehicle's position, heading, speed; discrete fields must match exactly."""
    u = env.unwrapped
    err = {"position": 0.0, "heading": 0.0, "speed": 0.0}
    assert int(state.present[b].sum()) == len(u.road.vehicles)
    for i, v in enumerate(u.road.vehicles):
        err["position"] = max(
            err["position"],
            abs(state.x[b, i].item() - v.position[0]),
            abs(state.y[b, i].item() - v.position[1]),
        )
        err["heading"] = max(err["heading"], abs(state.heading[b, i].item() - v.heading))
        err["speed"] = max(err["speed"], abs(state.speed[b, i].item() - v.speed))
        assert state.lane[b, i].item() == v.lane_index[2], f"vehicle {i} lane"
        target = getattr(v, "target_lane_index", v.lane_index)[2]
        assert state.target_lane[b, i].item() == target, f"vehicle {i} target lane"
        assert bool(state.crashed[b, i]) == v.crashed, f"vehicle {i} crashed"
        assert bool(state.has_impact[b, i]) == (v.impact is not None), f"vehicle {i} impact"
        if isinstance(v, IDMVehicle):
            assert abs(state.timer[b, i].item() - v.timer) <= 1e-12, f"vehicle {i} timer"
    return err


@pytest.mark.parametrize("kind", ["meta", "accel", "continuous"])
def test_one_step_parity_with_highway_env(kind: str) -> None:
    changing = 0
    worst = {"position": 0.0, "heading": 0.0, "speed": 0.0}
    for seed in range(4):
        env = _env(kind)
        env.reset(seed=seed)
        rng = np.random.default_rng(seed)
        u = env.unwrapped
        for _ in range(int(rng.integers(3, 25))):  # until a traffic lane change is under way
            _, _, term, _, _ = env.step(_benign_action(kind, rng))
            changes = sum(v.lane_index != v.target_lane_index for v in u.road.vehicles[1:])
            if term or changes:
                break
        changing += changes
        state = from_highway_env([env])
        action = _benign_action(kind, rng)
        obs, r, term, trunc, _ = env.step(action)
        state = step(state, torch.as_tensor(np.array([action])))
        for k, e in _compare(state, 0, env).items():
            worst[k] = max(worst[k], e)
        np.testing.assert_allclose(observe(state)[0].numpy(), obs, atol=1e-6)
        assert abs(reward(state)[0].item() - r) <= 1e-9
        assert bool(terminated(state)[0]) == term and bool(truncated(state)[0]) == trunc
    assert changing > 0, "no lane change was under way in the tested states"
    assert max(worst.values()) <= TOL, worst


def test_multi_step_trajectory_parity() -> None:
    """Twelve accel-token steps of a batch of imported episodes track highway-env step by step."""
    envs = [_env("accel") for _ in range(3)]
    for seed, env in enumerate(envs):
        env.reset(seed=100 + seed)
    state = from_highway_env(envs)
    rng = np.random.default_rng(0)
    for _ in range(12):
        actions = [_benign_action("accel", rng) for _ in envs]
        for env, a in zip(envs, actions, strict=True):
            env.step(a)
        state = step(state, torch.tensor(actions))
        for b, env in enumerate(envs):
            assert max(_compare(state, b, env).values()) <= TOL


def test_stock_idm_ego_tracks_highway_env() -> None:
    """The ``idm`` policy: highway-env's IDMVehicle at the wheel (``StockIDMDriver``) imports with
    ``ego_idm`` and drives the same trajectory on both simulators, its own lane changes included."""
    worst, changing = 0.0, 0
    for seed in (1, 10):  # seeds whose IDM ego starts a lane change within a few steps
        env = _env("accel")
        env.reset(seed=seed)
        driver = StockIDMDriver()
        driver.reset(seed, env)
        state = from_highway_env([env])
        assert state.config.ego_idm and state.target_speed[0, 0].item() == IDM_EGO_TARGET_SPEED
        for _ in range(30):
            env.step(driver.act())
            state = step(state, torch.tensor([NEUTRAL_TOKEN]))  # ignored, as by the IDMVehicle
            worst = max(worst, *_compare(state, 0, env).values())
            changing += int(state.lane[0, 0] != state.target_lane[0, 0])
    assert changing > 0, "the IDM ego never changed lanes"
    assert worst <= TOL


def test_stock_idm_ego_spawns_as_highway_env_puts_it() -> None:
    """A batched ``ego_idm`` spawn is what ``StockIDMDriver.reset`` makes of highway-env's ego: default
    IDM exponent, a 30 m/s target, the MOBIL timer from its position; and it round-trips."""
    config = make_config(DENSE, "accel", ego_idm=True)
    state = reset([5, 6], config)
    x, y = state.x[:, 0], state.y[:, 0]
    assert torch.equal(state.timer[:, 0], torch.remainder((x + y) * math.pi, IDMVehicle.LANE_CHANGE_DELAY))
    assert (state.behavior.delta[:, 0] == IDMVehicle.DELTA).all()
    assert (state.target_speed[:, 0] == IDM_EGO_TARGET_SPEED).all() and state.controlled[:, 0].all()
    env = _env("accel")
    env.reset(seed=0)
    to_highway_env(state, 1, env)
    assert type(env.unwrapped.vehicle) is IDMVehicle
    back = from_highway_env([env])
    assert back.config == config
    for name in ("x", "y", "speed", "target_speed", "timer", "lane", "target_lane"):
        assert torch.equal(getattr(back, name)[0], getattr(state, name)[1]), name


def test_accel_lane_matches_accel_tokens() -> None:
    envs = [_env("accel") for _ in range(2)]
    for seed, env in enumerate(envs):
        env.reset(seed=seed)
    tokens = from_highway_env(envs)
    pairs = from_highway_env(envs, accel_kind="accel_lane")
    a = step(tokens, torch.tensor([NEUTRAL_TOKEN - 6 + 1, NEUTRAL_TOKEN + 5]))  # (-0.6, left), (0.8, right)
    b = step(pairs, (torch.tensor([-0.6, 0.8], dtype=torch.float64), torch.tensor([-1, 1])))
    assert torch.equal(a.x, b.x) and torch.equal(a.target_lane, b.target_lane)


def test_same_seed_same_episode_whatever_batch_size() -> None:
    config = make_config(DENSE, "accel")
    seeds = [3, 11, 5, 7]
    rng = np.random.default_rng(1)
    actions = torch.as_tensor(rng.integers(0, 42, size=(10, len(seeds))))
    batch = reset(seeds, config)
    singles = [reset([s], config) for s in seeds]
    for t in range(10):
        batch = step(batch, actions[t])
        singles = [step(s, actions[t, i : i + 1]) for i, s in enumerate(singles)]
    for i, single in enumerate(singles):
        for name in ("x", "y", "heading", "speed", "timer", "target_lane", "crashed"):
            assert torch.equal(getattr(batch, name)[i], getattr(single, name)[0]), name
    assert not torch.equal(batch.x[0], batch.x[1])


@pytest.mark.parametrize(
    ("kind", "bad"),
    [
        ("meta", [float("nan")]),
        ("meta", [5]),
        ("meta", [-1]),
        ("meta", [1.5]),
        ("accel", [42]),
        ("accel", [float("nan")]),
        ("continuous", [[1.5, 0.0]]),
        ("continuous", [[0.0, float("nan")]]),
        ("accel_lane", [[9.0, 0]]),
        ("accel_lane", [[0.0, 2]]),
        ("accel_lane", [[float("nan"), 0]]),
    ],
)
def test_bad_ego_actions_are_refused(kind: str, bad: list) -> None:
    state = reset([0], make_config("drivegpt/Highway-v0", kind))
    with pytest.raises(ValueError, match="must"):
        step(state, bad)


def test_unsupported_env_and_vehicle_are_refused() -> None:
    with pytest.raises(ValueError, match="drivegpt/Highway-v0, drivegpt/HighwayDense-v0"):
        make_config("highway-fast-v0")
    with pytest.raises(ValueError, match="supports"):
        env = gym.make("highway-fast-v0")
        env.reset(seed=0)
        from_highway_env([env])
    env = _env("meta")
    env.reset(seed=0)
    road = env.unwrapped.road
    road.vehicles[3] = LinearVehicle.create_from(road.vehicles[3])
    with pytest.raises(ValueError, match="LinearVehicle"):
        from_highway_env([env])


def test_state_round_trip_through_highway_env() -> None:
    env = _env("accel")
    env.reset(seed=4)
    for _ in range(5):
        env.step(NEUTRAL_TOKEN)
    state = from_highway_env([env])
    other = _env("accel")
    other.reset(seed=99)
    to_highway_env(state, 0, other)
    again = from_highway_env([other])
    for name in (
        "x",
        "y",
        "heading",
        "speed",
        "lane",
        "target_lane",
        "target_speed",
        "timer",
        "crashed",
        "ego_accel",
        "time",
        "steps",
    ):
        assert torch.equal(getattr(state, name), getattr(again, name)), name
    assert torch.equal(state.behavior.delta, again.behavior.delta)


def test_bicycle_model_by_hand() -> None:
    config = make_config("drivegpt/Highway-v0", "continuous")
    s = empty_state(config, 1)
    x, y, h, v, a, delta, dt = 10.0, 4.0, 0.1, 20.0, 1.5, 0.05, 0.2
    present = s.present.clone()
    present[0, 0] = True

    def one(value: float) -> torch.Tensor:
        t = torch.zeros_like(s.x)
        t[0, 0] = value
        return t

    s = s.replace(present=present, x=one(x), y=one(y), heading=one(h), speed=one(v))
    out = bicycle_step(s, one(a), one(delta), dt)
    beta = math.atan(0.5 * math.tan(delta))
    assert out.x[0, 0].item() == pytest.approx(x + v * math.cos(h + beta) * dt, abs=1e-12)
    assert out.y[0, 0].item() == pytest.approx(y + v * math.sin(h + beta) * dt, abs=1e-12)
    assert out.heading[0, 0].item() == pytest.approx(h + v * math.sin(beta) / (LENGTH / 2) * dt, abs=1e-12)
    assert out.speed[0, 0].item() == pytest.approx(v + a * dt, abs=1e-12)
    assert out.lane[0, 0].item() == 1


def test_idm_by_hand() -> None:
    def kin(x: float, v: float, v0: float = 30.0) -> Kin:
        f = torch.tensor([x], dtype=torch.float64)
        return Kin(
            torch.tensor([True]),
            f,
            torch.tensor([v], dtype=torch.float64),
            torch.ones(1, dtype=torch.float64),
            torch.zeros(1, dtype=torch.float64),
            torch.tensor([v0], dtype=torch.float64),
        )

    def params(delta: float) -> IdmParams:
        return IdmParams(*(torch.tensor([t], dtype=torch.float64) for t in (3.0, -5.0, 10.0, 1.5, delta)))

    none = Kin(torch.tensor([False]), *(torch.zeros(1, dtype=torch.float64) for _ in range(5)))
    free = acceleration(kin(0.0, 20.0), none, params(4.0)).item()
    assert free == pytest.approx(3.0 * (1 - (20 / 30) ** 4), abs=1e-12)
    d_star = 10.0 + 20.0 * 1.5 + 20.0 * (20.0 - 15.0) / (2 * math.sqrt(15.0))
    following = acceleration(kin(0.0, 20.0), kin(40.0, 15.0), params(3.7)).item()
    assert following == pytest.approx(3.0 * (1 - (20 / 30) ** 3.7) - 3.0 * (d_star / 40.0) ** 2, abs=1e-12)
    assert KP_A == pytest.approx(1 / 0.6)


def test_reset_matches_highway_env_spawn_distribution() -> None:
    """Distribution parity of spawning (the random numbers themselves differ from highway-env's)."""
    config = make_config(DENSE, "meta")
    state = reset(range(400), config)
    ours = {
        "ego_x": state.x[:, 0].numpy(),
        "gap": (state.x[:, 1:] - state.x[:, :-1])[:, 1:].numpy().ravel(),
        "speed": state.speed[:, 1:].numpy().ravel(),
        "lane": state.lane[:, 1:].numpy().ravel(),
        "delta": state.behavior.delta[:, 1:].numpy().ravel(),
    }
    env = _env("meta")
    ref: dict[str, list] = {k: [] for k in ours}
    for seed in range(40):
        env.reset(seed=seed)
        vs = env.unwrapped.road.vehicles
        xs = np.array([v.position[0] for v in vs])
        ref["ego_x"].append(xs[0])
        ref["gap"].extend(np.diff(xs)[1:])
        ref["speed"].extend(v.speed for v in vs[1:])
        ref["lane"].extend(v.lane_index[2] for v in vs[1:])
        ref["delta"].extend(v.DELTA for v in vs[1:])
    for k, values in ref.items():
        a, b = np.asarray(ours[k], float), np.asarray(values, float)
        se = math.sqrt(a.var() / a.size + b.var() / b.size)
        assert abs(a.mean() - b.mean()) <= 5 * se + 1e-9, k
        assert a.min() >= b.min() - 0.1 * b.std() - 1e-9 and a.max() <= b.max() + 0.1 * b.std() + 1e-9, k
    assert abs(state.x[:, 0].mean().item() - np.mean(ref["ego_x"])) < 5


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu() -> None:
    config = make_config(DENSE, "accel")
    cpu = reset(range(8), config)
    gpu = cpu.to("cuda")
    for _ in range(5):
        a = torch.full((8,), NEUTRAL_TOKEN)
        cpu, gpu = step(cpu, a), step(gpu, a.cuda())
    assert (cpu.x - gpu.x.cpu()).abs().max().item() <= 1e-9


def test_parity_with_per_vehicle_politeness_and_gains() -> None:
    """Per-vehicle MOBIL parameters are imported and used by the vehicle that reasons (politeness > 0)."""
    env = _env("accel")
    env.reset(seed=7)
    rng = np.random.default_rng(7)
    for v in env.unwrapped.road.vehicles[1:]:
        v.POLITENESS = float(rng.uniform(0.0, 1.0))
        v.LANE_CHANGE_MIN_ACC_GAIN = float(rng.uniform(0.0, 0.3))
        v.timer = float(rng.uniform(0.8, 1.0))  # decide within the next sub-steps
    state = from_highway_env([env])
    for _ in range(6):
        env.step(NEUTRAL_TOKEN)
        state = step(state, torch.tensor([NEUTRAL_TOKEN]))
        assert max(_compare(state, 0, env).values()) <= TOL


def test_vector_env_autoreset_and_seeding() -> None:
    from drivegpt.sim.batched.vector_env import BatchedHighwayVectorEnv

    small, large = BatchedHighwayVectorEnv(2, DENSE, "accel"), BatchedHighwayVectorEnv(3, DENSE, "accel")
    obs_small, _ = small.reset(seed=5)
    obs_large, _ = large.reset(seed=5)
    assert obs_small.shape == (2, 10, 7) and small.observation_space.contains(obs_small)
    np.testing.assert_array_equal(obs_small, obs_large[:2])  # an episode does not depend on num_envs
    full_throttle = np.full(2, 39)  # token 39: +3 m/s², keep lane: soon runs into the traffic ahead
    restarted = False
    for _ in range(40):
        _, _, term, trunc, _ = small.step(full_throttle)
        if (term | trunc).any():
            done = term | trunc
            obs, rew, term2, trunc2, _ = small.step(full_throttle)
            assert (rew[done] == 0).all() and not (term2[done] | trunc2[done]).any()
            assert (obs[done][:, 0, 0] == 1).all()
            restarted = True
            break
    assert restarted, "no episode ended within 40 steps"


def test_spawned_episode_written_to_highway_env_steps_alike() -> None:
    """An episode spawned by ``reset`` and written into highway-env evolves the same in both."""
    config = make_config(DENSE, "accel")
    state = reset([21, 22], config)
    env = _env("accel")
    env.reset(seed=0)
    to_highway_env(state, 1, env)
    for token in (NEUTRAL_TOKEN, NEUTRAL_TOKEN + 1, NEUTRAL_TOKEN - 3, NEUTRAL_TOKEN):
        obs, r, _, _, _ = env.step(token)
        state = step(state, torch.tensor([NEUTRAL_TOKEN, token]))
        assert max(_compare(state, 1, env).values()) <= TOL
        np.testing.assert_allclose(observe(state)[1].numpy(), obs, atol=1e-6)
        assert abs(reward(state)[1].item() - r) <= 1e-9
