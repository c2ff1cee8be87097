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
from pathlib import Path
from typing import Any

from drivegpt.core.atomic import write_json
from drivegpt.pipeline.config import NOT_FINISHED, PipelineConfig, StageError, write_stage_configs
from drivegpt.pipeline.report import write_report
from drivegpt.pipeline.stages import STAGES
from drivegpt.sim.rollout import default_workers


def run_pipeline(
    cfg: PipelineConfig,
    out: str | Path,
    command: str = "",
    force: Sequence[str] = (),
    log: Callable[[str], None] = print,
) -> Path:
    """Run every stage that is not done into ``out``, then write the report; returns ``report.md``."""
    out = Path(out)
    all_stages = STAGES
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
