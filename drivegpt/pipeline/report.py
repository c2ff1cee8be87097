"""The pipeline report: ``RUN/report.md`` and a self-contained ``RUN/report.html`` from the run's files.

Every number is read from a stage's output (``metrics.json``, ``log.csv``, ``replay.json``,
``timings.json``, ...); a section whose stage has not run is left out. Plots are PNGs made with
matplotlib into ``RUN/figures/``; the HTML embeds them (and the GIFs) as base64 data URIs, so it
is one file with no external assets.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from drivegpt.core.atomic import write_text
from drivegpt.pipeline.figures import plot_benchmark, plot_pretrain_curve, plot_takeovers
from drivegpt.pipeline.html import to_html

_UNREADABLE: list[str] = []  #: files of this report's run that exist but could not be parsed


def _json(path: Path) -> dict[str, Any] | None:
    """``path`` parsed, or None when it does not exist (a stage that did not run). A file that exists
    but does not parse is listed at the top of the report: its section is never dropped silently."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        _UNREADABLE.append(f"`{path}`: {str(err).splitlines()[0]}")
        return None


def _num(x: float | None, fmt: str = ".2f") -> str:
    return "-" if x is None else format(x, fmt)


def rate_cell(m: dict[str, Any]) -> str:
    """``0.025 [0.004, 0.129]`` from a metrics.json with a Wilson interval."""
    lo, hi = m["collision_rate_ci"]
    return f"{m['collision_rate']:.3f} [{lo:.3f}, {hi:.3f}]"


def takeover_row(name: str, env: str, m: dict[str, Any]) -> tuple[str, tuple[float, float] | None]:
    """A table row of takeover figures with the Poisson 95% interval of the rate per 100 km."""
    n, per100 = m["takeovers"], m["takeovers_per_100km"]
    ci = tuple(m["takeovers_per_100km_ci"]) if m.get("takeovers_per_100km_ci") else None
    ci_txt = "-" if ci is None else f"[{ci[0]:.1f}, {ci[1]:.1f}]"
    after, after_ci = m.get("takeovers_after_start_per_100km"), m.get("takeovers_after_start_per_100km_ci")
    after_txt = "-" if after_ci is None else f"{after:.1f} [{after_ci[0]:.1f}, {after_ci[1]:.1f}]"
    row = (
        f"| {name} | `{env}` | {m['episodes']} | {n} ({m['late_takeovers']} late) | "
        f"{_num(per100, '.1f')} {ci_txt} | {_num(m.get('takeovers_at_start'), '.0f')} | {after_txt} | "
        f"{_num(m['km_per_takeover'])} | {rate_cell(m)} | {m['mean_speed_mps']:.2f} |"
    )
    return row, ci


def _section_run(out: Path, run: dict[str, Any], timings: dict[str, Any]) -> list[str]:
    import yaml

    machine = ""
    if "cores" in timings:
        load = timings["load_average_at_start"]
        machine = f" on {timings['cores']} cores, 1-minute load average {load:.1f} at the start"
    lines = [
        "## What was run",
        "",
        f"`{run['command']}` (started {timings.get('started', '?')}{machine}; total "
        f"{_num(timings.get('total_s'), '.0f')} s this invocation).",
        "",
        "| stage | this invocation | wall time of its last run [s] | output |",
        "|---|---|---|---|",
    ]
    for name, t in timings.get("stages", {}).items():
        lines.append(f"| {name} | {t['status']} | {_num(t['seconds'], '.1f')} | `{t.get('output', '')}` |")
    cfg = yaml.safe_dump(run["config"], sort_keys=False, default_flow_style=None, width=100)
    return [*lines, "", "<details><summary>Resolved config</summary>", "", "```yaml", cfg.rstrip(), "```",
            "", "</details>", ""]  # fmt: skip


def _section_logs(out: Path) -> list[str]:
    manifest = _json(out / "logs" / "manifest.json")
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


def _section_pretrain(out: Path, figs: Path) -> list[str]:
    m = _json(out / "pretrain" / "metrics.json")
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


def _section_benchmark(out: Path, figs: Path) -> list[str]:
    info = _json(out / "benchmark" / "policies.json")
    if info is None:
        return []
    rows = [(name, _json(out / "benchmark" / name / "metrics.json")) for name in info["policies"]]
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
            f"{m['mean_speed_mps']:.2f} | {m['km_driven']:.1f} | {_num(m['km_per_collision'], '.1f')} |"
        )
    plot_benchmark(rows, figs / "benchmark.png")
    lines += ["", "![benchmark](figures/benchmark.png)", ""]
    lines += _simulators_side_by_side(out, rows)
    if (out / "benchmark" / "human.gif").is_file():
        lines += ["The human driver model (the teacher) on the first evaluation seed:", "",
                  "![human driver](benchmark/human.gif)", ""]  # fmt: skip
    return lines


def _simulators_side_by_side(out: Path, rows: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """Each policy's highway-env row beside its row on the batched simulator (where it has one)."""
    pairs = [(n, m, _json(out / "benchmark" / n / "batched" / "metrics.json")) for n, m in rows]
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


def _section_suite(out: Path) -> list[str]:
    """The corner-case search and every policy on the suite it found."""
    summary, suite = _json(out / "search" / "summary.json"), out / "benchmark" / "suite"
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
            f"[{lo:.3f}, {hi:.3f}] | {_num(s['sims_to_first_failure'], 'd')} | {s['clusters']} | "
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


def _section_baseline(out: Path) -> list[str]:
    train, run = _json(out / "baseline" / "train.json"), _json(out / "baseline" / "run.json")
    if train is None or run is None:
        return []
    c = run["config"]
    return [
        f"Baseline: stable-baselines3 {c['algo'].upper()} trained on the env reward of `{c['env_id']}` "
        f"for {train['steps']:,} simulator steps ({train['seconds']:.0f} s, {c['action']} actions).",
        "",
    ]


def _section_takeovers(out: Path, figs: Path) -> list[str]:
    """Takeovers per 100 km before/after RLHF: the takeovers stage and every flywheel round's evaluation."""
    found = []
    if (m := _json(out / "takeovers" / "metrics.json")) is not None:
        info = _json(out / "takeovers" / "run.json") or {}
        found.append(("DriveGPT pretrained", info.get("env", "?"), m, False))
    fly = (_json(out / "rlhf" / "run.json") or {}).get("config", {})
    for k in range(int(fly.get("rounds", 0)) + 1):
        if (m := _json(out / "rlhf" / f"round_{k}" / "eval" / "metrics.json")) is not None:
            method = fly["method"].upper()
            name = "DriveGPT pretrained (round 0)" if k == 0 else f"after RLHF round {k} ({method})"
            found.append((name, fly["eval_env"], m, True))
    if len(found) > 1 and found[0][1] == found[1][1]:  # round 0 re-used the takeovers drive: one row
        if {**found[0][2], "kl_to_reference": 0.0} == found[1][2]:
            found = found[1:]
    if not found:
        return []
    lines = [
        "## Takeovers per 100 km, before and after RLHF (held-out seeds from 1,000,000)",
        "",
        "The simulated safety driver watches the policy; distances are policy-controlled km only. "
        "Intervals: Poisson 95% for the rate (`drivegpt.core.metrics.poisson_interval`), Wilson 95% for "
        "collisions. *At start*: takeovers that fired on an episode's first state, before the policy's "
        "first action took effect (the spawned traffic is already too close; the same for every policy "
        "on these seeds); *after start*: the rate without them, the takeovers the policy's driving caused.",
        "",
        "| policy | env | episodes | takeovers | per 100 km [95% CI] | at start | after start, per 100 km "
        "[95% CI] | km per takeover | collision rate | mean speed [m/s] |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    bars = []
    plotted = any(f[3] for f in found)  # the plot: the flywheel's rounds (one env, same seeds) if any
    for name, env, m, flywheel in found:
        row, ci = takeover_row(name, env, m)
        lines.append(row)
        if flywheel or not plotted:
            label = name.split(" (")[0].replace("after RLHF ", "RLHF ").replace("DriveGPT ", "")
            bars.append((label, m["takeovers_per_100km"] or 0.0, ci))
    plot_takeovers(bars, figs / "takeovers.png")
    return [*lines, "", "![takeovers per 100 km](figures/takeovers.png)", ""]


def _section_rlhf(out: Path) -> list[str]:
    """The flywheel's learning curve and, per round, the reward model and the distance to the reference."""
    m, curve = _json(out / "rlhf" / "metrics.json"), out / "rlhf" / "curve.csv"
    if m is None or not curve.is_file():
        return []
    cfg = (_json(out / "rlhf" / "run.json") or {}).get("config", {})
    method = str(m["method"])
    steps = {
        "ppo": "reward model (Bradley-Terry on the takeover pairs, from the pretrained backbone) → PPO "
        "with a KL penalty to the pretrained policy",
        "dpo": "DPO on the takeover pairs against the pretrained policy",
        "hg-dagger": "the safety driver's actions during the takeovers as labels → fine-tuning on every "
        "round's labels so far (HG-DAgger)",
        "dagger": "the simulated human labels every state the policy visits → fine-tuning on every "
        "round's labels so far (DAgger)",
    }
    what = " → ".join(steps[part] for part in method.split("+"))
    dagger = "dagger" in method
    last = "human labels (all rounds)" if dagger else "reward model pairwise accuracy"
    # pure DAgger learns from its own unmonitored drive: no takeover clips in its rounds
    drive = "drive with the safety driver → takeover clips"
    drive = "the policy drives alone" if method == "dagger" else drive
    lines = [
        f"## RLHF: {m['rounds']} flywheel round{'s' if m['rounds'] != 1 else ''} ({method.upper()}) "
        f"on `{cfg.get('env_id', '?')}`",
        "",
        f"Each round: {drive} → {what}. Evaluation on held-out seeds after every round:",
        "",
        "| round | takeovers | per 100 km | after start, per 100 km | collision rate (monitored) "
        f"| mean speed [m/s] | KL to pretrained [nats] | {last} |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in csv.DictReader(curve.open()):
        f = {k: (float(v) if v not in ("", "None", None) else None) for k, v in r.items()}
        extra = _num(f.get("human_labels"), ".0f") if dagger else _num(f.get("pairwise_accuracy"), ".3f")
        lines.append(
            f"| {r['round']} | {r['takeovers']} | {_num(f['takeovers_per_100km'], '.1f')} | "
            f"{_num(f.get('takeovers_after_start_per_100km'), '.1f')} | "
            f"{_num(f['collision_rate'], '.3f')} | {_num(f['mean_speed_mps'])} | "
            f"{_num(f['kl_to_reference'], '.4f')} | {extra} |"
        )
    if (out / "rlhf" / "learning_curve.png").is_file():
        lines += ["", "![RLHF learning curve](rlhf/learning_curve.png)"]
    return [*lines, ""]


def _section_replay(out: Path) -> list[str]:
    summary = _json(out / "replay" / "replay.json")
    if summary is None:
        return []
    lines = [
        "## Takeover clips replayed",
        "",
        "Each clip is re-simulated exactly to the takeover moment (fidelity = max abs state difference, "
        "must be 0), then the driver below takes the wheel. Resolved: safe again with no collision, no "
        "TTC violation and no new takeover.",
        "",
        "| driver | policy | replays | resolved | fidelity (max abs) |",
        "|---|---|---|---|---|",
    ]
    for who in summary["drivers"]:
        s = summary[who]
        rate = s["resolution_rate"]
        ok = "-" if rate is None else f"{round(rate * s['replays'])}/{s['replays']}"
        lines.append(f"| {who} | `{s['policy']}` | {s['replays']} | {ok} | {s['fidelity_max_abs']:g} |")
    lines.append("")
    titles = {"human": "the takeover as it happened (the safety driver's correction)",
              "final": "replayed with the final policy at the wheel"}  # fmt: skip
    for g in sorted(summary["gifs"], key=lambda g: (g["clip"], g["driver"] != "human")):
        lines += [f"**{g['clip']}**: {titles.get(g['driver'], g['driver'])}", "",
                  f"![{g['clip']} {g['driver']}](replay/{g['file']})", ""]  # fmt: skip
    return lines


def _section_reproduce(out: Path, run: dict[str, Any]) -> list[str]:
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
    _UNREADABLE.clear()
    run = json.loads((out / "run.json").read_text())
    timings = _json(out / "timings.json") or {}
    lines = _section_run(out, run, timings)
    lines += _section_logs(out)
    lines += _section_pretrain(out, figs)
    lines += _section_benchmark(out, figs)
    lines += _section_baseline(out)
    lines += _section_suite(out)
    lines += _section_takeovers(out, figs)
    lines += _section_rlhf(out)
    lines += _section_replay(out)
    lines += _section_reproduce(out, run)
    head = ["# DriveGPT pipeline report", ""]
    if _UNREADABLE:  # say what is missing and why, first
        head += [
            "## Unreadable files",
            "",
            "These outputs exist but could not be read; the sections that",
            "need them are missing or incomplete. Re-run the stage that writes each one",
            "(`--force STAGE`).",
            "",
        ]
        head += [f"- {u}" for u in _UNREADABLE] + [""]
    md = "\n".join(head + lines)
    write_text(out / "report.md", md)
    write_text(out / "report.html", to_html(md, out))
    return out / "report.md"
