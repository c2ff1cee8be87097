"""`stalled_car`'s stopping physics on its Monte Carlo failures, no simulation.

On the four Monte Carlo streams of ``bench/is_second_moment.py`` (972 failures in 1.6 million draws,
the human's traits sampled, episodes of 15 s):

* ``tilt``: a tilt over the physics the family has (the deceleration the human needs to stop behind
  the stalled car, ``a_req`` of ``bench/stalled_car_modes.py``): ``q = p (δ + (1 − δ) Φ((a_req − a0)
  / s) / Z)``, its acceleration for a few a0, s and δ (``stalled_car-moment.md``);
* ``margin``: the family's own surrogate (``stalled_margin``): where the failures lie in its margin,
  and the acceleration of its margin alone for a few σ and δ, chosen on streams 7 and 8 and measured
  on 9 and 10, held out (``stalled_car-surrogate.md``). The command line's proposal adds more terms:
  ``bench/stalled_car_surrogate_traffic.py``.

    .venv/bin/python bench/stalled_car_margin.py --parts tilt margin
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

import numpy as np
import torch

from drivegpt.core.atomic import write_text
from drivegpt.corner.estimate import Z95
from drivegpt.corner.naturalistic import WithHumanTraits, family_distribution
from drivegpt.corner.naturalistic import _ndtr_v as phi  # the standard normal CDF, elementwise
from drivegpt.corner.surrogate import SURROGATES

MARGIN_ALONE = (1.0, 0.5)  #: σ [m] and δ of the margin alone, the best on streams 7 and 8


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def stalled_streams(streams: Path) -> dict[int, Path]:
    """``stalled_car``'s Monte Carlo failure files under ``streams`` (``bench/is_second_moment.py``'s,
    some in ``stream-S/`` folders), by stream."""
    found = [*streams.glob("stalled_car-failures-*.npz"), *streams.glob("stream-*/stalled_car-*.npz")]
    by_stream = {int(f.stem.rsplit("-", 1)[1]): f for f in found}
    return {k: by_stream[k] for k in sorted(by_stream)}


def tilt(streams: Path, out: Path) -> None:
    """A tilt over the physics the family has, ``a_req``, on the four Monte Carlo streams."""
    from is_second_moment import stream_draws
    from stalled_car_modes import physics

    files = list(stalled_streams(streams).values())
    if not files:
        raise SystemExit(f"no stalled_car-failures-*.npz under {streams}: run bench/is_second_moment.py")
    dist = WithHumanTraits(family_distribution("stalled_car"))
    zs, fs = zip(*[stream_draws(f) for f in files], strict=True)
    z, f = np.concatenate(zs), np.concatenate(fs)
    a_req = np.concatenate([physics(dist.to_params(z[lo : lo + 2**17]), dist.names)[:, 0]
                            for lo in range(0, len(z), 2**17)])  # fmt: skip
    p = f.mean()
    deltas = (0.05, 0.1, 0.3, 0.5)
    lines = [
        "# A physics tilt on `stalled_car`'s Monte Carlo failures",
        "",
        f"{len(f):,} draws ({len(files)} streams, the human's traits sampled), {f.sum()} failures, "
        f"P = {p:.3g}; q = p (δ + (1 − δ) Φ((a_req − a0) / s) / Z); acceleration with no pilot:",
        "",
        "| a0 [m/s²] | s [m/s²] | " + " | ".join(f"δ = {d}" for d in deltas) + " |",
        "|---|---|" + "---|" * len(deltas),
    ]
    for a0, scale in ((5, 0.5), (5, 1), (6, 0.5), (6, 1), (6, 2), (7, 1)):
        g = phi((a_req - a0) / scale)
        acc = [((1 - p) / p) / ((f / (d + (1 - d) * g / g.mean())).mean() / p**2 - 1) for d in deltas]
        lines.append(f"| {a0} | {scale} | " + " | ".join(f"{a:.1f}×" for a in acc) + " |")
    write_text(out / "stalled_car-moment.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


def margin_table(streams: Path, out: Path) -> None:
    """``stalled_car``'s surrogate on the four Monte Carlo streams: where the failures lie in its
    margin, and its acceleration per σ and δ on streams 7 and 8 (where the margin alone's best were
    chosen) and on 9 and 10 (held out)."""
    from is_second_moment import stream_draws
    from stalled_car_modes import physics

    family = "stalled_car"
    by_stream = stalled_streams(streams)
    if not by_stream:
        raise SystemExit(f"no {family}-failures-*.npz under {streams}: run bench/is_second_moment.py")
    dist = WithHumanTraits(family_distribution(family))
    ids, files = list(by_stream), list(by_stream.values())
    zs, fs = zip(*[stream_draws(f) for f in files], strict=True)
    stream = np.concatenate([np.full(len(f), i) for i, f in zip(ids, fs, strict=True)])
    z, f = np.concatenate(zs), np.concatenate(fs)
    t0 = time.time()
    margin = np.concatenate([SURROGATES[family].margin(dist.to_params(z[lo : lo + 65536]), dist.names)
                             for lo in range(0, len(z), 65536)])  # fmt: skip
    seconds = time.time() - t0
    a_req = np.concatenate([physics(dist.to_params(z[lo : lo + 2**17]), dist.names)[:, 0]
                            for lo in range(0, len(z), 2**17)])  # fmt: skip
    rare = f & (a_req < 5.0)  # the lane changes from a near standstill (bench/stalled_car_modes.py)
    sigma0, delta0 = MARGIN_ALONE
    lines = [
        f"# `{family}`'s surrogate on its Monte Carlo failures",
        "",
        f"`.venv/bin/python bench/stalled_car_margin.py --parts margin`: {len(f):,} draws (streams "
        f"{', '.join(map(str, sorted(ids)))}, the human's traits sampled, episodes of 15 s), "
        f"{f.sum()} failures, P = {f.mean():.3g}, {rare.sum()} of them with a_req < 5 m/s² (the human "
        f"changes lanes from a near standstill into the right lane's traffic). The margin of all draws: "
        f"{seconds:.0f} s on one core (load {load()}).",
        "",
        "| margin [m] | share of the draws | failures | of them a_req < 5 m/s² | failing share |",
        "|---|---|---|---|---|",
    ]
    for lo, hi in [(-math.inf, -5), (-5, -2), (-2, 0), (0, 1), (1, 2), (2, 3), (3, math.inf)]:
        cell = (margin >= lo) & (margin < hi)
        rate = f"{f[cell].mean():.3g}" if cell.any() else "-"
        lines.append(f"| [{lo}, {hi}) | {cell.mean():.2e} | {f[cell].sum()} | {rare[cell].sum()} | {rate} |")
    deltas = (0.1, 0.3, 0.5, 0.7)
    parts = {"7, 8": np.isin(stream, [7, 8]), "9, 10 (held out)": np.isin(stream, [9, 10])}
    lines += [
        "",
        "q = p (δ + (1 − δ) Φ(−margin / σ) / Z), Z over all the draws; acceleration with no pilot = Monte "
        "Carlo's relative variance ÷ the proposal's, `mean(f p / q) / P² − 1` over each pair of streams "
        f"(the margin alone's best, σ = {sigma0:g} m and δ = {delta0:g}, chosen on streams 7 and 8; the "
        "command line adds a term over the seed's traffic, `bench/stalled_car_surrogate_traffic.py`):",
        "",
        "| σ [m] | streams | " + " | ".join(f"δ = {d}" for d in deltas) + " |",
        "|---|---|" + "---|" * len(deltas),
    ]
    for sigma in (0.5, 0.75, 1.0, 1.25, 1.5):
        g = phi(-margin / sigma)
        for name, h in parts.items():
            cells = []
            for delta in deltas:
                w = 1 / (delta + (1 - delta) * g[h] / g.mean())  # p / q at every draw
                p = f[h].mean()
                acc = ((1 - p) / p) / ((w * f[h]).mean() / p**2 - 1)
                cells.append(f"{acc:.1f}×")
            lines.append(f"| {sigma} | {name} | {' | '.join(cells)} |")
    g = phi(-margin / sigma0)
    w = 1 / (delta0 + (1 - delta0) * g / g.mean())
    p = f.mean()
    relvar = (w * f).mean() / p**2 - 1
    share = (w * rare).sum() / (w * f).sum()
    lines += [
        "",
        f"At σ = {sigma0:g} m and δ = {delta0:g} over all four streams: relative variance {relvar:.1f} per "
        "simulation, "
        f"**{(1 - p) / p / relvar:.1f}×** (about {Z95**2 * relvar / 0.2**2:,.0f} simulations for ±20%); "
        f"the {rare.sum()} lane changes from a near standstill carry {share:.0%} of the second moment.",
    ]
    write_text(out / f"{family}-surrogate.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--parts", nargs="+", default=["margin"], choices=["tilt", "margin"])
    ap.add_argument("--streams", type=Path, default=Path("bench/results/is_second_moment"))
    ap.add_argument("--out", type=Path, default=Path("bench/results/surrogate"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    if "tilt" in args.parts:
        tilt(args.streams, args.out)
    if "margin" in args.parts:
        margin_table(args.streams, args.out)


if __name__ == "__main__":
    main()
