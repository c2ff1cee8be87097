"""Corner-case simulations on the batched simulator: the failure estimators' ``simulate_batch`` and
the scenario outcomes of search, replay and benchmark.

Owns ``batched_family_simulator``: the ``simulate_batch(params (n, d), seeds (n,)) -> severity (n,)`` of
:mod:`drivegpt.corner.estimate` for the families with a batched port
(:mod:`drivegpt.sim.batched.families`), ``batch`` episodes stepped at once; and ``simulate_scenarios``:
the :class:`~drivegpt.corner.suite.Outcome` of each ``ScenarioJob``, from the same per-step figures
as highway-env's ``ScenarioEnv`` (``run_episodes`` records them as (B, T+1) ``Traces``). The policy
under test drives the ego: the simulated human through its batched port (``BatchedHuman``,
personality and noise from the scenario seed, as ``HumanDriver`` on highway-env), or any policy that
acts on a batch of observations (``act_batch``: DriveGPT, stable-baselines3; ``constant:``). A failure
is, as on highway-env (``drivegpt.corner.suite.outcome_of``), a collision of the ego or the ego leaving
the road: severity 1. Any other run is graded by how close it came: ``1 / (1 + TTC_min / 1 s)`` from
the smallest time-to-collision with the lead in the ego's lane over the episode (0 when it never
closed in), below 1.
The background traffic is the batched simulator's own draw for each seed, so an episode is not
highway-env's episode of that seed: the two agree in distribution, the scripted cars exactly. A
scenario made on one simulator therefore replays exactly on that simulator only (``Scenario.sim``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from drivegpt.core.device import resolve_device
from drivegpt.core.errors import UserError
from drivegpt.core.progress import progress_bar
from drivegpt.corner.naturalistic import TRAIT_PREFIX
from drivegpt.corner.suite import ALERT_HUMAN, ALERT_SEED_STEP, Outcome, ScenarioJob
from drivegpt.corner.traces import Traces, box_clearance
from drivegpt.policies.registry import NO_BATCHED_FAMILIES, load_policy, policy_action_kind
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
from drivegpt.sim.personality import Personality, PersonalityRanges
from drivegpt.takeover.batched import SafetyWatch, WatchedHuman, batched_safety_driver, lead_figures
from drivegpt.takeover.monitor import MonitorConfig
from drivegpt_envs.families import family_class

SimulateBatch = Callable[[np.ndarray, np.ndarray], np.ndarray]  #: as in drivegpt.corner.estimate
TTC_SCALE = 1.0  #: [s] a run whose smallest TTC was this has severity 0.5


def _driver(policy: str, action: str) -> tuple[Any, str]:
    """(driver, action kind) of a policy spec on the batched simulator, or a UserError saying why not."""
    kind = policy_action_kind(policy, action)
    if policy == "human":
        from drivegpt.sim.batched.human import BatchedHuman

        return BatchedHuman, kind  # built per batch config below
    if policy.split(":")[0] in NO_BATCHED_FAMILIES:
        raise UserError(f"{policy}: no batched port in the corner-case families; use --sim highway-env")
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
    device: str | torch.device = "cpu",
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
    device = resolve_device(device)  # an unknown or absent device: a UserError naming it
    driver, kind = _driver(policy, action)
    config = family_config(family, kind, getattr(driver, "env_config", None), duration)  # type: ignore[arg-type]
    if not isinstance(driver, type) and hasattr(driver, "to"):  # DriveGPT: its model next to the simulator
        driver.to(device)

    def simulate_batch(params: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        out = []
        bar = progress_bar(total=len(seeds), desc=f"{family} batched", unit="sim", disable=not progress)
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


def _start(driver: Any, state: BatchState, seeds: list[int], people: list[Personality] | None) -> Any:
    """``driver`` ready for B new episodes: the BatchedHuman class becomes one driver per episode,
    seeded by the scenario seed; a policy with a batched context gets a fresh one."""
    if isinstance(driver, type):
        driver = driver(state.config)
        driver.reset(seeds, state, people)
    elif hasattr(driver, "reset_batch"):
        driver.reset_batch(state.batch_size)
    return driver


def _act(driver: Any, state: BatchState) -> Any:
    """The ego actions of a batch: the human reads the state, a policy the observations."""
    if hasattr(driver, "select") and hasattr(driver, "act"):  # batched human
        return driver.act(state)
    if hasattr(driver, "act_batch"):
        return np.asarray(driver.act_batch(observe(state).cpu().numpy()))
    return np.repeat(np.asarray(driver.action)[None], state.batch_size, axis=0)  # constant


@torch.inference_mode()  # no autograd records: about a fifth less time per step at small batches
def run_episodes(
    driver: Any,
    state: BatchState,
    script: Script,
    seeds: list[int],
    people: list[Personality] | None = None,
    until_failure: bool = False,
    monitor: MonitorConfig | None = None,
) -> Traces:
    """Run B family episodes to their end under ``driver``, recording each one's :class:`Traces`.

    An episode ends when it terminates (collision; leaving the road with ``offroad_terminal``) or is
    truncated, and with ``until_failure`` also at its first failure. ``people``: the human's
    personality per episode (default, and always with ``monitor``: drawn from the seed). Finished
    episodes are dropped from the batch when the driver can be sliced (the human); others keep
    stepping, masked out of the records.
    ``monitor``: the batched safety driver watches ``driver`` (a policy, or ``WatchedHuman``) and
    takes over as on the roads (:class:`~drivegpt.takeover.batched.SafetyWatch`, its look-ahead
    stepping the family's scripted cars too); the traces then count takeovers and the policy's km.
    """
    bsz, dev, dt = state.batch_size, state.device, state.dtype
    watcher = None
    if monitor is not None:
        watcher = SafetyWatch(driver, None, monitor, seeds, state)
    else:
        driver = _start(driver, state, seeds, people)
    takeovers = torch.zeros(bsz, dtype=torch.long, device=dev)
    policy_distance = torch.zeros(bsz, dtype=dt, device=dev)
    crashed = torch.zeros(bsz, dtype=torch.bool, device=dev)
    offroad = ~on_road(state)  # (B,) the reset state counts, as on highway-env
    steps = torch.zeros(bsz, dtype=torch.long, device=dev)
    distance = torch.zeros(bsz, dtype=dt, device=dev)
    full = torch.full((bsz,), float("inf"), dtype=dt, device=dev)
    speeds, ttcs, gaps = [state.speed[:, 0].clone()], [lead_figures(state)[0]], [box_clearance(state)]
    alive = torch.arange(bsz, device=dev)  # (A,) batch rows in ``state``
    running = torch.ones(bsz, dtype=torch.bool, device=dev)  # (A,) rows whose episode goes on
    sliceable = watcher is None and hasattr(driver, "select") and hasattr(driver, "act")
    while bool(running.any()):
        x0, y0 = state.x[:, 0], state.y[:, 0]
        if watcher is None:
            action, human = _act(driver, state), None
        else:
            d = watcher.decide(state, ~running, script=script)
            action, human = d.action, d.human_drives[running]
            takeovers[alive[running]] += d.start[running].long()
        state, script = family_step(state, script, action)
        if watcher is not None:
            watcher.after(state)
        rows = alive[running]  # (R,) the episodes this step counts for
        moved = torch.hypot(state.x[:, 0] - x0, state.y[:, 0] - y0)[running]  # (R,) [m]
        distance[rows] += moved
        policy_distance[rows] += moved if human is None else torch.where(human, 0.0, moved)
        steps[rows] += 1
        crashed[rows] |= state.crashed[running, 0]
        offroad[rows] |= ~on_road(state)[running]
        for column, now, blank in (
            (speeds, state.speed[:, 0], float("nan")),
            (ttcs, lead_figures(state)[0], float("inf")),
            (gaps, box_clearance(state), float("inf")),
        ):
            row = torch.full_like(full, blank)
            row[rows] = now[running]
            column.append(row)
        done = terminated(state) | truncated(state)
        if until_failure:
            done |= state.crashed[:, 0] | ~on_road(state)
        running &= ~done
        if sliceable and not bool(running.all()):  # drop finished episodes
            keep = running.nonzero().squeeze(1)
            state, script, driver = state.select(keep), script.select(keep), driver.select(keep)
            alive, running = alive[keep], running[keep]
    return Traces(
        crashed,
        offroad,
        steps,
        distance,
        torch.stack(speeds, 1),
        torch.stack(ttcs, 1),
        torch.stack(gaps, 1),
        takeovers,
        policy_distance,
    )


def drive(
    driver: Any, state: BatchState, script: Script, seeds: list[int], people: list[Personality] | None = None
) -> np.ndarray:
    """Run B family episodes to their end (or first failure) under ``driver``; the (B,) severity of each.

    Severity 1: the ego crashed or left the road; otherwise ``1 / (1 + TTC_min / 1 s)`` (the TTC after
    each step, the reset state not counted), below 1."""
    t = run_episodes(driver, state, script, seeds, people, until_failure=True)
    ttc_min = t.ttc[:, 1:].min(dim=1).values  # (B,) [s]
    near = (1.0 / (1.0 + ttc_min / TTC_SCALE)).clamp(max=1 - 1e-9)  # (B,) in [0, 1)
    return torch.where(t.crashed | t.offroad, 1.0, near).cpu().numpy()


def simulate_scenarios(
    jobs: Sequence[ScenarioJob], batch: int = 1024, progress: bool = False
) -> list[Outcome]:
    """The :class:`~drivegpt.corner.suite.Outcome` of each scenario job on the batched simulator.

    Jobs of the same family, policy, action, alert reference and monitor run together, ``batch`` at
    a time; an episode depends only on its own scenario (``tests/test_batched_search.py``). A job
    with a ``monitor`` runs under the batched safety driver (``accel`` actions only)."""
    groups: dict[tuple[str, str, str, int, str], list[int]] = {}
    for i, job in enumerate(jobs):
        family = family_of(job.env_id)
        watch = json.dumps(job.monitor, sort_keys=True) if job.monitor is not None else ""
        groups.setdefault((family, job.policy, job.action, job.reference, watch), []).append(i)
    out: list[Outcome | None] = [None] * len(jobs)
    bar = progress_bar(total=len(jobs), desc="scenarios (batched)", unit="sim", disable=not progress)
    for (family, policy, action, reference, watch), index in groups.items():
        alert = policy == ALERT_HUMAN
        monitor = MonitorConfig(**json.loads(watch)) if watch else None
        driver, kind = _driver("human" if alert else policy, action)
        config = family_config(family, kind, getattr(driver, "env_config", None))  # type: ignore[arg-type]
        if monitor is not None and policy == "human":  # the logging human, watched
            driver = WatchedHuman(config)
        order = list(family_class(family).PARAMS)
        for lo in range(0, len(index), batch):
            chunk = index[lo : lo + batch]
            params = np.array([[jobs[i].params[k] for k in order] for i in chunk])  # (b, d)
            seeds = [jobs[i].seed for i in chunk]
            try:
                state, script = family_reset(family, params, seeds, config)
            except BatchedFamilyError as err:
                raise UserError(str(err)) from None
            if alert:  # no reaction delay, no noise; the k-th personality of the seed, as on highway-env
                human = batched_safety_driver(config)
                human.reset([s + ALERT_SEED_STEP * reference for s in seeds], state)
                driver = human
            t = run_episodes(driver, state, script, seeds, monitor=monitor)
            for b, i in enumerate(chunk):
                out[i] = t.outcome(b, 1.0 / config.policy_frequency)
            bar.update(len(chunk))
    bar.close()
    return [o for o in out if o is not None]


def family_of(env_id: str) -> str:
    """The batched family of a family env id; any other env id fails with the list of ported families."""
    from drivegpt_envs.families import FAMILIES

    for name, env in FAMILIES.items():
        if env == env_id and name in BATCHED_FAMILIES:
            return name
    raise UserError(
        f"{env_id}: no batched port of this scenario family; use --sim highway-env, or one of: "
        f"{', '.join(BATCHED_FAMILIES)}"
    )


def render_scenario(path: str | Path, job: ScenarioJob, max_steps: int = 200) -> None:
    """Re-drive one scenario on the batched simulator and write it as a GIF, drawn by highway-env's
    renderer: each frame places the batched state's vehicles on the family's road."""
    from drivegpt.sim.rollout import make_env
    from drivegpt.sim.video import draw_batched, ensure_headless, write_video

    family = family_of(job.env_id)
    alert = job.policy == ALERT_HUMAN
    driver, kind = _driver("human" if alert else job.policy, job.action)
    env_config = getattr(driver, "env_config", None)
    config = family_config(family, kind, env_config)  # type: ignore[arg-type]
    params = np.array([[job.params[k] for k in family_class(family).PARAMS]])  # (1, d)
    state, script = family_reset(family, params, [job.seed], config)
    if alert:
        driver = batched_safety_driver(config)
        driver.reset([job.seed + ALERT_SEED_STEP * job.reference], state)
    else:
        driver = _start(driver, state, [job.seed], None)
    ensure_headless()
    env = make_env(job.env_id, kind, env_config, "rgb_array")  # type: ignore[arg-type]
    env.reset(seed=job.seed, options={"params": job.params})
    frames = [draw_batched(env, state)]
    for _ in range(max_steps):
        state, script = family_step(state, script, _act(driver, state))
        frames.append(draw_batched(env, state))
        if bool((terminated(state) | truncated(state)).all()):
            break
    env.close()
    write_video(path, frames, fps=config.policy_frequency * 2)
