"""Takeover clips of the batched simulator: the monitored drives that make them, and their replay.

Owns ``evaluate_monitored_batched`` (a policy spec under the batched safety driver: takeover figures,
and on request the clips and the episodes), ``clips_of`` (the :class:`~drivegpt.takeover.clips.Clip`
of every takeover of a ``MonitoredBatch``, marked ``sim: batched``), ``restore`` (reset from the
clip's seed, step its action prefix, check the snapshot exactly) and ``replay_clip`` (what
:func:`drivegpt.takeover.replay.replay_clip` does, on the batched simulator). The clip format is the
one of highway-env's clips; ``env_config`` holds the policy's env settings (what
``drivegpt.sim.batched.make_config`` takes). A batched clip's traffic is the batched simulator's own
draw for its seed, so its action prefix rebuilds it on the batched simulator only; ``highway_env_at``
writes the rebuilt state into highway-env's objects, so the clip replays on highway-env too.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from drivegpt.core.errors import UserError
from drivegpt.core.metrics import driving_metrics, takeover_metrics
from drivegpt.policies.registry import load_policy
from drivegpt.sim import batched
from drivegpt.sim.batched.human import BatchedHuman
from drivegpt.sim.geometry import TTC_VIOLATION
from drivegpt.sim.personality import Personality
from drivegpt.takeover.batched import (
    NO_TRIGGER,
    PREDICTED,
    WatchedHuman,
    check_triggers,
    lead_figures,
    propose,
    threshold_triggers,
)
from drivegpt.takeover.batched_drive import MonitoredBatch, monitored_driver, run_monitored_batch, snapshot
from drivegpt.takeover.clips import Clip, ReplayResult, fidelity_of
from drivegpt.takeover.monitor import TRIGGERS, MonitorConfig

SIM = "batched"  #: ``Clip.sim`` of the clips made here


def clips_of(
    run: MonitoredBatch,
    env_id: str,
    action: str,
    env_config: dict[str, Any] | None,
    policy: str,
    context: int,
    device: str = "cpu",
) -> list[Clip]:
    """Every takeover of ``run`` (recorded with ``record_obs``) as a clip, episode by episode, in time
    order; ``context`` steps before each takeover are kept (``MonitorConfig.context_steps``).
    ``device``: the device type the run was simulated on (``cpu``, ``cuda``), kept in each clip."""
    if run.obs is None or run.seg_snapshot is None or run.personality is None:
        raise ValueError("clips need a monitored batch recorded with record_obs=True")
    clips = []
    for s in range(len(run.seg_start)):
        b, t, end = int(run.seg_episode[s]), int(run.seg_start[s]), int(run.seg_end[s])
        c0 = max(0, t - context)
        figures = {"ttc_s": run.seg_ttc[s], "headway_s": run.seg_headway[s], "speed_mps": run.seg_speed[s]}
        if run.seg_trigger[s] == PREDICTED:
            figures["crash_in_steps"] = float(run.seg_crash_in[s])
        clip = Clip(
            env_id=env_id,
            env_config=dict(env_config or {}),
            action=action,
            seed=int(run.seed[b]),
            step=t,
            trigger=TRIGGERS[int(run.seg_trigger[s])],
            figures={k: float(v) for k, v in figures.items()},
            policy=policy,
            personality=run.personality[b],
            action_prefix=run.executed[b, :t].copy(),
            context_obs=run.obs[b, c0 : t + 1].copy(),
            context_actions=run.executed[b, c0:t].copy(),
            snapshot=run.seg_snapshot[s],
            late=bool(run.seg_late[s]),
            obs=list(run.obs[b, t:end]),
            rejected=list(run.proposal[b, t:end]),
            chosen=list(run.executed[b, t:end]),
            sim=SIM,
            device=device,
        )
        clips.append(clip)
    return clips


def restore(clip: Clip) -> tuple[batched.BatchState, float]:
    """The batched state at the clip's takeover moment (B = 1) and its fidelity (0: exact); a state
    that differs from the recorded snapshot raises ``ReplayError``."""
    config = batched.make_config(clip.env_id, clip.action, clip.env_config or None)  # type: ignore[arg-type]
    state = batched.reset([clip.seed], config)
    for a in clip.action_prefix:
        state = batched.step(state, torch.tensor([int(a)]))
    return state, fidelity_of(clip, snapshot(state, 0))


def highway_env_at(clip: Clip, render: bool = False) -> tuple[Any, np.ndarray, float, list[np.ndarray]]:
    """A highway-env env at a batched clip's takeover moment, to replay it there: the batched state
    restored exactly, then written into highway-env's objects (``to_highway_env``: every vehicle,
    its controller's targets and timers, its IDM and MOBIL parameters, the episode clock). Returns
    (env, observation, fidelity, frames) as :func:`drivegpt.takeover.replay.restore`; the fidelity
    compares highway-env's vehicles with the clip's snapshot (0: the state maps exactly)."""
    from drivegpt.sim.rollout import make_env
    from drivegpt.takeover.clips import vehicle_snapshot

    state, _ = restore(clip)
    mode = "rgb_array" if render else None
    env = make_env(clip.env_id, clip.action, clip.env_config or None, mode)  # type: ignore[arg-type]
    env.reset(seed=clip.seed)
    batched.to_highway_env(state, 0, env)
    obs = env.unwrapped.observation_type.observe()
    return env, obs, fidelity_of(clip, vehicle_snapshot(env)), [env.render()] if render else []


def replay_clip(
    clip: Clip,
    policy_spec: str,
    monitor: MonitorConfig | None = None,
    video: str | Path | None = None,
    use_monitor: bool = True,
    extra_steps: int = 5,
) -> ReplayResult:
    """:func:`drivegpt.takeover.replay.replay_clip` on the batched simulator: restore ``clip`` exactly,
    let ``policy_spec`` drive for the clip's horizon + margin and judge it the same way."""
    t0 = time.perf_counter()
    state, fidelity = restore(clip)
    config = state.config
    person = Personality(**clip.personality)
    if policy_spec == "human":  # the same human who took over, reading the state
        policy: Any = WatchedHuman(config, BatchedHuman(config, personality=person))
        policy.reset_episodes([clip.seed], state)
    else:
        policy = load_policy(policy_spec, clip.action)
        if getattr(policy, "action_kind", clip.action) != clip.action:
            raise UserError(
                f"{policy_spec} drives {policy.action_kind} actions but clip {clip.id} was "
                f"recorded with {clip.action} actions"
            )
        if hasattr(policy, "reset_batch"):
            policy.reset_batch(1)
        if hasattr(policy, "executed"):  # a sequence policy gets the clip's context as its history
            for o, a in zip(clip.context_obs[:-1], clip.context_actions, strict=True):
                policy.act_batch(np.asarray(o)[None])
                policy.executed(np.asarray([a]))
    shadow = BatchedHuman(config, personality=person)
    shadow.reset([clip.seed], state)
    frames, env = [], None
    if video is not None:
        from drivegpt.sim.rollout import make_env
        from drivegpt.sim.video import draw_batched, ensure_headless

        ensure_headless()
        env = make_env(clip.env_id, clip.action, clip.env_config or None, "rgb_array")  # type: ignore[arg-type]
        env.reset(seed=clip.seed)
        frames.append(draw_batched(env, state))
    monitor = monitor or MonitorConfig()
    thresholds_only = monitor.thresholds_only()
    collision = ttc_violation = new_takeover = handed_back = False
    min_ttc, steps, safe_run = math.inf, 0, 0
    for _ in range(clip.horizon + monitor.handback_safe_steps + extra_steps):
        action = propose(policy, state)  # (1,)
        human_action = shadow.act(state)
        if handed_back:
            full = monitor if use_monitor else thresholds_only
            code = check_triggers(state, policy, action, human_action, full)[0]
            new_takeover |= bool(code[0] != NO_TRIGGER)
        unsafe = bool(threshold_triggers(state, thresholds_only)[0][0] != NO_TRIGGER)
        safe_run = 0 if unsafe else safe_run + 1
        handed_back |= safe_run >= monitor.handback_safe_steps
        state = batched.step(state, action)
        steps += 1
        if env is not None:
            frames.append(draw_batched(env, state))
        ttc = float(lead_figures(state)[0][0])
        min_ttc = min(min_ttc, ttc)
        ttc_violation |= ttc < TTC_VIOLATION
        collision |= bool(state.crashed[0, 0])
        if bool(batched.terminated(state)[0] | batched.truncated(state)[0]):
            handed_back |= not collision  # the scenario ended (e.g. time limit) with the car intact
            break
    if env is not None:
        from drivegpt.sim.video import write_video

        env.close()
        write_video(video, frames)  # type: ignore[arg-type]
    resolved = handed_back and not (collision or ttc_violation or new_takeover)
    return ReplayResult(
        clip.id, fidelity, resolved, collision, ttc_violation, new_takeover, handed_back, steps, min_ttc,
        time.perf_counter() - t0,
    )  # fmt: skip


def evaluate_monitored_batched(
    policy: str,
    env_id: str,
    action: str | None = None,
    episodes: int = 100,
    seed: int = 1_000_000,
    batch: int = 1024,
    monitor: MonitorConfig | None = None,
    clips: list[Any] | None = None,
    episodes_out: list[Any] | None = None,
    device: torch.device | str = "cpu",
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``evaluate_monitored`` on the batched simulator: episodes ``seed + i`` in batches of ``batch``;
    returns (driving + takeover figures, per-episode arrays). ``clips``: when given, the clip of every
    takeover is appended to it (``drivegpt.takeover.batched_clips``; they replay on this simulator).
    ``episodes_out``: when given, each episode's ``observations``, ``actions`` (executed tokens),
    ``controller``, ``crashed`` and ``speeds`` [m/s] are appended to it, the fields
    ``rlhf.preferences.policy_steps`` and the flywheel's ``mean_kl`` read. ``device``: where the
    simulator (and DriveGPT's model) run."""
    driver, config = monitored_driver(policy, env_id, action)
    if hasattr(driver, "to"):  # DriveGPT: its model next to the simulator
        driver.to(device)
    monitor = monitor or MonitorConfig()
    record = clips is not None or episodes_out is not None
    names = ("seed", "steps", "crashed", "distance_m", "policy_distance_m", "takeovers", "late_takeovers")
    names += ("at_start",)
    per: dict[str, list[np.ndarray]] = {k: [] for k in names}
    speeds: list[np.ndarray] = []
    for lo in range(0, episodes, batch):
        seeds = list(range(seed + lo, seed + min(lo + batch, episodes)))
        out = run_monitored_batch(
            driver, config, seeds, monitor, record_obs=record, alone=False, device=device
        )
        if episodes_out is not None and out.obs is not None:
            for b, n in enumerate(out.steps.tolist()):
                episodes_out.append(
                    SimpleNamespace(
                        observations=out.obs[b, :n],
                        actions=out.executed[b, :n],
                        controller=out.controller[b, :n],
                        crashed=bool(out.crashed[b]),
                        speeds=out.speed[b, :n],
                    )
                )
        if clips is not None:
            env_config = getattr(driver, "env_config", None)
            kind = config.action
            where = torch.device(device).type
            clips += clips_of(out, env_id, kind, env_config, policy, monitor.context_steps, where)
        for k in names:
            per[k].append(getattr(out, k))
        speeds += [row[~np.isnan(row)] for row in out.speed]
    arrays = {k: np.concatenate(v) for k, v in per.items()}
    metrics = driving_metrics(list(arrays["crashed"]), list(arrays["distance_m"]), speeds)
    km = float(arrays["policy_distance_m"].sum()) / 1000.0
    late = int(arrays["late_takeovers"].sum())
    at_start = int(arrays["at_start"].sum())
    return {**metrics, **takeover_metrics(int(arrays["takeovers"].sum()), late, km, at_start)}, arrays
