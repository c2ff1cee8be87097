import json

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

import drivegpt.model.pretrain as pt
from drivegpt.cli.app import app
from drivegpt.core.config import load_config
from drivegpt.core.errors import UserError
from drivegpt.model.checkpoint import CheckpointError, load_policy_dir
from drivegpt.model.pretrain import lr_at, pretrain
from drivegpt.model.pretrain_config import PretrainConfig

runner = CliRunner()


def test_lr_schedule():
    cfg = PretrainConfig(lr=1.0, min_lr=0.1, warmup_iters=10, max_iters=110)
    assert lr_at(0, cfg) == pytest.approx(0.1)
    assert lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(60, cfg) == pytest.approx(0.55)  # half-way through the cosine
    assert lr_at(110, cfg) == pytest.approx(0.1)


def test_resume_after_kill_continues_from_the_same_step(tiny_logs, tmp_path, monkeypatch):
    cfg = load_config(PretrainConfig, "configs/pretrain/tiny.yaml")
    pretrain(cfg, tiny_logs, tmp_path / "straight", progress=False)

    real_save = pt.save_trainer
    calls = {"n": 0}

    def save_then_die(*args, **kwargs):
        real_save(*args, **kwargs)
        calls["n"] += 1
        raise KeyboardInterrupt  # killed right after the first checkpoint

    monkeypatch.setattr(pt, "save_trainer", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        pretrain(cfg, tiny_logs, tmp_path / "killed", progress=False)
    monkeypatch.setattr(pt, "save_trainer", real_save)
    state = json.loads((tmp_path / "killed" / "checkpoint" / "trainer.json").read_text())
    assert state["iter"] == cfg.eval_every
    with pytest.raises(FileExistsError, match="--resume"):
        pretrain(cfg, tiny_logs, tmp_path / "killed", progress=False)
    pretrain(cfg, tiny_logs, tmp_path / "killed", resume=True, progress=False)
    a = load_file(str(tmp_path / "straight" / "checkpoint" / "model.safetensors"))
    b = load_file(str(tmp_path / "killed" / "checkpoint" / "model.safetensors"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    run = json.loads((tmp_path / "killed" / "run.json").read_text())
    (tmp_path / "killed" / "run.json").write_text(json.dumps({**run, "data_manifest": "0" * 64}))
    with pytest.raises(UserError, match="trained on other logs .* resume it with that --data"):
        pretrain(cfg, tiny_logs, tmp_path / "killed", resume=True, progress=False)
    (tmp_path / "killed" / "run.json").write_text(json.dumps(run))
    wider = cfg.model_copy(update={"model": cfg.model.model_copy(update={"n_embd": 2 * cfg.model.n_embd})})
    with pytest.raises(CheckpointError, match="holds another model than the config describes .*run.json"):
        pretrain(wider, tiny_logs, tmp_path / "killed", resume=True, progress=False)  # not "corrupt"


def test_non_finite_loss_is_reported(tiny_logs, tmp_path):
    cfg = PretrainConfig(
        lr=1e30,
        warmup_iters=0,
        max_iters=50,
        eval_every=25,
        batch_size=8,
        grad_clip=1e30,
        model={"n_layer": 1, "n_head": 2, "n_embd": 16, "context": 4},
    )
    with pytest.raises(pt.TrainingError, match="non-finite loss"):
        pretrain(cfg, tiny_logs, tmp_path / "nan", progress=False)


@pytest.mark.parametrize(
    ("bad_step", "advice"),
    [(0, "no checkpoint yet: lower lr and start over"), (3, "nan-3/checkpoint: lower lr and run with")],
)
def test_a_non_finite_loss_advises_what_is_on_disk(tiny_logs, tmp_path, monkeypatch, bad_step, advice):
    """A divergence before the first checkpoint says to start over; after one, to resume from it."""
    cfg = load_config(PretrainConfig, "configs/pretrain/tiny.yaml").model_copy(update={"eval_every": 1})
    real, calls = pt.train_step, {"n": 0}

    def diverge_at(*args, **kwargs):
        calls["n"] += 1
        loss = real(*args, **kwargs)
        return loss * float("nan") if calls["n"] > bad_step else loss

    monkeypatch.setattr(pt, "train_step", diverge_at)
    with pytest.raises(pt.TrainingError, match=advice):
        pretrain(cfg, tiny_logs, tmp_path / f"nan-{bad_step}", progress=False)


def test_pretrain_and_drive_cli(tiny_logs, tmp_path):
    run = tmp_path / "run"
    r = runner.invoke(
        app,
        ["pretrain", "--config", "configs/pretrain/tiny.yaml", "--data", str(tiny_logs), "--out", str(run)],
    )
    assert r.exit_code == 0, r.output
    for f in [
        "policy/model.safetensors",
        "policy/policy.json",
        "checkpoint/trainer.json",
        "log.csv",
        "run.json",
    ]:
        assert (run / f).is_file(), f
    assert any((run / "tb").iterdir())
    assert "drivegpt pretrain" in json.loads((run / "run.json").read_text())["command"]
    r = runner.invoke(
        app,
        [
            "drive",
            "--policy",
            f"drivegpt:{run}",
            "--env",
            "highway-fast-v0",
            "--episodes",
            "1",
            "--workers",
            "1",
            "--out",
            str(tmp_path / "d"),
        ],
    )
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "d" / "metrics.json").read_text())
    assert m["episodes"] == 1 and m["km_driven"] > 0
    r = runner.invoke(
        app, ["drive", "--policy", f"drivegpt:{tmp_path / 'nope'}", "--out", str(tmp_path / "e")]
    )
    assert r.exit_code == 2 and "missing" in r.output


def test_pretrain_rejects_bad_config_key(tiny_logs, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {n_layers: 2}\n")
    r = runner.invoke(
        app, ["pretrain", "--config", str(bad), "--data", str(tiny_logs), "--out", str(tmp_path / "r")]
    )
    assert r.exit_code == 2 and "n_layers" in r.output and "n_layer" in r.output


def test_resume_without_checkpoint_and_bad_sizes_are_clear_errors(tiny_logs, tmp_path):
    cfg = load_config(PretrainConfig, "configs/pretrain/tiny.yaml")
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        pretrain(cfg, tiny_logs, tmp_path / "fresh", resume=True, progress=False)
    with pytest.raises(ValueError, match="multiple of n_head"):
        PretrainConfig(model={"n_head": 3, "n_embd": 16})


def test_closed_loop_selection_keeps_the_evaluation_that_collided_least(tiny_logs, tmp_path):
    """``select:``: every evaluation drives the validation episodes (log.csv), and ``policy/`` is the
    one with the fewest collisions, ties to the lower validation cross-entropy."""
    import csv

    base = load_config(PretrainConfig, "configs/pretrain/tiny.yaml").to_dict()
    select = {"env": "drivegpt/HighwayDense-v0", "episodes": 6, "seed": 500_000}
    cfg = PretrainConfig(**{**base, "max_iters": 30, "lr": 3e-3, "select": select})
    pretrain(cfg, tiny_logs, tmp_path / "run", progress=False)
    rows = list(csv.DictReader((tmp_path / "run" / "log.csv").open()))
    assert [int(r["iter"]) for r in rows] == [10, 20, 30]
    keys = [(round(float(r["select_collision_rate"]) * 6), float(r["val_cross_entropy"])) for r in rows]
    saved = json.loads((tmp_path / "run" / "policy" / "policy.json").read_text())
    assert saved["iter"] == int(rows[keys.index(min(keys))]["iter"])
    assert saved["val"]["select"]["collisions"] == min(keys)[0]
    assert all(float(r["select_mean_speed_mps"]) > 0 for r in rows)
    model = load_policy_dir(tmp_path / "run" / "policy")[0]
    again = pt.drive_validation(model, saved, cfg.select)
    assert again == pt.drive_validation(model, saved, cfg.select)  # the same seeds, the same drives
    assert again["collisions"] == saved["val"]["select"]["collisions"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("select: {env: drivegpt/Merge-v0}\n")
    args = ["pretrain", "--config", str(bad), "--data", str(tiny_logs), "--out", str(tmp_path / "b")]
    r = runner.invoke(app, args)
    assert r.exit_code == 2 and "Merge-v0" in r.output and "drivegpt/HighwayDense-v0" in r.output


def test_label_weights_by_hand():
    """Shares 3/4 and 1/4: power 1 weighs them 4/3 and 4, scaled to mean 1 over the labels (2/3 and 2);
    power 0.5: sqrt(4/3) and 2, scaled by their mean (3 sqrt(4/3) + 2) / 4; an unseen token weighs 0."""
    targets = torch.tensor([0, 0, 0, 1])
    torch.testing.assert_close(pt.label_weights(targets, 3, 1.0), torch.tensor([2 / 3, 2.0, 0.0]))
    mean = (3 * (4 / 3) ** 0.5 + 2) / 4
    expected = torch.tensor([(4 / 3) ** 0.5 / mean, 2 / mean, 0.0])
    torch.testing.assert_close(pt.label_weights(targets, 3, 0.5), expected)
    cfg = load_config(PretrainConfig, "configs/pretrain/tiny.yaml").to_dict()
    with pytest.raises(ValueError, match="label_weight_power"):
        PretrainConfig(**{**cfg, "label_weight_power": 1.5})
