"""Collect finished flywheel runs and baseline drives into one before/after-RLHF table and plot.

    .venv/bin/python bench/rlhf_summary.py --run "PPO=runs/rlhf-quick" --run "DPO=runs/dpo-quick-v2" \
        --drive "SB3 PPO=runs/sb3-eval" --drive "human=runs/human-eval" --out bench/results/rlhf_dense

Every figure is read from the runs: each flywheel round's held-out evaluation (``round_<k>/eval``,
seeds from 1,000,000) and ``metrics.json`` of ``drivegpt drive --takeovers`` on the same seeds.
Writes ``OUT.md``, ``OUT.json`` and ``OUT.png`` (takeovers per 100 km with 95% Poisson intervals and
the KL to the pretrained policy, by round).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def _row(name: str, rnd: int | str, m: dict, base: dict | None) -> dict:
    n, rate = m["takeovers"], m["takeovers_per_100km"] or 0.0
    lo, hi = m["takeovers_per_100km_ci"]
    return {
        "run": name,
        "round": rnd,
        "episodes": m["episodes"],
        "takeovers": n,
        "takeovers_per_100km": rate,
        "takeovers_per_100km_ci": [lo, hi],
        "late_takeovers": m["late_takeovers"],
        "collision_rate": m["collision_rate"],
        "collision_rate_ci": m["collision_rate_ci"],
        "mean_speed_mps": m["mean_speed_mps"],
        "kl_to_reference": m.get("kl_to_reference"),
        "ratio_vs_pretrained": base["takeovers_per_100km"] / rate if base and rate else None,
        "speed_ratio": m["mean_speed_mps"] / base["mean_speed_mps"] if base else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", action="append", default=[], help="NAME=FLYWHEEL_RUN (repeat)")
    ap.add_argument("--drive", action="append", default=[], help="NAME=DRIVE_OUT with metrics.json (repeat)")
    ap.add_argument("--out", default="bench/results/rlhf_dense")
    args = ap.parse_args()

    rows: list[dict] = []
    base: dict | None = None
    for item in args.run:
        name, _, path = item.rpartition("=")
        run = Path(path)
        evals = sorted(run.glob("round_*/eval/metrics.json"), key=lambda p: int(p.parent.parent.name[6:]))
        for f in evals:
            k = int(f.parent.parent.name[6:])
            m = json.loads(f.read_text())
            if k == 0:
                base = base or m
                if any(r["round"] == 0 for r in rows):
                    continue
                rows.append(_row("pretrained", 0, m, base))
                continue
            rows.append(_row(name, k, m, base))
    for item in args.drive:
        name, _, path = item.rpartition("=")
        rows.append(_row(name, "-", json.loads((Path(path) / "metrics.json").read_text()), base))

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(
        json.dumps({"runs": args.run, "drives": args.drive, "rows": rows}, indent=2)
    )
    lines = [
        "| policy | round | takeovers | per 100 km [95% CI] | ÷ pretrained | late | collision rate [95% CI] "
        "| speed m/s (× pretrained) | KL |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lo, hi = r["takeovers_per_100km_ci"]
        clo, chi = r["collision_rate_ci"]
        ratio = "" if r["ratio_vs_pretrained"] is None else f"{r['ratio_vs_pretrained']:.2f}×"
        kl = "" if r["kl_to_reference"] is None else f"{r['kl_to_reference']:.3f}"
        lines.append(
            f"| {r['run']} | {r['round']} | {r['takeovers']} "
            f"| {r['takeovers_per_100km']:.0f} [{lo:.0f}, {hi:.0f}] "
            f"| {ratio} | {r['late_takeovers']} | {r['collision_rate']:.3f} [{clo:.3f}, {chi:.3f}] "
            f"| {r['mean_speed_mps']:.2f} ({r['speed_ratio']:.2f}) | {kl} |"
        )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    plot(rows, out.with_suffix(".png"))


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    base = next(r for r in rows if r["round"] == 0)
    runs = [n for n in dict.fromkeys(r["run"] for r in rows) if n != "pretrained"]
    for i, name in enumerate(n for n in runs if any(r["run"] == n and r["round"] != "-" for r in rows)):
        rs = [base] + [r for r in rows if r["run"] == name]
        x = [r["round"] for r in rs]
        y = np.array([r["takeovers_per_100km"] for r in rs])
        ci = np.array([r["takeovers_per_100km_ci"] for r in rs])
        a1.errorbar(x, y, yerr=[y - ci[:, 0], ci[:, 1] - y], marker="o", capsize=3, label=name, color=f"C{i}")
        a2.plot(x, [r["kl_to_reference"] or 0.0 for r in rs], marker="o", label=name, color=f"C{i}")
    for j, r in enumerate(r for r in rows if r["round"] == "-"):
        a1.axhline(
            r["takeovers_per_100km"],
            ls="--",
            color=f"C{j + 5}",
            label=f"{r['run']} ({r['mean_speed_mps']:.1f} m/s)",
        )
    a1.set(
        xlabel="flywheel round", ylabel="takeovers / 100 km (held-out)", title="dense traffic", ylim=(0, None)
    )
    a2.set(
        xlabel="flywheel round",
        ylabel="KL(π ‖ π_pretrained) [nats]",
        title="distance from the pretrained policy",
    )
    for a in (a1, a2):
        a.set_xticks(sorted({r["round"] for r in rows if r["round"] != "-"}))
        a.grid(alpha=0.3)
        a.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
