"""The whole loop in one command: stages run in order, each skipping itself when its output is valid.

``RUN/`` holds one folder per stage (``logs/``, ``pretrain/``, ``takeovers/``, ...), ``stages/<name>.json``
(the marker a finished stage writes last: the config it ran with and its wall time), ``timings.json``
(this invocation: ran / skipped and seconds per stage), ``run.json`` (command + resolved config) and
the report (``report.md``, ``report.html``, ``figures/``).

A stage runs when its output is missing or invalid, when the config keys it reads changed, when
``force`` names it, or when a stage it reads from ran in this invocation (so no output mixes inputs
of two runs). Otherwise it is skipped: a killed pipeline resumes where it stopped.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field

from drivegpt.atomic import write_json, write_text
from drivegpt.baselines import BaselineConfig
from drivegpt.collect import CollectConfig
from drivegpt.config import FrozenConfig
from drivegpt.evaluate import EVAL_SEED
from drivegpt.flywheel import FlywheelConfig
from drivegpt.pretrain import ModelSize, PretrainConfig
from drivegpt.rollout import default_workers
from drivegpt.search import SearchConfig
from drivegpt.takeover import MonitorConfig


class PipelineConfig(FrozenConfig):
    """``drivegpt pipeline``: every stage's settings (``configs/quickstart.yaml``, ``default.yaml``)."""

    collect: CollectConfig = CollectConfig(episodes=40)
    """Human-log collection stage."""
    pretrain: PretrainConfig = PretrainConfig(
        model=ModelSize(n_layer=2, n_head=4, n_embd=64, context=8), max_iters=600, eval_every=200
    )
    """DriveGPT pretraining stage (on this run's logs)."""
    monitor: MonitorConfig = MonitorConfig()
    """The simulated safety driver of every monitored drive and replay."""
    eval_env: str = "drivegpt/Highway-v0"
    """Env of the closed-loop evaluations (takeovers and the nominal benchmark)."""
    eval_episodes: int = Field(40, ge=1)
    """Held-out episodes per policy in each evaluation (seeds from ``eval_seed``)."""
    eval_seed: int = Field(EVAL_SEED, ge=0)
    """First evaluation seed (held out: collection uses seeds below 1,000,000)."""
    eval_policies: tuple[str, ...] = ("human", "idm")
    """Reference policies benchmarked next to this run's DriveGPT policies (any policy spec)."""
    workers: int | None = Field(None, ge=1)
    """Worker processes of the evaluations (None: all cores)."""
    rlhf: FlywheelConfig = FlywheelConfig(rounds=2, drive_episodes=20, eval_episodes=20)
    """The flywheel: rounds of drive with the monitor → clips → reward model → PPO (or DPO)."""
    baseline: BaselineConfig = BaselineConfig(total_steps=5000, checkpoint_every=5000)
    """The stable-baselines3 baseline trained on the env reward (benchmarked next to DriveGPT)."""
    search: SearchConfig = SearchConfig(budget=20, batch=10, feasibility_refs=1)
    """Corner-case search against the final policy, per family (the suite keeps every simulation)."""
    search_families: tuple[str, ...] = ("stalled_car", "hard_braking_lead", "cut_in")
    """Scenario families searched (``drivegpt_envs.families.FAMILIES``)."""
    bench_gifs: int = Field(2, ge=0)
    """GIFs of the worst failures in the corner-case benchmark."""
    replay_clips: int = Field(10, ge=0)
    """Takeover clips replayed with the final policy (and with the human, for reference)."""
    gif_clips: int = Field(2, ge=0)
    """Clips rendered as GIFs: the takeover as it happened and its replay with the final policy."""
    video_seed: int = EVAL_SEED
    """Seed of the rendered human episode."""


NOT_FINISHED = "no finished output"


class StageError(ValueError):
    """A stage name or a stage's input is wrong; the message lists the valid choices."""


@dataclass(frozen=True)
class Stage:
    """One step of the pipeline: writes ``RUN/<output>``, reads the outputs of ``needs``."""

    name: str
    output: str
    keys: tuple[str, ...]  # PipelineConfig fields it reads: a change re-runs it
    needs: tuple[str, ...]  # stages whose outputs it reads: when one of them runs, it runs too
    run: Callable[[PipelineConfig, Path, str], None]
    check: Callable[[Path], None]  # raises when RUN/<output> is not a valid, complete output
    resumable: bool = False  # keep a partial output (same config) after a kill: ``run`` resumes it
    commands: Callable[[PipelineConfig, Path], list[str]] | None = None  # the same stage by hand (CLI)

    def fingerprint(self, cfg: PipelineConfig) -> dict[str, Any]:
        """The config slice this stage depends on."""
        full = cfg.to_dict()
        return {k: full[k] for k in self.keys}

    def marker(self, out: Path) -> Path:
        return out / "stages" / f"{self.name}.json"

    def done(self, cfg: PipelineConfig, out: Path) -> tuple[bool, str]:
        """(valid output with the same config?, why not)."""
        try:
            mark = json.loads(self.marker(out).read_text())
        except (OSError, json.JSONDecodeError):
            return False, NOT_FINISHED
        if mark.get("config") != self.fingerprint(cfg):
            return False, "its config changed"
        try:
            self.check(out / self.output)
        except Exception as err:  # any failure to load means the output must be redone
            return False, f"output not valid ({str(err).splitlines()[0][:120]})"
        return True, ""


def stages() -> list[Stage]:
    """The stages in order (each is added when its library code exists: no placeholders)."""
    from drivegpt import stages as s

    return s.STAGES


def write_stage_configs(cfg: PipelineConfig, dest: Path) -> None:
    """``dest/<field>.yaml`` for each stage config (collect, pretrain, monitor, ...): the files the
    stage-by-stage commands of the report read."""
    import yaml

    for name in type(cfg).model_fields:
        value = getattr(cfg, name)
        if isinstance(value, FrozenConfig):
            write_text(dest / f"{name}.yaml", yaml.safe_dump(value.to_dict(), sort_keys=False))


def run_pipeline(
    cfg: PipelineConfig,
    out: str | Path,
    command: str = "",
    force: Sequence[str] = (),
    log: Callable[[str], None] = print,
) -> Path:
    """Run every stage that is not done into ``out``, then write the report; returns ``report.md``."""
    from drivegpt.report import write_report

    out = Path(out)
    all_stages = stages()
    names = [st.name for st in all_stages]
    unknown = [f for f in force if f not in names]
    if unknown:
        raise StageError(f"--force {unknown[0]}: no such stage; valid stages: {', '.join(names)}")
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "run.json", {"command": command, "config": cfg.to_dict()})
    write_stage_configs(cfg, out / "configs")
    timings: dict[str, Any] = {
        "stages": {},
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cores": default_workers(),  # wall times depend on these two: say them next to the times
        "load_average_at_start": os.getloadavg()[0],
    }
    ran: set[str] = set()
    t_all = time.perf_counter()
    for st in all_stages:
        done, why = st.done(cfg, out)
        upstream = [n for n in st.needs if n in ran]
        if st.name in force:
            why = "forced"
        elif upstream:
            why = f"its input {upstream[0]} was re-made"
        elif done:
            log(f"[{st.name}] skipped (valid output in {out / st.output})")
            prev = json.loads(st.marker(out).read_text()).get("seconds")
            timings["stages"][st.name] = {"status": "skipped", "seconds": prev, "output": st.output}
            continue
        log(f"[{st.name}] running ({why})")
        st.marker(out).unlink(missing_ok=True)
        if not (st.resumable and why == NOT_FINISHED):
            shutil.rmtree(out / st.output, ignore_errors=True)  # start over: no stale files survive
        t0 = time.perf_counter()
        st.run(cfg, out, command)
        st.check(out / st.output)  # a stage that wrote an invalid output is a bug: fail loudly here
        seconds = time.perf_counter() - t0
        write_json(st.marker(out), {"config": st.fingerprint(cfg), "seconds": seconds})
        timings["stages"][st.name] = {"status": "ran", "seconds": seconds, "output": st.output}
        ran.add(st.name)
        log(f"[{st.name}] done in {seconds:.1f} s")
        write_json(out / "timings.json", {**timings, "total_s": time.perf_counter() - t_all})
    write_json(out / "timings.json", {**timings, "total_s": time.perf_counter() - t_all})  # for the report
    t0 = time.perf_counter()
    report = write_report(out)
    seconds = time.perf_counter() - t0
    timings["stages"]["report"] = {"status": "ran", "seconds": seconds, "output": "report.md"}
    timings["total_s"] = time.perf_counter() - t_all
    write_json(out / "timings.json", timings)
    log(f"[report] {report} and {report.with_suffix('.html')}")
    return report

