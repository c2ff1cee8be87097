"""Monitored drives on the batched simulator: B episodes of a policy under B safety drivers.

Owns :func:`run_monitored_batch` (reset B episodes, drive them to their end with the per-step rule of
:class:`~drivegpt.takeover.batched.SafetyWatch`) and its result :class:`MonitoredBatch`: per-episode
figures, per-step records (who drove, the policy's proposals, the executed tokens, optionally the
observations) and the takeover segments, enough to build training pairs (state, rejected proposal,
chosen human token) and clips (:mod:`drivegpt.takeover.batched_clips`); ``drive_alone`` (the same
seeds without the monitor), ``snapshot`` (a clip's vehicles) and ``monitored_driver`` (a spec's driver).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
import torch

from drivegpt.core.metrics import driving_metrics, takeover_metrics
from drivegpt.policies.registry import load_policy, policy_action_kind
from drivegpt.sim import batched
from drivegpt.sim.batched.human import BatchedHuman
from drivegpt.takeover.batched import SafetyWatch, WatchedHuman, check_monitorable, propose, start_episodes
from drivegpt.takeover.monitor import TRIGGERS, MonitorConfig


@dataclass(frozen=True)
class MonitoredBatch:
    """B monitored episodes. Per step t (T columns, padded after an episode's end): ``controller``
    is 0 policy / 1 safety driver / -1 ended; ``obs[:, t]`` is the observation the step acted on.
    Segment s runs over steps ``[seg_start[s], seg_end[s])`` of episode ``seg_episode[s]``."""

    seed: np.ndarray  # (B,) int64
    steps: np.ndarray  # (B,) int64 policy steps driven
    crashed: np.ndarray  # (B,) bool collision under the monitor
    crashed_alone: np.ndarray | None  # (B,) bool collision of the policy alone (same seeds), or None
    distance_m: np.ndarray  # (B,) [m] ego path length under the monitor
    policy_distance_m: np.ndarray  # (B,) [m] ... of the steps the policy drove
    alone_distance_m: np.ndarray | None  # (B,) [m] path length of the policy alone
    takeovers: np.ndarray  # (B,) int64
    late_takeovers: np.ndarray  # (B,) int64 takeovers with a collision before the hand-back
    trigger_counts: np.ndarray  # (B, len(TRIGGERS)) int64 takeovers per trigger
    controller: np.ndarray  # (B, T) int8
    proposal: np.ndarray  # (B, T) int64 the policy's token (rejected while the human drives)
    executed: np.ndarray  # (B, T) int64 the token driven (the human's during a takeover)
    speed: np.ndarray  # (B, T) [m/s] ego speed after each step, NaN after the end
    obs: np.ndarray | None  # (B, T, V, F) float32 observations, when recorded
    seg_episode: np.ndarray  # (S,) int64 row of the episode
    seg_start: np.ndarray  # (S,) int64 step of the trigger
    seg_end: np.ndarray  # (S,) int64 first step after the hand-back (or the episode's end)
    seg_trigger: np.ndarray  # (S,) int64 index into TRIGGERS
    seg_late: np.ndarray  # (S,) bool collision within the segment
    seg_ttc: np.ndarray  # (S,) [s] TTC at the trigger
    seg_headway: np.ndarray  # (S,) [s] headway at the trigger
    seg_crash_in: np.ndarray  # (S,) int64 look-ahead steps to the predicted crash (0: not predicted)
    seg_speed: np.ndarray  # (S,) [m/s] ego speed at the trigger
    seg_snapshot: list[np.ndarray] | None = None  # S × (N, 7) every vehicle at the trigger, when recorded
    personality: list[dict[str, float]] | None = None  # (B) the safety driver of each episode, when recorded

    def summary(self) -> dict[str, Any]:
        """Monitored driving figures and takeover figures, the keys of ``evaluate_monitored``."""
        speeds = [row[~np.isnan(row)] for row in self.speed]
        metrics = driving_metrics(list(self.crashed), list(self.distance_m), speeds)
        km = float(self.policy_distance_m.sum()) / 1000.0
        late = int(self.late_takeovers.sum())
        return {**metrics, **takeover_metrics(int(self.takeovers.sum()), late, km, int(self.at_start.sum()))}

    @property
    def at_start(self) -> np.ndarray:
        """(B,) int64 takeovers that fired on the episode's first state (0 or 1)."""
        return np.bincount(self.seg_episode[self.seg_start == 0], minlength=len(self.seed)).astype(np.int64)

    def segment(self, s: int) -> dict[str, np.ndarray]:
        """Takeover ``s`` as training data: its observations (when recorded), the policy's rejected
        proposals and the safety driver's chosen tokens, step by step."""
        b, lo, hi = int(self.seg_episode[s]), int(self.seg_start[s]), int(self.seg_end[s])
        out = {"rejected": self.proposal[b, lo:hi], "chosen": self.executed[b, lo:hi]}
        if self.obs is not None:
            out["obs"] = self.obs[b, lo:hi]
        return out


def drive_alone(
    policy: Any, config: batched.SimConfig, seeds: Sequence[int], device: torch.device | str = "cpu"
) -> tuple[np.ndarray, np.ndarray]:
    """The policy alone on the same seeds: (B,) crashed, (B,) distance [m]."""
    state = batched.reset(seeds, config, device)
    start_episodes(policy, seeds, state)
    done = torch.zeros(len(seeds), dtype=torch.bool, device=state.device)
    crashed, distance = done.clone(), torch.zeros_like(state.x[:, 0])
    while not bool(done.all()):
        x0, y0 = state.x[:, 0], state.y[:, 0]
        state = batched.step(state, propose(policy, state))
        distance += torch.where(done, 0.0, torch.hypot(state.x[:, 0] - x0, state.y[:, 0] - y0))
        crashed |= ~done & state.crashed[:, 0]
        done |= batched.terminated(state) | batched.truncated(state)
    return crashed.cpu().numpy(), distance.cpu().numpy()


def run_monitored_batch(
    policy: Any,
    config: batched.SimConfig,
    seeds: Sequence[int],
    monitor: MonitorConfig,
    human: BatchedHuman | None = None,
    device: torch.device | str = "cpu",
    state: batched.BatchState | None = None,
    record_obs: bool = True,
    alone: bool = True,
    max_steps: int = 10_000,
) -> MonitoredBatch:
    """Drive ``len(seeds)`` episodes of ``policy`` at once under the batched safety driver.

    ``state``: start from these states instead of ``reset(seeds)`` (tests, imported highway-env
    states); the seeds then only seed the safety drivers. ``alone``: also drive the policy alone on
    the same seeds (``crashed_alone``; not with a given ``state``).
    """
    check_monitorable(config, monitor)
    seeds = [int(s) for s in seeds]
    bsz = len(seeds)
    crashed_alone = alone_distance = None
    if alone and state is None:
        crashed_alone, alone_distance = drive_alone(policy, config, seeds, device)
    state = batched.reset(seeds, config, device) if state is None else state
    dev = state.device
    watcher = SafetyWatch(policy, human, monitor, seeds, state)
    done = torch.zeros(bsz, dtype=torch.bool, device=dev)
    crash_step = torch.full((bsz,), -1, dtype=torch.long, device=dev)
    distance, policy_distance = torch.zeros_like(state.x[:, 0]), torch.zeros_like(state.x[:, 0])
    rec: dict[str, list[torch.Tensor]] = {"speed": []}  # key -> one (B, ...) tensor per step
    snapshots: dict[tuple[int, int], np.ndarray] = {}  # (episode, step) of a trigger -> (N, 7) vehicles
    for t in range(max_steps):
        if bool(done.all()):
            break
        obs = batched.observe(state)  # (B, V, F)
        d = watcher.decide(state, done, obs)
        if record_obs and bool(d.start.any()):  # the clips' snapshots: a loop over this step's takeovers
            for b in d.start.nonzero().squeeze(1).tolist():
                snapshots[(b, t)] = snapshot(state, b)
        step_record = {
            "ego_speed": state.speed[:, 0],
            "ctrl": torch.where(done, -1, d.human_drives.long()),
            "start": d.start,
            "code": d.code,
            "prop": d.proposal,
            "act": d.action,
            "ttc": d.ttc,
            "headway": d.headway,
            "crash_in": d.crash_in,
            **({"obs": obs} if record_obs else {}),
        }
        for key, value in step_record.items():
            rec.setdefault(key, []).append(value.cpu())
        x0, y0 = state.x[:, 0], state.y[:, 0]
        state = batched.step(state, d.action)
        moved = torch.where(done, 0.0, torch.hypot(state.x[:, 0] - x0, state.y[:, 0] - y0))  # (B,) [m]
        distance += moved
        policy_distance += torch.where(d.human_drives, 0.0, moved)
        crash_step = torch.where(~done & state.crashed[:, 0] & (crash_step < 0), t, crash_step)
        rec["speed"].append(torch.where(done, torch.nan, state.speed[:, 0]).cpu())
        watcher.after(state)
        done |= batched.terminated(state) | batched.truncated(state)
    out = _collect(rec, seeds, crash_step, distance, policy_distance, crashed_alone, alone_distance)
    if not record_obs:
        return out
    keys = zip(out.seg_episode.tolist(), out.seg_start.tolist(), strict=True)
    p = watcher.human.p  # the safety drivers' personalities
    people = [{f.name: float(getattr(p, f.name)[b]) for f in fields(p)} for b in range(bsz)]
    return replace(out, seg_snapshot=[snapshots[k] for k in keys], personality=people)


def snapshot(state: batched.BatchState, b: int) -> np.ndarray:
    """(N, 7) every vehicle of episode ``b``, as ``drivegpt.takeover.clips.vehicle_snapshot``: x, y
    [m], heading [rad], speed [m/s], lane id, crashed, ego flag, in slot order (the ego first)."""
    s = state.select([b]).to("cpu")
    rows = s.present[0].nonzero().squeeze(1)  # (N,) slots on the road
    ego = (rows == 0).to(s.dtype)
    cols = [s.x[0, rows], s.y[0, rows], s.heading[0, rows], s.speed[0, rows], s.lane[0, rows].to(s.dtype)]
    return torch.stack([*cols, s.crashed[0, rows].to(s.dtype), ego], 1).numpy()


def _collect(
    rec: dict[str, list[torch.Tensor]],
    seeds: list[int],
    crash_step: torch.Tensor,
    distance: torch.Tensor,
    policy_distance: torch.Tensor,
    crashed_alone: np.ndarray | None,
    alone_distance: np.ndarray | None,
) -> MonitoredBatch:
    """Stack the per-step records and cut the takeover segments out of them (after the loop)."""
    r = {k: torch.stack(v, 1).numpy() for k, v in rec.items()}  # (B, T, ...)
    ctrl, start = r["ctrl"].astype(np.int8), r["start"]
    bsz, T = ctrl.shape
    steps = (ctrl >= 0).sum(1)
    # a segment ends at the first later step where the policy drives, another takeover starts, or the end
    cut = np.concatenate([(ctrl != 1) | start, np.ones((bsz, 1), bool)], 1)  # (B, T + 1)
    col = np.where(cut, np.arange(T + 1), T)
    next_cut = np.minimum.accumulate(col[:, ::-1], axis=1)[:, ::-1]  # (B, T + 1) first cut at or after t
    seg_b, seg_t = np.nonzero(start)  # (S,) episode-major, time-ordered
    seg_end = next_cut[seg_b, seg_t + 1]
    crash = crash_step.cpu().numpy()
    late = (crash[seg_b] >= seg_t) & (crash[seg_b] < seg_end)
    codes = r["code"][seg_b, seg_t]
    counts = np.zeros((bsz, len(TRIGGERS)), np.int64)
    np.add.at(counts, (seg_b, codes), 1)
    return MonitoredBatch(
        seed=np.asarray(seeds, np.int64),
        steps=steps,
        crashed=crash >= 0,
        crashed_alone=crashed_alone,
        distance_m=distance.cpu().numpy(),
        policy_distance_m=policy_distance.cpu().numpy(),
        alone_distance_m=alone_distance,
        takeovers=counts.sum(1),
        late_takeovers=np.bincount(seg_b[late], minlength=bsz).astype(np.int64),
        trigger_counts=counts,
        controller=ctrl,
        proposal=r["prop"],
        executed=r["act"],
        speed=r["speed"],
        obs=r.get("obs"),
        seg_episode=seg_b.astype(np.int64),
        seg_start=seg_t.astype(np.int64),
        seg_end=seg_end.astype(np.int64),
        seg_trigger=codes.astype(np.int64),
        seg_late=late,
        seg_ttc=r["ttc"][seg_b, seg_t],
        seg_headway=r["headway"][seg_b, seg_t],
        seg_crash_in=r["crash_in"][seg_b, seg_t].astype(np.int64),
        seg_speed=r["ego_speed"][seg_b, seg_t],
    )


def monitored_driver(policy: str, env_id: str, action: str | None = None) -> tuple[Any, batched.SimConfig]:
    """The driver of spec ``policy`` for the batched monitor, with the simulator config it drives:
    ``human`` is :class:`WatchedHuman`; any other spec is loaded by ``load_policy``."""
    kind = policy_action_kind(policy, action or "accel")
    if policy.partition(":")[0] == "human":
        config = batched.make_config(env_id, kind)
        return WatchedHuman(config), config
    driver = load_policy(policy, kind)
    return driver, batched.make_config(env_id, kind, getattr(driver, "env_config", None))
