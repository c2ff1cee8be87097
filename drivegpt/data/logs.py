"""Driving logs: a Minari dataset (arrow backend) plus DriveGPT's checksum manifest.

Layout of a log directory ``DIR`` (version 1)::

    DIR/
      manifest.json          # format, version, files: sha256 of every file under data/, collect config
      data/                  # a plain Minari dataset: minari.MinariDataset(DIR / "data") opens it
        metadata.json        # Minari's dataset metadata (spaces, totals, ...)
        <i>/part-0.arrow     # the steps of episode i
        <i>/metadata.json    # Minari episode metadata + ours: env_id, seed, action, scenario,
                             #   env_config, personality

Per step Minari stores the observation (V=10 vehicles x F=7 Kinematics features), the action, the
reward, terminated/truncated flags and ``infos`` = the ego state (speed [m/s], x, y [m], heading
[rad], lane, crashed, on_road). Everything goes through :func:`load_logs`, which verifies every
checksum before opening and raises :class:`DataError` naming the bad file.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from drivegpt.core import manifest
from drivegpt.core.atomic import replace_dir, write_json
from drivegpt.core.errors import UserError
from drivegpt.sim.episode import Episode

FORMAT = "drivegpt-logs"
VERSION = 1
MANIFEST = "manifest.json"


class DataError(UserError):
    """A dataset on disk is missing, truncated, corrupt or of an unknown version."""


def _data_files(data_dir: Path) -> list[str]:
    return sorted(str(p.relative_to(data_dir)) for p in data_dir.rglob("*") if p.is_file())


@contextlib.contextmanager
def _minari_root(root: Path) -> Iterator[None]:
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = old


@contextlib.contextmanager
def _size_measured_once() -> Iterator[None]:
    """Minari re-measures the dataset (a walk over every file written so far) after each episode it
    writes, which makes writing N episodes cost O(N²): 6,000 episodes took most of an hour. While
    this is active the size reads 0; :func:`write_logs` stores the real size once, at the end."""
    from minari.dataset.minari_storage import MinariStorage

    measure = MinariStorage.get_size
    MinariStorage.get_size = lambda self: 0.0  # type: ignore[method-assign]
    try:
        yield
    finally:
        MinariStorage.get_size = measure  # type: ignore[method-assign]


def write_logs(
    out: str | Path, episodes: Sequence[Episode], env: gym.Env, config: dict[str, Any], description: str = ""
) -> Path:
    """Write ``episodes`` as a Minari dataset with a manifest, atomically (tmp dir + rename).

    ``env`` (the first scenario's env) gives the spaces and the spec Minari's
    ``recover_environment`` rebuilds; each episode's own env id and config are in its metadata.
    """
    import warnings

    from minari import create_dataset_from_buffers
    from minari.data_collector.episode_buffer import EpisodeBuffer

    out = Path(out).resolve()  # Minari mishandles relative dataset roots
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_root = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp_root, ignore_errors=True)
    dataset_id = "drivegpt-logs-v0"
    buffers = [
        EpisodeBuffer(
            id=i,
            seed=ep.seed,
            observations=ep.observations,
            actions=ep.actions,
            rewards=ep.rewards,  # numpy arrays go to Arrow as they are
            terminations=ep.terminations,
            truncations=ep.truncations,
            # Minari's Arrow storage encodes infos from Python lists (1-D numpy arrays lose their shape)
            infos={**{k: v.tolist() for k, v in ep.states.items()}, "decision": _decision_rows(ep).tolist()},
        )
        for i, ep in enumerate(episodes)
    ]
    with _minari_root(tmp_root), warnings.catch_warnings(), _size_measured_once():
        warnings.filterwarnings("ignore", module="minari")
        ds = create_dataset_from_buffers(
            dataset_id,
            buffers,
            env=env,
            algorithm_name="drivegpt-human-driver",
            description=description or "Human-driver logs",
            data_format="arrow",
        )
    ds.storage.update_episode_metadata(  # measures the dataset's size, once
        [{"env_id": ep.env_id, **ep.meta} for ep in episodes], range(len(episodes))
    )
    tmp = tmp_root / dataset_id
    data_dir = tmp / "data"
    header = {
        "format": FORMAT,
        "version": VERSION,
        "episodes": len(episodes),
        "steps": int(sum(len(ep.rewards) for ep in episodes)),
        "files": manifest.digest(data_dir, _data_files(data_dir)),
        "config": config,
    }
    write_json(tmp / MANIFEST, header)
    replace_dir(tmp, out)
    shutil.rmtree(tmp_root, ignore_errors=True)
    return out


def _decision_rows(ep: Episode) -> np.ndarray:
    """The driver's clean decision per observation: Minari stores infos per observation (T+1 rows),
    so the terminal observation, where nobody decides, repeats the last decision (the loader reads
    the first T rows)."""
    dec = ep.actions if ep.decisions is None else ep.decisions
    return np.concatenate([dec, dec[-1:]]) if len(dec) else np.zeros((1, *dec.shape[1:]), dec.dtype)


class LogDataset:
    """A verified log directory. ``minari`` is the underlying :class:`minari.MinariDataset`."""

    def __init__(self, path: Path, manifest: dict[str, Any], minari_dataset: Any):
        self.path = path
        self.manifest = manifest
        self.minari = minari_dataset
        self._decoded: dict[int, Episode] = {}  # episode index -> arrays, filled on first read

    def __len__(self) -> int:
        return int(self.manifest["episodes"])

    @property
    def action_kind(self) -> str:
        return str(self.manifest["config"].get("action", "meta"))

    def episodes(self, indices: Sequence[int] | None = None) -> Iterator[Episode]:
        """The episodes at ``indices`` (all by default), decoded from Arrow once per process."""
        indices = list(range(len(self))) if indices is None else list(indices)
        missing = [i for i in dict.fromkeys(indices) if i not in self._decoded]
        if missing:
            metas = list(self.minari.storage.get_episode_metadata(missing))
            for ep, meta in zip(self.minari.iterate_episodes(missing), metas, strict=True):
                actions = np.asarray(ep.actions)
                T = len(actions)
                dec = np.asarray(ep.infos.get("decision", actions))[:T]
                self._decoded[int(ep.id)] = Episode(
                    seed=int(meta.get("seed", -1)),
                    env_id=str(meta.get("env_id", "")),
                    observations=np.asarray(ep.observations, np.float32),
                    actions=actions,
                    rewards=np.asarray(ep.rewards, np.float64),
                    terminations=np.asarray(ep.terminations, bool),
                    truncations=np.asarray(ep.truncations, bool),
                    states={k: np.asarray(v, np.float64) for k, v in ep.infos.items() if k != "decision"},
                    meta=dict(meta),
                    decisions=dec.astype(actions.dtype),
                )
        for i in indices:
            yield self._decoded[i]


def verify_logs(path: str | Path) -> dict[str, Any]:
    """Check the manifest and every file's sha256; return the manifest or raise :class:`DataError`."""
    path = Path(path)
    fix = "re-run `drivegpt collect` to regenerate it"
    if not path.is_dir():
        raise DataError(f"{path}: no such dataset directory; {fix}")
    header = manifest.read_header(path / MANIFEST, FORMAT, VERSION, DataError, fix)
    manifest.verify(path / "data", header["files"], DataError, fix, exact=True)
    return header


_OPENED: dict[tuple[Any, ...], LogDataset] = {}  # one verified, decoded dataset per files' state


def _files_state(path: Path) -> tuple[Any, ...]:
    """(name, size, mtime) of every file of the dataset: a change of any file invalidates the cache."""
    files = sorted(f for f in path.rglob("*") if f.is_file())
    return tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files)


def load_logs(path: str | Path) -> LogDataset:
    """The one way to open driving logs: verify checksums and integrity, then open with Minari.

    Within one process a dataset is verified and decoded once; opening it again returns the same
    object unless a file changed (size or modification time) in between.
    """
    path = Path(path).resolve()
    key = (path, _files_state(path)) if path.is_dir() else None
    if key is not None and key in _OPENED:
        return _OPENED[key]
    ds = _open_logs(path)
    if key is not None:
        _OPENED.clear()  # keep only the latest dataset: the caller's memory, not a growing cache
        _OPENED[key] = ds
    return ds


def _open_logs(path: Path) -> LogDataset:
    import minari

    manifest = verify_logs(path)
    try:
        ds = minari.MinariDataset(path / "data")
    except Exception as err:  # noqa: BLE001 - any reader failure is a data error for the user
        raise DataError(
            f"{path / 'data'}: Minari cannot open the dataset ({err}); re-run `drivegpt collect`"
        ) from None
    if ds.total_episodes != manifest["episodes"] or ds.total_steps != manifest["steps"]:
        raise DataError(
            f"{path / 'data' / 'metadata.json'}: {ds.total_episodes} episodes / "
            f"{ds.total_steps} steps, manifest says {manifest['episodes']} / {manifest['steps']}"
        )
    return LogDataset(path, manifest, ds)
