import json
import shutil

import minari
import numpy as np
import pytest

from drivegpt.data.collect import CollectConfig, collect
from drivegpt.data.logs import DataError, load_logs
from drivegpt.sim.rollout import make_env


def test_loads_with_minari_and_ours(tiny_logs):
    ds = minari.MinariDataset(tiny_logs / "data")
    assert ds.total_episodes == 4
    ep = next(iter(ds.iterate_episodes([0])))
    assert ep.observations.shape[1:] == (10, 7)
    ours = load_logs(tiny_logs)
    eps = list(ours.episodes())
    assert len(eps) == 4
    n_actions = make_env("drivegpt/Highway-v0", ours.action_kind).action_space.n  # a discrete interface
    for e in eps:
        assert e.observations.shape[0] == len(e.actions) + 1
        assert set(e.meta["personality"]) >= {"desired_speed", "reaction_delay", "action_noise"}
        assert e.meta["env_id"] in ("drivegpt/Highway-v0", "drivegpt/Merge-v0")
        assert set(np.unique(e.actions)) <= set(range(n_actions))
        assert e.decisions.shape == e.actions.shape and e.seed == e.meta["seed"]
    assert ds.recover_environment().observation_space.shape == (10, 7)
    # the size is measured once after writing (not after each episode) by Minari's own method again
    assert type(ds.storage).get_size.__qualname__ == "MinariStorage.get_size"
    stored = json.loads((tiny_logs / "data" / "metadata.json").read_text())["dataset_size"]
    assert stored == ds.storage.get_size()


def _copy(src, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(src, dst)
    return dst


def _arrow(path):
    return sorted((path / "data").rglob("*.arrow"))[0]


def test_truncated_file_is_caught(tiny_logs, tmp_path):
    d = _copy(tiny_logs, tmp_path)
    f = _arrow(d)
    f.write_bytes(f.read_bytes()[:-100])
    with pytest.raises(DataError, match=f"{f.name}.*checksum mismatch"):
        load_logs(d)


def test_flipped_byte_is_caught(tiny_logs, tmp_path):
    d = _copy(tiny_logs, tmp_path)
    f = _arrow(d)
    raw = bytearray(f.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    f.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="checksum mismatch"):
        load_logs(d)


def test_missing_manifest_and_missing_file_and_corrupt_manifest(tiny_logs, tmp_path):
    d = _copy(tiny_logs, tmp_path)
    _arrow(d).unlink()
    with pytest.raises(DataError, match="missing file"):
        load_logs(d)
    (d / "manifest.json").write_text("{not json")
    with pytest.raises(DataError, match="corrupt manifest"):
        load_logs(d)
    (d / "manifest.json").unlink()
    with pytest.raises(DataError, match="missing manifest"):
        load_logs(d)
    with pytest.raises(DataError, match="no such dataset"):
        load_logs(tmp_path / "nowhere")


def test_wrong_version_is_rejected(tiny_logs, tmp_path):
    d = _copy(tiny_logs, tmp_path)
    m = json.loads((d / "manifest.json").read_text())
    m["version"] = 99
    (d / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(DataError, match="v99"):
        load_logs(d)


def test_workers_do_not_change_the_data(tiny_logs, tmp_path):
    cfg = CollectConfig.model_validate(
        {**json.loads((tiny_logs / "manifest.json").read_text())["config"], "workers": 2}
    )
    out = collect(cfg, tmp_path / "two", progress=False)
    a, b = list(load_logs(tiny_logs).episodes()), list(load_logs(out).episodes())
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.observations, y.observations)
        np.testing.assert_array_equal(x.actions, y.actions)
        assert x.meta == y.meta


def test_reading_logs_loads_no_simulator():
    """``drivegpt data info`` and ``data check`` (and any reader of the logs) import neither torch nor
    highway-env: the episode record lives in ``drivegpt.sim.episode``, numpy only."""
    import subprocess
    import sys

    code = (
        "import sys, drivegpt.data.logs; "
        "print([m for m in ('torch', 'highway_env', 'drivegpt_envs') if m in sys.modules])"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr
