"""DAgger's and HG-DAgger's labels on the batched simulator: ``batch`` episodes at once, ``accel`` only.

The same labels as :mod:`drivegpt.rlhf.dagger` collects on highway-env, from drives on the batched
simulator: HG-DAgger's from monitored drives (``takeover_labels_batched``: the safety driver's actions
where it drove), DAgger's from the alert human (or a teacher policy) deciding on every state the policy
reaches, on a road (``visited_labels_batched``) or a ported corner-case family
(``family_labels_batched``). Episode ``seed + i`` is the same whatever ``batch``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from drivegpt.core.progress import progress_bar
from drivegpt.policies.registry import load_policy, policy_action_kind
from drivegpt.rlhf.dagger import Labels, concat, family_params, load_teacher
from drivegpt.sim import batched
from drivegpt.sim.batched.families import Script, family_config, family_reset, family_step
from drivegpt.sim.batched.human import BatchedHuman
from drivegpt.sim.personality import PersonalityRanges
from drivegpt.takeover.batched import policy_tokens
from drivegpt.takeover.batched_drive import run_monitored_batch
from drivegpt.takeover.monitor import MonitorConfig


def takeover_labels_batched(
    spec: str,
    env_id: str,
    episodes: int,
    seed: int,
    monitor: MonitorConfig,
    batch: int = 512,
    progress: bool = True,
) -> Labels:
    """HG-DAgger's labels on the batched simulator (``accel`` only): ``episodes`` episodes of ``spec``
    from ``seed`` on under the batched safety driver, ``batch`` at once; every episode is kept whole
    (the executed history as context), and the steps the safety driver drove are labelled with its
    actions."""
    policy = load_policy(spec, policy_action_kind(spec, "accel"))
    config = batched.make_config(env_id, "accel", getattr(policy, "env_config", None))
    cfg = monitor.model_copy(update={"ranking_steps": 0})
    parts: list[Labels] = []
    bar = progress_bar(total=episodes, desc=f"takeovers {env_id} (batched)", unit="ep", disable=not progress)
    for lo in range(0, episodes, batch):
        seeds = list(range(seed + lo, seed + min(lo + batch, episodes)))
        out = run_monitored_batch(policy, config, seeds, cfg, alone=False)
        assert out.obs is not None
        for b in range(len(seeds)):
            n = int(out.steps[b])
            acts = out.executed[b, :n]
            labelled = out.controller[b, :n] == 1
            parts.append(Labels(out.obs[b, :n], acts, acts.copy(), np.zeros(n, np.int64), labelled))
        bar.update(len(seeds))
    bar.close()
    return concat(parts)


def visited_labels_batched(
    spec: str,
    env_id: str,
    episodes: int,
    seed: int,
    batch: int = 512,
    progress: bool = True,
    teacher: str | None = None,
) -> Labels:
    """``visited_labels`` on the batched simulator (``accel`` only): ``batch`` episodes at once, the
    policy drives, the alert human (``BatchedHuman``, no delay, no noise) decides on the same state at
    every step and its clean decision is the label. Episode ``seed + i`` is the same whatever ``batch``."""
    policy = load_policy(spec, policy_action_kind(spec, "accel"))
    config = batched.make_config(env_id, "accel", getattr(policy, "env_config", None))

    def start(seeds: list[int]) -> tuple[batched.BatchState, None]:
        return batched.reset(seeds, config), None

    def step(state: batched.BatchState, _: None, action: torch.Tensor) -> tuple[batched.BatchState, None]:
        return batched.step(state, action), None

    seeds, labeller = range(seed, seed + episodes), load_teacher(teacher, spec) if teacher else None
    return _label_batched(policy, config, seeds, batch, start, step, False, progress, labeller)


def family_labels_batched(
    spec: str,
    family: str,
    episodes: int,
    seed: int,
    batch: int = 512,
    progress: bool = True,
    teacher: str | None = None,
) -> Labels:
    """DAgger's labels on a corner-case family ported to the batched simulator (``BATCHED_FAMILIES``):
    episode ``seed + i`` draws its parameters uniformly in the family's ranges from a generator seeded
    by that seed alone (the same episode whatever ``batch``)."""
    policy = load_policy(spec, policy_action_kind(spec, "accel"))
    config = family_config(family, "accel", getattr(policy, "env_config", None))

    def start(seeds: list[int]) -> tuple[batched.BatchState, Script]:
        rows = [list(family_params(family, s).values()) for s in seeds]
        return family_reset(family, np.asarray(rows), seeds, config)

    def step(
        state: batched.BatchState, script: Script, action: torch.Tensor
    ) -> tuple[batched.BatchState, Script]:
        return family_step(state, script, action)

    seeds, labeller = range(seed, seed + episodes), load_teacher(teacher, spec) if teacher else None
    return _label_batched(policy, config, seeds, batch, start, step, True, progress, labeller)


def _label_batched(
    policy: Any,
    config: batched.SimConfig,
    seeds: range,
    batch: int,
    start: Callable[[list[int]], tuple[batched.BatchState, Any]],
    step: Callable[[batched.BatchState, Any, torch.Tensor], tuple[batched.BatchState, Any]],
    end_offroad: bool,
    progress: bool,
    teacher: Any | None = None,
) -> Labels:
    """Drive ``policy`` over ``seeds`` in batches, the alert human (or the policy ``teacher``, fed the
    executed history) labelling every step; an episode ends when the env ends it, or (``end_offroad``:
    a corner-case failure) when the ego leaves the road."""
    alert = PersonalityRanges(reaction_delay=(0.0, 0.0), action_noise=(0.0, 0.0))
    parts: list[Labels] = []
    bar = progress_bar(
        total=len(seeds), desc=f"label {config.env_id} (batched)", unit="ep", disable=not progress
    )
    for lo in range(0, len(seeds), batch):
        chunk = list(seeds[lo : lo + batch])
        state, aux = start(chunk)
        human = None if teacher is not None else BatchedHuman(config, alert)  # a teacher labels alone
        if human is not None:
            human.reset(chunk, state)
        for p in (policy, teacher):
            if hasattr(p, "reset_batch"):
                p.reset_batch(len(chunk))
        done = torch.zeros(len(chunk), dtype=torch.bool)
        rows: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []  # per step, (B, ...)
        while not bool(done.all()):
            obs = batched.observe(state).numpy().astype(np.float32)  # (B, V, F)
            action = policy_tokens(policy, torch.from_numpy(obs)).numpy()  # (B,) act_batch or a constant
            if human is not None:
                human.act(state)  # every step, as label_one does: the human's own timers run on
                label = human.decision.numpy()  # (B,)
            else:
                label = policy_tokens(teacher, torch.from_numpy(obs)).numpy()  # (B,)
                teacher.executed(action)  # its history holds what the student drove
            rows.append((obs, action, label, (~done).numpy()))
            state, aux = step(state, aux, torch.as_tensor(action))
            done |= batched.terminated(state) | batched.truncated(state)
            if end_offroad:
                done |= ~batched.on_road(state)
        obs_t, act_t, lab_t, alive_t = (np.stack(c, 1) for c in zip(*rows, strict=True))  # (B, T, ...)
        for b in range(len(chunk)):  # alive is a prefix of each episode's row
            n = int(alive_t[b].sum())
            labels = lab_t[b, :n].astype(act_t.dtype)
            parts.append(Labels(obs_t[b, :n], act_t[b, :n], labels, np.zeros(n, np.int64), np.ones(n, bool)))
        bar.update(len(chunk))
    bar.close()
    return concat(parts)
