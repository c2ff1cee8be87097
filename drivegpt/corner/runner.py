"""Scenario jobs on the simulator each one names: the one entry point of search, replay and benchmark.

Owns ``run_jobs``: highway-env jobs run in worker processes (:func:`drivegpt.corner.suite.simulate`,
one env each), batched ones together on the batched simulator
(:func:`drivegpt.corner.batched.simulate_scenarios`); the outcomes come back in job order.
"""

from __future__ import annotations

from typing import Any

from drivegpt.core.errors import UserError
from drivegpt.corner.suite import SIMULATORS, Outcome, ScenarioJob, simulate
from drivegpt.sim.rollout import Backend, parallel_map


def run_jobs(
    jobs: list[ScenarioJob],
    workers: int | None = None,
    backend: Backend = "local",
    desc: str = "scenarios",
    progress: bool = True,
    ray_address: str | None = None,
) -> list[Outcome]:
    """The outcome of every job, in order: highway-env jobs in worker processes (:func:`simulate`),
    batched ones stepped together (:func:`drivegpt.corner.batched.simulate_scenarios`)."""
    unknown = sorted({j.sim for j in jobs} - set(SIMULATORS))
    if unknown:
        raise UserError(f"simulator {unknown[0]!r}: valid simulators are {', '.join(SIMULATORS)}")
    out: list[Any] = [None] * len(jobs)
    for sim in SIMULATORS:
        index = [i for i, j in enumerate(jobs) if j.sim == sim]
        if not index:
            continue
        group = [jobs[i] for i in index]
        if sim == "batched":
            from drivegpt.corner.batched import simulate_scenarios  # torch: only when asked for

            outs = simulate_scenarios(group, progress=progress)
        else:
            outs = parallel_map(simulate, group, workers, backend, desc, progress, ray_address)
        for i, o in zip(index, outs, strict=True):
            out[i] = o
    return out
