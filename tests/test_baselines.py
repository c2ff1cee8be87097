import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from tqdm import TqdmExperimentalWarning
from typer.testing import CliRunner

from drivegpt.cli.app import app
from drivegpt.core.config import ConfigError, config_from_dict, load_config
from drivegpt.core.errors import UserError
from drivegpt.model.checkpoint import CheckpointError
from drivegpt.policies.registry import SB3Policy, load_policy, policy_action_kind
from drivegpt.policies.sb3 import (
    _sb3_kwargs,
    load_exported_policy,
    make_vec_env,
    space_from_json,
    space_to_json,
    train_baseline,
)
from drivegpt.policies.sb3_config import ACTIVATIONS, BaselineConfig, algo_class
from drivegpt.sim.rollout import make_env, run_episode
from drivegpt_envs.actions import ACCEL_BINS, LANE_INTENTS

runner = CliRunner()


@pytest.fixture(scope="module")
def ppo_run(tmp_path_factory):
    """A tiny PPO trained through the CLI (2 subprocess envs)."""
    out = tmp_path_factory.mktemp("baseline") / "ppo"
    args = ["baseline", "train", "--algo", "ppo", "--config", "configs/baselines/tiny-ppo.yaml"]
    r = runner.invoke(app, [*args, "--steps", "64", "--out", str(out)])  # one rollout of 2 x 32
    assert r.exit_code == 0, r.output
    (out.parent / "output.txt").write_text(r.output)
    return out


def test_training_progress_is_plain_lines_in_a_log(ppo_run):
    """Off a terminal the run's progress goes through the project's bar: plain lines, the last at
    64 of 64 steps, none of the carriage returns a live bar redraws with."""
    output = (ppo_run.parent / "output.txt").read_text()
    lines = [line for line in output.splitlines() if line.startswith("baseline ppo")]
    assert lines and "64/64" in lines[-1] and "\r" not in output


def _observations(n: int = 40) -> np.ndarray:
    env = make_env("drivegpt/Highway-v0", "meta")
    obs = [env.reset(seed=s)[0] for s in range(n)]
    return np.stack(obs)  # (n, V, F)


def test_training_leaves_its_logs_closed(ppo_run):
    """After ``baseline train`` returns, no file of the run is still open (progress.csv is flushed)."""
    import os

    fds = Path("/proc/self/fd")
    if not fds.is_dir():
        pytest.skip("needs /proc")
    run = str(ppo_run.resolve())
    open_files = [os.readlink(fd) for fd in fds.iterdir() if fd.is_symlink()]
    assert not [f for f in open_files if f.startswith(run)]
    rows = (ppo_run / "progress.csv").read_text().splitlines()
    assert len(rows) >= 2  # the header and the one rollout's row


def test_cli_train_writes_run_and_drives(ppo_run, tmp_path):
    for f in ["policy/policy.safetensors", "policy/policy.json", "checkpoint/model.zip"]:
        assert (ppo_run / f).is_file(), f
    assert "drivegpt baseline train" in json.loads((ppo_run / "run.json").read_text())["command"]
    assert json.loads((ppo_run / "train.json").read_text())["steps"] == 64
    assert (ppo_run / "progress.csv").read_text().startswith(("rollout", "time", "train"))
    trained = load_config(BaselineConfig, "configs/baselines/tiny-ppo.yaml")
    assert policy_action_kind(f"sb3-ppo:{ppo_run}") == trained.action  # the language it was trained in
    env = make_env(trained.env_id, trained.action)
    ep = run_episode(env, load_policy(f"sb3-ppo:{ppo_run}"), seed=1_000_000)
    assert len(ep.actions) >= 1 and all(env.action_space.contains(a) for a in ep.actions.tolist())
    with pytest.raises(CheckpointError, match="sb3-ppo"):
        policy_action_kind(f"sb3-dqn:{ppo_run}")  # wrong algo prefix caught from the JSON alone


def test_safetensors_export_acts_like_the_sb3_model(ppo_run):
    from stable_baselines3 import PPO

    model = PPO.load(ppo_run / "checkpoint" / "model.zip", device="cpu")  # our own file
    exported = SB3Policy("sb3-ppo", str(ppo_run))
    obs = _observations()
    want, _ = model.predict(obs, deterministic=True)
    assert np.array_equal(exported.act_batch(obs), want)
    assert [exported.act(o) for o in obs] == want.tolist()
    for k, v in model.policy.state_dict().items():
        torch.testing.assert_close(exported.policy.state_dict()[k], v, rtol=0, atol=0)


def test_dqn_round_trip_and_resume(tmp_path):
    from stable_baselines3 import DQN

    cfg = load_config(BaselineConfig, "configs/baselines/tiny-dqn.yaml", {"total_steps": 40})
    threads = torch.get_num_threads()
    train_baseline(cfg, tmp_path / "dqn", progress=False)
    assert torch.get_num_threads() == threads  # the trainer's 1-thread setting does not leak
    with pytest.raises(FileExistsError, match="--resume"):
        train_baseline(cfg, tmp_path / "dqn", progress=False)
    more = cfg.model_copy(update={"total_steps": 56})
    figures = train_baseline(more, tmp_path / "dqn", resume=True, progress=False)
    assert figures["steps"] == 56  # continued from 40, not restarted
    policy, meta = load_exported_policy(tmp_path / "dqn", "dqn")
    env = make_env(cfg.env_id, cfg.action, dict(cfg.env_config))
    assert meta["steps"] == 56 and meta["action_space"] == space_to_json(env.action_space)
    model = DQN.load(tmp_path / "dqn" / "checkpoint" / "model.zip", device="cpu")
    obs = _observations(20)
    want, _ = model.predict(obs, deterministic=True)
    assert np.array_equal(policy.predict(obs, deterministic=True)[0], want)


def test_unknown_hyperparameter_is_rejected_with_the_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown dqn hyperparameter\(s\) \['n_epochs'\].*learning_starts"):
        config_from_dict(BaselineConfig, {"algo": "dqn", "hyperparams": {"n_epochs": 3}})
    with pytest.raises(ConfigError, match="activation_fn"):
        config_from_dict(BaselineConfig, {"hyperparams": {"policy_kwargs": {"activation_fn": "nn.Tanh()"}}})
    with pytest.raises(ConfigError, match="discrete"):
        config_from_dict(BaselineConfig, {"algo": "dqn", "action": "continuous"})
    r = runner.invoke(app, ["baseline", "train", "--algo", "a2c", "--out", "x"])
    assert r.exit_code == 2 and "'dqn', 'ppo'" in " ".join(r.output.replace("│", " ").split())


def _widths(net: torch.nn.Module) -> list[int]:
    return [m.out_features for m in net.modules() if isinstance(m, torch.nn.Linear)]


def test_shipped_configs_build_the_models_they_describe() -> None:
    paths = sorted(Path("configs/baselines").glob("*.yaml"))
    assert {p.stem for p in paths} >= {"dqn", "ppo", "tiny-dqn", "tiny-ppo"}
    for path in paths:
        written = yaml.safe_load(path.read_text())
        cfg = load_config(BaselineConfig, path)
        assert {k: cfg.to_dict()[k] for k in written} == written, path  # nothing dropped or defaulted
        if cfg.sim == "batched":  # the env it trains on: n_envs episodes stepped together
            env = make_vec_env(cfg)
            assert env.num_envs * cfg.hyperparams["n_steps"] % cfg.hyperparams["batch_size"] == 0, path
        else:
            env = make_env(cfg.env_id, cfg.action, dict(cfg.env_config))
        model = algo_class(cfg.algo)("MlpPolicy", env, device="cpu", **_sb3_kwargs(cfg))
        hp = dict(written["hyperparams"])
        pk = hp.pop("policy_kwargs")
        arch = pk["net_arch"]
        if "train_freq" in hp:  # SB3 wraps it: TrainFreq(frequency, unit)
            assert model.train_freq.frequency == hp.pop("train_freq"), path
        assert {k: getattr(model, k) for k in hp} == hp, path  # every hyperparameter reaches SB3
        if cfg.algo == "dqn":  # hidden layers, then one Q-value per action
            assert _widths(model.q_net.q_net) == [*arch, env.action_space.n], path
        else:
            assert _widths(model.policy.mlp_extractor.policy_net) == arch["pi"], path
            assert _widths(model.policy.mlp_extractor.value_net) == arch["vf"], path
        if "activation_fn" in pk:
            assert isinstance(model.policy.activation_fn(), ACTIVATIONS[pk["activation_fn"]]), path


def test_space_json_round_trip():
    import gymnasium as gym

    box = gym.spaces.Box(-np.inf, np.inf, (10, 7), np.float32)
    d = space_to_json(box)
    json.dumps(d, allow_nan=False)  # strict JSON
    assert space_from_json(d) == box
    mixed = gym.spaces.Box(np.array([-1.0, 0.0], np.float32), np.array([1.0, 2.0], np.float32))
    assert space_from_json(json.loads(json.dumps(space_to_json(mixed)))) == mixed


def test_batched_sb3_vec_env_restarts_ended_episodes_in_the_same_step() -> None:
    from drivegpt.sim.batched.sb3_vec_env import BatchedSB3VecEnv
    from drivegpt.sim.batched.vector_env import BatchedHighwayVectorEnv

    vec = BatchedSB3VecEnv(3, "drivegpt/HighwayDense-v0", "accel", seed=7)
    first = vec.reset()
    ref = BatchedHighwayVectorEnv(3, "drivegpt/HighwayDense-v0", "accel")
    np.testing.assert_array_equal(first, ref.reset(seed=7)[0])  # the vector env's seeds
    full_throttle = np.full(3, (len(ACCEL_BINS) - 1) * len(LANE_INTENTS))  # +3 m/s², keep the lane
    ended = 0
    for _ in range(60):
        obs, rew, dones, infos = vec.step(full_throttle)  # into dense traffic: crashes end episodes
        assert rew.dtype == np.float32 and dones.dtype == bool and len(infos) == 3
        for i in np.flatnonzero(dones):
            ended += 1
            info = infos[i]
            assert info["terminal_observation"].shape == first.shape[1:]
            assert not np.array_equal(info["terminal_observation"], obs[i])  # obs[i]: the next episode
            assert info["episode"]["l"] >= 1 and info["TimeLimit.truncated"] is False  # a crash, not time
        assert all(not infos[i] for i in np.flatnonzero(~dones))
    assert ended > 0
    assert vec.get_attr("render_mode") == [None] * 3 and vec.env_is_wrapped(object) == [False] * 3


def test_baseline_trains_on_the_batched_simulator(tmp_path) -> None:
    out = tmp_path / "ppo-batched"
    args = [
        "baseline",
        "train",
        "--algo",
        "ppo",
        "--config",
        "configs/baselines/tiny-ppo.yaml",
        "--sim",
        "batched",
    ]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = runner.invoke(app, [*args, "--n-envs", "4", "--steps", "128", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert not [w for w in caught if issubclass(w.category, TqdmExperimentalWarning)]  # a quiet bar
    assert json.loads((out / "run.json").read_text())["config"]["sim"] == "batched"
    assert json.loads((out / "train.json").read_text()) | {"seconds": 0, "steps_per_s": 0} == {
        "steps": 128, "n_envs": 4, "seconds": 0, "steps_per_s": 0
    }  # fmt: skip
    r = runner.invoke(app, ["drive", "--policy", f"sb3-ppo:{out}", "--sim", "batched", "--episodes", "4",
                            "--out", str(tmp_path / "drive")])  # fmt: skip
    assert r.exit_code == 0, r.output
    with pytest.raises(ConfigError, match="sim batched runs"):
        load_config(
            BaselineConfig, "configs/baselines/tiny-ppo.yaml", {"sim": "batched", "env_id": "merge-v0"}
        )


def test_hyperparameters_out_of_range_are_refused_when_the_config_is_read():
    """SB3 would fail on these only once training starts: refused with the config, in one line."""
    for hp, says in (({"learning_rate": float("nan")}, "learning_rate: nan; it must be > 0"),
                     ({"learning_rate": -1.0}, "it must be > 0"), ({"n_steps": 0}, "n_steps: 0"),
                     ({"gamma": float("nan")}, "gamma: nan; it must be in \\[0, 1\\]"),
                     ({"gamma": 1.5}, "in \\[0, 1\\]")):  # fmt: skip
        with pytest.raises(ConfigError, match=says):
            config_from_dict(BaselineConfig, {"hyperparams": hp})
    ok = {"gamma": 1.0, "learning_rate": 1e-4, "max_grad_norm": float("inf")}  # inf: no clipping
    assert config_from_dict(BaselineConfig, {"hyperparams": ok})
    dqn = {"algo": "dqn", "hyperparams": {"gradient_steps": -1}}  # SB3: as many as env steps
    assert config_from_dict(BaselineConfig, dqn).hyperparams["gradient_steps"] == -1


def test_resume_refuses_another_algo_and_an_unreadable_checkpoint(tmp_path):
    cfg = load_config(BaselineConfig, "configs/baselines/tiny-dqn.yaml", {"total_steps": 40})
    train_baseline(cfg, tmp_path / "dqn", progress=False)
    with pytest.raises(UserError, match="a run of algo dqn; resume it with --algo dqn"):
        train_baseline(
            cfg.model_copy(update={"algo": "ppo", "hyperparams": {}}), tmp_path / "dqn", resume=True
        )
    with pytest.raises(UserError, match="a run of action accel; resume it with --action accel"):
        train_baseline(cfg.model_copy(update={"action": "meta"}), tmp_path / "dqn", resume=True)
    (tmp_path / "dqn" / "checkpoint" / "model.zip").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(CheckpointError, match="model.zip: unreadable checkpoint .* to start over"):
        train_baseline(cfg, tmp_path / "dqn", resume=True, progress=False)
