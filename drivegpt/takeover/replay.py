"""Replay a takeover clip exactly, then hand the wheel to a chosen policy.

A clip replays on the simulator it was recorded on (``Clip.sim``): highway-env here, the batched
simulator in :mod:`drivegpt.takeover.batched_clips`. A batched clip also replays on highway-env
(``sim="highway-env"``): its exact batched state is written into highway-env's objects.

Re-simulation from seed + action prefix must reproduce the recorded state snapshot exactly
(fidelity = max abs difference: 0 on the recording machine, at most ``REPLAY_TOLERANCE`` = 1e-9 on
another CPU); a larger one raises :class:`ReplayError`. The chosen policy then drives for the clip's
horizon (with or without the monitor); the clip is *resolved* when there is no collision, no TTC
violation (< 0.95 s) and, with the monitor, no new takeover.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, NamedTuple

from drivegpt.core.errors import UserError
from drivegpt.policies.registry import load_policy
from drivegpt.sim.geometry import TTC_VIOLATION, lead_figures
from drivegpt.sim.human import HumanDriver
from drivegpt.sim.personality import Personality
from drivegpt.sim.rollout import Backend, Simulator, make_env, parallel_map
from drivegpt.sim.video import ensure_headless, write_video
from drivegpt.takeover import batched_clips
from drivegpt.takeover.clips import Clip, ReplayResult, fidelity_of, vehicle_snapshot
from drivegpt.takeover.monitor import MonitorConfig, check_triggers


def restore(clip: Clip, render: bool = False) -> Any:
    """Rebuild the env at the takeover moment; raise :class:`ReplayError` unless the state is exact."""
    env = make_env(clip.env_id, clip.action, clip.env_config, render_mode="rgb_array" if render else None)  # type: ignore[arg-type]
    obs, _ = env.reset(seed=clip.seed)
    frames = []
    for t, action in enumerate(clip.action_prefix):
        obs, *_ = env.step(action)
        if render and t >= len(clip.action_prefix) - 5:
            frames.append(env.render())
    return env, obs, fidelity_of(clip, vehicle_snapshot(env)), frames


def replay_clip(
    clip: Clip,
    policy_spec: str,
    monitor: MonitorConfig | None = None,
    video: str | Path | None = None,
    use_monitor: bool = True,
    extra_steps: int = 5,
    sim: Simulator | None = None,
) -> ReplayResult:
    """Restore ``clip`` exactly, then let ``policy_spec`` drive for the clip's horizon + margin.

    Resolved: the situation becomes safe (``handback_safe_steps`` in a row) with no collision, no
    TTC violation and, after that, no new takeover (``use_monitor``: including the look-ahead).
    ``sim``: the simulator to replay on (default: the clip's own); a batched clip replays on
    highway-env from its state written into highway-env's objects
    (:func:`~drivegpt.takeover.batched_clips.highway_env_at`).
    """
    sim = sim or clip.sim
    if sim == "batched" and clip.sim != "batched":
        raise UserError(f"clip {clip.id} was recorded on highway-env: it replays there only; drop --sim")
    if sim == "batched":
        return batched_clips.replay_clip(clip, policy_spec, monitor, video, use_monitor, extra_steps)
    t0 = time.perf_counter()
    if video is not None:
        ensure_headless()
    if clip.sim == "batched":
        env, obs, fidelity, frames = batched_clips.highway_env_at(clip, render=video is not None)
    else:
        env, obs, fidelity, frames = restore(clip, render=video is not None)
    if policy_spec == "human":  # the same human who took over
        policy: Any = HumanDriver(personality=Personality(**clip.personality))
    else:
        policy = load_policy(policy_spec, clip.action)
    if getattr(policy, "action_kind", clip.action) != clip.action:
        raise UserError(
            f"{policy_spec} drives {policy.action_kind} actions but clip {clip.id} was "
            f"recorded with {clip.action} actions"
        )
    policy.reset(seed=clip.seed, env=env)
    if hasattr(policy, "executed"):  # a sequence policy gets the clip's context as its history
        for o, a in zip(clip.context_obs[:-1], clip.context_actions, strict=True):
            policy.act(o)
            policy.executed(a)
    shadow = HumanDriver(personality=Personality(**clip.personality))
    shadow.reset(seed=clip.seed, env=env)
    collision = ttc_violation = new_takeover = False
    min_ttc, steps = math.inf, 0
    # As in the live monitor: the takeover moment is unsafe by construction, so the new driver first
    # has to reach ``handback_safe_steps`` consecutive safe steps (threshold triggers only: no
    # look-ahead) — "handed back"; any trigger after that (look-ahead included, unless
    # ``use_monitor`` is off) is a new takeover.
    monitor = monitor or MonitorConfig()
    thresholds_only = monitor.thresholds_only()
    safe_run, handed_back = 0, False
    for _ in range(clip.horizon + monitor.handback_safe_steps + extra_steps):
        action = policy.act(obs)
        human_action = shadow.act(obs)
        if handed_back:
            full = monitor if use_monitor else thresholds_only
            new_takeover |= check_triggers(env, policy, action, human_action, full) is not None
        unsafe = check_triggers(env, None, action, human_action, thresholds_only) is not None
        safe_run = 0 if unsafe else safe_run + 1
        handed_back |= safe_run >= monitor.handback_safe_steps
        obs, _, terminated, truncated, _ = env.step(action)
        steps += 1
        if video is not None:
            frames.append(env.render())
        ttc, _ = lead_figures(env)
        min_ttc = min(min_ttc, ttc)
        ttc_violation |= ttc < TTC_VIOLATION
        collision |= bool(env.unwrapped.vehicle.crashed)
        if terminated or truncated:
            handed_back |= not collision  # the scenario ended (e.g. time limit) with the car intact
            break
    if video is not None and frames:
        write_video(video, frames)
    env.close()
    resolved = handed_back and not (collision or ttc_violation or new_takeover)
    return ReplayResult(
        clip.id,
        fidelity,
        resolved,
        collision,
        ttc_violation,
        new_takeover,
        handed_back,
        steps,
        min_ttc,
        time.perf_counter() - t0,
    )


class ReplayJob(NamedTuple):
    clip: Clip
    policy: str
    monitor: dict[str, Any]  # MonitorConfig fields
    use_monitor: bool
    sim: Simulator | None = None  # None: the clip's own


def replay_one(job: ReplayJob) -> ReplayResult:
    """:func:`replay_clip` without video (runs in a worker process)."""
    if job.policy.startswith(("drivegpt", "sb3")):
        import torch

        torch.set_num_threads(1)  # one simulator + one network per worker process
    return replay_clip(job.clip, job.policy, MonitorConfig(**job.monitor), None, job.use_monitor, sim=job.sim)


def replay_clips(
    clips: list[Clip],
    policy_spec: str,
    monitor: MonitorConfig,
    video: str | Path | None = None,
    use_monitor: bool = True,
    workers: int | None = None,
    backend: Backend = "local",
    ray_address: str | None = None,
    progress: bool = True,
    sim: Simulator | None = None,
) -> list[ReplayResult]:
    """Replay every clip (in clip order) over worker processes, on ``sim`` (default: each clip's
    own); ``video`` of the first clip is rendered in this process, so it lands on this machine
    whatever the backend."""
    first = []
    if video is not None and clips:
        first = [replay_clip(clips[0], policy_spec, monitor, video, use_monitor, sim=sim)]
        clips = clips[1:]
    jobs = [ReplayJob(c, policy_spec, monitor.to_dict(), use_monitor, sim) for c in clips]
    desc = f"replay {policy_spec}"
    return first + parallel_map(replay_one, jobs, workers, backend, desc, progress, ray_address)
