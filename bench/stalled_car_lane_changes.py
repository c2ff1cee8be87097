"""How `stalled_car`'s human fails by changing lanes: its Monte Carlo lane-change failures traced on the
batched simulator, beside draws of the traffic term's window that did not fail.

The failures that need under 5 m/s² to stop (``a_req`` of ``bench/stalled_car_modes.py``) are the lane
changes; the four Monte Carlo streams of ``bench/is_second_moment.py`` hold 43. Each is replayed from its
point and scenario seed (the human with the point's traits, episodes of 15 s, 5 Hz) and traced: when the
human starts its lane change (its centre 5 cm off its lane's), its speed then, where the right lane's
next car (slot 4) and rearmost car (slot 3) are and how fast, the braking the human's MOBIL would predict
of the rearmost car (``drivegpt.corner.surrogate.rearmost_after_stop``, from the spawn), and which car it
collides with. Beside them, ``--others`` draws of streams 7 and 8 in the traffic term's window that did
not fail: how many change lanes at all. These traces are what ``TRAFFIC_SLOWING``, ``CREEP`` and the
spacing of the traffic term's braking estimate were read from.

    .venv/bin/python bench/stalled_car_lane_changes.py        # about 30 s
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch
from is_second_moment import stream_draws  # bench/ is on sys.path when run as a script
from stalled_car_margin import stalled_streams
from stalled_car_modes import physics

from drivegpt.core.atomic import write_text
from drivegpt.corner.naturalistic import WithHumanTraits, family_distribution
from drivegpt.corner.surrogate import rearmost_after_stop, stalled_traffic
from drivegpt.sim.batched import truncated
from drivegpt.sim.batched.families import family_config, family_reset, family_step
from drivegpt.sim.batched.human import BatchedHuman
from drivegpt.sim.personality import Personality, PersonalityRanges
from drivegpt_envs.families.stalled_car import StalledCarEnv

FAMILY, DURATION, DT = "stalled_car", 15.0, 0.2  #: [s] the episodes, as the truth's; the policy step
REAR, NEXT = 3, 4  #: the right lane's rearmost car's slot, and the next car's


@torch.inference_mode()
def trace(params: np.ndarray, seeds: np.ndarray, batch: int = 2048) -> dict[str, np.ndarray]:
    """(n, T, N) ``x`` [m], ``y`` [m], ``u`` [m/s] and ``crashed`` of every car after each of the T steps
    until the simulator truncates the episodes (76: its clock reaches 15 s after 76 steps of 0.2 s)."""
    cols, traits = len(StalledCarEnv.PARAMS), list(PersonalityRanges.model_fields)
    config, out = family_config(FAMILY, "accel", None, DURATION), {"x": [], "y": [], "u": [], "crashed": []}
    for lo in range(0, len(params), batch):
        rows, chunk = params[lo : lo + batch], [int(s) for s in seeds[lo : lo + batch]]
        state, script = family_reset(FAMILY, rows[:, :cols], chunk, config)
        human = BatchedHuman(config)
        human.reset(chunk, state, [Personality(**dict(zip(traits, r, strict=True))) for r in rows[:, cols:]])
        steps: dict[str, list[np.ndarray]] = {k: [] for k in out}
        while not bool(truncated(state).all()):  # every episode has the same length
            state, script = family_step(state, script, human.act(state))
            for k, v in (("x", state.x), ("y", state.y), ("u", state.speed), ("crashed", state.crashed)):
                steps[k].append(v.numpy().copy())
        for k in out:
            out[k].append(np.stack(steps[k], 1))
    width = max(a.shape[2] for a in out["x"])
    return {k: np.concatenate([np.pad(a, ((0, 0), (0, 0), (0, width - a.shape[2]))) for a in v])
            for k, v in out.items()}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--streams", type=Path, default=Path("bench/results/is_second_moment"))
    ap.add_argument("--others", type=int, default=10_000, help="window draws with no failure to trace")
    ap.add_argument("--out", type=Path, default=Path("bench/results/surrogate"))
    args = ap.parse_args()
    files = stalled_streams(args.streams)
    if sorted(files) != [7, 8, 9, 10]:
        ap.error(f"need {FAMILY}-failures-S.npz for streams 7, 8, 9, 10 under {args.streams}")
    t0, before = time.time(), " ".join(f"{x:.2f}" for x in os.getloadavg())
    torch.set_num_threads(1)
    dist, rng = WithHumanTraits(family_distribution(FAMILY)), np.random.default_rng(0)
    fail_p, fail_s, other_p, other_s = [], [], [], []
    for s, path in files.items():
        z, failed = stream_draws(path)
        seeds = s * 10**7 + np.arange(len(z))  # draw i of stream s has scenario seed s * 10**7 + i
        change = np.flatnonzero(failed)[physics(dist.to_params(z[failed]), dist.names)[:, 0] < 5.0]
        fail_p.append(dist.to_params(z[change]))
        fail_s.append(seeds[change])
        if s in (7, 8):  # window draws with no failure
            pick = rng.choice(np.flatnonzero(~failed), 8 * args.others, replace=False)
            inside = pick[stalled_traffic(dist.to_params(z[pick]), dist.names, seeds[pick]) > 0]
            other_p.append(dist.to_params(z[inside[: args.others // 2]]))
            other_s.append(seeds[inside[: args.others // 2]])
    params, seeds = np.concatenate(fail_p), np.concatenate(fail_s)
    t = trace(params, seeds)
    x, y, u, crashed = t["x"], t["y"], t["u"], t["crashed"]
    braking = rearmost_after_stop(params, dist.names, seeds)[:, 2]  # [m/s²]
    lines = [
        f"# `{FAMILY}`: the human's lane changes into the right lane's traffic, traced",
        "",
        f"`.venv/bin/python bench/stalled_car_lane_changes.py` ({{seconds}} s, load {before}): the "
        f"{len(seeds)} Monte Carlo failures of streams 7-10 that need under 5 m/s² to stop, replayed on "
        "the batched simulator (15 s). At the lane change's start: the human's speed, the right lane's "
        "next car (ahead: negative) and rearmost car (behind: positive) from the human, their speeds; the "
        "braking the traffic term predicts of the rearmost car; the car the human collides with.",
        "",
        "| seed | start [s] | human [m/s] | next car [m] | its speed [m/s] | rearmost car [m] | its speed "
        "(spawned) [m/s] | predicted braking [m/s²] | collides with |",
        "|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    hits = {"the rearmost car": 0, "the next car": 0, "another car": 0, "none in the trace": 0}
    starts = []
    for i in range(len(seeds)):
        k = int(np.argmax(y[i, :, 0] > 0.05)) - 1  # the step before the human's centre leaves its lane
        starts.append(u[i, k, 0])
        hit = "none in the trace"
        if crashed[i, :, 0].any():
            c = int(np.argmax(crashed[i, :, 0]))
            dist_c = np.hypot(x[i, c, 1:] - x[i, c, 0], y[i, c, 1:] - y[i, c, 0])
            dist_c[x[i, c, 1:] == 0] = np.inf  # absent slots
            slot = 1 + int(np.argmin(dist_c))
            hit = {REAR: "the rearmost car", NEXT: "the next car"}.get(slot, "another car")
        hits[hit] += 1
        ahead, behind = x[i, k, 0] - x[i, k, NEXT], x[i, k, 0] - x[i, k, REAR]  # [m]
        lines.append(f"| {seeds[i]} | {(k + 1) * DT:.1f} | {u[i, k, 0]:.2f} | {ahead:.1f} | "
                     f"{u[i, k, NEXT]:.1f} | {behind:.1f} | {u[i, k, REAR]:.1f} "
                     f"({u[i, 0, REAR]:.1f}) | {braking[i]:.1f} | {hit} |")  # fmt: skip
    others = trace(np.concatenate(other_p), np.concatenate(other_s))
    changed = (others["y"][:, :, 0] > 0.05).any(1)
    starts_ = np.array(starts)
    lines += [
        "",
        f"The human starts at {np.percentile(starts_, 5):.1f}-{np.percentile(starts_, 95):.1f} m/s (5th to "
        f"95th percentile; {(starts_ > 2.5).sum()} above 2.5 m/s); it collides with "
        + ", ".join(f"{who} in {n}" for who, n in hits.items() if n) + f". Of {len(changed):,} draws of "
        f"streams 7 and 8 in the traffic term's window that did not fail, {changed.mean():.1%} change lanes "
        "at all.",
    ]  # fmt: skip
    text = "\n".join(lines).replace("{seconds}", f"{time.time() - t0:.0f}") + "\n"
    write_text(args.out / f"{FAMILY}-lane-changes.md", text)
    print(text)


if __name__ == "__main__":
    main()
