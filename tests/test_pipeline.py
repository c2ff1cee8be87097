import json
import shutil

import pytest
from typer.testing import CliRunner

from drivegpt.cli.app import app
from drivegpt.core.config import load_config
from drivegpt.pipeline.config import PipelineConfig
from drivegpt.pipeline.stages import STAGES

TINY = "configs/pipeline/tiny.yaml"
runner = CliRunner()


def _statuses(out):
    return {k: v["status"] for k, v in json.loads((out / "timings.json").read_text())["stages"].items()}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("pipeline") / "run"
    r = runner.invoke(app, ["pipeline", "--config", TINY, "--out", str(out)])
    assert r.exit_code == 0, r.output
    return out, r.output


def test_every_stage_runs_and_the_report_holds_each_policy(tiny_run):
    out, output = tiny_run
    names = [st.name for st in STAGES]
    assert _statuses(out) == {**{n: "ran" for n in names}, "report": "ran"}
    for n in names:
        assert f"[{n}] done in" in output
    report = (out / "report.md").read_text()
    bench = json.loads((out / "benchmark" / "policies.json").read_text())["policies"]
    assert set(bench) == {"human", "drivegpt-pretrained", "drivegpt-rlhf", "sb3-ppo"}
    for name, spec in bench.items():  # one benchmark table row per policy, numbers from its metrics.json
        m = json.loads((out / "benchmark" / name / "metrics.json").read_text())
        assert f"| {name} | `{spec}` | {m['episodes']} | {m['collision_rate']:.3f} [" in report
    for name in bench:  # and on the corner-case suite the search found (on the batched simulator)
        assert f"| {name} | stalled_car | 2 | " in report
    assert "failure search against `drivegpt:" in report and "` (batched)" in report
    assert report.count("![naturalistic_rate](benchmark/suite/plots/naturalistic_rate.png)") == 1
    suite = [json.loads(line) for line in (out / "search" / "scenarios.jsonl").read_text().splitlines()]
    assert {s["sim"] for s in suite} == {"batched"}
    cfg = load_config(PipelineConfig, TINY)
    takeovers = json.loads((out / "takeovers" / "metrics.json").read_text())["takeovers"]
    row = f"| DriveGPT pretrained (round 0) | `{cfg.eval_env}` | {cfg.eval_episodes} | {takeovers} ("
    assert row in report
    rounds = (out / "rlhf" / "curve.csv").read_text().splitlines()[1:]
    assert len(rounds) == 2 and "after RLHF round 1 (PPO)" in report  # before/after rows from the run
    assert "![RLHF learning curve](rlhf/learning_curve.png)" in report
    # round 0 (the pretrained policy, same env/seeds/monitor as the takeovers stage) is taken from the
    # takeovers stage: valid because a fresh monitored drive gives exactly the same figures
    from drivegpt.eval.closed_loop import evaluate_monitored

    spec = f"drivegpt:{out / 'pretrain'}"
    fresh, _, _ = evaluate_monitored(spec, cfg.eval_env, None, cfg.eval_episodes, workers=1, progress=False)
    round0 = json.loads((out / "rlhf" / "round_0" / "eval" / "metrics.json").read_text())
    assert {**fresh, "kl_to_reference": 0.0} == round0
    assert "drivegpt pipeline --config configs/pipeline/tiny.yaml" in report
    html = (out / "report.html").read_text()
    assert 'src="figures/' not in html and 'src="replay/' not in html  # everything embedded
    assert html.count('src="data:image/png;base64,') >= 2
    for name in ("collect", "pretrain", "monitor", "rlhf", "baseline", "search"):  # what the commands read
        sub = getattr(cfg, name)
        assert load_config(type(sub), out / "configs" / f"{name}.yaml") == sub


def test_rerun_skips_everything_and_resumes_after_a_deleted_stage(tiny_run):
    out, _ = tiny_run
    logs_mtime = (out / "logs" / "manifest.json").stat().st_mtime_ns
    r = runner.invoke(app, ["pipeline", "--config", TINY, "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert set(_statuses(out).values()) == {"skipped", "ran"} and _statuses(out)["collect"] == "skipped"
    assert all(s == "skipped" for k, s in _statuses(out).items() if k != "report")
    assert "| collect | skipped |" in (out / "report.md").read_text()  # the report of this invocation
    shutil.rmtree(out / "takeovers" / "clips")  # a deleted (or half-deleted) stage output is redone
    r = runner.invoke(app, ["pipeline", "--config", TINY, "--out", str(out)])
    assert r.exit_code == 0, r.output
    st = _statuses(out)
    assert st["takeovers"] == "ran" and st["replay"] == "ran"  # replay reads the takeovers
    assert st["collect"] == st["pretrain"] == st["rlhf"] == st["benchmark"] == "skipped"
    assert (out / "logs" / "manifest.json").stat().st_mtime_ns == logs_mtime
    # `drivegpt demo` is the same pipeline
    r = runner.invoke(app, ["demo", "--config", TINY, "--out", str(out)])
    assert r.exit_code == 0 and "[collect] skipped" in r.output, r.output


def test_force_reruns_the_stage_and_unknown_stages_fail(tiny_run):
    out, _ = tiny_run
    r = runner.invoke(app, ["pipeline", "--config", TINY, "--out", str(out), "--force", "collecte"])
    assert r.exit_code == 2 and "valid stages: collect, pretrain" in r.output
    r = runner.invoke(app, ["pipeline", "--config", TINY, "--out", str(out), "--force", "replay"])
    assert r.exit_code == 0, r.output
    assert "[replay] running (forced)" in r.output
    assert {k for k, s in _statuses(out).items() if s == "ran"} == {"replay", "report"}


def test_config_errors_name_the_valid_keys(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("eval_episode: 3\n")
    r = runner.invoke(app, ["pipeline", "--config", str(bad), "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "unknown key 'eval_episode'" in r.output and "eval_episodes" in r.output


def test_a_killed_stage_resumes_only_with_the_same_config(tmp_path):
    from drivegpt.pipeline.outputs import resume_or_clear

    run = tmp_path / "pretrain"
    (run / "checkpoint").mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"config": {"max_iters": 10}}))
    resume_or_clear(run, {"max_iters": 10})  # same training: its checkpoint is kept to resume from
    assert (run / "checkpoint").is_dir()
    resume_or_clear(run, {"max_iters": 20})  # another training: start over
    assert not run.exists()


def test_a_corrupt_output_is_named_in_the_report_not_dropped(tiny_run, tmp_path):
    from drivegpt.pipeline.report import write_report

    out = tmp_path / "run"
    shutil.copytree(tiny_run[0], out)
    good = (out / "report.md").read_text()
    assert "Unreadable files" not in good and "## Imitation pretraining" in good
    (out / "pretrain" / "metrics.json").write_text('{"action_accuracy": 0.7')  # truncated write
    report = write_report(out).read_text()
    assert "## Unreadable files" in report
    assert f"`{out / 'pretrain' / 'metrics.json'}`" in report


def test_the_benchmark_drives_each_policy_on_the_batched_simulator_too(tmp_path):
    """Beside highway-env's row: 10x the episodes on the batched simulator, the figures `drivegpt drive
    --sim batched` writes for the same seeds; skipped for a driver with no batched port."""
    from drivegpt.core.config import config_from_dict
    from drivegpt.pipeline.eval_stages import BATCHED_EVAL_FACTOR, _drive_batched, cli_benchmark
    from drivegpt.pipeline.report import _simulators_side_by_side
    from drivegpt.pipeline.report_cells import RunFiles

    tiny = load_config(PipelineConfig, TINY).to_dict()
    cfg = config_from_dict(PipelineConfig, {**tiny, "eval_env": "drivegpt/Highway-v0", "eval_episodes": 1})
    spec = "constant:0,keep"
    _drive_batched(cfg, spec, tmp_path / "benchmark" / "p" / "batched", "cmd")
    m = json.loads((tmp_path / "benchmark" / "p" / "batched" / "metrics.json").read_text())
    assert m["episodes"] == BATCHED_EVAL_FACTOR
    cli = tmp_path / "cli"
    args = ["drive", "--sim", "batched", "--policy", spec, "--env", "drivegpt/Highway-v0", "--episodes", "10"]
    r = runner.invoke(app, [*args, "--seed", str(cfg.eval_seed), "--out", str(cli)])
    assert r.exit_code == 0, r.output
    assert json.loads((cli / "metrics.json").read_text()) == m
    highway = {**m, "episodes": 1, "collision_rate": 1.0, "collision_rate_ci": [0.2, 1.0]}
    lines = _simulators_side_by_side(RunFiles(tmp_path), [("p", highway), ("idm", highway)])
    assert f"| p | 1 | 1.000 [0.200, 1.000] | {m['mean_speed_mps']:.2f} | 10 |" in "\n".join(lines)
    assert sum(line.startswith("| p |") for line in lines) == 1 and not any("| idm |" in x for x in lines)
    meta = config_from_dict(PipelineConfig, {**tiny, "collect": {**tiny["collect"], "action": "meta"}})
    _drive_batched(meta, "human", tmp_path / "benchmark" / "h" / "batched", "cmd")  # no port: nothing written
    assert not (tmp_path / "benchmark" / "h").exists()
    assert not any("--sim batched --policy human" in c for c in cli_benchmark(meta, tmp_path))
    merge = config_from_dict(PipelineConfig, {**tiny, "eval_env": "drivegpt/Merge-v0"})
    assert not any("--sim batched" in c for c in cli_benchmark(merge, tmp_path))  # no batched Merge road
    assert any("--sim batched --policy human" in c for c in cli_benchmark(cfg, tmp_path))
