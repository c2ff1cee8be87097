"""How does a pretrained DriveGPT crash? Its acceleration against the human's IDM on the same states.

The policy drives ``--episodes`` held-out episodes (seeds from 1,000,000) of ``--env`` alone on the
batched simulator. At every step a reference human (the default ``Personality``, no noise, no delay)
decides on the same state, so each step has the policy's acceleration and the one the teacher's
rule would have chosen. Per policy it reports: the collisions and whether each one came during a
lane change or in the ego's lane, and into the car ahead or from behind; the time headway to the car
ahead (10th and 50th percentile); how often the policy brakes at least 4 m/s² where the rule brakes
that hard; and the last ``--window`` steps before the first ``--show`` collisions (speed, the car
ahead in the ego's lane: gap and speed, the rule's and the policy's acceleration).

    python bench/imitation_crashes.py --policy drivegpt:runs/copycat/ad0-s0/pretrain \
        --policy drivegpt-rlhf --episodes 300 --out bench/results/pretrain_scale/crashes.md

Writes ``--out`` (Markdown) and prints it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch

from drivegpt.core.atomic import write_text
from drivegpt.policies.registry import load_policy
from drivegpt.sim import batched
from drivegpt.sim.batched.config import LENGTH  # [m] bumper gap = centre distance - LENGTH
from drivegpt.sim.batched.human import BatchedHuman
from drivegpt.sim.personality import Personality
from drivegpt_envs.actions import decode_accel_lane


def accel_of(tokens: np.ndarray) -> np.ndarray:
    """(B,) accel tokens -> (B,) accelerations [m/s²]."""
    return decode_accel_lane(tokens)[0]


def front(s: batched.BatchState) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,) bumper gap [m] (inf: none) and speed [m/s] of the nearest car ahead in the ego's lane."""
    dx = s.x[:, 1:] - s.x[:, :1]  # (B, N-1)
    ahead = (s.lane[:, 1:] == s.lane[:, :1]) & s.present[:, 1:] & (dx > 0)
    gap, i = torch.where(ahead, dx - LENGTH, torch.inf).min(1)
    return gap, s.speed[:, 1:].gather(1, i[:, None])[:, 0]


def examine(spec: str, env: str, episodes: int, window: int, show: int) -> dict[str, Any]:
    policy: Any = load_policy(spec)
    config = batched.make_config(env, policy.action_kind, policy.env_config)
    seeds = list(range(1_000_000, 1_000_000 + episodes))
    s = batched.reset(seeds, config)
    policy.reset_batch(episodes)
    rule = BatchedHuman(config, personality=Personality())  # the teacher's rule, without noise or delay
    rule.reset(seeds, s)
    done = torch.zeros(episodes, dtype=torch.bool)
    rows: list[dict[str, np.ndarray]] = []
    kinds: list[str] = []
    crashes: list[tuple[int, int]] = []  # (episode, step)
    while not bool(done.all()):
        token = np.asarray(policy.act_batch(batched.observe(s).numpy()))
        rule.act(s)
        gap, lead_speed = front(s)
        rows.append({
            "policy": accel_of(token), "rule": accel_of(rule.decision.numpy()),
            "speed": s.speed[:, 0].numpy().copy(), "gap": gap.numpy(), "lead_speed": lead_speed.numpy(),
            "alive": (~done).numpy(),
        })  # fmt: skip
        before = s
        s = batched.step(s, torch.as_tensor(token))
        for b in ((~done) & s.crashed[:, 0]).nonzero().flatten().tolist():
            hit = (s.crashed[b, 1:] & s.present[b, 1:]).nonzero().flatten()
            changing = bool(before.lane[b, 0] != before.target_lane[b, 0]) or bool(
                s.lane[b, 0] != before.lane[b, 0]
            )
            where = "during a lane change" if changing else "in its lane"
            side = (
                "?"
                if not len(hit)
                else "into the car ahead"
                if s.x[b, int(hit[0]) + 1] > s.x[b, 0]
                else "from behind"
            )
            kinds.append(f"{where}, {side}")
            crashes.append((b, len(rows)))
        done |= batched.terminated(s) | batched.truncated(s)
    table = {k: np.stack([r[k] for r in rows]) for k in rows[0]}  # (T, B) each
    alive = table["alive"]
    headway = (table["gap"] / np.maximum(table["speed"], 0.1))[alive & np.isfinite(table["gap"])]
    hard = alive & (table["rule"] <= -4)
    shown = []
    for b, t in crashes[:show]:
        lo = max(0, t - window)
        columns = ("speed", "gap", "lead_speed", "rule", "policy")
        shown.append([tuple(table[c][k, b] for c in columns) for k in range(lo, t)])
    return {
        "episodes": episodes, "collisions": len(crashes), "kinds": Counter(kinds),
        "headway_p10_p50": np.percentile(headway, [10, 50]), "hard_steps": int(hard.sum()),
        "hard_followed": float((table["policy"][hard] <= -4).mean()) if hard.any() else float("nan"),
        "shown": shown,
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy", action="append", required=True, help="a DriveGPT spec (repeatable)")
    ap.add_argument("--env", default="drivegpt/HighwayDense-v0")
    ap.add_argument("--episodes", type=int, default=300)
    ap.add_argument("--window", type=int, default=12, help="steps shown before a collision")
    ap.add_argument("--show", type=int, default=3, help="collisions shown per policy")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    lines = [
        "# How a pretrained DriveGPT crashes",
        "",
        f"`python {' '.join(sys.argv)}`",
        "",
        f"{args.env} on the batched simulator, {args.episodes} held-out episodes (seeds from 1,000,000), the "
        "policy alone; 'rule': the teacher's IDM (default personality, no noise or delay) on the same state.",
        "",
        "| policy | collisions | how | headway p10 / p50 [s] | rule brakes ≥ 4 m/s²: steps, policy too |",
        "|---|---|---|---|---|",
    ]
    details = []
    for spec in args.policy:
        r = examine(spec, args.env, args.episodes, args.window, args.show)
        how = "; ".join(f"{n} {k}" for k, n in r["kinds"].most_common()) or "-"
        p10, p50 = r["headway_p10_p50"]
        lines.append(
            f"| `{spec}` | {r['collisions']} of {r['episodes']} | {how} | {p10:.2f} / {p50:.2f} | "
            f"{r['hard_steps']:,}, {r['hard_followed']:.0%} |"
        )
        for k, steps in enumerate(r["shown"]):
            head = f"`{spec}`, collision {k + 1}: per step (0.2 s) speed [m/s], gap to the car ahead [m], "
            details += ["", head + "its speed [m/s], the rule's and the policy's acceleration [m/s²]", ""]
            details += ["    " + "  ".join(f"{v:6.1f}" for v in step) for step in steps]
    lines += details + ["", f"Load average at the end: {os.getloadavg()[0]:.2f}."]
    text = "\n".join(lines) + "\n"
    write_text(args.out, text)
    print(text)


if __name__ == "__main__":
    main()
