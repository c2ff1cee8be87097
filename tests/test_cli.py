import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from drivegpt.cli.app import app

runner = CliRunner()


def test_collect_check_info_via_cli(tmp_path):
    out = tmp_path / "logs"
    r = runner.invoke(
        app,
        [
            "collect",
            "--config",
            "configs/collect/tiny.yaml",
            "--out",
            str(out),
            "--episodes",
            "2",
            "--workers",
            "1",
            "--seed",
            "5",
        ],
    )
    assert r.exit_code == 0, r.output
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["episodes"] == 2 and run["config"]["seed"] == 5
    assert "drivegpt collect" in run["command"]
    r = runner.invoke(app, ["data", "check", str(out)])
    assert r.exit_code == 0 and "ok:" in r.output
    r = runner.invoke(app, ["data", "info", str(out)])
    assert r.exit_code == 0 and "2 episodes" in r.output
    f = sorted((out / "data").rglob("*.arrow"))[0]
    f.write_bytes(f.read_bytes()[:50])
    r = runner.invoke(app, ["data", "check", str(out)])
    assert r.exit_code != 0 and "checksum mismatch" in r.output


def test_collect_rejects_unknown_key(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("episodes: 1\nworkerz: 2\n")
    r = runner.invoke(app, ["collect", "--config", str(cfg), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2
    assert "workerz" in r.output and "valid keys" in r.output
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("config", "says"),
    [
        ("{durration: 3}", "unknown config key(s) ['durration']; valid: action,"),
        ("{duration: .nan}", "config duration must be a positive number of seconds, got nan"),
        ("{duration: -5}", "config duration must be a positive number of seconds, got -5"),
    ],
)
def test_collect_refuses_a_scenario_config_the_env_lacks(config, says, tmp_path):
    """A scenario's highway-env overrides are checked against its env's own config keys (and the
    project's ``junction_rules``) before any episode; a bad duration too."""
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(f"episodes: 1\nscenarios:\n  - {{env_id: drivegpt/Highway-v0, config: {config}}}\n")
    r = runner.invoke(app, ["collect", "--config", str(cfg), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and says in r.output, r.output
    assert not (tmp_path / "o").exists()
    from drivegpt.sim.rollout import check_overrides

    check_overrides("intersection-v0", {"junction_rules": False})  # read by the human, not by highway-env


def test_drive_writes_metrics(tmp_path):
    r = runner.invoke(
        app, ["drive", "--policy", "human", "--episodes", "2", "--workers", "1", "--out", str(tmp_path / "d")]
    )
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "d" / "metrics.json").read_text())
    assert m["episodes"] == 2 and 0 <= m["collision_rate"] <= 1 and m["km_driven"] > 0
    r = runner.invoke(app, ["drive", "--policy", "robot", "--out", str(tmp_path / "e")])
    assert r.exit_code == 2 and "valid kinds" in r.output


def test_console_script_entry_point():
    r = subprocess.run([sys.executable, "-m", "drivegpt.cli.app", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "collect" in r.stdout and "drive" in r.stdout


def test_the_command_tree_loads_neither_torch_nor_highway_env():
    """``drivegpt --help``, any ``COMMAND --help`` and a refused option answer without loading torch or
    highway-env: each command imports what it runs when it runs."""
    code = (
        "import sys, typer.main; from drivegpt.cli.app import app; typer.main.get_command(app); "
        "print([m for m in ('torch', 'highway_env', 'drivegpt_envs', 'pandas') if m in sys.modules])"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr


@pytest.mark.parametrize(
    "args, valid",
    [
        ("baseline train --algo a2c --out x", "'dqn', 'ppo'"),
        ("corner-cases search --family all --out x --method grid", "'random', 'lhs', 'cem'"),
        ("corner-cases search --family all --out x --keep some", "'failures', 'all'"),
    ],
)
def test_a_choice_outside_the_list_is_refused_with_the_list_before_anything_runs(args, valid):
    code = (
        "import sys; from drivegpt.cli.app import app\n"
        f"try: app({args.split()!r}, prog_name='drivegpt')\n"
        "except SystemExit as e: print(e.code, [m for m in ('torch', 'highway_env') if m in sys.modules])"
    )
    env = {**os.environ, "COLUMNS": "200"}  # the error box unwrapped
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert r.stdout.strip() == "2 []" and valid in " ".join(r.stderr.split()), r.stdout + r.stderr


@pytest.mark.parametrize("config", ["configs/quickstart.yaml", "configs/pipeline/tiny.yaml"])
def test_the_reports_stage_by_stage_commands_parse(config, tmp_path):
    """Every command the pipeline's report gives to redo a stage by hand names a command and options
    that ``drivegpt`` accepts: a missing required option or a wrong value fails here."""
    import shlex

    import typer.main

    from drivegpt.core.config import load_config
    from drivegpt.pipeline.config import PipelineConfig
    from drivegpt.pipeline.stages import STAGES

    cfg = load_config(PipelineConfig, config)
    lines = [c for st in STAGES if st.commands for c in st.commands(cfg, tmp_path / "run")]
    assert len(lines) >= 10
    for line in lines:
        name, *args = shlex.split(line, comments=True)
        assert name == "drivegpt", line
        cmd = typer.main.get_command(app)
        while hasattr(cmd, "commands"):  # a group: down to the command it names
            name, *args = args
            cmd = cmd.commands[name]
        cmd.make_context(name, args)  # parses the options: a missing or invalid one raises


def test_the_command_lines_choices_are_the_librarys():
    from typing import get_args

    import drivegpt_envs
    from drivegpt.cli import options
    from drivegpt.corner import estimate, search
    from drivegpt.policies import sb3_config
    from drivegpt.sim import rollout

    assert get_args(options.Backend) == get_args(rollout.Backend)
    assert get_args(options.Simulator) == get_args(rollout.Simulator)
    assert get_args(options.Method) == get_args(estimate.Method)
    assert get_args(options.SearchMethod) == get_args(search.Method)
    assert get_args(options.Keep) == get_args(search.Keep)
    assert get_args(options.Algo) == get_args(sb3_config.Algo)
    kinds = drivegpt_envs.ACTION_KINDS
    assert get_args(options.ActionKind) == get_args(drivegpt_envs.common.ActionKind) == kinds


def test_collect_to_a_relative_path(tmp_path, monkeypatch):
    cfg = (Path("configs/collect/tiny.yaml")).resolve()
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, ["collect", "--config", str(cfg), "--out", "runs/logs", "--episodes", "1"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "runs" / "logs" / "manifest.json").is_file()


def test_every_command_lists_a_one_line_summary():
    """``drivegpt --help`` and each group's list show a command's first paragraph as typed: it is one
    line, the details after a blank line (``drivegpt COMMAND --help``)."""
    import typer.main

    def commands(group, path):
        for name, cmd in getattr(group, "commands", {}).items():
            yield f"{path} {name}", cmd
            yield from commands(cmd, f"{path} {name}")

    found = dict(commands(typer.main.get_command(app), "drivegpt"))
    assert {"drivegpt collect", "drivegpt corner-cases search", "drivegpt reward score"} <= set(found)
    for name, cmd in found.items():
        first = (cmd.help or "").strip().split("\n\n")[0]
        assert first and "\n" not in first, f"{name}: {first!r}"


@pytest.mark.parametrize(
    "args",
    [
        ["collect", "--config", "c.yaml"],
        ["drive"],
        ["drive", "--takeovers", "--out", ".", "--clips-out"],
        ["replay", "clips", "--policy", "human"],
        ["pretrain", "--config", "c.yaml", "--data", "d"],
        ["demo"],
        ["baseline", "train", "--algo", "dqn"],
        ["bench", "--policy", "h=human"],
        ["corner-cases", "search", "--family", "cut_in", "--policy", "human"],
        ["corner-cases", "estimate", "--family", "cut_in"],
        ["corner-cases", "fit-proposal", "--family", "cut_in"],
        ["reward", "train", "--data", "d", "--init", "drivegpt"],
        ["reward", "score", "--reward", "r", "--policy", "human"],
        ["rlhf", "--config", "c.yaml", "--policy", "drivegpt"],
        ["dpo", "--data", "d", "--policy", "drivegpt"],
        ["ppo", "--config", "c.yaml"],
    ],
)
def test_an_output_directory_that_is_a_file_is_refused_before_anything_runs(args, tmp_path):
    """Every option naming a directory to write into refuses an existing file, in one line, before the
    command reads its other inputs (none of which exist here)."""
    afile = tmp_path / "afile"
    afile.write_text("kept\n")
    flag = [] if args[-1] == "--clips-out" else ["--out"]
    r = runner.invoke(app, [*args, *flag, str(afile)])
    said = " ".join(r.output.replace("│", " ").split())  # the message as one line, out of typer's box
    assert r.exit_code == 2 and "is a file, not a directory" in said, r.output
    assert afile.read_text() == "kept\n"


@pytest.mark.parametrize(
    "args",
    [
        ["collect", "--config", "c.yaml"],
        ["drive"],
        ["baseline", "train", "--algo", "dqn"],
        ["corner-cases", "search", "--family", "cut_in", "--policy", "human"],
        ["corner-cases", "estimate", "--family", "cut_in"],
        ["corner-cases", "fit-proposal", "--family", "cut_in"],
        ["reward", "score", "--reward", "r", "--policy", "human"],
    ],
)
@pytest.mark.parametrize("seed", ["-1", str(2**63)])
def test_a_seed_out_of_range_is_refused_before_anything_runs(args, seed, tmp_path):
    """Seeds are whole numbers from 0 to 2**62 (scenario seeds SEED + i stay 64-bit integers)."""
    r = runner.invoke(app, [*args, "--seed", seed, "--out", str(tmp_path / "out")])
    assert r.exit_code == 2 and "Invalid value for '--seed'" in r.output, r.output
    assert not (tmp_path / "out").exists()


def test_drive_refuses_monitor_options_without_takeovers(tmp_path):
    """--clips-out and --monitor-config set up the takeover monitor: without --takeovers they are refused,
    not ignored."""
    mon = tmp_path / "mon.yaml"
    mon.write_text("lookahead_steps: 0\n")
    for extra, says in ((["--clips-out", str(tmp_path / "c")], "--clips-out needs --takeovers"),
                        (["--monitor-config", str(mon)], "--monitor-config needs --takeovers")):  # fmt: skip
        r = runner.invoke(app, ["drive", "--episodes", "1", *extra, "--out", str(tmp_path / "o")])
        assert r.exit_code == 2 and says in r.output, r.output
    assert not (tmp_path / "o").exists()
