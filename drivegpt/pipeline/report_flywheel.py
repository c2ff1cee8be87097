"""The pipeline report's sections on the feedback loop: takeovers before and after RLHF, the flywheel's
rounds, and the takeover clips replayed (each from its stage's files; none where the stage did not run).
"""

from __future__ import annotations

import csv
from pathlib import Path

from drivegpt.pipeline.figures import plot_takeovers
from drivegpt.pipeline.report_cells import RunFiles, num, takeover_row


def section_takeovers(files: RunFiles, figs: Path) -> list[str]:
    """Takeovers per 100 km before/after RLHF: the takeovers stage and every flywheel round's evaluation."""
    out = files.out
    found = []
    if (m := files.json(out / "takeovers" / "metrics.json")) is not None:
        info = files.json(out / "takeovers" / "run.json") or {}
        found.append(("DriveGPT pretrained", info.get("env", "?"), m, False))
    fly = (files.json(out / "rlhf" / "run.json") or {}).get("config", {})
    for k in range(int(fly.get("rounds", 0)) + 1):
        if (m := files.json(out / "rlhf" / f"round_{k}" / "eval" / "metrics.json")) is not None:
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


def section_rlhf(files: RunFiles) -> list[str]:
    """The flywheel's learning curve and, per round, the reward model and the distance to the reference."""
    out = files.out
    m, curve = files.json(out / "rlhf" / "metrics.json"), out / "rlhf" / "curve.csv"
    if m is None or not curve.is_file():
        return []
    cfg = (files.json(out / "rlhf" / "run.json") or {}).get("config", {})
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
        extra = num(f.get("human_labels"), ".0f") if dagger else num(f.get("pairwise_accuracy"), ".3f")
        lines.append(
            f"| {r['round']} | {r['takeovers']} | {num(f['takeovers_per_100km'], '.1f')} | "
            f"{num(f.get('takeovers_after_start_per_100km'), '.1f')} | "
            f"{num(f['collision_rate'], '.3f')} | {num(f['mean_speed_mps'])} | "
            f"{num(f['kl_to_reference'], '.4f')} | {extra} |"
        )
    if (out / "rlhf" / "learning_curve.png").is_file():
        lines += ["", "![RLHF learning curve](rlhf/learning_curve.png)"]
    return [*lines, ""]


def section_replay(files: RunFiles) -> list[str]:
    out = files.out
    summary = files.json(out / "replay" / "replay.json")
    if summary is None:
        return []
    lines = [
        "## Takeover clips replayed",
        "",
        "Each clip is re-simulated exactly to the takeover moment (fidelity = max abs state difference: "
        "0 on the machine that recorded it, at most 1e-9 on any other), then the driver below takes the "
        "wheel. Resolved: safe again with no collision, no TTC violation and no new takeover.",
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


__all__ = ["section_replay", "section_rlhf", "section_takeovers"]
