"""The takeover monitor on the batched simulator: B episodes watched by B safety drivers at once.

The same triggers and hand-back rule as :mod:`drivegpt.takeover.monitor`, on tensors:

* ``ttc`` / ``headway``: time-to-collision and time headway to the lead in the ego's lane (the
  neighbour search of :mod:`drivegpt.sim.batched.road`, highway-env's ``neighbour_vehicles``);
* ``offroad``: the ego left its lane's road surface;
* ``predicted_failure``: only the episodes where something is close (TTC < 5 s or headway < 1.5 s)
  and no threshold fired are rolled forward ``lookahead_steps`` policy steps, from a copy of their
  state tensors and of the policy's batched context, starting with the policy's proposal;
* ``disagreement``: the proposal differs from the safety driver's token while TTC < ``disagreement_ttc``.

The safety driver (:class:`~drivegpt.sim.batched.human.BatchedHuman`, alert: no reaction delay, no
noise) shadows every step; from a trigger it drives until the state has been safe (thresholds only)
for ``handback_safe_steps`` consecutive steps. Nothing loops over episodes inside a step: the only
Python loops run over policy steps and look-ahead steps.

:func:`run_monitored_batch` returns a :class:`MonitoredBatch`: per-episode figures, per-step records
(who drove, the policy's proposals, the executed tokens, optionally the observations) and the takeover
segments, enough to build training pairs (state, rejected proposal, chosen human token) and clips.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, NamedTuple

import numpy as np
import torch

from drivegpt.core.errors import UserError
from drivegpt.core.metrics import driving_metrics, takeover_metrics
from drivegpt.model.policy import DriveGPTPolicy
from drivegpt.policies.registry import load_policy, policy_action_kind
from drivegpt.sim import batched
from drivegpt.sim.batched.config import LENGTH
from drivegpt.sim.batched.families import Script, family_step
from drivegpt.sim.batched.human import BatchedHuman
from drivegpt.sim.batched.road import NONE, neighbours
from drivegpt.sim.human import PersonalityRanges
from drivegpt.takeover.monitor import TRIGGERS, MonitorConfig

NO_TRIGGER = -1  #: trigger code of "nothing fired"; otherwise the index into ``TRIGGERS``
TTC, HEADWAY, OFFROAD, PREDICTED, DISAGREEMENT = (
    TRIGGERS.index(name) for name in ("ttc", "headway", "offroad", "predicted_failure", "disagreement")
)
CLOSE_TTC, CLOSE_HEADWAY = 5.0, 1.5  # [s] "something is close": the look-ahead runs (as in monitor.py)


def batched_safety_driver(config: batched.SimConfig) -> BatchedHuman:
    """The batched form of :func:`~drivegpt.takeover.monitor.safety_driver`: sampled personality,
    no reaction delay, no action noise."""
    return BatchedHuman(config, ranges=PersonalityRanges(reaction_delay=(0.0, 0.0), action_noise=(0.0, 0.0)))


def lead_figures(state: batched.BatchState) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,) TTC [s] and (B,) time headway [s] to the lead in the ego's lane; inf when none / opening.

    :func:`drivegpt.sim.geometry.lead_figures` on tensors: bumper gap along the (straight) lane,
    closing speed along the ego's heading, both clamped at 0.
    """
    s = state
    bsz, n = s.x.shape
    nb = neighbours(s.x, s.y, s.present, s.config.lanes_count)
    ego_rows = torch.arange(bsz, device=s.device) * n  # (B,) flat index of each ego
    front = nb.front(ego_rows, s.lane[:, 0])  # (B,) flat index of the lead, or NONE
    has = front != NONE
    f = front.clamp(min=0)
    cos_e, sin_e = torch.cos(s.heading[:, 0]), torch.sin(s.heading[:, 0])  # (B,)
    f_speed, f_heading = s.speed.reshape(-1).take(f), s.heading.reshape(-1).take(f)  # (B,)
    gap = s.x.reshape(-1).take(f) - s.x[:, 0] - LENGTH  # (B,) [m] bumper to bumper (equal lengths)
    closing = (s.speed[:, 0] * cos_e - f_speed * torch.cos(f_heading)) * cos_e + (
        s.speed[:, 0] * sin_e - f_speed * torch.sin(f_heading)
    ) * sin_e  # (B,) [m/s] > 0: closing in
    inf = torch.full_like(gap, float("inf"))
    ttc = torch.where(has & (closing > 1e-6), gap / closing.clamp(min=1e-6), inf).clamp(min=0)
    headway = torch.where(has & (s.speed[:, 0] > 0.1), gap / s.speed[:, 0].clamp(min=0.1), inf).clamp(min=0)
    return ttc, headway


def threshold_triggers(
    state: batched.BatchState, cfg: MonitorConfig
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B,) int64 code of the first threshold trigger that fires (ttc, headway, offroad; else
    ``NO_TRIGGER``), with the (B,) TTC [s] and headway [s] it was decided on."""
    ttc, headway = lead_figures(state)
    code = torch.full(ttc.shape, NO_TRIGGER, dtype=torch.long, device=ttc.device)
    if cfg.offroad:  # lowest priority first: a later rule overrides an earlier one
        code = torch.where(~batched.on_road(state), OFFROAD, code)
    if cfg.headway_threshold:
        code = torch.where(headway < cfg.headway_threshold, HEADWAY, code)
    if cfg.ttc_threshold:
        code = torch.where(ttc < cfg.ttc_threshold, TTC, code)
    return code, ttc, headway


class WatchedHuman:
    """The simulated human (reaction delay, action noise) as the driver under the safety driver.

    It reads the batch state (``act_state``) instead of observations; its takeover rate is the
    teacher's own, the level a student that imitates it can be expected to reach."""

    def __init__(self, config: batched.SimConfig, human: BatchedHuman | None = None) -> None:
        self.human = human or BatchedHuman(config)

    def reset_episodes(self, seeds: Sequence[int], state: batched.BatchState) -> None:
        """One human per episode, its personality and noise from the episode's seed."""
        self.human.reset(seeds, state)

    def act_state(self, state: batched.BatchState) -> torch.Tensor:
        """(B,) executed tokens (delayed, noisy)."""
        return self.human.act(state)

    def select(self, index: torch.Tensor) -> WatchedHuman:
        """The humans of episodes ``index`` (K,), an independent copy (the look-ahead's driver)."""
        return WatchedHuman(self.human.config, self.human.select(index))


def start_episodes(policy: Any, seeds: Sequence[int], state: batched.BatchState) -> None:
    """Reset ``policy``'s per-episode memory for a new batch of episodes starting at ``state``."""
    if hasattr(policy, "reset_episodes"):
        policy.reset_episodes(seeds, state)
    elif hasattr(policy, "reset_batch"):
        policy.reset_batch(len(seeds))


def propose(policy: Any, state: batched.BatchState, obs: torch.Tensor | None = None) -> torch.Tensor:
    """(B,) int64 tokens of ``policy`` at ``state``: ``act_state`` for drivers that read the state,
    else :func:`policy_tokens` on the observations (``obs``, or observed here)."""
    if hasattr(policy, "act_state"):
        return policy.act_state(state)
    return policy_tokens(policy, batched.observe(state) if obs is None else obs)


def policy_tokens(policy: Any, obs: torch.Tensor) -> torch.Tensor:
    """(B,) int64 action tokens of ``policy`` on (B, V, F) observations (``act_batch`` or a constant)."""
    if hasattr(policy, "act_batch"):
        act = np.asarray(policy.act_batch(obs.cpu().numpy()))
    elif hasattr(policy, "action"):
        act = np.full(obs.shape[0], int(policy.action))
    else:
        raise UserError(f"{type(policy).__name__}: the batched monitor needs a policy with act_batch")
    return torch.as_tensor(act, dtype=torch.long, device=obs.device)


def policy_rows(policy: Any, index: torch.Tensor) -> Any:
    """A copy of ``policy`` whose batched context holds only the episodes ``index`` (K,): the
    look-ahead's policy. Acting on the copy never changes ``policy``."""
    if hasattr(policy, "select"):
        return policy.select(index)
    if isinstance(policy, DriveGPTPolicy):  # its batched context: every array with a leading (B,) axis
        rows, bsz = index.cpu(), policy.obs.shape[0]
        new = copy.copy(policy)  # shares the read-only model
        for name, value in vars(policy).items():
            if isinstance(value, torch.Tensor | np.ndarray) and value.ndim and value.shape[0] == bsz:
                setattr(new, name, value[rows if isinstance(value, torch.Tensor) else rows.numpy()])
        new.sampler = None  # look-ahead predicts with the greedy policy
        return new
    if hasattr(policy, "reset_batch"):
        raise UserError(
            f"{type(policy).__name__}: keeps a batched context but has no select(index) for the look-ahead;"
            " set lookahead_steps: 0"
        )
    return policy  # stateless: the same policy serves any rows


def advance(
    state: batched.BatchState, action: torch.Tensor, script: Script | None = None
) -> tuple[batched.BatchState, Script | None]:
    """One policy step: ``batched.step``, or ``family_step`` for a corner-case family's episodes
    (``script``: its scripted cars)."""
    if script is None:
        return batched.step(state, action), None
    return family_step(state, script, action)


def predict_crash(
    state: batched.BatchState,
    policy: Any,
    proposal: torch.Tensor,
    horizon: int,
    script: Script | None = None,
) -> torch.Tensor:
    """(K,) int64 policy steps until a crash when ``policy`` drives on from ``state`` (K episodes,
    with their family ``script`` if any), starting with ``proposal``; 0 when none within ``horizon``
    or the episode ends first."""
    crash_in = torch.zeros_like(proposal)
    alive = torch.ones_like(proposal, dtype=torch.bool)
    action = proposal
    for k in range(1, horizon + 1):
        state, script = advance(state, action, script)
        crash_in = torch.where(alive & state.crashed[:, 0], k, crash_in)
        alive &= ~(batched.terminated(state) | batched.truncated(state))
        if k == horizon or not bool(alive.any()):
            break
        action = propose(policy, state)
    return crash_in


def check_triggers(
    state: batched.BatchState,
    policy: Any,
    proposal: torch.Tensor,
    chosen: torch.Tensor,
    cfg: MonitorConfig,
    watch: torch.Tensor | None = None,
    script: Script | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`drivegpt.takeover.monitor.check_triggers` for B episodes: (B,) trigger codes (the first
    that fires, ``NO_TRIGGER`` where none or where ``watch`` is False), (B,) TTC [s], (B,) headway [s]
    and (B,) look-ahead steps to a predicted crash (0: none). ``proposal`` (B,): the policy's tokens,
    already acted (its context holds them); ``chosen`` (B,): the safety driver's; ``script``: the
    family's scripted cars, for the look-ahead of corner-case episodes."""
    code, ttc, headway = threshold_triggers(state, cfg)
    if watch is not None:
        code = torch.where(watch, code, NO_TRIGGER)
    else:
        watch = torch.ones_like(code, dtype=torch.bool)
    crash_in = torch.zeros_like(proposal)
    if cfg.lookahead_steps and policy is not None:
        close = watch & (code == NO_TRIGGER) & ((ttc < CLOSE_TTC) | (headway < CLOSE_HEADWAY))
        rows = close.nonzero().squeeze(1)  # (K,) episodes rolled forward
        if rows.numel():
            pol = policy_rows(policy, rows)
            part = None if script is None else script.select(rows)
            ahead = predict_crash(state.select(rows), pol, proposal[rows], cfg.lookahead_steps, part)
            crash_in = crash_in.index_copy(0, rows, ahead)
            code = torch.where(crash_in > 0, PREDICTED, code)
    if cfg.disagreement_ttc:
        differ = watch & (code == NO_TRIGGER) & (ttc < cfg.disagreement_ttc) & (proposal != chosen)
        code = torch.where(differ, DISAGREEMENT, code)
    return code, ttc, headway, crash_in


def hand_back(
    state: batched.BatchState, cfg: MonitorConfig, in_takeover: torch.Tensor, safe_run: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """After a step: (B,) still in a takeover, (B,) safe steps in a row. The safety driver hands back
    once the thresholds have stayed quiet for ``handback_safe_steps`` steps in a row."""
    safe = threshold_triggers(state, cfg)[0] == NO_TRIGGER
    safe_run = torch.where(in_takeover, torch.where(safe, safe_run + 1, 0), safe_run)
    return in_takeover & (safe_run < cfg.handback_safe_steps), safe_run


def check_monitorable(config: batched.SimConfig, monitor: MonitorConfig) -> None:
    """A UserError unless the batched safety driver can watch episodes of ``config`` under ``monitor``."""
    if config.action != "accel":
        raise UserError(
            f"the safety driver has no batched port for {config.action!r} actions (accel only); "
            "use --action accel or --sim highway-env"
        )
    if monitor.ranking_steps:
        raise UserError("ranking_steps is not supported by the batched monitor; set it to 0")


class StepDecision(NamedTuple):
    """What the safety driver decided at one policy step of B episodes (each (B,))."""

    action: torch.Tensor  # int64 token driven: the safety driver's during a takeover, else the proposal
    proposal: torch.Tensor  # int64 the policy's token
    human_drives: torch.Tensor  # bool the safety driver drives this step
    start: torch.Tensor  # bool a takeover starts at this step
    code: torch.Tensor  # int64 trigger code (NO_TRIGGER: none)
    ttc: torch.Tensor  # [s] TTC to the lead
    headway: torch.Tensor  # [s] time headway to the lead
    crash_in: torch.Tensor  # int64 look-ahead steps to a predicted crash (0: none)


class SafetyWatch:
    """The batched safety driver beside a policy, one policy step at a time: :meth:`decide` before a
    step (triggers, who drives), :meth:`after` once the step is done (hand-back). The one
    implementation of the monitor's per-step rule, for road episodes (:func:`run_monitored_batch`)
    and corner-case episodes (``drivegpt.corner.batched.run_episodes``)."""

    def __init__(
        self,
        policy: Any,
        human: BatchedHuman | None,
        cfg: MonitorConfig,
        seeds: Sequence[int],
        state: batched.BatchState,
    ) -> None:
        check_monitorable(state.config, cfg)
        human = human or batched_safety_driver(state.config)
        self.policy, self.human, self.cfg = policy, human, cfg
        human.reset(seeds, state)
        start_episodes(policy, seeds, state)
        self.in_takeover = torch.zeros(state.batch_size, dtype=torch.bool, device=state.device)  # (B,)
        self.safe_run = torch.zeros(state.batch_size, dtype=torch.long, device=state.device)  # (B,)

    def decide(
        self,
        state: batched.BatchState,
        done: torch.Tensor,
        obs: torch.Tensor | None = None,
        script: Script | None = None,
    ) -> StepDecision:
        """The action of each episode at ``state``; episodes ``done`` (B,) are not watched."""
        proposal = propose(self.policy, state, obs)  # (B,)
        chosen = self.human.act(state)  # (B,) the safety driver shadows every step
        watch = ~done & ~self.in_takeover
        code, ttc, headway, crash_in = check_triggers(
            state, self.policy, proposal, chosen, self.cfg, watch, script
        )
        start = code != NO_TRIGGER
        self.in_takeover = self.in_takeover | start
        self.safe_run = torch.where(start, 0, self.safe_run)
        action = torch.where(self.in_takeover, chosen, proposal)  # (B,)
        if hasattr(self.policy, "executed") and bool(self.in_takeover.any()):
            self.policy.executed(action.cpu().numpy())  # the history holds what was driven
        return StepDecision(action, proposal, self.in_takeover.clone(), start, code, ttc, headway, crash_in)

    def after(self, state: batched.BatchState) -> None:
        """After the step: hand back where the thresholds stayed quiet long enough."""
        self.in_takeover, self.safe_run = hand_back(state, self.cfg, self.in_takeover, self.safe_run)


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
