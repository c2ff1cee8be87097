"""How a trained DriveGPT drives with less of its history visible, or its acceleration decoded otherwise.

Two driving-time knobs of a policy that was trained one way, measured on the same held-out episodes
of the batched simulator (the policy alone, seeds from 1,000,000, Wilson 95% intervals):

* ``--visible K ...``: the policy sees only its last K steps (K = 1: the newest observation alone, a
  memoryless policy; the model's own context: what it was trained for). The model was trained with
  every window position, so position 0 (no history) is one it learned too.
* ``--decode argmax|median|mean ...``: greedy over the 42 joint tokens (what ``drivegpt drive`` does),
  or the acceleration's marginal over the three lane intents decoded at its median, or its mean
  snapped to the nearest bin (the lane intent: the argmax of its own marginal).

    python bench/imitation_context.py --policy runs/copycat/ad0-s0/pretrain --visible 1 4 20 \
        --episodes 1000 --out bench/results/pretrain_scale/context/ad0-s0

Writes ``--out``.json and ``--out``.md; prints the table.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from drivegpt.core.atomic import write_json
from drivegpt.eval.batched import drive_episodes
from drivegpt.model.policy import DriveGPTPolicy
from drivegpt.sim import batched
from drivegpt_envs.actions import ACCEL_BINS, LANE_INTENTS

sys.path.insert(0, str(Path(__file__).resolve().parent))
from markdown_table import write_markdown  # noqa: E402

DECODES = ("argmax", "median", "mean")


class Decoded:
    """A DriveGPT policy that sees its last ``visible`` steps and decodes its tokens by ``decode``."""

    def __init__(self, policy: DriveGPTPolicy, visible: int, decode: str) -> None:
        if not 1 <= visible <= policy.model.cfg.context:
            raise SystemExit(
                f"--visible {visible}: must be 1..{policy.model.cfg.context} (the model's context)"
            )
        self.policy, self.decode = policy, decode
        policy.K = visible  # the history the policy keeps (DriveGPTPolicy.reset_batch sizes it from K)

    def reset_batch(self, n: int) -> None:
        self.policy.reset_batch(n)

    @torch.inference_mode()
    def act_batch(self, observations: np.ndarray) -> np.ndarray:
        pol = self.policy
        pol.push(observations)
        logits = pol.model.head(pol.last_hidden())  # (B, 42)
        if self.decode == "argmax":
            token = logits.argmax(-1)  # (B,)
        else:
            p = logits.softmax(-1).view(-1, len(ACCEL_BINS), len(LANE_INTENTS))  # (B, 14, 3)
            p_acc, intent = p.sum(2), p.sum(1).argmax(-1)  # (B, 14), (B,)
            bins = torch.tensor(ACCEL_BINS, dtype=p.dtype, device=p.device)  # (14,) [m/s²]
            if self.decode == "median":
                acc = (p_acc.cumsum(-1) < 0.5).sum(-1).clamp(max=len(ACCEL_BINS) - 1)  # (B,)
            else:
                acc = ((p_acc * bins).sum(-1, keepdim=True) - bins).abs().argmin(-1)  # (B,)
            token = acc * len(LANE_INTENTS) + intent
        pol.tokens[:, -1] = token
        return pol.tokenizer.decode(token.cpu().numpy())


def drive(driver: Decoded, env: str, episodes: int, batch: int) -> dict[str, Any]:
    """The project's batched evaluation (``drivegpt drive --sim batched``'s figures) of ``driver``."""
    m, per = drive_episodes(driver, batched.make_config(env, "accel"), episodes, batch=batch, progress=False)
    return {
        "episodes": episodes,
        "collisions": int(per["crashed"].sum()),
        "collision_rate": m["collision_rate"],
        "collision_rate_ci": list(m["collision_rate_ci"]),
        "mean_speed_mps": m["mean_speed_mps"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policy", required=True, help="a DriveGPT run or policy directory")
    ap.add_argument(
        "--visible", type=int, nargs="+", default=[0], help="steps visible (0: the model's context)"
    )
    ap.add_argument("--decode", nargs="+", default=["argmax"], choices=DECODES)
    ap.add_argument("--env", default="drivegpt/HighwayDense-v0")
    ap.add_argument("--episodes", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    load = os.getloadavg()[0]
    rows, results = [], []
    for visible in args.visible:
        for decode in args.decode:
            policy = DriveGPTPolicy.load(args.policy)
            k = visible or policy.model.cfg.context
            r = {
                "visible": k,
                "decode": decode,
                **drive(Decoded(policy, k, decode), args.env, args.episodes, args.batch),
            }
            results.append(r)
            lo, hi = r["collision_rate_ci"]
            rows.append(
                f"| {k} | {decode} | {r['collisions']} / {r['episodes']} | {r['collision_rate']:.3f} "
                f"[{lo:.3f}, {hi:.3f}] | {r['mean_speed_mps']:.2f} |"
            )
    write_json(args.out.with_suffix(".json"), {"policy": args.policy, "env": args.env, "results": results})
    note = (
        f"`{args.policy}` on {args.env} (batched simulator), {args.episodes} held-out episodes a row (seeds "
        f"from 1,000,000), the policy alone, Wilson 95%; load average {load:.2f} at the start, "
        f"{os.getloadavg()[0]:.2f} at the end."
    )
    head = (
        "| steps visible | decoding | collisions | collision rate | mean speed [m/s] |\n|---|---|---|---|---|"
    )
    write_markdown(
        args.out.with_suffix(".md"),
        "A trained DriveGPT's history and decoding at driving time",
        note,
        head,
        rows,
    )


if __name__ == "__main__":
    main()
