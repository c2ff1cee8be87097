"""The batched human (drivegpt.sim.batched.human) against HumanDriver, by hand, and across batch sizes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from drivegpt.core.errors import UserError
from drivegpt.sim import batched
from drivegpt.sim.batched.config import LANE_WIDTH
from drivegpt.sim.batched.human import BatchedHuman, Personalities, human_idm, tokens
from drivegpt.sim.human import HumanDriver, idm_acceleration
from drivegpt.sim.personality import Personality
from drivegpt.sim.rollout import make_env
from drivegpt_envs.actions import ACCEL_BINS, KEEP, LEFT, RIGHT, decode_accel_lane, encode_accel_lane

ENV = "drivegpt/HighwayDense-v0"
STEPS = 30  # [policy steps] of the highway-env rollout (6 s of dense traffic)
#: drivers whose MOBIL is consulted at every recorded state: eager ones change lanes often.
PERSONALITIES = (
    Personality(desired_speed=30.0, politeness=0.0, lane_change_threshold=0.0, min_gap=2.0),
    Personality(desired_speed=29.0, politeness=0.5, lane_change_threshold=0.05, time_headway=1.2),
    Personality(),
)


@pytest.fixture(scope="module")
def rollout() -> dict:
    """The human drives highway-env's dense traffic; every state is imported with from_highway_env.

    Recorded per step: the imported state, HumanDriver's executed token and clean decision, the
    batched human's on the imported state, and each PERSONALITIES driver's decision with MOBIL
    consulted (lane-change timer elapsed).
    """
    seed = 7  # a stretch with braking, speeding up and room to change lanes
    env = make_env(ENV, "accel")
    env.reset(seed=seed)
    human = HumanDriver()
    human.reset(seed, env)
    first = batched.from_highway_env([env])
    twin = BatchedHuman(first.config)
    twin.reset([seed], first)
    out: dict = {"states": [], "executed": [], "decision": [], "twin": [], "twin_decision": [], "eager": []}
    for _ in range(STEPS):
        state = batched.from_highway_env([env])
        eager = []
        for p in PERSONALITIES:
            probe = HumanDriver(personality=p)
            probe.reset(seed, env)
            probe.since_lane_change = HumanDriver.LANE_CHANGE_PERIOD
            probe.act()
            eager.append(probe.decision)
        out["eager"].append(eager)
        out["twin"].append(int(twin.act(state)[0]))
        out["twin_decision"].append(int(twin.decision[0]))
        action = human.act()
        out["states"].append(state)
        out["executed"].append(int(action))
        out["decision"].append(int(human.decision))
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            break
    env.close()
    out["seed"] = seed
    return out


def test_rollout_tokens_equal_human_driver_step_by_step(rollout: dict) -> None:
    """Same seed: the same personality, noise, delay queue and lane-change timer, so every token agrees."""
    assert len(rollout["states"]) == STEPS
    assert rollout["twin_decision"] == rollout["decision"]
    assert rollout["twin"] == rollout["executed"]
    assert len(set(rollout["decision"])) > 3  # the driver did brake and accelerate, not hold one token


def test_clean_decision_equals_human_driver_on_every_state_and_personality(rollout: dict) -> None:
    """All recorded states in one batch, MOBIL consulted: decisions agree token for token."""
    state = batched.concat(rollout["states"])  # (B = STEPS) one episode per recorded state
    changes = 0
    for i, p in enumerate(PERSONALITIES):
        driver = BatchedHuman(state.config, personality=p)
        driver.reset([rollout["seed"]] * state.batch_size, state)
        driver.since_lane_change = torch.full_like(driver.since_lane_change, HumanDriver.LANE_CHANGE_PERIOD)
        driver.act(state)
        expected = [row[i] for row in rollout["eager"]]
        assert driver.decision.tolist() == expected, f"personality {i}"
        changes += sum(t % 3 != KEEP for t in expected)
    assert changes >= 10, "the states must exercise MOBIL lane changes"


def test_idm_is_human_driver_idm_value_for_value() -> None:
    rng = np.random.default_rng(0)
    p = Personality(desired_speed=27.0, time_headway=1.4, min_gap=2.5)
    rows = [(rng.uniform(0, 35), rng.uniform(0.0, 80.0), rng.uniform(-10, 10)) for _ in range(200)]
    rows += [(20.0, 0.05, 3.0), (0.0, 10.0, -5.0), (30.0, 1.0, 30.0)]  # tiny gap, standstill, closing fast
    speed, gap, closing = (torch.tensor(c, dtype=torch.float64) for c in zip(*rows, strict=True))
    ps = Personalities.stack([p] * len(rows), speed)
    got = human_idm(speed, ps.desired_speed, gap, closing, torch.ones_like(gap, dtype=torch.bool), ps)
    want = [idm_acceleration(v, p.desired_speed, g, c, p) for v, g, c in rows]
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12)
    free = human_idm(speed, ps.desired_speed, gap, closing, torch.zeros_like(gap, dtype=torch.bool), ps)
    np.testing.assert_allclose(free.numpy(), [idm_acceleration(v, 27.0, None, 0.0, p) for v, _, _ in rows])


def test_tokens_encode_like_the_accel_language() -> None:
    acc = torch.tensor([-20.0, -7.0, -0.4, 0.0, 0.15, 0.16, 2.6, 9.0], dtype=torch.float64)
    intent = torch.tensor([KEEP, LEFT, RIGHT, KEEP, KEEP, LEFT, RIGHT, KEEP])
    want = [
        int(encode_accel_lane(max(min(a, 3.0), -8.0), i))
        for a, i in zip(acc.tolist(), intent.tolist(), strict=True)
    ]
    assert tokens(acc, intent).tolist() == want


def scene(ego: tuple[int, float], others: list[tuple[int, float, float]], lanes_speed: float = 0.0):
    """One hand-built episode of ``ENV``: the ego (lane, speed [m/s]) at x = 200 m and other vehicles
    (lane, distance ahead [m], speed [m/s]); every other slot is empty."""
    state = batched.reset([0], batched.make_config(ENV, "accel"))
    n = state.slots
    present = torch.zeros(1, n, dtype=torch.bool)
    x, speed = torch.full((1, n), 0.0, dtype=torch.float64), torch.zeros(1, n, dtype=torch.float64)
    lane = torch.zeros(1, n, dtype=torch.long)
    for slot, (k, dx, v) in enumerate([(ego[0], 0.0, ego[1]), *others]):
        present[0, slot], x[0, slot], speed[0, slot], lane[0, slot] = True, 200.0 + dx, v, k
    return state.replace(
        present=present,
        x=x,
        y=lane.to(torch.float64) * LANE_WIDTH,
        heading=torch.zeros_like(x),
        speed=speed,
        lane=lane,
        target_lane=lane.clone(),
    )


def decide(state, personality: Personality | None = None, consult: bool = True) -> tuple[float, int]:
    """(acceleration bin [m/s²], lane intent) of the clean decision on a one-episode state."""
    driver = BatchedHuman(state.config, personality=personality or Personality())
    driver.reset([0], state)
    if consult:
        driver.since_lane_change += HumanDriver.LANE_CHANGE_PERIOD
    driver.act(state)
    acc, intent = decode_accel_lane(int(driver.decision[0]))
    return float(acc), int(intent)


def test_free_road_idm_value_and_emergency_braking_by_hand() -> None:
    p = Personality()  # v0 27 m/s, T 1.5 s, s0 3 m, a 3 m/s², b 4 m/s²
    free = 3.0 * (1 - (20.0 / 27.0) ** 4)  # 2.0967 m/s² -> the 2.2 m/s² bin
    assert math.isclose(free, 2.0967, abs_tol=1e-4)
    assert decide(scene((1, 20.0), []), p, consult=False) == (2.2, KEEP)
    # 30 m ahead (25 m bumper to bumper), 10 m/s slower: s* = 3 + 30 + 20 * 10 / (2 sqrt(12)) = 61.87 m
    s_star = 3.0 + 20.0 * 1.5 + 20.0 * 10.0 / (2 * math.sqrt(12.0))
    assert 3.0 * (1 - (20 / 27) ** 4 - (s_star / 25.0) ** 2) < -8.0  # beyond the table: full braking
    assert decide(scene((1, 20.0), [(1, 30.0, 10.0)]), p, consult=False) == (ACCEL_BINS[0], KEEP)


def test_lane_intent_goes_where_mobil_gains_and_never_off_the_road() -> None:
    # a slow lead 60 m ahead (IDM -0.13 m/s²: mild, so the lane intent is not suppressed by braking)
    slow_lead, blocker = (0.0, 60.0, 15.0), (0.0, 1.0, 20.0)  # (lane placeholder, dx [m], speed [m/s])
    # lane 1 with a slow lead, lane 0 free, lane 2 blocked alongside: change left
    assert decide(scene((1, 20.0), [(1, *slow_lead[1:]), (2, *blocker[1:])]))[1] == LEFT
    # the mirror: lane 1 with a slow lead, lane 2 free, lane 0 blocked: change right
    assert decide(scene((1, 20.0), [(1, *slow_lead[1:]), (0, *blocker[1:])]))[1] == RIGHT
    # lane 0 (the road's left edge) with the same slow lead and lane 1 blocked: no lane left of it
    assert decide(scene((0, 20.0), [(0, *slow_lead[1:]), (1, *blocker[1:])]))[1] == KEEP
    # lane 2 (the right edge, 3 lanes) likewise never turns right
    assert decide(scene((2, 20.0), [(2, *slow_lead[1:]), (1, *blocker[1:])]))[1] == KEEP
    # the timer: MOBIL is not consulted before LANE_CHANGE_PERIOD has passed
    assert decide(scene((1, 20.0), [(1, *slow_lead[1:]), (2, *blocker[1:])]), consult=False)[1] == KEEP


def drive(seeds: list[int], steps: int = 8) -> torch.Tensor:
    """(B, steps) executed tokens of the batched human on the batched simulator."""
    state = batched.reset(seeds, batched.make_config(ENV, "accel"))
    driver = BatchedHuman(state.config)
    driver.reset(seeds, state)
    out = []
    for _ in range(steps):
        out.append(driver.act(state))
        state = batched.step(state, out[-1])
    return torch.stack(out, 1)


def test_same_seeds_same_tokens_whatever_the_batch_size() -> None:
    seeds = [11, 12, 13, 14]
    whole = drive(seeds)
    assert torch.equal(drive(seeds[2:3]), whole[2:3])
    assert torch.equal(drive(seeds[::-1]), whole.flip(0))
    assert not torch.equal(whole[0], whole[1])  # different seeds, different drivers


def test_clone_and_select_are_independent_copies() -> None:
    seeds = [21, 22, 23]
    state = batched.reset(seeds, batched.make_config(ENV, "accel"))
    driver = BatchedHuman(state.config)
    driver.reset(seeds, state)
    driver.act(state)
    twin, part = driver.clone(), driver.select([2])
    state = batched.step(state, driver.decision)
    a = driver.act(state)
    assert torch.equal(twin.act(state), a)
    assert torch.equal(part.act(state.select([2])), a[2:])
    assert int(twin.t[0]) == 2 and int(part.t[0]) == 2 and int(driver.select([0]).t[0]) == 2
    fresh = BatchedHuman(state.config)
    fresh.reset([99], state.select([0]))
    spliced = driver.put(torch.tensor([1]), fresh)  # episode 1 restarts with the driver of seed 99
    assert spliced.t.tolist() == [2, 0, 2] and int(driver.t[1]) == 2
    assert float(spliced.p.desired_speed[1]) == float(fresh.p.desired_speed[0])


def test_other_interfaces_are_refused_with_the_supported_one() -> None:
    with pytest.raises(UserError, match="accel"):
        BatchedHuman(batched.make_config(ENV, "meta"))


def test_collect_on_the_batched_simulator_logs_the_human_of_each_seed(tmp_path) -> None:
    from typer.testing import CliRunner

    from drivegpt.cli.app import app
    from drivegpt.data.logs import load_logs
    from drivegpt.sim.personality import PersonalityRanges

    config = tmp_path / "c.yaml"
    scenario = "{env_id: drivegpt/Highway-v0, config: {duration: 3}}"
    config.write_text(f"action: accel\nepisodes: 3\nseed: 40\nscenarios:\n  - {scenario}\n")
    out = tmp_path / "logs"
    args = ["collect", "--config", str(config), "--out", str(out), "--sim", "batched", "--batch", "2"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    episodes = list(load_logs(out).episodes())
    assert [ep.seed for ep in episodes] == [40, 41, 42]
    for ep in episodes:
        assert len(ep.actions) == 15 and ep.observations.shape == (16, 10, 7)  # 3 s at 5 Hz, no crash
        assert ep.actions.min() >= 0 and ep.actions.max() < 42 and len(ep.decisions) == 15
        person = PersonalityRanges().sample(np.random.default_rng([ep.seed, 0x48554D]))  # HumanDriver's
        assert ep.meta["personality"] == pytest.approx(person.to_dict()) and ep.meta["sim"] == "batched"
    merge = tmp_path / "m.yaml"
    merge.write_text("episodes: 2\nscenarios:\n  - {env_id: drivegpt/Merge-v0}\n")
    r = CliRunner().invoke(
        app, ["collect", "--config", str(merge), "--out", str(tmp_path / "m"), "--sim", "batched"]
    )
    assert r.exit_code == 2 and "no batched port" in r.output and "drivegpt/Highway-v0" in r.output


def test_collect_auto_drives_each_scenario_on_its_simulator_whatever_the_batch(tmp_path) -> None:
    from drivegpt.core.config import load_config
    from drivegpt.data.collect import CollectConfig, collect, collect_simulators
    from drivegpt.data.logs import load_logs

    config = tmp_path / "c.yaml"
    config.write_text(
        "episodes: 5\nseed: 7\nworkers: 1\nscenarios:\n"
        "  - {env_id: drivegpt/Highway-v0, config: {duration: 2}}\n"
        "  - {env_id: drivegpt/Merge-v0, config: {duration: 2}}\n"
    )
    cfg = load_config(CollectConfig, config)
    assert cfg.sim == "auto" and collect_simulators(cfg) == ("batched", "highway-env")
    bad = tmp_path / "bad.yaml"
    bad.write_text(config.read_text() + "sim: gpu\n")
    with pytest.raises(UserError, match=r"bad.yaml: bad value for 'sim'.*'auto', 'highway-env' or 'batched'"):
        load_config(CollectConfig, bad)
    assert collect_simulators(cfg.model_copy(update={"sim": "highway-env"})) == ("highway-env",) * 2
    meta_cfg = cfg.model_copy(update={"action": "meta"})  # no batched human for meta-actions
    assert collect_simulators(meta_cfg) == ("highway-env", "highway-env")
    runs = []
    for batch in (1, 4):
        out = collect(cfg.model_copy(update={"batch": batch}), tmp_path / f"b{batch}", progress=False)
        runs.append(list(load_logs(out).episodes()))
    scenario = [ep.meta["scenario"] for ep in runs[0]]
    assert [ep.seed for ep in runs[0]] == list(range(7, 12)) and set(scenario) == {0, 1}
    assert [ep.meta["sim"] for ep in runs[0]] == [("batched", "highway-env")[k] for k in scenario]
    for a, b in zip(*runs, strict=True):  # the batch size changes nothing
        np.testing.assert_array_equal(a.observations, b.observations)
        np.testing.assert_array_equal(a.actions, b.actions)
        assert a.meta == b.meta


def test_batched_evaluation_drives_the_human_and_counts_lane_changes() -> None:
    from drivegpt.sim.batched.drive import drive_batch

    config = batched.make_config("drivegpt/Highway-v0", "accel", {"duration": 2})  # 2 s
    seeds = [1_000_000, 1_000_001, 1_000_002]
    out = drive_batch(BatchedHuman(config), config, seeds)
    # 10 steps of 0.2 s sum to 1.999... s < 2 s (float time, as in highway-env): truncated after 11
    assert out["steps"].tolist() == [11, 11, 11] and not out["crashed"].any()
    driven = [s.mean() * 11 * 0.2 for s in out["speeds"]]  # [m] mean speed x time
    np.testing.assert_allclose(out["distance_m"], driven, rtol=0.1)
    assert out["lane_changes"].shape == (3,) and (out["lane_changes"] >= 0).all()


def test_correlated_noise_matches_human_driver_and_is_ar1_by_hand() -> None:
    """``noise_correlation`` rho: both humans draw the same AR(1) noise e_t = rho e_(t-1) + sqrt(1 - rho²) z_t
    from the seed's normals, token for token; its lag-1 correlation is rho and its variance 1."""
    noisy = Personality(action_noise=0.3)  # a noise std of 1.5 m/s²
    seed = 3
    env = make_env(ENV, "accel")
    env.reset(seed=seed)
    human = HumanDriver(personality=noisy, noise_correlation=0.9)
    human.reset(seed, env)
    first = batched.from_highway_env([env])
    twin = BatchedHuman(first.config, personality=noisy, noise_correlation=0.9)
    twin.reset([seed], first)
    z = twin.noise[0].tolist()
    expected = z[0]
    for t in range(20):
        token = int(twin.act(batched.from_highway_env([env]))[0])
        action = human.act()
        assert token == int(action) and float(twin.noise_state[0]) == human.noise_state
        if t:
            expected = 0.9 * expected + math.sqrt(1 - 0.81) * z[t]
        assert float(twin.noise_state[0]) == pytest.approx(expected, abs=1e-12)
        _, _, terminated, truncated, _ = env.step(action)
        assert not (terminated or truncated)
    env.close()
    state = batched.reset(range(400), batched.make_config(ENV, "accel"))
    crowd = BatchedHuman(state.config, personality=noisy, noise_correlation=0.9)
    crowd.reset(list(range(400)), state)
    e = []
    for _ in range(120):  # the same state each time: only the noise moves
        crowd.act(state)
        e.append(crowd.noise_state.clone())
    e = torch.stack(e)  # (T, B)
    assert float(e.var()) == pytest.approx(1.0, abs=0.06)
    lag1 = float((e[1:] * e[:-1]).mean() / (e * e).mean())
    assert lag1 == pytest.approx(0.9, abs=0.02)
    with pytest.raises(ValueError, match="noise_correlation"):
        BatchedHuman(state.config, noise_correlation=1.0)
    with pytest.raises(ValueError, match="noise_correlation"):
        HumanDriver(noise_correlation=-0.1)


@pytest.mark.parametrize("sim", ["batched", "highway-env"])
def test_collect_drives_the_noise_injection_on_either_simulator(tmp_path, sim) -> None:
    """``noise_correlation`` and ``lapses`` reach the driver: with the same seeds and personalities the
    executed tokens change, the first decision (the label, before any noise acted) does not."""
    from drivegpt.core.config import ConfigError, load_config
    from drivegpt.data.collect import CollectConfig, collect
    from drivegpt.data.logs import load_logs

    text = (
        f"action: accel\nepisodes: 2\nseed: 5\nsim: {sim}\nworkers: 1\n"
        "personality: {action_noise: [0.3, 0.3]}\n"
        "scenarios:\n  - {env_id: drivegpt/Highway-v0, config: {duration: 3}}\n"
    )
    logs = {}
    variants = {
        "white": "",
        "ar": "noise_correlation: 0.9\n",
        "lapses": "lapses: {rate: 2.0, seconds: [1, 2]}\n",
    }
    for name, extra in variants.items():
        (tmp_path / f"{name}.yaml").write_text(text + extra)
        cfg = load_config(CollectConfig, tmp_path / f"{name}.yaml")
        collect(cfg, tmp_path / name, progress=False)
        logs[name] = list(load_logs(tmp_path / name).episodes())
    for name in ("ar", "lapses"):
        pairs = list(zip(logs["white"], logs[name], strict=True))
        assert any(not np.array_equal(a.actions, b.actions) for a, b in pairs), name
        for a, b in pairs:
            assert a.decisions[0] == b.decisions[0] and a.meta["personality"] == b.meta["personality"]
    for bad, key in (
        ("noise_correlation: 1.0\n", "noise_correlation"),
        ("lapses: {rate: 1, seconds: [2, 1]}\n", "lapses"),
    ):
        (tmp_path / "bad.yaml").write_text(text + bad)
        with pytest.raises(ConfigError, match=key):
            load_config(CollectConfig, tmp_path / "bad.yaml")


def test_lapse_schedule_by_hand() -> None:
    """A lapse starts where the seed's uniform draw falls below 1 - exp(-rate dt) and lasts its drawn
    length in whole decisions; rate 0 has none; the schedule depends on the seed only."""
    from drivegpt.sim.personality import LAPSE_STEPS, LAPSE_STREAM, Lapses

    lapses = Lapses(rate=0.5, seconds=(1.0, 2.0))
    got = lapses.schedule(11, 0.2)
    rng = np.random.default_rng([11, LAPSE_STREAM])
    start, length = rng.random(LAPSE_STEPS), rng.uniform(1.0, 2.0, LAPSE_STEPS)
    want, t = np.zeros(LAPSE_STEPS, bool), 0
    while t < LAPSE_STEPS:
        if start[t] < 1 - math.exp(-0.5 * 0.2):
            n = round(length[t] / 0.2)
            assert 5 <= n <= 10  # 1-2 s of 0.2 s decisions
            want[t : t + n], t = True, t + n
        else:
            t += 1
    np.testing.assert_array_equal(got, want)
    assert 0 < got.mean() < 1
    np.testing.assert_array_equal(lapses.schedule(11, 0.2), got)
    assert not Lapses().schedule(11, 0.2).any()
    # the share of decisions in a lapse: rate x mean length / (1 + rate x mean length) for a renewal process
    share = np.mean([Lapses(rate=0.2, seconds=(1.0, 2.0)).schedule(s, 0.2).mean() for s in range(400)])
    assert share == pytest.approx(0.3 / 1.3, abs=0.03)
    with pytest.raises(ValueError, match="lapses.seconds"):
        Lapses(rate=0.1, seconds=(2.0, 1.0))


def test_lapses_match_human_driver_and_hold_the_executed_acceleration() -> None:
    """During a lapse both humans execute the acceleration they executed just before, token for token,
    while the clean decision keeps following the traffic."""
    from drivegpt.sim.personality import Lapses

    lapses = Lapses(rate=1.0, seconds=(1.0, 1.6))
    noisy = Personality(action_noise=0.1, reaction_delay=0.0)
    seed = 3
    env = make_env(ENV, "accel")
    env.reset(seed=seed)
    human = HumanDriver(personality=noisy, lapses=lapses)
    human.reset(seed, env)
    first = batched.from_highway_env([env])
    twin = BatchedHuman(first.config, personality=noisy, lapses=lapses)
    twin.reset([seed], first)
    schedule = twin.lapsed[0].tolist()
    assert schedule == human.lapsed.tolist() and any(schedule[1:25])
    executed = []
    for t in range(25):
        token = int(twin.act(batched.from_highway_env([env]))[0])
        action = human.act()
        assert token == int(action) and int(twin.decision[0]) == int(human.decision)
        if t and schedule[t]:
            assert human.last_acc == executed[-1]  # the foot stays where it was
        executed.append(human.last_acc)
        _, _, terminated, truncated, _ = env.step(action)
        assert not (terminated or truncated)
    env.close()
    held = [t for t in range(1, 25) if schedule[t]]
    assert len({executed[t] for t in held}) < len(held)  # held values repeat
