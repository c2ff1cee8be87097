"""Takeover clips and their on-disk format (``drivegpt-clips`` v1).

Layout of a clip directory ``CLIPS/``::

    CLIPS/
      metadata.json          format, version, clip ids, sha256 of every clip file
      <clip_id>.json         env id + config, action kind, seed, takeover step, trigger and figures,
                             policy spec, human personality, late flag, sim (the simulator it
                             replays on: highway-env, the default, or batched)
      <clip_id>.npz          arrays (numeric only; loaded with allow_pickle=False):
                               action_prefix (t,[2])   every executed action from reset to the takeover
                               context_obs (c+1,V,F)   observations before and at the takeover
                               context_actions (c,[2]) actions executed before the takeover
                               obs (n,V,F)             observations while the human drove
                               rejected (n,[2])        the policy's proposals (rejected)
                               chosen (n,[2])          the human's actions (chosen)
                               snapshot (N,7)          every vehicle at the takeover moment: x, y [m],
                                                       heading [rad], speed [m/s], lane id, crashed, ego flag
                               optional, with MonitorConfig.ranking_steps = H > 0 (HAOMO's ranking,
                               simulated from copies of the takeover moment):
                               ranked_obs (3,H,V,F)     old policy alone / takeover-corrected (human,
                               ranked_actions (3,H,[2]) then the policy after hand-back) / human alone
                               ranked_len (3,)          steps each segment lasted (a crash ends it)
      policy_steps.npz       optional: every step of the drive, for the reward model's weak samples:
                               obs (N,V,F), actions (N,[2]), start (N,) index of the episode's first
                               step, weak (N,) true where the policy drove with no takeover soon after

Why not Minari: a clip is not an episode but a fragment plus replay information (seed, prefix,
snapshot); a directory with ``metadata.json`` + numeric arrays is the smallest format that holds it
without pickle.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np

from drivegpt.core import manifest
from drivegpt.core.atomic import replace_dir, write_bytes, write_json
from drivegpt.core.errors import UserError
from drivegpt_envs.actions import AccelLaneAction

FORMAT = "drivegpt-clips"
VERSION = 1
POLICY_STEPS = "policy_steps.npz"  #: optional: the steps the policy drove itself (weak samples)


class ClipError(UserError):
    """A clip directory is missing, corrupt or tampered with."""


class ReplayError(UserError, RuntimeError):
    """Re-simulation did not reproduce the recorded state."""


class ReplayResult(NamedTuple):
    clip: str
    fidelity_max_abs: float
    resolved: bool
    collision: bool
    ttc_violation: bool
    new_takeover: bool
    handed_back: bool
    steps: int
    min_ttc_s: float
    seconds: float


def vehicle_snapshot(env: gym.Env) -> np.ndarray:
    """(N, 7) state of every vehicle on the road: x, y, heading, speed, lane, crashed, is_ego."""
    base = env.unwrapped
    rows = []
    for v in base.road.vehicles:
        lane = v.lane_index[2] if v.lane_index else -1
        rows.append(
            [
                v.position[0],
                v.position[1],
                v.heading,
                v.speed,
                lane,
                float(v.crashed),
                float(v is base.vehicle),
            ]
        )
    return np.asarray(rows, np.float64)


#: [m, m/s, rad] how far a replayed state may differ from its recording. On the machine that recorded
#: a clip replay is bit for bit (0.0); on a CPU with other SIMD extensions (numpy dispatches AVX2 or
#: AVX-512 kernels) or for a clip simulated on a GPU, floating point differs in the last bits (seen:
#: 1.8e-15 between two x86-64 CPUs, 5.7e-14 between an H200 and a CPU)
REPLAY_TOLERANCE = 1e-9


def fidelity_of(clip: Clip, snap: np.ndarray) -> float:
    """The max abs difference between ``snap`` (N, 7), the state replay reached, and the clip's
    recorded snapshot; above ``REPLAY_TOLERANCE`` :class:`ReplayError` says how it differs."""
    if snap.shape != clip.snapshot.shape:
        raise ReplayError(
            f"clip {clip.id}: {snap.shape[0]} vehicles on replay, {clip.snapshot.shape[0]} "
            "recorded — different software versions or env config?"
        )
    fidelity = float(np.abs(snap - clip.snapshot).max()) if snap.size else 0.0
    if not fidelity <= REPLAY_TOLERANCE:
        raise ReplayError(
            f"clip {clip.id}: replayed state differs from the recording by {fidelity:.3g} (max abs, "
            f"tolerance {REPLAY_TOLERANCE:g}); replay is only exact in the same software versions"
        )
    return fidelity


@dataclass
class Clip:
    """One takeover. Built live by the monitor (``start`` then ``add`` each human step)."""

    env_id: str
    env_config: dict[str, Any]
    action: str
    seed: int
    step: int
    trigger: str
    figures: dict[str, float]
    policy: str
    personality: dict[str, Any]
    action_prefix: np.ndarray
    context_obs: np.ndarray
    context_actions: np.ndarray
    snapshot: np.ndarray
    late: bool = False
    ranked: dict[str, np.ndarray] | None = None  # ranked_obs, ranked_actions, ranked_len (optional)
    obs: list[np.ndarray] = field(default_factory=list)
    rejected: list[Any] = field(default_factory=list)
    chosen: list[Any] = field(default_factory=list)
    id: str = ""
    sim: str = "highway-env"  # the simulator it replays exactly on: highway-env, or batched
    device: str = "cpu"  # where it was simulated (batched clips: cpu or cuda); replay runs on the CPU

    @classmethod
    def start(
        cls,
        env: gym.Env,
        seed: int,
        step: int,
        trigger: str,
        figures: dict[str, float],
        policy: str,
        action_prefix: np.ndarray,
        context_obs: np.ndarray,
        context_actions: np.ndarray,
        personality: dict[str, Any],
        snapshot: np.ndarray,
    ) -> Clip:
        base = env.unwrapped
        continuous = isinstance(env.action_space, gym.spaces.Box)
        accel = isinstance(base.action_type, AccelLaneAction)
        config = base.config  # the whole env config: replay rebuilds exactly this env
        return cls(
            env.spec.id if env.spec else "",
            _jsonable(config),
            "continuous" if continuous else "accel" if accel else "meta",
            seed,
            step,
            trigger,
            {k: float(v) for k, v in figures.items()},
            policy,
            personality,
            action_prefix,
            context_obs,
            context_actions,
            snapshot,
        )

    def add(self, obs: np.ndarray, rejected: Any, chosen: Any) -> None:
        self.obs.append(np.asarray(obs))
        self.rejected.append(rejected)
        self.chosen.append(chosen)

    @property
    def horizon(self) -> int:
        """Steps the human drove."""
        return len(self.chosen)

    def arrays(self) -> dict[str, np.ndarray]:
        dtype = np.float32 if self.action == "continuous" else np.int64
        shape = (0, 2) if self.action == "continuous" else (0,)

        def act(x: Any) -> np.ndarray:
            return np.asarray(x, dtype) if len(x) else np.zeros(shape, dtype)

        return (self.ranked or {}) | {
            "action_prefix": act(self.action_prefix),
            "context_obs": np.asarray(self.context_obs),
            "context_actions": act(self.context_actions),
            "obs": np.asarray(self.obs, np.float32),
            "rejected": act(self.rejected),
            "chosen": act(self.chosen),
            "snapshot": self.snapshot,
        }

    def header(self) -> dict[str, Any]:
        skip = {"action_prefix", "context_obs", "context_actions", "snapshot", "obs", "rejected", "chosen"}
        skip.add("ranked")
        return {k: v for k, v in asdict(self).items() if k not in skip} | {"horizon": self.horizon}


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


def write_clips(
    out: str | Path,
    clips: list[Clip],
    extra: dict[str, Any] | None = None,
    policy_steps: dict[str, np.ndarray] | None = None,
) -> Path:
    """Write clips (ids assigned in order) atomically with a checksum manifest.

    ``policy_steps`` (optional, see :mod:`drivegpt.rlhf.preferences`): the steps the policy drove
    itself, saved as ``policy_steps.npz``: the reward model's weakly-good samples.
    """
    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    files: dict[str, str] = {}
    for i, clip in enumerate(clips):
        clip.id = clip.id or f"clip_{i:05d}"
        buf = io.BytesIO()
        np.savez_compressed(buf, **clip.arrays())
        header = json.dumps(_jsonable(clip.header()), indent=2).encode()
        for name, data in ((f"{clip.id}.npz", buf.getvalue()), (f"{clip.id}.json", header)):
            write_bytes(tmp / name, data)
            files[name] = manifest.sha256_bytes(data)
    if policy_steps is not None:
        buf = io.BytesIO()
        np.savez_compressed(buf, **policy_steps)
        write_bytes(tmp / POLICY_STEPS, buf.getvalue())
        files[POLICY_STEPS] = manifest.sha256_bytes(buf.getvalue())
    write_json(
        tmp / "metadata.json",
        {
            "format": FORMAT,
            "version": VERSION,
            "clips": [c.id for c in clips],
            "files": files,
            **(extra or {}),
        },
    )
    replace_dir(tmp, out)
    return out


def clip_monitor(path: str | Path) -> dict[str, Any]:
    """The MonitorConfig fields the clips were recorded with ({} when not recorded)."""
    meta = Path(path) / "metadata.json"
    try:
        return dict(json.loads(meta.read_text()).get("monitor", {}))
    except (OSError, json.JSONDecodeError) as err:
        raise ClipError(f"{meta}: unreadable ({err})") from None


def load_clips(path: str | Path, ids: list[str] | None = None) -> list[Clip]:
    """Verify checksums and load clips; :class:`ClipError` names the bad file."""
    path = Path(path)
    fix = "regenerate it with `drivegpt drive --takeovers --clips-out DIR`"
    meta = manifest.read_header(path / "metadata.json", FORMAT, VERSION, ClipError, fix)
    wanted = meta["clips"] if ids is None else ids
    unknown = [i for i in wanted if i not in meta["clips"]]
    if unknown:
        raise ClipError(f"{path}: no clip {unknown[0]!r}; clips here: {', '.join(meta['clips'][:10])}")
    names = [f"{cid}.{ext}" for cid in wanted for ext in ("json", "npz")]
    manifest.verify(path, meta["files"], ClipError, fix, names=names)
    clips = []
    for cid in wanted:
        header = json.loads((path / f"{cid}.json").read_text())
        with np.load(path / f"{cid}.npz", allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        header.pop("horizon", None)
        if header.get("sim", "highway-env") not in ("highway-env", "batched"):
            sim = header["sim"]
            raise ClipError(
                f"{path / f'{cid}.json'}: unknown sim {sim!r} (valid: highway-env, batched); {fix}"
            )
        if header.get("device", "cpu") not in ("cpu", "cuda"):
            device = header["device"]
            raise ClipError(f"{path / f'{cid}.json'}: unknown device {device!r} (valid: cpu, cuda); {fix}")
        clip = Clip(
            **{k: v for k, v in header.items() if k not in ("obs", "rejected", "chosen")},
            action_prefix=arrays["action_prefix"],
            context_obs=arrays["context_obs"],
            context_actions=arrays["context_actions"],
            snapshot=arrays["snapshot"],
            obs=list(arrays["obs"]),
            rejected=list(arrays["rejected"]),
            chosen=list(arrays["chosen"]),
            ranked={k: v for k, v in arrays.items() if k.startswith("ranked_")} or None,
        )
        clips.append(clip)
    return clips


def load_policy_steps(path: str | Path) -> dict[str, np.ndarray] | None:
    """The optional ``policy_steps.npz`` of a clip directory, checksum-verified (None if absent)."""
    path = Path(path)
    fix = "regenerate it with `drivegpt drive --takeovers --clips-out DIR`"
    meta = manifest.read_header(path / "metadata.json", FORMAT, VERSION, ClipError, fix)
    if POLICY_STEPS not in meta["files"]:
        return None
    manifest.verify(path, meta["files"], ClipError, fix, names=[POLICY_STEPS])
    with np.load(path / POLICY_STEPS, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}
