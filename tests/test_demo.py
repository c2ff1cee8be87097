from pathlib import Path

from typer.testing import CliRunner

from drivegpt.cli import app

TINY = """
collect:
  action: meta
  episodes: 4
  workers: 1
  scenarios:
    - {env_id: drivegpt/Highway-v0, config: {duration: 5}}
pretrain:
  model: {n_layer: 1, n_head: 2, n_embd: 16, context: 4}
  max_iters: 10
  eval_every: 5
  val_fraction: 0.25
  threads: 1
eval_episodes: 2
eval_policies: [human]
replay_clips: 2
"""


def test_demo_end_to_end_and_resume(tmp_path):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(TINY)
    out = tmp_path / "demo"
    r = CliRunner().invoke(app, ["demo", "--config", str(cfg), "--out", str(out)])
    assert r.exit_code == 0, r.output
    report = (out / "report.md").read_text()
    assert "| human |" in report and f"| drivegpt:{out / 'pretrain'} |" in report
    assert (out / "human.gif").stat().st_size > 1000
    first = (out / "logs" / "manifest.json").stat().st_mtime_ns
    r = CliRunner().invoke(app, ["demo", "--config", str(cfg), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "skipped" in r.output
    assert (out / "logs" / "manifest.json").stat().st_mtime_ns == first  # not collected again
    assert Path(out / "report.md").is_file()
