import os

import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "offscreen")


@pytest.fixture(scope="session")
def tiny_logs(tmp_path_factory):
    """A tiny human-driven dataset collected once per test session."""
    from drivegpt.core.config import load_config
    from drivegpt.data.collect import CollectConfig, collect

    cfg = load_config(CollectConfig, "configs/collect/tiny.yaml")
    out = tmp_path_factory.mktemp("logs") / "tiny"
    collect(cfg, out, progress=False)
    return out
