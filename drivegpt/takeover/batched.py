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

:class:`SafetyWatch` is that per-step rule for B episodes; :mod:`drivegpt.takeover.batched_drive`
drives whole monitored batches with it (``run_monitored_batch``), and corner-case families use it
in ``drivegpt.corner.batched.run_episodes``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from drivegpt.core.errors import UserError
from drivegpt.model.policy import DriveGPTPolicy
from drivegpt.sim import batched
from drivegpt.sim.batched.config import LENGTH
from drivegpt.sim.batched.families import Script, family_step
from drivegpt.sim.batched.human import BatchedHuman
from drivegpt.sim.batched.road import NONE, neighbours
from drivegpt.sim.personality import PersonalityRanges
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
