from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from drivegpt.core.config import ConfigError, load_config
from drivegpt.data.collect import CollectConfig


def test_unknown_key_names_file_key_and_valid_keys(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("action: meta\nepisodez: 3\n")
    with pytest.raises(ConfigError) as e:
        load_config(CollectConfig, f)
    msg = str(e.value)
    assert str(f) in msg and "episodez" in msg and "episodes" in msg and "scenarios" in msg


def test_unknown_nested_key_lists_nested_valid_keys(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("personality:\n  politness: [0, 1]\n")
    with pytest.raises(ConfigError, match="personality.politness.*politeness"):
        load_config(CollectConfig, f)


def test_bad_value_lists_choices(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("action: steering\n")
    with pytest.raises(ConfigError, match="'meta' or 'continuous'"):
        load_config(CollectConfig, f)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(CollectConfig, tmp_path / "none.yaml")
    f = tmp_path / "bad.yaml"
    f.write_text("action: [meta\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(CollectConfig, f)


def holds(loaded: Any, written: Any) -> bool:
    """Everything ``written`` in a YAML file is in the ``loaded`` config's dict (which adds defaults)."""
    if isinstance(written, dict):
        return isinstance(loaded, dict) and all(
            k in loaded and holds(loaded[k], w) for k, w in written.items()
        )
    if isinstance(written, list):
        return isinstance(loaded, list) and len(loaded) == len(written) and all(map(holds, loaded, written))
    return bool(loaded == written)


def test_configs_in_repo_load_with_every_setting_they_write() -> None:
    paths = sorted(Path("configs/collect").glob("*.yaml"))
    assert {p.stem for p in paths} >= {"tiny", "highway_merge_meta", "highway_merge_continuous"}
    for path in paths:
        written = yaml.safe_load(path.read_text())
        assert holds(load_config(CollectConfig, path).to_dict(), written), path
    from drivegpt.model.pretrain_config import PretrainConfig

    pretrain = sorted(Path("configs/pretrain").glob("*.yaml"))
    assert {p.stem for p in pretrain} >= {"tiny", "accel-small", "accel-memoryless"}
    for path in pretrain:
        assert holds(load_config(PretrainConfig, path).to_dict(), yaml.safe_load(path.read_text())), path
    assert not holds({"episodes": 4, "seed": 0}, {"episodes": 5})  # the check itself can fail
    assert not holds({"scenarios": [{"weight": 1}]}, {"scenarios": [{"weight": 1}, {"weight": 2}]})


def test_config_is_frozen():
    cfg = CollectConfig()
    with pytest.raises(ValidationError):
        cfg.episodes = 3  # type: ignore[misc]


def test_a_bad_value_from_the_command_line_is_named_by_its_flag_not_the_file(tmp_path):
    from drivegpt.model.pretrain_config import PretrainConfig

    with pytest.raises(ConfigError, match=r"^bad value for --max-iters: .*\(got -1\)"):
        load_config(PretrainConfig, "configs/pretrain/tiny.yaml", {"max_iters": -1})
    with pytest.raises(ConfigError, match=r"^bad value for --iters: "):
        load_config(PretrainConfig, "configs/pretrain/tiny.yaml", {"max_iters": 0}, {"max_iters": "--iters"})
    bad = tmp_path / "bad.yaml"
    bad.write_text("max_iters: -1\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: bad value for 'max_iters'"):  # the file's own value
        load_config(PretrainConfig, bad, {"batch_size": 8})


def test_a_check_across_keys_names_the_file_and_the_options_without_dumping_the_config():
    """A model validator's error (here: dqn with continuous actions) is one line naming the file and
    the command-line options it was read with, not the whole merged config."""
    from drivegpt.policies.sb3_config import BaselineConfig

    path = "configs/baselines/dqn.yaml"
    with pytest.raises(ConfigError) as e:
        given = {"action": "continuous", "total_steps": 10}
        load_config(BaselineConfig, path, given, {"total_steps": "--steps"})
    msg = str(e.value)
    assert msg.startswith(f"{path} with --action continuous, --steps 10: dqn needs discrete actions"), msg
    assert "hyperparams" not in msg and "\n" not in msg
