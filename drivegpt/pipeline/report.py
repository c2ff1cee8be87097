"""The pipeline report: ``RUN/report.md`` and a self-contained ``RUN/report.html`` from the run's files.

Every number is read from a stage's output (``metrics.json``, ``log.csv``, ``replay.json``,
``timings.json``, ...); a section whose stage has not run is left out. Plots are PNGs made with
matplotlib into ``RUN/figures/``; the HTML embeds them (and the GIFs) as base64 data URIs, so it
is one file with no external assets.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from drivegpt.core.atomic import write_text
from drivegpt.pipeline.figures import plot_benchmark, plot_pretrain_curve
from drivegpt.pipeline.html import to_html
from drivegpt.pipeline.report_cells import RunFiles, num, rate_cell
from drivegpt.pipeline.report_flywheel import section_replay, section_rlhf, section_takeovers


def _section_run(files: RunFiles, run: dict[str, Any], timings: dict[str, Any]) -> list[str]:
    import yaml

    machine = ""
    if "cores" in timings:
        load = timings["load_average_at_start"]
        machine = f" on {timings['cores']} cores, 1-minute load average {load:.1f} at the start"
    lines = [
        "## What was run",
        "",
        f"`{run['command']}` (started {timings.get('started', '?')}{machine}; total "
        f"{num(timings.get('total_s'), '.0f')} s this invocation).",
        "",
        "| stage | this invocation | wall time of its last run [s] | output |",
        "|---|---|---|---|",
    ]
    for name, t in timings.get("stages", {}).items():
        lines.append(f"| {name} | {t['status']} | {num(t['seconds'], '.1f')} | `{t.get('output', '')}` |")
    cfg = yaml.safe_dump(run["config"], sort_keys=False, default_flow_style=None, width=100)
    return [*lines, "", "<details><summary>Resolved config</summary>", "", "```yaml", cfg.rstrip(), "```",
            "", "</details>", ""]  # fmt: skip


def _section_logs(files: RunFiles) -> list[str]:
    out = files.out
    manifest = files.json(out / "logs" / "manifest.json")
    if manifest is None:
        return []
    cfg = manifest.get("config", {})
    scen = ", ".join(s["env_id"] for s in cfg.get("scenarios", []))
    return [
        "## Human driving logs",
        "",
        f"{manifest['episodes']} human-driven episodes, {manifest['steps']} steps, "
        f"{cfg.get('action', '?')} actions, scenarios: {scen}; every file checksummed "
        f"(`drivegpt data check {out / 'logs'}`).",
        "",
    ]


def _section_pretrain(files: RunFiles, figs: Path) -> list[str]:
    out = files.out
    m = files.json(out / "pretrain" / "metrics.json")
    if m is None:
        return []
    lines = [
        "## Imitation pretraining",
        "",
        f"DriveGPT with {m['parameters']:,} parameters, {m['iter']} steps on {m['train_steps']:,} logged "
        f"decisions: held-out action accuracy **{m['action_accuracy']:.3f}**, cross-entropy "
        f"**{m['cross_entropy']:.3f}** nats ({m['val_steps']:,} held-out decisions; the best "
        f"validation CE, {m['best_val_cross_entropy']:.3f}, is the saved policy).",
        "",
    ]
    if (out / "pretrain" / "log.csv").is_file():
        plot_pretrain_curve(out / "pretrain" / "log.csv", figs / "pretrain_curve.png")
        lines += ["![pretraining curve](figures/pretrain_curve.png)", ""]
    return lines


def _section_benchmark(files: RunFiles, figs: Path) -> list[str]:
    out = files.out
    info = files.json(out / "benchmark" / "policies.json")
    if info is None:
        return []
    rows = [(name, files.json(out / "benchmark" / name / "metrics.json")) for name in info["policies"]]
    rows = [(n, m) for n, m in rows if m is not None]
    lines = [
        f"## Benchmark: closed loop on `{info['env']}`, held-out seeds from {info['seed']}",
        "",
        "| policy | spec | episodes | collision rate [Wilson 95% CI] | mean speed [m/s] | km "
        "| km per collision |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, m in rows:
        lines.append(
            f"| {name} | `{info['policies'][name]}` | {m['episodes']} | {rate_cell(m)} | "
            f"{m['mean_speed_mps']:.2f} | {m['km_driven']:.1f} | {num(m['km_per_collision'], '.1f')} |"
        )
    plot_benchmark(rows, figs / "benchmark.png")
    lines += ["", "![benchmark](figures/benchmark.png)", ""]
    lines += _simulators_side_by_side(files, rows)
    if (out / "benchmark" / "human.gif").is_file():
        lines += ["The human driver model (the teacher) on the first evaluation seed:", "",
                  "![human driver](benchmark/human.gif)", ""]  # fmt: skip
    return lines


def _simulators_side_by_side(files: RunFiles, rows: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """Each policy's highway-env row beside its row on the batched simulator (where it has one)."""
    out = files.out
    pairs = [(n, m, files.json(out / "benchmark" / n / "batched" / "metrics.json")) for n, m in rows]
    pairs = [(n, m, b) for n, m, b in pairs if b is not None]
    if not pairs:
        return []
    lines = [
        "The same policies alone on the batched simulator, where training, collection and search run, "
        "beside highway-env, the reference (same first seed, each simulator its own traffic draw: they "
        "agree in distribution, not episode by episode):",
        "",
        "| policy | highway-env episodes | collision rate | mean speed [m/s] | batched episodes "
        "| collision rate | mean speed [m/s] | collision intervals overlap |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, m, b in pairs:
        (lo, hi), (blo, bhi) = m["collision_rate_ci"], b["collision_rate_ci"]
        lines.append(
            f"| {name} | {m['episodes']} | {rate_cell(m)} | {m['mean_speed_mps']:.2f} | {b['episodes']} "
            f"| {rate_cell(b)} | {b['mean_speed_mps']:.2f} | {'yes' if lo <= bhi and blo <= hi else 'no'} |"
        )
    return [*lines, ""]


def _section_suite(files: RunFiles) -> list[str]:
    """The corner-case search and every policy on the suite it found."""
    out = files.out
    summary, suite = files.json(out / "search" / "summary.json"), out / "benchmark" / "suite"
    if summary is None or not (suite / "results.md").is_file():
        return []
    policy = next(iter(summary.values()))["policy"] if summary else "?"
    sims = sorted({s.get("sim", "highway-env") for s in summary.values()}) or ["highway-env"]
    lines = [
        f"## Corner cases: failure search against `{policy}` ({', '.join(sims)})",
        "",
        "| family | method | sims | failures | failure rate [Wilson 95% CI] | sims to first failure "
        "| clusters | unavoidable |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for fam, s in summary.items():
        lo, hi = s["failure_rate_ci"]
        lines.append(
            f"| {fam} | {s['method']} | {s['sims']} | {s['failures']} | {s['failure_rate']:.3f} "
            f"[{lo:.3f}, {hi:.3f}] | {num(s['sims_to_first_failure'], 'd')} | {s['clusters']} | "
            f"{s['unavoidable']} |"
        )
    lines += ["", "Every policy on every scenario the search simulated (`search/`, a replayable suite):", ""]
    lines += [(suite / "results.md").read_text().strip(), ""]
    plots = sorted((suite / "plots").glob("*.png"))
    lines += [f"![{p.stem}](benchmark/suite/plots/{p.name})" for p in plots if p.stem != "naturalistic_rate"]
    if (suite / "plots" / "naturalistic_rate.png").is_file():
        lines += [
            "",
            "The last column is each policy alone in ordinary dense traffic on the batched simulator, not "
            "in the suite's scenarios; its running estimate as the km add up (`naturalistic.csv`):",
            "",
            "![naturalistic_rate](benchmark/suite/plots/naturalistic_rate.png)",
        ]
    gifs = sorted((suite / "gifs").glob("*.gif"))
    if gifs:
        lines += ["", "Worst failures:", ""]
        lines += [f"**{g.stem}**\n\n![{g.stem}](benchmark/suite/gifs/{g.name})\n" for g in gifs]
    return [*lines, ""]


def _section_baseline(files: RunFiles) -> list[str]:
    out = files.out
    train, run = files.json(out / "baseline" / "train.json"), files.json(out / "baseline" / "run.json")
    if train is None or run is None:
        return []
    c = run["config"]
    return [
        f"Baseline: stable-baselines3 {c['algo'].upper()} trained on the env reward of `{c['env_id']}` "
        f"for {train['steps']:,} simulator steps ({train['seconds']:.0f} s, {c['action']} actions).",
        "",
    ]


def _section_reproduce(files: RunFiles, run: dict[str, Any]) -> list[str]:
    out = files.out
    from drivegpt.core.config import config_from_dict
    from drivegpt.pipeline.config import PipelineConfig
    from drivegpt.pipeline.stages import STAGES

    cfg = config_from_dict(PipelineConfig, run["config"], str(out / "run.json"))
    lines = [
        "## Reproduce",
        "",
        "The whole run (stages with a valid output are skipped; `--force STAGE` re-runs one and what "
        "reads from it):",
        "",
        "```bash",
        run["command"],
        "```",
        "",
        "Stage by stage (the stage configs are in `configs/` next to this report):",
        "",
        "```bash",
    ]
    for st in STAGES:
        lines += st.commands(cfg, out) if st.commands else []
    return [*lines, "```", ""]


def write_report(out: str | Path) -> Path:
    """Build ``report.md``, ``report.html`` and ``figures/*.png`` from the stage outputs in ``out``."""
    out = Path(out)
    figs = out / "figures"
    figs.mkdir(parents=True, exist_ok=True)
    files = RunFiles(out)
    run = json.loads((out / "run.json").read_text())
    timings = files.json(out / "timings.json") or {}
    lines = _section_run(files, run, timings)
    lines += _section_logs(files)
    lines += _section_pretrain(files, figs)
    lines += _section_benchmark(files, figs)
    lines += _section_baseline(files)
    lines += _section_suite(files)
    lines += section_takeovers(files, figs)
    lines += section_rlhf(files)
    lines += section_replay(files)
    lines += _section_reproduce(files, run)
    head = ["# DriveGPT pipeline report", ""]
    if files.unreadable:  # say what is missing and why, first
        head += [
            "## Unreadable files",
            "",
            "These outputs exist but could not be read; the sections that",
            "need them are missing or incomplete. Re-run the stage that writes each one",
            "(`--force STAGE`).",
            "",
        ]
        head += [f"- {u}" for u in files.unreadable] + [""]
    md = "\n".join(head + lines)
    write_text(out / "report.md", md)
    write_text(out / "report.html", to_html(md, out))
    return out / "report.md"
