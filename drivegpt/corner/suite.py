"""Scenario suites: replayable corner-case scenarios and the one function that simulates them.

A *scenario* is a family (``drivegpt_envs.families``), its parameters and a seed: the same scenario
gives the same episode, so a suite is a regression test. Layout of a suite (``drivegpt-suite`` v1)::

    SUITE/
      metadata.json     format, version, families, scenario count, created-by command, files: the
                        sha256 of scenarios.jsonl, package versions (drivegpt, highway-env,
                        gymnasium, numpy)
      scenarios.jsonl   one scenario per line: id, family, env_id, params, seed, policy, action,
                        outcome (what ``policy`` did: failed, crashed, offroad, steps, distance, ...),
                        feasible (an alert human avoids the failure: true; every one fails: false;
                        not checked: null), sim (the simulator: highway-env, the default when
                        absent, or batched)

Replay re-simulates a scenario with the policy that produced its outcome, on the simulator it was
made on, and compares every outcome field exactly (:func:`replay_mismatches`).
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import asdict, dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np

from drivegpt.core import manifest
from drivegpt.core.atomic import replace_dir, write_bytes, write_json
from drivegpt.core.errors import UserError
from drivegpt.core.resources import SUITES
from drivegpt.sim.geometry import TTC_VIOLATION, box_clearance, lead_figures

FORMAT = "drivegpt-suite"
VERSION = 1
TTC_CAP = 100.0  #: [s] min TTC when no lead ever closes in (JSON has no infinity)
GAP_CAP = 1000.0  #: [m] min gap when no other vehicle is on the road
ACC_RANGE = (-4.05, 2.40)  #: [m/s²] comfort bounds (docs/metrics.md) on longitudinal acceleration
JERK_MAX = 4.13  #: [m/s³] comfort bound (docs/metrics.md) on |jerk|
SHIPPED_SUITES = SUITES  #: suites that ship with the package
ALERT_HUMAN = "alert-human"  #: policy name of the feasibility reference (see :func:`simulate`)
SIMULATORS = ("highway-env", "batched")  #: the values of a scenario's ``sim``
ALERT_SEED_STEP = 7919  #: the k-th alert reference draws its personality from seed + k * this


class SuiteError(UserError):
    """A suite directory is missing, corrupt or tampered with."""


class Outcome(NamedTuple):
    """What happened in one simulated scenario (every field is exact on replay)."""

    failed: bool  # crashed or left the road
    crashed: bool
    offroad: bool
    steps: int  # policy steps
    distance_m: float  # ego path length [m]
    mean_speed_mps: float  # [m/s]
    min_ttc_s: float  # min time-to-collision to the lead [s], capped at TTC_CAP
    min_gap_m: float  # min box distance to any vehicle: max(|dx| - length, |dy| - width) [m], <= GAP_CAP
    ttc_violation: bool  # a step with TTC < 0.95 s
    comfort_violation: bool  # acceleration outside ACC_RANGE or |jerk| > JERK_MAX
    speeding_fraction: float  # fraction of steps above the lane's speed limit
    risk: float  # search objective in [0, 1]: 1 on failure, else closeness to one
    takeovers: int  # monitor takeovers (0 without the monitor)
    policy_distance_m: float  # distance under policy control [m] (= distance_m without the monitor)


@dataclass
class Scenario:
    """One line of ``scenarios.jsonl``."""

    id: str
    family: str
    env_id: str
    params: dict[str, float]
    seed: int
    policy: str
    action: str
    outcome: dict[str, Any]
    feasible: bool | None = None
    sim: str = "highway-env"  # the simulator the outcome comes from (and replays exactly on)


class ScenarioJob(NamedTuple):
    """One simulation for a worker process."""

    policy: str  # policy spec, or ALERT_HUMAN with ``reference`` = personality draw
    env_id: str
    action: str
    seed: int
    params: dict[str, float]
    monitor: dict[str, Any] | None = None  # MonitorConfig fields: drive under the safety driver
    reference: int = 0  # ALERT_HUMAN only: k-th alert personality for this seed
    sim: str = "highway-env"  # highway-env (``simulate``, one env) | batched (``corner.batched``)


class ScenarioEnv(gym.Wrapper):
    """Resets with the scenario's parameters and records, each step, the figures the metrics need."""

    def __init__(self, env: gym.Env, params: dict[str, float]):
        super().__init__(env)
        self.params = params
        self.trace: dict[str, list[float]] = {}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        out = self.env.reset(seed=seed, options={**(options or {}), "params": self.params})
        self.trace = {"ttc": [], "gap": [], "speed": [], "speeding": []}
        self._record()
        return out

    def step(self, action: Any) -> Any:
        out = self.env.step(action)
        self._record()
        return out

    def _record(self) -> None:
        ego = self.env.unwrapped.vehicle
        limit = getattr(ego.lane, "speed_limit", None) if ego.lane is not None else None
        self.trace["ttc"].append(lead_figures(self.env)[0])
        self.trace["gap"].append(box_clearance(self.env))
        self.trace["speed"].append(float(ego.speed))
        self.trace["speeding"].append(float(limit is not None and ego.speed > limit + 1e-6))


class _Reseeded:
    """A driver whose personality is drawn from another seed than the env's (alert references)."""

    def __init__(self, driver: Any, offset: int):
        self.driver, self.offset = driver, offset
        self.action_kind = driver.action_kind

    def reset(self, seed: int, env: gym.Env | None = None) -> None:
        self.driver.reset(seed=seed + self.offset, env=env)

    def act(self, observation: np.ndarray) -> Any:
        return self.driver.act(observation)


def simulate(job: ScenarioJob) -> Outcome:
    """Drive one scenario (runs in a worker process)."""
    from drivegpt.policies.registry import DriveJob, policy_and_env
    from drivegpt.sim.rollout import run_episode
    from drivegpt.takeover.monitor import MonitorConfig, run_monitored_episode, safety_driver

    spec = "human" if job.policy == ALERT_HUMAN else job.policy
    policy, env = policy_and_env(DriveJob(spec, job.env_id, job.action, job.seed))
    if job.policy == ALERT_HUMAN:  # no reaction delay, no noise; k-th personality for this seed
        alert = safety_driver()
        alert.action_kind = job.action  # type: ignore[attr-defined]
        policy = _Reseeded(alert, ALERT_SEED_STEP * job.reference)
    wrapped = ScenarioEnv(env, job.params)
    if job.monitor is None:
        ep = run_episode(wrapped, policy, job.seed)
        takeovers, policy_m = 0, ep.distance_m
    else:
        cfg = MonitorConfig(**job.monitor)
        ep, clips = run_monitored_episode(wrapped, policy, safety_driver(), job.seed, cfg, job.policy)
        takeovers, policy_m = len(clips), ep.policy_distance_m
    dt = 1.0 / float(env.unwrapped.config["policy_frequency"])  # [s] per policy step
    offroad = bool(ep.states["on_road"].min() < 1)
    return outcome_of(ep.crashed, offroad, ep.distance_m, wrapped.trace, dt, takeovers, policy_m)


def outcome_of(
    crashed: bool,
    offroad: bool,
    distance_m: float,
    trace: dict[str, list[float]],
    dt: float,
    takeovers: int = 0,
    policy_distance_m: float | None = None,
) -> Outcome:
    """Summarise one episode's per-step trace (T+1 rows, reset included) into an :class:`Outcome`."""
    speed = np.asarray(trace["speed"], float)  # (T+1,) [m/s]
    acc = np.diff(speed) / dt  # (T,) [m/s²]
    jerk = np.diff(acc) / dt  # (T-1,) [m/s³]
    ttc = min(min(trace["ttc"]), TTC_CAP)
    gap = min(min(trace["gap"]), GAP_CAP)
    failed = crashed or offroad
    near = max(math.exp(-ttc / 2.0), math.exp(-max(gap, 0.0) / 1.0))  # 1 when touching, ->0 far away
    return Outcome(
        failed=failed,
        crashed=crashed,
        offroad=offroad,
        steps=len(speed) - 1,
        distance_m=float(distance_m),
        mean_speed_mps=float(speed[1:].mean()) if len(speed) > 1 else 0.0,
        min_ttc_s=float(ttc),
        min_gap_m=float(gap),
        ttc_violation=bool(ttc < TTC_VIOLATION),
        comfort_violation=bool(
            (acc < ACC_RANGE[0]).any() or (acc > ACC_RANGE[1]).any() or (np.abs(jerk) > JERK_MAX).any()
        ),
        speeding_fraction=float(np.mean(trace["speeding"][1:])) if len(speed) > 1 else 0.0,
        risk=1.0 if failed else 0.5 * near,
        takeovers=takeovers,
        policy_distance_m=float(distance_m) if policy_distance_m is None else float(policy_distance_m),
    )


def resolve_suite(name: str | Path) -> Path:
    """A suite directory, or the name of a suite shipped in ``drivegpt/suites/`` (e.g. ``standard``)."""
    path = Path(name)
    shipped = SHIPPED_SUITES / str(name)
    return shipped if not path.exists() and shipped.is_dir() else path


def family_env_id(family: str) -> str:
    """The env id of a family; unknown names fail with the valid list."""
    from drivegpt_envs.families import FAMILIES

    if family not in FAMILIES:
        raise SuiteError(f"unknown family {family!r}; valid: {', '.join(FAMILIES)}")
    return FAMILIES[family]


def _versions() -> dict[str, str]:
    out = {}
    for pkg in ("drivegpt", "highway-env", "gymnasium", "numpy"):
        try:
            out[pkg] = importlib_metadata.version(pkg)
        except importlib_metadata.PackageNotFoundError:  # pragma: no cover
            out[pkg] = "unknown"
    return out


def write_suite(
    out: str | Path, scenarios: list[Scenario], command: str, extra: dict[str, Any] | None = None
) -> Path:
    """Write a suite directory atomically (scenarios.jsonl + metadata.json with its sha256)."""
    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    data = "".join(json.dumps(asdict(s), sort_keys=True) + "\n" for s in scenarios).encode()
    write_bytes(tmp / "scenarios.jsonl", data)
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "families": sorted({s.family for s in scenarios}),
        "scenarios": len(scenarios),
        "created_by": command,
        "files": {"scenarios.jsonl": manifest.sha256_bytes(data)},
        "versions": _versions(),
        **(extra or {}),
    }
    write_json(tmp / "metadata.json", meta)
    replace_dir(tmp, out)
    return out


def load_suite(path: str | Path) -> tuple[dict[str, Any], list[Scenario]]:
    """Verify and load a suite: (metadata, scenarios); :class:`SuiteError` names the bad file and the fix."""
    path = Path(path)
    fix = "regenerate it with `drivegpt corner-cases search ... --out SUITE`"
    meta = manifest.read_header(path / "metadata.json", FORMAT, VERSION, SuiteError, fix)
    data_path = path / "scenarios.jsonl"
    manifest.verify(path, meta["files"], SuiteError, fix, names=["scenarios.jsonl"])
    data = data_path.read_bytes()
    scenarios = []
    for i, line in enumerate(data.decode().splitlines(), 1):
        try:
            scenarios.append(Scenario(**json.loads(line)))
        except (json.JSONDecodeError, TypeError) as err:
            raise SuiteError(f"{data_path}:{i}: bad scenario ({err}); {fix}") from None
        if scenarios[-1].sim not in SIMULATORS:
            sim = scenarios[-1].sim
            raise SuiteError(f"{data_path}:{i}: unknown sim {sim!r} (valid: {', '.join(SIMULATORS)}); {fix}")
    if len(scenarios) != meta.get("scenarios"):
        n = meta.get("scenarios")
        raise SuiteError(f"{data_path}: {len(scenarios)} scenarios, metadata says {n}; {fix}")
    return meta, scenarios


def job_of(
    s: Scenario, policy: str | None = None, action: str | None = None, monitor: dict[str, Any] | None = None
) -> ScenarioJob:
    """The simulation job of a scenario (by default with the policy that produced its outcome), on the
    simulator it was made on."""
    return ScenarioJob(policy or s.policy, s.env_id, action or s.action, s.seed, s.params, monitor, sim=s.sim)


def replay_mismatches(s: Scenario, replayed: Outcome) -> dict[str, tuple[Any, Any]]:
    """Outcome fields that differ on replay: name -> (recorded, replayed); empty when exact."""
    now = replayed._asdict()
    return {k: (v, now.get(k)) for k, v in s.outcome.items() if now.get(k) != v}
