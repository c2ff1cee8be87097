"""Figure: how hard each scenario family is for the human model under random parameters.

For each family, ``--episodes`` episodes on held-out seeds (from ``EVAL_SEED``): the parameters are
drawn by the family's ``sample_params`` from a generator seeded with the episode seed, the human
model (``load_policy("human")``, a personality sampled per seed) drives. Failure = ego collision or
leaving the road. A good family is hard but not impossible: flagged when the human fails more than
50 % of the time or never. ``--policy SPEC`` drives the same episodes with another policy instead
(a learned one with the action interface it carries).

    nice -n 10 python bench/family_difficulty.py [--episodes 100] [--workers 2] [--action accel]
        [--families intersection roundabout] [--no-junction-rules] [--policy drivegpt-rlhf]

Writes ``bench/results/family_difficulty.{json,md}``.

    python bench/family_difficulty.py --compare bench/results/family_difficulty.json \
        bench/results/family_difficulty_accel.json --out bench/results/family_difficulty_meta_vs_accel

compares two such results (no simulation): each one's rate with its Wilson interval, and the rates
on the seeds both ran (the same parameters and personalities), with the discordant pairs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from typing import Any, NamedTuple

import numpy as np

from drivegpt.core.atomic import write_json, write_text
from drivegpt.core.metrics import check_metric_names, wilson_interval
from drivegpt.eval.closed_loop import EVAL_SEED
from drivegpt.policies.registry import DriveJob, load_policy, policy_action_kind, policy_and_env
from drivegpt.sim.rollout import make_env, parallel_map, run_episode
from drivegpt_envs.families import FAMILIES, family_class

TOO_HARD = 0.5  #: flag families where the human fails more often than this


class Job(NamedTuple):
    family: str
    seed: int
    action: str
    junction_rules: bool = True  #: False: the human drives junctions as on a highway (no yielding)
    policy: str = "human"  #: any policy spec; a learned one carries its own action interface


def run_job(job: Job) -> dict[str, Any]:
    """One random-parameter episode of ``job.family`` driven by ``job.policy`` (default: the human)."""
    params = family_class(job.family).sample_params(np.random.default_rng(job.seed))
    if job.policy == "human":
        overrides = None if job.junction_rules else {"junction_rules": False}
        env = make_env(FAMILIES[job.family], job.action, overrides)
        ep = run_episode(env, load_policy("human", job.action), job.seed, options={"params": params})
        env.close()
    else:  # loaded once per worker, with the env config it was trained with
        action = policy_action_kind(job.policy, job.action)
        policy, env = policy_and_env(DriveJob(job.policy, FAMILIES[job.family], action, job.seed))
        ep = run_episode(env, policy, job.seed, options={"params": params})
    return {
        "seed": job.seed,
        "params": params,
        "crashed": ep.crashed,
        "off_road": bool(ep.states["on_road"].min() < 1.0),
        "mean_speed_mps": float(ep.speeds.mean()),
        "steps": int(len(ep.rewards)),
    }


def summarise(family: str, episodes: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(episodes)
    failures = sum(e["crashed"] or e["off_road"] for e in episodes)
    crashes = sum(e["crashed"] for e in episodes)
    metrics = {
        "episodes": n,
        "failure_rate": failures / n,
        "collision_rate": crashes / n,
        "collision_rate_ci": list(wilson_interval(crashes, n)),
        "mean_speed_mps": float(np.mean([e["mean_speed_mps"] for e in episodes])),
    }
    check_metric_names(metrics)
    rate = metrics["failure_rate"]
    flag = "too hard (> 50 %)" if rate > TOO_HARD else "never fails" if failures == 0 else ""
    return {
        "family": family,
        "env_id": FAMILIES[family],
        **metrics,
        "intervals": {"failure_rate": list(wilson_interval(failures, n))},
        "flag": flag,
    }


def markdown(rows: list[dict[str, Any]], header: str) -> str:
    lines = [
        header,
        "",
        "| family | failure rate | Wilson 95% CI | mean speed [m/s] | flag |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lo, hi = r["intervals"]["failure_rate"]
        lines.append(
            f"| {r['family']} | {r['failure_rate']:.2f} | [{lo:.2f}, {hi:.2f}] | "
            f"{r['mean_speed_mps']:.1f} | {r['flag']} |"
        )
    return "\n".join(lines) + "\n"


def _failed(e: dict[str, Any]) -> bool:
    return bool(e["crashed"] or e["off_road"])


def _rate(fails: int, n: int) -> str:
    lo, hi = wilson_interval(fails, n)
    return f"{fails}/{n} = {fails / n:.2f} [{lo:.2f}, {hi:.2f}]"


def compare(paths: list[str], out: str) -> str:
    """Table of two results' failure rates per family, all episodes and the seeds both ran."""
    (a_path, b_path), (a, b) = paths, [json.loads(open(p).read()) for p in paths]
    ka, kb = a.get("label", a["action"]), b.get("label", b["action"])
    lines = [
        f"Human failure rate per family, `{ka}` ({a_path}) vs `{kb}` ({b_path}); Wilson 95% intervals. "
        f"'Paired' uses only the seeds both ran (same parameters and personality); discordant: episodes "
        f"failed with `{ka}` only / with `{kb}` only. `python {' '.join(sys.argv)}`",
        "",
        f"| family | `{ka}`, all episodes | `{kb}`, all episodes | `{ka}`, paired | `{kb}`, paired "
        "| discordant |",
        "|---|---|---|---|---|---|",
    ]
    for family in a["episodes"]:
        ea, eb = a["episodes"][family], b["episodes"].get(family, [])
        fa, fb = {e["seed"]: _failed(e) for e in ea}, {e["seed"]: _failed(e) for e in eb}
        common = sorted(set(fa) & set(fb))
        if not eb or not common:
            continue
        pa, pb = sum(fa[s] for s in common), sum(fb[s] for s in common)
        only_a = sum(fa[s] and not fb[s] for s in common)
        only_b = sum(fb[s] and not fa[s] for s in common)
        lines.append(
            f"| {family} | {_rate(sum(fa.values()), len(fa))} | {_rate(sum(fb.values()), len(fb))} "
            f"| {_rate(pa, len(common))} | {_rate(pb, len(common))} | {only_a} / {only_b} |"
        )
    text = "\n".join(lines) + "\n"
    write_text(out + ".md", text)
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--action", choices=["accel", "meta", "continuous"], default="accel")
    ap.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    ap.add_argument("--no-junction-rules", action="store_true",
                    help="the human without its junction rules (no yielding, no curve speeds)")
    ap.add_argument("--policy", default="human", help="policy spec (default: the human model)")
    ap.add_argument("--out", default="bench/results/family_difficulty")
    ap.add_argument("--compare", nargs=2, metavar="RESULT.json", help="compare two results, no simulation")
    args = ap.parse_args()
    if args.compare:
        print(compare(args.compare, args.out))
        return
    if args.no_junction_rules and args.policy != "human":
        ap.error("--no-junction-rules changes the human model only; drop it with --policy " + args.policy)
    t0 = time.time()
    seeds = range(EVAL_SEED, EVAL_SEED + args.episodes)
    rules = not args.no_junction_rules
    jobs = [Job(f, s, args.action, rules, args.policy) for f in args.families for s in seeds]
    label = args.action + (", no junction rules" if args.no_junction_rules else "")
    if args.policy != "human":
        label = f"{args.policy}, {policy_action_kind(args.policy, args.action)}"
    results = parallel_map(run_job, jobs, workers=args.workers, desc="family episodes")
    by_family = {f: [r for j, r in zip(jobs, results, strict=True) if j.family == f] for f in args.families}
    rows = [summarise(f, episodes) for f, episodes in by_family.items()]
    wall = time.time() - t0
    command = "python " + " ".join(sys.argv)
    who = "Human model" if args.policy == "human" else "Policy"
    header = (
        f"{who} ({label}), {args.episodes} random-parameter episodes per family, "
        f"seeds {EVAL_SEED}..{EVAL_SEED + args.episodes - 1}; `{command}`; {wall:.0f} s wall on "
        f"{platform.platform()} ({args.workers} workers; load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} at the end)."
    )
    table = markdown(rows, header)
    print(table)
    write_text(args.out + ".md", table)
    write_json(
        args.out + ".json",
        {"command": command, "policy": args.policy, "action": args.action, "label": label, "wall_s": wall,
         "machine": platform.platform(), "rows": rows, "episodes": by_family},
    )
    print(f"wrote {args.out}.json and {args.out}.md")


if __name__ == "__main__":
    main()
