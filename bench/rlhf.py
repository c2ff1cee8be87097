"""Takeovers before and after RLHF, round by round, on held-out seeds.

    .venv/bin/python bench/rlhf.py --run ppo=runs/rlhf-quick --run dpo=runs/dpo-quick \
        --env drivegpt/HighwayDense-v0 --episodes 100 [--baseline sb3-ppo:runs/sb3-ppo-dense]

For each flywheel run (``drivegpt rlhf --out RUN``) the pretrained policy (round 0) and the policy
after each round drive ``--episodes`` monitored episodes from seed 1,000,000 (never used in training).
Prints and writes ``bench/results/rlhf_<env>.{json,md,png}``: takeovers with their 95% Poisson
interval per 100 km of policy driving, collision rate (Wilson), mean speed, KL to the pretrained
policy, the ratio pretrained / final, and the simulator budget each run used (policy steps), which
is the budget to give the SB3 PPO baseline (``--baseline``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from drivegpt.eval.closed_loop import EVAL_SEED, evaluate_monitored
from drivegpt.rlhf.flywheel import mean_kl

RESULTS = Path(__file__).parent / "results"


def policy_steps_used(run: Path) -> int:
    """Policy steps the flywheel simulated: monitored drives + PPO rollouts (evaluation excluded)."""
    import csv

    total = 0
    for rd in sorted(run.glob("round_[1-9]*")):
        with np.load(rd / "clips" / "policy_steps.npz") as z:
            total += len(z["actions"])
        log = rd / "ppo" / "log.csv"
        if log.is_file():
            total += sum(int(r["steps"]) for r in csv.DictReader(log.open()))
    return total


def row_of(name: str, rnd: int | str, spec: str, m: dict, kl: float | None) -> dict:
    n = m["takeovers"]
    rate = m["takeovers_per_100km"] or 0.0
    return {
        "run": name,
        "round": rnd,
        "policy": spec,
        "episodes": m["episodes"],
        "takeovers": n,
        "takeovers_per_100km": rate,
        "takeovers_per_100km_ci": m["takeovers_per_100km_ci"],
        "late_takeovers": m["late_takeovers"],
        "collisions": round(m["collision_rate"] * m["episodes"]),
        "collision_rate": m["collision_rate"],
        "collision_rate_ci": m["collision_rate_ci"],
        "mean_speed_mps": m["mean_speed_mps"],
        "kl_to_reference": kl,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", action="append", required=True, help="NAME=FLYWHEEL_RUN_DIR (repeat)")
    ap.add_argument("--env", default="drivegpt/HighwayDense-v0")
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--baseline", action="append", default=[], help="extra policy spec, e.g. sb3-ppo:RUN")
    ap.add_argument("--tag", default="", help="suffix of the result files")
    ap.add_argument("--last-only", action="store_true", help="pretrained and final policy only")
    args = ap.parse_args()

    rows, budgets = [], {}
    pretrained_done: dict[str, dict] = {}
    for item in args.run:
        name, _, path = item.partition("=")
        run = Path(path)
        ref = json.loads((run / "run.json").read_text())["pretrained"]
        budgets[name] = policy_steps_used(run)
        rounds = sorted(int(p.name.split("_")[1]) for p in run.glob("round_[1-9]*") if (p / "eval").exists())
        method = json.loads((run / "run.json").read_text())["config"]["method"]
        for k in [0, rounds[-1]] if args.last_only else [0, *rounds]:
            pdir = ref if k == 0 else str(run / f"round_{k}" / method / "policy")
            if k == 0 and ref in pretrained_done:
                rows.append({**pretrained_done[ref], "run": name})
                continue
            m, eps, _ = evaluate_monitored(
                f"drivegpt:{pdir}", args.env, None, args.episodes, EVAL_SEED, args.workers
            )
            r = row_of(name, k, pdir, m, mean_kl(Path(pdir), ref, eps))
            if k == 0:
                pretrained_done[ref] = r
            rows.append(r)
            print(
                f"{name} round {k}: {r['takeovers']} takeovers, {r['takeovers_per_100km']:.0f}/100 km, "
                f"collisions {r['collisions']}/{r['episodes']}, {r['mean_speed_mps']:.2f} m/s, "
                f"KL {r['kl_to_reference']:.3f}"
            )
    for spec in args.baseline:
        m, _, _ = evaluate_monitored(spec, args.env, None, args.episodes, EVAL_SEED, args.workers)
        rows.append(row_of(spec, "-", spec, m, None))
        print(f"{spec}: {m['takeovers']} takeovers, {m['takeovers_per_100km']:.0f}/100 km")

    env_tag = args.env.split("/")[-1] + args.tag
    RESULTS.mkdir(exist_ok=True)
    out = {
        "env": args.env,
        "episodes": args.episodes,
        "first_seed": EVAL_SEED,
        "policy_steps": budgets,
        "rows": rows,
    }
    (RESULTS / f"rlhf_{env_tag}.json").write_text(json.dumps(out, indent=2))
    lines = [
        f"Held-out monitored evaluation on `{args.env}`, {args.episodes} episodes from seed {EVAL_SEED}.",
        "",
        "| run | round | takeovers | per 100 km [95% CI] | late | collisions | collision rate [95% CI] "
        "| speed m/s | KL |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lo, hi = r["takeovers_per_100km_ci"]
        clo, chi = r["collision_rate_ci"]
        kl = "" if r["kl_to_reference"] is None else f"{r['kl_to_reference']:.3f}"
        lines.append(
            f"| {r['run']} | {r['round']} | {r['takeovers']} "
            f"| {r['takeovers_per_100km']:.0f} [{lo:.0f}, {hi:.0f}] "
            f"| {r['late_takeovers']} | {r['collisions']} | {r['collision_rate']:.3f} [{clo:.3f}, {chi:.3f}] "
            f"| {r['mean_speed_mps']:.2f} | {kl} |"
        )
    lines.append("")
    for name in budgets:
        rs = [r for r in rows if r["run"] == name]
        first, last = rs[0], rs[-1]
        ratio = (
            first["takeovers_per_100km"] / last["takeovers_per_100km"]
            if last["takeovers_per_100km"]
            else float("inf")
        )
        lines.append(
            f"- {name}: pretrained / round {last['round']} takeovers per 100 km = **{ratio:.2f}x**; "
            f"speed ratio "
            f"{last['mean_speed_mps'] / first['mean_speed_mps']:.3f}; collisions {first['collisions']} -> "
            f"{last['collisions']}; simulator budget {budgets[name]:,} policy steps."
        )
    (RESULTS / f"rlhf_{env_tag}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    plot(rows, RESULTS / f"rlhf_{env_tag}.png", args.env)


def plot(rows: list[dict], path: Path, env: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.4))
    for i, name in enumerate(dict.fromkeys(r["run"] for r in rows if r["round"] != "-")):
        rs = [r for r in rows if r["run"] == name]
        x = [r["round"] for r in rs]
        y = np.array([r["takeovers_per_100km"] for r in rs])
        ci = np.array([r["takeovers_per_100km_ci"] for r in rs])
        a1.errorbar(x, y, yerr=[y - ci[:, 0], ci[:, 1] - y], marker="o", capsize=3, label=name, color=f"C{i}")
        a2.plot(x, [r["kl_to_reference"] for r in rs], marker="o", label=name, color=f"C{i}")
    for j, r in enumerate(r for r in rows if r["round"] == "-"):
        a1.axhline(r["takeovers_per_100km"], ls="--", color=f"C{j + 3}", label=r["run"])
    a1.set(xlabel="round", ylabel="takeovers / 100 km (held-out)", title=env, ylim=(0, None))
    a2.set(xlabel="round", ylabel="KL(π ‖ π_pretrained) [nats]", title="KL to the pretrained policy")
    for a in (a1, a2):
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
