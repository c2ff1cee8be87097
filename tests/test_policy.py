import numpy as np
import pytest

from drivegpt.core.errors import UserError
from drivegpt.eval.closed_loop import evaluate
from drivegpt.model.checkpoint import CheckpointError
from drivegpt.policies.registry import SHIPPED_CHECKPOINT, DrivePolicy, load_policy
from drivegpt.sim.rollout import make_env, run_episode


def test_every_driver_follows_the_protocol():
    for spec in ["human", "idm", "drivegpt"]:
        assert isinstance(load_policy(spec), DrivePolicy), spec


def test_unknown_spec_lists_valid_kinds():
    with pytest.raises(ValueError, match="valid kinds: human, idm, drivegpt"):
        load_policy("robot:1")


def test_shipped_checkpoint_is_small_and_drives_any_stock_env():
    size = sum(f.stat().st_size for f in SHIPPED_CHECKPOINT.iterdir())
    assert size < 5_000_000
    pol = load_policy("drivegpt")
    assert pol.action_kind == "accel" and pol.K * pol.env_config["policy_frequency"] >= 20  # >= 4 s
    for env_id in ["highway-fast-v0", "drivegpt/Merge-v0"]:
        env = make_env(env_id, pol.action_kind, pol.env_config)
        ep = run_episode(env, pol, seed=1_000_000, max_steps=5)
        assert set(np.unique(ep.actions)) <= set(range(42))


def test_the_meta_checkpoint_still_ships_and_drives_meta():
    pol = load_policy(f"drivegpt:{SHIPPED_CHECKPOINT.parent / 'drivegpt-meta-small'}")
    assert pol.action_kind == "meta"
    env = make_env("drivegpt/Highway-v0", "meta", pol.env_config)
    ep = run_episode(env, pol, seed=1_000_000, max_steps=3)
    assert set(np.unique(ep.actions)) <= set(range(5))


def test_a_policy_on_an_env_of_another_interface_is_a_one_line_error():
    pol = load_policy("drivegpt")
    env = make_env("drivegpt/Highway-v0", "meta")
    env.reset(seed=0)
    expected = "trained on the 'accel' action interface, the env uses 'meta'"
    with pytest.raises(CheckpointError, match=expected) as err:
        pol.reset(seed=0, env=env)
    msg = str(err.value)
    assert "\n" not in msg and str(SHIPPED_CHECKPOINT / "policy.json") in msg and "make_env(" in msg


def test_constant_specs_of_every_interface():
    assert load_policy("constant:-3,keep").action_kind == "accel"
    assert load_policy("constant:token:24").action == 24
    assert load_policy("constant:FASTER").action_kind == "meta"
    assert load_policy("constant:0.5,0").action_kind == "continuous"
    assert load_policy("constant:99,keep").action == load_policy("constant:3,keep").action  # the top bin
    for bad, says in (("token:42", "token:N"), ("nan,keep", "token:N"), ("inf,left", "token:N"),
                      ("nan,0", r"in \[-1, 1\]"), ("1.5,0", r"in \[-1, 1\]")):  # fmt: skip
        with pytest.raises(UserError, match=says):  # one line, no traceback
            load_policy(f"constant:{bad}")


def test_same_seed_same_drivegpt_episode():
    # the merge (passed in ~15 s) is half as long as the 30 s highway and has traffic to react to
    a, _ = evaluate("drivegpt", "drivegpt/Merge-v0", episodes=1, workers=1, progress=False)
    b, _ = evaluate("drivegpt", "drivegpt/Merge-v0", episodes=1, workers=1, progress=False)
    assert a == b and a["km_driven"] > 0


def test_sb3_policy_spec(tmp_path):
    from stable_baselines3 import DQN

    env = make_env("drivegpt/Highway-v0", "meta", {"duration": 3})
    model = DQN("MlpPolicy", env, learning_starts=10, buffer_size=100, seed=0)
    model.learn(12)
    model.save(tmp_path / "dqn.zip")
    pol = load_policy(f"sb3-dqn:{tmp_path / 'dqn.zip'}")
    assert pol.action_kind == "meta"
    ep = run_episode(env, pol, seed=5)
    assert len(ep.actions) >= 1
    with pytest.raises(FileNotFoundError, match="no such SB3 model"):
        load_policy(f"sb3-ppo:{tmp_path / 'none.zip'}")
