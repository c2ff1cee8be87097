"""Pretraining under torchrun: 2 gloo processes follow the 1-process loss curve (same global batch)."""

import csv
import json
import os
import subprocess
import sys

import pytest
import torch
import yaml
from safetensors.torch import load_file

from drivegpt.core.config import load_config
from drivegpt.model.distributed import DistContext, shard
from drivegpt.model.pretrain import pretrain
from drivegpt.model.pretrain_config import PretrainConfig

CONFIG = {
    "model": {"n_layer": 1, "n_head": 2, "n_embd": 16, "context": 4},
    "batch_size": 16,
    "max_iters": 3,
    "warmup_iters": 1,
    "eval_every": 1,  # one log row per step: the whole loss curve
    "val_fraction": 0.25,
    "action_dropout": 0.2,  # drawn for the global batch, so it must match too
    "threads": 1,
}


def _losses(run) -> list[float]:
    with open(run / "log.csv") as f:
        return [float(r["train_loss"]) for r in csv.DictReader(f)]


def test_two_gloo_processes_match_one(tiny_logs, tmp_path):
    config = tmp_path / "ddp.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    one = pretrain(load_config(PretrainConfig, config), tiny_logs, tmp_path / "one", progress=False)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    cmd += ["-m", "drivegpt.cli.app", "pretrain", "--config", str(config), "--data", str(tiny_logs)]
    r = subprocess.run([*cmd, "--out", str(tmp_path / "two")], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert len(_losses(tmp_path / "two")) == 3  # rank 0 alone wrote the log
    assert _losses(tmp_path / "two") == pytest.approx(_losses(tmp_path / "one"), rel=1e-5)
    a = load_file(str(tmp_path / "one" / "checkpoint" / "model.safetensors"))
    b = load_file(str(tmp_path / "two" / "checkpoint" / "model.safetensors"))
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-5, atol=1e-6)
    two = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert (one["processes"], two["processes"]) == (1, 2)  # each run reports the processes that trained it
    assert two["best_val_cross_entropy"] == pytest.approx(one["best_val_cross_entropy"], rel=1e-5)


def test_shard_splits_the_global_batch_in_rank_order():
    x = torch.arange(12)
    parts = [shard(x, DistContext(r, 3, 0, torch.device("cpu"))).tolist() for r in range(3)]
    assert parts == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    with pytest.raises(ValueError, match="multiple of --nproc-per-node"):
        shard(torch.arange(10), DistContext(0, 3, 0, torch.device("cpu")))


def test_a_failing_rank_leaves_the_group_without_waiting(tiny_logs, tmp_path, monkeypatch):
    """A rank whose run raises leaves the process group at once (no barrier the others may never
    reach); one that succeeds waits for the others first."""
    import torch.distributed as dist

    from drivegpt.model import distributed
    from drivegpt.model import pretrain as stage

    calls = []
    monkeypatch.setattr(stage, "teardown", lambda ctx, wait=True: calls.append(wait))
    with pytest.raises(Exception, match="nothing"):  # no logs there: the run fails inside the group
        pretrain(PretrainConfig(**CONFIG), tmp_path / "nothing", tmp_path / "run", progress=False)
    assert calls == [False]
    pretrain(PretrainConfig(**{**CONFIG, "max_iters": 1}), tiny_logs, tmp_path / "ok", progress=False)
    assert calls == [False, True]
    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    barriers = []
    monkeypatch.setattr(dist, "barrier", lambda: barriers.append(1))
    ctx = DistContext(0, 2, 0, torch.device("cpu"))  # as a rank of two would see it
    distributed.teardown(ctx, wait=False)
    assert barriers == [] and not dist.is_initialized()
