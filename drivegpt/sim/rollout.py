"""Rollouts: build an env, drive one episode with any driver, and map jobs over worker processes.

The execution backend is one parameter of :func:`parallel_map` (``local`` process pool by default,
``ray`` when installed); results always come back in job order, so the same seeds give the same
output whatever the backend or the number of workers.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any, Literal, TypeVar

import gymnasium as gym
import numpy as np

import drivegpt_envs
from drivegpt.core.errors import UserError
from drivegpt.core.progress import progress_bar
from drivegpt.sim.episode import Episode
from drivegpt.sim.policy import DrivePolicy
from drivegpt_envs.common import DEFAULT_ACTION, ActionKind, action_config, kinematics_observation

Backend = Literal["local", "ray"]
#: the simulators a command can drive in: highway-env (the reference) or the batched torch port
Simulator = Literal["highway-env", "batched"]
J = TypeVar("J")
R = TypeVar("R")


def make_env(
    env_id: str,
    action: ActionKind = DEFAULT_ACTION,
    overrides: dict[str, Any] | None = None,
    render_mode: str | None = None,
) -> gym.Env:
    """Any stock highway-env id or ``drivegpt/`` id, with DriveGPT's observation and ``action`` kind."""
    drivegpt_envs.register_envs()
    config = {"observation": kinematics_observation(), **action_config(action), **(overrides or {})}
    if "other_vehicles_type" not in config and _overwrites_idm(env_id):
        config["other_vehicles_type"] = "drivegpt_envs.families.vehicles.IntersectionIDMVehicle"
    try:
        return gym.make(env_id, config=config, render_mode=render_mode)
    except gym.error.Error as err:
        raise UserError(f"cannot make env '{env_id}': {err}; {_valid_ids()}") from None


PROJECT_KEYS = {"junction_rules"}  #: config entries the project reads from any env (``sim/junction.py``)


def check_overrides(env_id: str, overrides: dict[str, Any]) -> None:
    """Refuse config overrides that ``env_id``'s env does not have (with the valid keys) and a
    ``duration`` that is not a positive number of seconds, before any episode runs."""
    drivegpt_envs.register_envs()
    try:
        cls = _env_class(env_id)
    except gym.error.Error as err:
        raise UserError(f"cannot make env '{env_id}': {err}; {_valid_ids()}") from None
    if isinstance(cls, type) and hasattr(cls, "default_config"):
        known = set(cls.default_config()) | PROJECT_KEYS
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise UserError(f"{env_id}: unknown config key(s) {unknown}; valid: {', '.join(sorted(known))}")
    d = overrides.get("duration")
    if d is not None and not (
        isinstance(d, int | float) and not isinstance(d, bool) and math.isfinite(d) and d > 0
    ):
        raise UserError(f"{env_id}: config duration must be a positive number of seconds, got {d!r}")


def _env_class(env_id: str) -> Any:
    """The class (or creator) registered for ``env_id``; ``gym.error.Error`` for an unknown id."""
    entry = gym.spec(env_id).entry_point
    return gym.envs.registration.load_env_creator(entry) if isinstance(entry, str) else entry


def _valid_ids() -> str:
    """The env ids ``make_env`` takes, in words (for an error)."""
    ours = sorted(k for k in gym.registry if k.startswith("drivegpt/"))
    return f"use one of {', '.join(ours)} or a stock highway-env id (highway-v0, merge-v0, ...)"


def _overwrites_idm(env_id: str) -> bool:
    """Whether ``env_id`` is highway-env's intersection, whose reset writes IDM constants onto the class
    of its other vehicles (see ``IntersectionIDMVehicle``)."""
    from highway_env.envs.intersection_env import IntersectionEnv

    try:
        cls = _env_class(env_id)
    except gym.error.Error:
        return False  # an unknown id: gym.make says so
    return (
        isinstance(cls, type)
        and issubclass(cls, IntersectionEnv)
        and (cls._make_vehicles is IntersectionEnv._make_vehicles)
    )


def ego_state(env: gym.Env) -> dict[str, float]:
    """Ego figures recorded each step: speed [m/s], x, y [m], heading [rad], lane id, flags."""
    v = env.unwrapped.vehicle
    return {
        "speed": float(v.speed),
        "x": float(v.position[0]),
        "y": float(v.position[1]),
        "heading": float(v.heading),
        "lane": float(v.lane_index[2] if v.lane_index else -1),
        "crashed": float(v.crashed),
        "on_road": float(v.on_road),
    }


def run_episode(
    env: gym.Env,
    driver: DrivePolicy,
    seed: int,
    max_steps: int = 10_000,
    options: dict[str, Any] | None = None,
) -> Episode:
    """Drive one episode from ``env.reset(seed=seed, options=options)`` until termination or truncation."""
    obs, _ = env.reset(seed=seed, options=options)
    driver.reset(seed=seed, env=env)
    observations, actions, rewards, terms, truncs, decisions = [obs], [], [], [], [], []
    states = [ego_state(env)]
    for _ in range(max_steps):
        action = driver.act(obs)
        decisions.append(getattr(driver, "decision", action))
        obs, reward, terminated, truncated, _ = env.step(action)
        observations.append(obs)
        actions.append(action)
        rewards.append(reward)
        terms.append(terminated)
        truncs.append(truncated)
        states.append(ego_state(env))
        if terminated or truncated:
            break
    ep = Episode.from_steps(env, seed, observations, actions, rewards, terms, truncs, states)
    ep.decisions = np.asarray(decisions, ep.actions.dtype)
    return ep


def default_workers() -> int:
    """All cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def parallel_map(
    fn: Callable[[J], R],
    jobs: Sequence[J],
    workers: int | None = None,
    backend: Backend = "local",
    desc: str = "episodes",
    progress: bool = True,
    ray_address: str | None = None,
) -> list[R]:
    """``[fn(job) for job in jobs]`` over worker processes, in job order, with a progress bar.

    ``fn`` must be a module-level function (it is pickled to the workers). ``backend="ray"`` runs
    the jobs as Ray tasks: on a local Ray instance with ``workers`` CPUs, or on the cluster at
    ``ray_address`` (``auto``: the one ``ray start`` launched on this node); an already initialised
    Ray is used as it is.
    """
    if backend not in ("local", "ray"):
        raise BackendError(f"unknown backend {backend!r}; valid: local, ray")
    if ray_address and backend != "ray":
        raise BackendError(f"--ray-address {ray_address} needs --backend ray")
    ray = _import_ray() if backend == "ray" else None
    workers = min(workers or default_workers(), max(1, len(jobs)))
    bar = progress_bar(total=len(jobs), desc=desc, unit="ep", disable=not progress, dynamic_ncols=True)
    results: list[Any] = [None] * len(jobs)
    try:
        if ray is not None:
            return _ray_map(ray, fn, jobs, workers, bar, ray_address)
        if workers == 1:
            for i, job in enumerate(jobs):
                results[i] = fn(job)
                bar.update()
            return results
        with ProcessPoolExecutor(workers, mp_context=_mp_context(fn.__module__)) as pool:
            futures = {pool.submit(fn, job): i for i, job in enumerate(jobs)}
            from concurrent.futures import as_completed

            for fut in as_completed(futures):
                results[futures[fut]] = fut.result()
                bar.update()
        return results
    finally:
        bar.close()


def _mp_context(module: str) -> Any:
    """``fork`` (fast start) unless torch is loaded: its thread pools do not survive a fork, so
    then a clean ``forkserver`` process forks the workers. The fork server imports torch and
    ``module`` (the job function's) once, before any thread pool exists: every worker of every later
    pool forks with them loaded instead of importing them again (seconds of CPU per worker)."""
    import sys

    if sys.platform == "linux" and "torch" not in sys.modules:
        return get_context("fork")
    if sys.platform == "win32":
        return get_context("spawn")
    ctx = get_context("forkserver")
    ctx.set_forkserver_preload(["__main__", "torch", module])  # no effect once the server runs
    return ctx


class BackendError(UserError):
    """The execution backend cannot be used (unknown name, Ray not installed, no cluster)."""


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise BackendError(
            "--backend ray needs Ray, which is not installed: pip install 'drivegpt[ray]'"
        ) from None
    return ray


def _ray_map(
    ray: Any, fn: Callable[[J], R], jobs: Sequence[J], workers: int, bar: Any, address: str | None
) -> list[R]:
    if not ray.is_initialized():
        try:
            ray.init(
                address=address,
                num_cpus=None if address else workers,
                include_dashboard=False,
                log_to_driver=False,  # worker warnings stay in Ray's logs, the bar stays readable
                configure_logging=False,
            )
        except ConnectionError as err:
            msg = (
                f"cannot reach the Ray cluster at {address!r} ({err}); is `ray start --head` running? "
                "(a cluster started with token authentication also needs RAY_AUTH_MODE=token here)"
            )
            raise BackendError(msg) from None
    remote = ray.remote(num_cpus=1)(fn)
    refs = [remote.remote(job) for job in jobs]
    index = {ref: i for i, ref in enumerate(refs)}
    results: list[Any] = [None] * len(jobs)
    pending = list(refs)
    while pending:  # collect in completion order for the bar, store in job order
        done, pending = ray.wait(pending, num_returns=1)
        try:
            results[index[done[0]]] = ray.get(done[0])
        except ray.exceptions.RayTaskError as err:  # the worker's own error, as the local backend raises it
            if isinstance(getattr(err, "cause", None), Exception):
                raise err.cause from None
            raise
        bar.update()
    return results
