"""Shared fixtures, and the order in which pytest-xdist hands test modules to its workers.

The suite runs with ``--dist loadscope --no-loadscope-reorder`` (pyproject.toml): each test module is
one unit of work (its module-scoped fixtures run once), handed to the next free worker in collection
order. ``SLOW_MODULES`` puts the longest modules first, longest first (by their summed test
durations in a full run), so that no long module starts last; every other module keeps its place
after them.
"""

import os

import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "offscreen")
# one thread per test worker (and the processes tests start): the workers already share the cores, and
# the small tensors of the tests gain nothing from more (a full run: 280 s of wall time -> 258 s)
os.environ.setdefault("OMP_NUM_THREADS", "1")

#: test modules by their total time on an idle 2-core machine, longest first
SLOW_MODULES = (
    "test_rlhf.py",
    "test_dagger.py",
    "test_ray.py",
    "test_batched_search.py",
    "test_pipeline.py",
    "test_ddp.py",
    "test_families.py",
    "test_baselines.py",
    "test_takeover.py",
    "test_batched_families.py",
    "test_envs.py",
    "test_batched_clips.py",
    "test_estimate.py",
    "test_cli.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Slow modules first (stable sort: tests keep their order inside a module)."""
    rank = {name: i for i, name in enumerate(SLOW_MODULES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(SLOW_MODULES)))


@pytest.fixture(scope="session")
def tiny_logs(tmp_path_factory):
    """A tiny human-driven dataset collected once per test session."""
    from drivegpt.core.config import load_config
    from drivegpt.data.collect import CollectConfig, collect

    cfg = load_config(CollectConfig, "configs/collect/tiny.yaml")
    out = tmp_path_factory.mktemp("logs") / "tiny"
    collect(cfg, out, progress=False)
    return out
