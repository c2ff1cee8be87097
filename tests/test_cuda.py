"""The batched simulator, its drivers and DriveGPT on a CUDA device give CPU's episodes.

Every check runs the same seeds on the CPU and on ``cuda`` and compares them: tokens, takeovers and
failure flags exactly, positions to float tolerance (the GPU's libm may differ in the last bits).
Skipped where no CUDA device is present; each check is a function of the device, so the comparison
itself also runs CPU against CPU here (``test_the_comparisons_run_on_any_device``).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from drivegpt.cli.app import app
from drivegpt.core.device import resolve_device
from drivegpt.core.errors import UserError
from drivegpt.corner.batched import batched_family_simulator
from drivegpt.eval.batched import evaluate_batched
from drivegpt.policies.registry import load_policy
from drivegpt.sim import batched
from drivegpt.sim.batched.families import (
    BATCHED_FAMILIES,
    family_class,
    family_config,
    family_reset,
    family_step,
)
from drivegpt.sim.batched.human import BatchedHuman
from drivegpt.sim.policy import ConstantPolicy
from drivegpt.takeover.batched_drive import run_monitored_batch
from drivegpt.takeover.monitor import MonitorConfig
from drivegpt_envs.actions import NEUTRAL_TOKEN

DENSE = "drivegpt/HighwayDense-v0"
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
TOL = 1e-6  # [m], [m/s] after tens of steps in float64


def human_drive(device: str, seeds: list[int], steps: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, steps) executed tokens and (B, N) final x of the batched human on dense traffic."""
    state = batched.reset(seeds, batched.make_config(DENSE, "accel"), device)
    human = BatchedHuman(state.config)
    human.reset(seeds, state)
    tokens = []
    for _ in range(steps):
        tokens.append(human.act(state))
        state = batched.step(state, tokens[-1])
    return torch.stack(tokens, 1).cpu(), state.x.cpu()


def family_runs(device: str, steps: int = 12) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Per family: (B, N) x and (B,) crashed after ``steps`` neutral steps of 4 random scenarios."""
    rng = np.random.default_rng(0)
    out = {}
    for family in BATCHED_FAMILIES:
        specs = family_class(family).PARAMS.values()
        params = np.array([[rng.uniform(s.low, s.high) for s in specs] for _ in range(4)])
        state, script = family_reset(family, params, [0, 1, 2, 3], family_config(family, "accel"), device)
        for _ in range(steps):
            state, script = family_step(state, script, torch.full((4,), NEUTRAL_TOKEN))
        out[family] = (state.x.cpu(), state.crashed[:, 0].cpu())
    return out


def monitored(device: str, spec: str) -> dict[str, np.ndarray]:
    """Takeovers, controller and executed tokens of ``spec`` under the batched safety driver."""
    policy = ConstantPolicy("1.5,keep") if spec == "full-throttle" else load_policy(spec, "accel")
    if hasattr(policy, "to"):
        policy.to(device)
    config = batched.make_config(DENSE, "accel", getattr(policy, "env_config", None))
    cfg = MonitorConfig(lookahead_steps=3)
    seeds = list(range(1_000_000, 1_000_006))
    out = run_monitored_batch(policy, config, seeds, cfg, record_obs=False, device=device, max_steps=16)
    keys = ("takeovers", "controller", "executed", "crashed", "crashed_alone", "seg_start", "seg_trigger")
    return {k: getattr(out, k) for k in keys}


def drivegpt_tokens(device: str) -> np.ndarray:
    """(B, T) DriveGPT's tokens on a fixed sequence of dense-traffic observations (its context grows)."""
    policy = load_policy("drivegpt", "accel").to(device)
    config = batched.make_config(DENSE, "accel", policy.env_config)
    state = batched.reset(range(32), config)  # the observations come from the CPU in both runs
    policy.reset_batch(32)
    out = []
    for _ in range(10):
        out.append(policy.act_batch(batched.observe(state).numpy()))
        state = batched.step(state, torch.as_tensor(out[-1]))
    return np.stack(out, 1)


def estimates(device: str) -> np.ndarray:
    """Failure flags of 64 stalled-car scenarios with the human driving (the estimator's simulator)."""
    names = list(family_class("stalled_car").PARAMS)
    sim = batched_family_simulator("stalled_car", "human", names, batch=32, device=device)
    specs = family_class("stalled_car").PARAMS.values()
    rng = np.random.default_rng(1)
    params = np.array([[rng.uniform(s.low, s.high) for s in specs] for _ in range(64)])
    return sim(params, np.arange(64))


def compare(device: str) -> None:
    """Every comparison of this module, CPU against ``device``."""
    seeds = [3, 1, 4, 1_000_000, 5, 9, 2, 6]
    t_cpu, x_cpu = human_drive("cpu", seeds)
    t_dev, x_dev = human_drive(device, seeds)
    assert torch.equal(t_cpu, t_dev)
    assert (x_cpu - x_dev).abs().max().item() <= TOL
    for family, (x, crashed) in family_runs("cpu").items():
        x_dev, crashed_dev = family_runs(device)[family]
        assert (x - x_dev).abs().max().item() <= TOL, family
        assert torch.equal(crashed, crashed_dev), family
    for spec in ("full-throttle", "drivegpt"):
        a, b = monitored("cpu", spec), monitored(device, spec)
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=f"{spec}: {k}")
    np.testing.assert_array_equal(drivegpt_tokens("cpu"), drivegpt_tokens(device))
    np.testing.assert_array_equal(estimates("cpu"), estimates(device))
    m_cpu, per_cpu = evaluate_batched("drivegpt", DENSE, episodes=12, batch=6, progress=False)
    m_dev, per_dev = evaluate_batched("drivegpt", DENSE, episodes=12, batch=6, progress=False, device=device)
    np.testing.assert_array_equal(per_cpu["crashed"], per_dev["crashed"])
    np.testing.assert_array_equal(per_cpu["steps"], per_dev["steps"])
    np.testing.assert_allclose(per_cpu["distance_m"], per_dev["distance_m"], atol=TOL)


@cuda
def test_cuda_gives_the_cpu_episodes() -> None:
    compare("cuda")


def test_the_comparisons_run_on_any_device() -> None:
    """The comparison is not vacuous: the human, the families and the monitor do act in it."""
    tokens, _ = human_drive("cpu", [3, 1_000_000])
    assert len(set(tokens.flatten().tolist())) > 1  # the human varies its tokens
    runs = monitored("cpu", "full-throttle")
    assert runs["takeovers"].sum() > 0  # full throttle into dense traffic: the safety driver acts
    assert any(bool(c.any()) for _, c in family_runs("cpu", steps=20).values())  # some family crashes


def drive_cli(tmp_path, device: str) -> tuple[dict, dict]:
    """``drivegpt drive --sim batched --takeovers --clips-out`` on ``device``: (metrics, run.json)."""
    out, clips = tmp_path / f"drive-{device}", tmp_path / f"clips-{device}"
    args = ["drive", "--sim", "batched", "--device", device, "--env", DENSE, "--episodes", "4"]
    args += ["--batch", "4", "--takeovers", "--policy", "constant:1.5,keep", "--seed", "100"]
    args += ["--clips-out", str(clips)]
    r = CliRunner().invoke(app, [*args, "--out", str(out)])
    assert r.exit_code == 0, r.output
    return json.loads((out / "metrics.json").read_text()), json.loads((out / "run.json").read_text())


@cuda
def test_drive_on_cuda_through_the_cli_and_its_clips_replay_on_the_cpu(tmp_path) -> None:
    on_gpu, run = drive_cli(tmp_path, "cuda")
    assert run["device"].startswith("cuda") and on_gpu["takeovers"] > 0
    on_cpu, _ = drive_cli(tmp_path, "cpu")
    for key in ("takeovers", "late_takeovers", "collision_rate", "episodes"):
        assert on_gpu[key] == on_cpu[key], key
    assert on_gpu["km_driven"] == pytest.approx(on_cpu["km_driven"], abs=1e-9)
    args = ["replay", str(tmp_path / "clips-cuda"), "--policy", "human", "--workers", "1"]
    r = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "replay")])
    assert r.exit_code == 0, r.output
    summary = json.loads((tmp_path / "replay" / "replay.json").read_text())
    assert summary["replays"] == on_gpu["takeovers"] and summary["fidelity_max_abs"] <= 1e-9


def test_device_names_resolve_or_fail_with_the_valid_ones(tmp_path) -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(UserError, match="valid: auto, cpu, cuda, cuda:N"):
        resolve_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="no CUDA device here; use --device cpu"):
            resolve_device("cuda:0")
    metrics, run = drive_cli(tmp_path, "cpu")
    assert run["device"] == "cpu" and metrics["episodes"] == 4
    args = ["drive", "--sim", "batched", "--device", "tpu", "--out", str(tmp_path / "x")]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 2 and "unknown device 'tpu'; valid: auto, cpu, cuda, cuda:N" in r.output
