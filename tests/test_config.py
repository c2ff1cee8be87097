import pytest
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


def test_configs_in_repo_load():
    for name in ["tiny", "highway_merge_meta", "highway_merge_continuous"]:
        cfg = load_config(CollectConfig, f"configs/collect/{name}.yaml")
        assert cfg.episodes >= 1


def test_config_is_frozen():
    cfg = CollectConfig()
    with pytest.raises(ValidationError):
        cfg.episodes = 3  # type: ignore[misc]
