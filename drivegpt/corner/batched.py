"""Corner-case simulations on the batched simulator: ``simulate_batch`` for the failure estimators.

Owns ``batched_family_simulator``: the ``simulate_batch(params (n, d), seeds (n,)) -> severity (n,)`` of
:mod:`drivegpt.corner.estimate` for the families with a batched port
(:mod:`drivegpt.sim.batched.families`), ``batch`` episodes stepped at once. The policy under test
drives the ego: the simulated human through its batched port (``BatchedHuman``, personality and
noise from the scenario seed, as ``HumanDriver`` on highway-env), or any policy that acts on a batch
of observations (``act_batch``: DriveGPT, stable-baselines3; ``constant:``). A failure is, as on
highway-env (``drivegpt.corner.suite.outcome_of``), a collision of the ego or the ego leaving the road:
severity 1. Any other run is graded by how close it came: ``1 / (1 + TTC_min / 1 s)`` from the
smallest time-to-collision with the lead in the ego's lane over the episode (0 when it never closed
in), below 1.
The background traffic is the batched simulator's own draw for each seed, so an episode is not
highway-env's episode of that seed: the two agree in distribution, the scripted cars exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from drivegpt.core.errors import UserError
from drivegpt.corner.naturalistic import TRAIT_PREFIX
from drivegpt.policies.registry import load_policy, policy_action_kind
from drivegpt.sim.batched import observe, on_road, terminated, truncated
from drivegpt.sim.batched.families import (
    BATCHED_FAMILIES,
    BatchedFamilyError,
    Script,
    family_config,
    family_reset,
    family_step,
)
from drivegpt.sim.batched.state import BatchState
from drivegpt.sim.human import Personality, PersonalityRanges
from drivegpt.takeover.batched import lead_figures
from drivegpt_envs.families import family_class

SimulateBatch = Callable[[np.ndarray, np.ndarray], np.ndarray]  #: as in drivegpt.corner.estimate
TTC_SCALE = 1.0  #: [s] a run whose smallest TTC was this has severity 0.5


def _driver(policy: str, action: str) -> tuple[Any, str]:
    """(driver, action kind) of a policy spec on the batched simulator, or a UserError saying why not."""
    kind = policy_action_kind(policy, action)
    if policy == "human":
        from drivegpt.sim.batched.human import BatchedHuman

        return BatchedHuman, kind  # built per batch config below
    if policy.split(":")[0] in ("idm",):
        raise UserError(f"{policy}: no batched port; use --sim highway-env for it")
    driver = load_policy(policy, kind)
    if not hasattr(driver, "act_batch") and not hasattr(driver, "action"):
        raise UserError(f"{policy}: this driver has no batched port; use --sim highway-env")
    return driver, kind


def batched_family_simulator(
    family: str,
    policy: str,
    names: list[str],
    action: str = "accel",
    batch: int = 4096,
    duration: float | None = None,
    device: str = "cpu",
    progress: bool = False,
) -> SimulateBatch:
    """``simulate_batch`` of ``family`` with ``policy`` driving, ``batch`` episodes at a time.

    ``names`` is the parameter order of the caller's rows (the naturalistic distribution's); it must
    be the family's ``PARAMS`` order, followed for the human by its personality traits when they are
    sampled too (``WithHumanTraits``). ``duration`` [s] shortens the episodes (default: the family's).
    """
    if family not in BATCHED_FAMILIES:
        raise UserError(
            f"scenario family {family!r} has no batched port; use --sim highway-env, or one of: "
            f"{', '.join(BATCHED_FAMILIES)}"
        )
    order = list(family_class(family).PARAMS)
    traits = [n.removeprefix(TRAIT_PREFIX) for n in names[len(order) :]]
    if list(names[: len(order)]) != order or (traits and traits != list(PersonalityRanges.model_fields)):
        raise UserError(
            f"{family}: parameters must come in the order {', '.join(order)} (then, for the human, "
            f"{', '.join(TRAIT_PREFIX + t for t in PersonalityRanges.model_fields)}), got {names}"
        )
    if traits and policy != "human":
        raise UserError(f"{policy}: only the simulated human ('human') has personality traits to sample")
    driver, kind = _driver(policy, action)
    config = family_config(family, kind, getattr(driver, "env_config", None), duration)  # type: ignore[arg-type]

    def simulate_batch(params: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        out = []
        bar = tqdm(total=len(seeds), desc=f"{family} batched", unit="sim", disable=not progress)
        for lo in range(0, len(seeds), batch):
            rows, chunk = params[lo : lo + batch], [int(s) for s in seeds[lo : lo + batch]]
            try:
                state, script = family_reset(family, rows[:, : len(order)], chunk, config, device)
            except BatchedFamilyError as err:
                raise UserError(str(err)) from None
            people = (
                [Personality(**dict(zip(traits, r, strict=True))) for r in rows[:, len(order) :]]
                if traits
                else None
            )
            out.append(drive(driver, state, script, chunk, people))
            bar.update(len(chunk))
        bar.close()
        return np.concatenate(out) if out else np.zeros(0, bool)

    return simulate_batch


def drive(
    driver: Any, state: BatchState, script: Script, seeds: list[int], people: list[Personality] | None = None
) -> np.ndarray:
    """Run B family episodes to their end under ``driver``; the (B,) severity of each.

    Severity 1: the ego crashed or left the road; otherwise ``1 / (1 + TTC_min / 1 s)``, below 1.
    ``people``: the human's personality per episode (default: drawn from the seed). Finished episodes
    are dropped from the batch when the driver can be sliced (the human)."""
    bsz = state.batch_size
    if isinstance(driver, type):  # BatchedHuman: one driver per episode, seeded by the scenario seed
        driver = driver(state.config)
        driver.reset(seeds, state, people)
    elif hasattr(driver, "reset_batch"):
        driver.reset_batch(bsz)
    failed = torch.zeros(bsz, dtype=torch.bool, device=state.device)
    ttc_min = torch.full((bsz,), float("inf"), dtype=state.dtype, device=state.device)  # (B,) [s]
    alive = torch.arange(bsz, device=state.device)  # (A,) batch rows still running
    while alive.numel():
        if hasattr(driver, "select") and hasattr(driver, "act"):  # batched human: acts on the state
            act: Any = driver.act(state)
        elif hasattr(driver, "act_batch"):
            act = np.asarray(driver.act_batch(observe(state).cpu().numpy()))
        else:  # constant: the same action for every episode
            act = np.repeat(np.asarray(driver.action)[None], state.batch_size, axis=0)
        state, script = family_step(state, script, act)
        bad = state.crashed[:, 0] | ~on_road(state)  # (A,)
        failed[alive] |= bad
        ttc_min[alive] = torch.minimum(ttc_min[alive], lead_figures(state)[0])
        done = terminated(state) | truncated(state) | bad
        if bool(done.all()):
            break
        if hasattr(driver, "select") and bool(done.any()):  # drop finished episodes
            keep = (~done).nonzero().squeeze(1)
            state, script, driver, alive = (
                state.select(keep),
                script.select(keep),
                driver.select(keep),
                alive[keep],
            )
    near = (1.0 / (1.0 + ttc_min / TTC_SCALE)).clamp(max=1 - 1e-9)  # (B,) in [0, 1)
    return torch.where(failed, 1.0, near).cpu().numpy()
