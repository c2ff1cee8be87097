"""The Ray backend gives the same results as the local one (a local 2-CPU Ray instance per session).

`make test` installs the `ray` extra, so these run there; without Ray only the error test runs.
"""

import csv
import json
import sys

import pytest
from typer.testing import CliRunner

from drivegpt.cli.app import app
from drivegpt.sim.rollout import BackendError, parallel_map

runner = CliRunner()


@pytest.fixture(scope="module")
def ray_instance():
    ray = pytest.importorskip("ray", reason="the ray extra is not installed (make test installs it)")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


def _square(x: int) -> int:
    return x * x


def _run(args: list[str]) -> None:
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output


def test_ray_drive_metrics_equal_local(ray_instance, tmp_path):
    # the merge (passed in ~15 s) gives shorter episodes than the 30 s highway; one episode per worker
    # the local reference in this process (1 worker): the figures do not depend on the worker count
    args = ["drive", "--policy", "human", "--env", "drivegpt/Merge-v0", "--episodes", "2"]
    _run([*args, "--workers", "1", "--out", str(tmp_path / "local")])
    node = ray_instance.get_runtime_context().get_node_id()
    _run([*args, "--workers", "2", "--backend", "ray", "--out", str(tmp_path / "ray")])
    local = json.loads((tmp_path / "local" / "metrics.json").read_text())
    ray = json.loads((tmp_path / "ray" / "metrics.json").read_text())
    assert local == ray and local["episodes"] == 2  # same seeds, same figures, in job order
    per_episode = [(tmp_path / d / "episodes.csv").read_text() for d in ("local", "ray")]
    assert per_episode[0] == per_episode[1]
    # ran on the session's instance: still up, on the same node (a fresh local instance has a new node id)
    assert ray_instance.is_initialized() and ray_instance.get_runtime_context().get_node_id() == node


def test_ray_replay_equals_local(ray_instance, tmp_path):
    args = ["replay", "takeover_data/sample", "--policy", "human", "--clip", "clip_00000"]
    args += ["--clip", "clip_00001"]
    _run([*args, "--workers", "1", "--out", str(tmp_path / "local")])
    _run([*args, "--workers", "2", "--backend", "ray", "--out", str(tmp_path / "ray")])

    def rows(d):
        with open(tmp_path / d / "replays.csv") as f:
            return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(f)]

    assert rows("local") == rows("ray")
    assert [r["clip"] for r in rows("ray")] == ["clip_00000", "clip_00001"]  # in clip order


def test_missing_ray_is_one_clear_line(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(BackendError, match=r"pip install 'drivegpt\[ray\]'"):
        parallel_map(_square, [1, 2], 2, "ray", progress=False)
    r = runner.invoke(app, ["drive", "--episodes", "1", "--backend", "ray", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "error: --backend ray needs Ray" in r.output
    r = runner.invoke(app, ["drive", "--episodes", "1", "--backend", "dask", "--out", str(tmp_path)])
    assert r.exit_code == 2 and all(w in r.output for w in ("--backend", "'dask'", "'local'", "'ray'"))
    r = runner.invoke(app, ["drive", "--episodes", "1", "--ray-address", "auto", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "--ray-address auto needs --backend ray" in r.output


def test_a_worker_error_reads_as_with_the_local_backend(ray_instance, tmp_path):
    import shutil

    from drivegpt.policies.registry import SHIPPED_CHECKPOINT

    shutil.copytree(SHIPPED_CHECKPOINT, tmp_path / "policy")
    (tmp_path / "policy" / "model.safetensors").write_bytes(b"garbage")  # fails in the worker
    args = ["drive", "--policy", f"drivegpt:{tmp_path}", "--episodes", "2", "--workers", "2"]
    r = runner.invoke(app, [*args, "--backend", "ray", "--out", str(tmp_path / "out")])
    assert r.exit_code == 2, r.output
    assert "error: " in r.output and "model.safetensors: corrupt or mismatched weights" in r.output
    assert "Traceback" not in r.output and "ray::" not in r.output
