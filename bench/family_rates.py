"""Failure rate of each policy on every scenario family, random parameters, held-out seeds.

The standard suite holds 6 scenarios per family, too few to tell two policies apart; this drives
many more. For each family, episode ``i`` has seed ``--seed + i`` and parameters drawn by the
family's ``sample_params`` from a generator seeded with that seed, so every policy meets the same
scenarios. Families with a batched port run ``--batched-episodes`` on the batched simulator, the
others (``--highway-env-families``) ``--episodes`` on highway-env in ``--workers`` processes.
Failure: a collision of the ego or the ego leaving the road. Prints and writes a Markdown table:
each rate with its Wilson 95% interval, and per policy the mean over the families (each family
weighted equally, as in the suite) with a normal-approximation 95% interval. The counts are also
written to ``OUT.json`` after every family (a stopped run resumes from it); ``--merge A.json B.json``
tabulates results driven on the same seeds together.

    .venv/bin/python bench/family_rates.py --policies human drivegpt-rlhf \
        --out bench/results/family_rates.md
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import numpy as np
from markdown_table import write_markdown

from drivegpt.core.atomic import write_json
from drivegpt.core.metrics import wilson_interval
from drivegpt.corner.runner import run_jobs
from drivegpt.corner.suite import ScenarioJob
from drivegpt.policies.registry import policy_action_kind
from drivegpt.sim.batched.families import BATCHED_FAMILIES
from drivegpt_envs.families import FAMILIES, family_class


def jobs_of(policy: str, family: str, n: int, seed: int) -> list[ScenarioJob]:
    """``n`` scenarios of ``family`` for ``policy``: seed ``seed + i``, parameters from that seed."""
    sim = "batched" if family in BATCHED_FAMILIES else "highway-env"
    kind = policy_action_kind(policy, "accel")
    cls = family_class(family)
    return [
        ScenarioJob(policy, FAMILIES[family], kind, s, cls.sample_params(np.random.default_rng(s)), sim=sim)
        for s in range(seed, seed + n)
    ]


def table(rates: dict[str, dict[str, list[int]]], families: list[str]) -> tuple[str, list[str]]:
    """The Markdown header and rows: each rate with its Wilson interval, then the mean per policy."""
    names = list(rates)
    head = "| family | sim | episodes | " + " | ".join(names) + " |\n|---|---|---|" + "---|" * len(names)
    rows = []
    for family in families:
        cells = []
        for name in names:
            k, n = rates[name][family]
            lo, hi = wilson_interval(k, n)
            cells.append(f"{k / n:.3f} [{lo:.3f}, {hi:.3f}]")
        sim = "batched" if family in BATCHED_FAMILIES else "highway-env"
        counts = sorted({rates[name][family][1] for name in names})
        rows.append(f"| {family} | {sim} | {'/'.join(map(str, counts))} | " + " | ".join(cells) + " |")
    means = []
    for name in names:
        kn = [rates[name][f] for f in families]
        p = [k / n for k, n in kn]
        var = sum(q * (1 - q) / n for q, (_, n) in zip(p, kn, strict=True)) / len(p) ** 2
        mean, half = float(np.mean(p)), 1.96 * math.sqrt(var)
        means.append(f"**{mean:.3f}** [{max(0.0, mean - half):.3f}, {mean + half:.3f}]")
    rows.append("| mean over the families | | | " + " | ".join(means) + " |")
    return head, rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--policies", nargs="+", default=["human", "drivegpt-rlhf"])
    ap.add_argument("--names", nargs="+", help="Row names of the policies (default: the specs).")
    ap.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    ap.add_argument("--batched-episodes", type=int, default=1000)
    ap.add_argument("--episodes", type=int, default=100, help="Per family on highway-env.")
    ap.add_argument("--seed", type=int, default=3_000_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument(
        "--merge", nargs="+", type=Path, help="Tabulate these results (.json) together; no simulation."
    )
    ap.add_argument(
        "--out",
        type=Path,
        default=Path("bench/results/family_rates.md"),
        help="The table (.md); its record (.json, what --merge reads) goes beside it.",
    )
    args = ap.parse_args()
    if args.out.suffix == ".json":
        md = args.out.with_suffix(".md")
        ap.error(f"--out {args.out}: name the table, {md}; the .json record goes beside it")
    if args.merge:
        parts = [json.loads(p.read_text()) for p in args.merge]
        keys = ("seed", "batched_episodes", "episodes")
        if any(tuple(q[k] for k in keys) != tuple(parts[0][k] for k in keys) for q in parts):
            raise SystemExit("--merge: the results were driven on different seeds or episode counts")
        rates = {name: r for q in parts for name, r in q["rates"].items()}
        specs = {name: spec for q in parts for name, spec in q["policies"].items()}
        note = "Merged from: " + "; ".join(
            f"`{p}` ({q['note']})" for p, q in zip(args.merge, parts, strict=True)
        )
        note += "\n\nPolicies: " + ", ".join(f"{n} = `{s}`" for n, s in specs.items()) + "."
        families = [f for f in FAMILIES if all(f in r for r in rates.values())]
        write_markdown(
            args.out, "Failure rate per scenario family, random parameters", note, *table(rates, families)
        )
        return
    names = args.names or args.policies
    load0, t0 = os.getloadavg(), time.time()
    record = args.out.with_suffix(".json")  # written after every family: a stopped run resumes
    settings = {"seed": args.seed, "batched_episodes": args.batched_episodes, "episodes": args.episodes}
    done = json.loads(record.read_text()) if record.is_file() else {}
    rates: dict[str, dict[str, list[int]]] = done.get("rates", {}) if done.get("settings") == settings else {}
    specs = dict(zip(names, args.policies, strict=True))
    for name, policy in specs.items():
        rates.setdefault(name, {})
        for family in args.families:
            if family in rates[name]:
                continue
            n = args.batched_episodes if family in BATCHED_FAMILIES else args.episodes
            t = time.time()
            outs = run_jobs(jobs_of(policy, family, n, args.seed), args.workers, "local", family, False)
            rates[name][family] = [sum(o.failed for o in outs), len(outs)]
            write_json(
                record, {"settings": settings, **settings, "policies": specs, "rates": rates, "note": ""}
            )
            print(
                f"{name} {family}: {rates[name][family][0]}/{n} failed ({time.time() - t:.0f} s)", flush=True
            )
    note = (
        f"Seeds {args.seed}.. per family; load average {load0[0]:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after; {time.time() - t0:.0f} s in all; highway-env in "
        f"{args.workers} worker(s)."
    )
    rates = {name: rates[name] for name in names}
    write_json(record, {"settings": settings, **settings, "policies": specs, "rates": rates, "note": note})
    note += "\n\nPolicies: " + ", ".join(f"{n} = `{s}`" for n, s in specs.items()) + "."
    write_markdown(
        args.out, "Failure rate per scenario family, random parameters", note, *table(rates, args.families)
    )


if __name__ == "__main__":
    main()
