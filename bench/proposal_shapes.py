"""Which proposal shapes could beat the Gaussian mixtures, measured on Monte Carlo failures.

``bench/is_second_moment.py --parts fits`` showed that even a Gaussian mixture fitted to hundreds of
Monte Carlo failures stays well above the best proposal's relative variance (``--parts bound``). This
script tries two other shapes the same way: fitted to one half of a family's Monte Carlo draws and
measured on the other (each way round), no simulation run.

* ``kde``: a kernel density of the half's failures (a mixture with one Gaussian of standard
  deviation ``bandwidth`` per failure), with the cross-entropy target p h (failures unweighted) or
  the optimum's p √h (each weighted by h^(-1/2) from ``--parts bound``), and the nominal mixed in at
  weight ``defensive``.
* ``tilt``: the naturalistic law re-weighted over ``k`` of the parameters only,
  ``q(z) = p(z) ((1 - δ) √H(b) / Σ_b p_b √H(b) + δ)``, on a grid ``b`` of cells cut at the failures'
  quantiles (``--cells`` per coordinate) in each of the k coordinates; ``H(b)`` is the failure share
  in the cell and ``p_b`` its exact nominal mass. Measured held out (fitted on one half), and in
  sample (fitted and measured on all draws: the best such a tilt could do, flattered by the grid's
  fit to the very failures it is measured on); per k, the subset of coordinates best in sample.
* ``half-spaces``: one or two soft half-spaces of ``drivegpt.corner.halfspace`` (the law cut beyond
  ``a.z > c``, its edge softened by ``spread``) blended with the nominal, ``q = p (sum_j s_j
  Phi((a_j.z - c_j) / spread_j) / Phi(-c_j) + 1 - sum_j s_j)``. The first direction is a logistic
  regression of failure on the fit half's draws, the second one on its draws below the first's
  decile of failures (the failures the first leaves out); edges, spreads and shares are the fit
  half's best on a grid, measured held out.
* ``tree``: the law re-weighted over the leaves of an axis-aligned partition of all the coordinates,
  grown greedily on the fit half's failures: each split (at a quantile of the leaf's failures along
  one coordinate) most lowers ``sum_b sqrt(P_b c_b)`` (``P_b`` the leaf's exact nominal mass, ``c_b``
  its failures: the second moment of the best leaf weights ``q_b ∝ sqrt(P_b c_b)``), leaves of at
  least ``min leaf`` failures; ``q = p (defensive + (1 - defensive) sqrt((c_b + κ) / P_b) / Z)``,
  ``κ`` a pseudo-count for the leaves the fit half saw few failures in.

Relative variance per simulation: ``mean over the held-out draws of f p / q, / P^2 - 1``
(``drivegpt.corner.mixture.relvar_from_failures``). The draws are the failure streams of
``bench/is_second_moment.py --parts failures`` (draw i of stream s is ``default_rng([s, d])``'s i-th
row), so every non-failure is known without simulating it.

    .venv/bin/python bench/proposal_shapes.py --family adversarial_vehicle --cells 4   # and --cells 8
    .venv/bin/python bench/proposal_shapes.py --family stalled_car --cells 4           # and --cells 8
    .venv/bin/python bench/proposal_shapes.py --family stalled_car --shapes tree

(after ``bench/is_second_moment.py --parts failures bound`` for the family, ``bound`` for ``kde``
only; writes ``OUT/FAMILY-shapes-cellsN.md``, or ``OUT/FAMILY-shapes-SHAPES.md``)
"""

from __future__ import annotations

import argparse
import itertools
import math
import time
from pathlib import Path

import numpy as np
import torch
from is_second_moment import bound_h, stream_draws  # bench/ is on sys.path when run as a script

from drivegpt.core.atomic import write_text
from drivegpt.corner.halfspace import HalfSpace, logistic_direction
from drivegpt.corner.mixture import GaussianMixture, relvar_from_failures, with_defensive
from drivegpt.corner.naturalistic import WithHumanTraits, family_distribution


def draws(out: Path, family: str) -> tuple[np.ndarray, np.ndarray]:
    """Every Monte Carlo draw (N, d) of the family's streams and whether it failed (N,)."""
    files = sorted(out.glob(f"{family}-failures-*.npz"))
    if not files:
        raise SystemExit(
            f"no {family}-failures-*.npz in {out}: run bench/is_second_moment.py --parts failures"
        )
    drawn = [stream_draws(f) for f in files]
    return np.concatenate([z for z, _ in drawn]), np.concatenate([f for _, f in drawn])


def kde(z: np.ndarray, w: np.ndarray, bandwidth: float, defensive: float) -> GaussianMixture:
    """One Gaussian per point, the nominal mixed in."""
    covs = np.repeat(bandwidth**2 * np.eye(z.shape[1])[None], len(z), 0)
    return with_defensive(GaussianMixture(w / w.sum(), z, covs), defensive)


def phi(x: np.ndarray) -> np.ndarray:
    """The standard normal CDF, elementwise (inf and -inf included)."""
    return torch.special.ndtr(torch.as_tensor(x, dtype=torch.float64)).numpy()


def tilt_relvar(fit: tuple, test: tuple, cols: tuple[int, ...], defensive: float, per: int) -> float:
    """Relative variance on ``test`` (z, failed) of the tilt over ``cols`` fitted on ``fit``."""
    (zf, ff), (zt, ft) = fit, test
    edges = [np.quantile(zf[ff, c], np.linspace(0, 1, per + 1)[1:-1]) for c in cols]

    def cell(x: np.ndarray) -> np.ndarray:  # (n,) the grid cell of each point
        return np.ravel_multi_index(
            [np.searchsorted(e, x[:, c]) for e, c in zip(edges, cols, strict=True)], (per,) * len(cols)
        )

    cell_f, cell_t = cell(zf), cell(zt)
    cells = per ** len(cols)
    h = np.bincount(cell_f[ff], minlength=cells) / np.maximum(
        np.bincount(cell_f, minlength=cells), 1
    )  # (cells,)
    masses = [np.diff(np.r_[0.0, phi(e), 1.0]) for e in edges]
    mass = np.ones(1)
    for m in masses:  # exact nominal mass of each cell: the coordinates are independent N(0, 1)
        mass = np.outer(mass, m).ravel()
    g = (1 - defensive) * np.sqrt(h) / (mass * np.sqrt(h)).sum() + defensive  # q / p per cell
    p = ft.mean()
    return float((1 / g[cell_t[ft]]).sum() / len(zt) / p**2 - 1)


SOFT = (0.0, 0.2, 0.45, 0.8)  #: [rad] a half-space's edge: direction cos(t) u, spread sin(t)
OFFSETS = np.arange(0.0, 4.01, 0.25)  #: [standard units] its offsets c tried


def soft_gain(z: np.ndarray, u: np.ndarray) -> np.ndarray:
    """(S * C, n): ``1_H(z) / P(H)`` of each soft half-space along ``u``, on the grid SOFT x OFFSETS."""
    out = []
    for t in SOFT:
        for c in OFFSETS:
            h = HalfSpace(u * math.cos(t), float(c), 0.5, math.sin(t))
            out.append(np.exp(h.log_inside(z) - h.log_prob()))
    return np.array(out)


def halfspaces(fit: tuple, test: tuple, k: int, defensive: float) -> tuple[float, float, str]:
    """(relative variance on ``fit``, on ``test``, the choice) of ``k`` soft half-spaces fitted on ``fit``."""
    (zf, ff), (zt, ft) = fit, test
    dirs = [logistic_direction(zf, ff)]
    if k == 2:
        below = zf @ dirs[0] < np.quantile(zf[ff] @ dirs[0], 0.1)
        dirs.append(logistic_direction(zf[below], ff[below]))
    gf = [soft_gain(zf[ff], u) for u in dirs]  # k arrays (G, failures of the fit half)
    shares = (
        [(s,) for s in (0.5, 0.7, 0.9, 1 - defensive)]
        if k == 1
        else [(a, b) for a in (0.3, 0.45, 0.6) for b in (0.2, 0.3, 0.45) if a + b <= 1 - defensive]
    )
    best = (math.inf, (), ())
    for idx in itertools.product(*(range(len(g)) for g in gf)):
        for sh in shares:
            ratio = sum(s * g[i] for s, g, i in zip(sh, gf, idx, strict=True)) + 1 - sum(sh)  # q / p
            second = (1 / ratio).sum() / len(zf)
            best = min(best, (second, idx, sh))
    _, idx, sh = best

    def relvar(z: np.ndarray, f: np.ndarray) -> float:
        ratio = 1 - sum(sh)
        for u, i, s in zip(dirs, idx, sh, strict=True):
            t, c = SOFT[i // len(OFFSETS)], OFFSETS[i % len(OFFSETS)]
            h = HalfSpace(u * math.cos(t), float(c), s, math.sin(t))
            ratio = ratio + s * np.exp(h.log_inside(z[f]) - h.log_prob())
        return float((1 / ratio).sum() / len(z) / f.mean() ** 2 - 1)

    what = "; ".join(
        f"share {s:g}, edge {SOFT[i // len(OFFSETS)]:g}, c {OFFSETS[i % len(OFFSETS)]:g}"
        for i, s in zip(idx, sh, strict=True)
    )
    return relvar(zf, ff), relvar(zt, ft), what


def grow_tree(zf: np.ndarray, min_leaf: int, max_leaves: int, cuts: int = 24) -> list[tuple]:
    """Leaves ``(lo, hi, failures)`` (boxes (d,) and the failures (k,) inside) of the greedy partition
    of the failures ``zf`` (k, d): each split most lowers ``sum sqrt(P_b c_b)``."""
    d = zf.shape[1]

    def score(lo: np.ndarray, hi: np.ndarray, c: int) -> float:  # sqrt(P_b c_b)
        return math.sqrt(float(np.prod(phi(hi) - phi(lo))) * c)

    leaves = [(np.full(d, -np.inf), np.full(d, np.inf), np.arange(len(zf)))]
    while len(leaves) < max_leaves:
        best = (0.0, -1, 0, 0.0)  # (gain, leaf, coordinate, cut)
        for li, (lo, hi, idx) in enumerate(leaves):
            if len(idx) < 2 * min_leaf:
                continue
            now = score(lo, hi, len(idx))
            for j in range(d):
                v = zf[idx, j]
                for cut in np.unique(np.quantile(v, np.linspace(0, 1, cuts + 2)[1:-1])):
                    left = int((v <= cut).sum())
                    if min(left, len(v) - left) < min_leaf:
                        continue
                    hl, lr = hi.copy(), lo.copy()
                    hl[j] = lr[j] = cut
                    gain = now - score(lo, hl, left) - score(lr, hi, len(v) - left)
                    best = max(best, (gain, li, j, float(cut)))
        gain, li, j, cut = best
        if gain <= 0:
            break
        lo, hi, idx = leaves.pop(li)
        hl, lr = hi.copy(), lo.copy()
        hl[j] = lr[j] = cut
        inside = zf[idx, j] <= cut
        leaves += [(lo, hl, idx[inside]), (lr, hi, idx[~inside])]
    return leaves


def tree_relvar(leaves: list[tuple], test: tuple, defensive: float, kappa: float) -> float:
    """Relative variance on ``test`` (z, failed) of the law re-weighted over ``leaves``."""
    zt, ft = test
    mass = np.array([np.prod(phi(hi) - phi(lo)) for lo, hi, _ in leaves])  # (L,) exact P_b
    g = np.sqrt((np.array([len(i) for *_, i in leaves]) + kappa) / mass)
    g = defensive + (1 - defensive) * g / (mass * g).sum()  # (L,) q / p in each leaf
    zf = zt[ft]
    leaf = np.full(len(zf), -1)
    for b, (lo, hi, _) in enumerate(leaves):
        leaf[np.all((zf > lo) & (zf <= hi), axis=1)] = b
    assert (leaf >= 0).all(), "the leaves cover the space"
    return float((1 / g[leaf]).sum() / len(zt) / ft.mean() ** 2 - 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--family", required=True)
    ap.add_argument("--out", type=Path, default=Path("bench/results/is_second_moment"))
    ap.add_argument("--bandwidth", type=float, nargs="+", default=[0.5, 0.7, 1.0])
    ap.add_argument("--defensive", type=float, nargs="+", default=[0.02, 0.1, 0.3])
    ap.add_argument("--max-k", type=int, default=3, help="tilts over at most this many parameters")
    ap.add_argument("--cells", type=int, default=4, help="a tilt's cells per coordinate (failure quantiles)")
    ap.add_argument(
        "--shapes", nargs="+", default=["kde", "tilt"], choices=["kde", "tilt", "half-spaces", "tree"]
    )
    args = ap.parse_args()
    if (
        any(not 0 < d < 1 for d in args.defensive)
        or any(b <= 0 for b in args.bandwidth)
        or args.max_k < 1
        or args.cells < 2
    ):
        ap.error("--defensive in (0, 1), --bandwidth > 0, --max-k >= 1, --cells >= 2")
    t0 = time.time()
    z, failed = draws(args.out, args.family)
    h_fail = np.ones(int(failed.sum()))  # h per failure: the kernel densities' p √h target needs it
    if "kde" in args.shapes:
        h_fail = bound_h(args.out, args.family, int(failed.sum()))  # in is_second_moment's order
    p, n, d = failed.mean(), len(z), z.shape[1]
    halves = np.arange(n) % 2 == 0, np.arange(n) % 2 == 1
    folds = (halves, halves[::-1])
    mc = 1 / p - 1
    cells = f" --cells {args.cells}" if "tilt" in args.shapes else ""
    shapes = "" if args.shapes == ["kde", "tilt"] else " --shapes " + " ".join(args.shapes)
    lines = [
        f"# Proposal shapes on `{args.family}`: {n:,} Monte Carlo draws, {failed.sum()} failures, "
        f"P = {p:.3g}, Monte Carlo's relative variance {mc:,.0f}",
        "",
        f"`.venv/bin/python bench/proposal_shapes.py --family {args.family}{cells}{shapes}`",
    ]
    if "kde" in args.shapes:
        lines += [
            "",
            "| proposal | defensive | relative variance (half 1, half 2) | acceleration, no pilot |",
            "|---|---|---|---|",
        ]

    def row(name: str, dfn: float, rv: list[float]) -> None:
        m = float(np.mean(rv))
        lines.append(f"| {name} | {dfn:g} | {m:,.1f} ({rv[0]:,.1f}, {rv[1]:,.1f}) | {mc / m:,.1f}x |")
        print(lines[-1], flush=True)

    order = np.flatnonzero(failed)  # the failures in draw order: the bound's order
    if "kde" in args.shapes:
        for target in ("p h", "p √h"):
            for bw in args.bandwidth:
                for dfn in args.defensive:
                    rv = []
                    for fit, test in folds:
                        f_fit = order[fit[order]]
                        w = np.ones(len(f_fit)) if target == "p h" else h_fail[fit[order]] ** -0.5
                        q = kde(z[f_fit], w, bw, dfn)
                        rv.append(relvar_from_failures(q, z[test & failed], int(test.sum())))
                    row(f"kde, target {target}, bandwidth {bw:g}", dfn, rv)
    if "tilt" in args.shapes:
        lines += [
            "",
            "Tilts over k parameters: fitted on one half and measured on the other (held out), and",
            "fitted and measured on all draws (in sample: the best such a tilt could do, flattered by the",
            "grid's fit to the very failures it is measured on); the subset of coordinates is the best in",
            "sample.",
            "",
            "| tilt over | coordinates | defensive | relative variance in sample | acceleration in sample "
            "| relative variance held out (half 1, half 2) | acceleration held out |",
            "|---|---|---|---|---|---|---|",
        ]
        base = family_distribution(args.family)  # the coordinates: the family's, then the human's traits
        names = base.names if d == base.dim else WithHumanTraits(base).names
        for k in range(1, min(args.max_k, d) + 1):
            for dfn in args.defensive:
                rv_in, cols = min(
                    (tilt_relvar((z, failed), (z, failed), c, dfn, args.cells), c)
                    for c in itertools.combinations(range(d), k)
                )
                rv = [
                    tilt_relvar((z[a], failed[a]), (z[t], failed[t]), cols, dfn, args.cells) for a, t in folds
                ]
                m = float(np.mean(rv))
                lines.append(
                    f"| {k} | {', '.join(names[c] for c in cols)} | {dfn:g} | {rv_in:,.1f} "
                    f"| {mc / rv_in:,.1f}x | {m:,.1f} ({rv[0]:,.1f}, {rv[1]:,.1f}) | {mc / m:,.1f}x |"
                )
                print(lines[-1], flush=True)
    if "half-spaces" in args.shapes:
        lines += [
            "",
            "Soft half-spaces beside the nominal: fitted (directions, and edges, spreads and shares on a",
            "grid) on one half and measured on the other; the choice shown is the first half's.",
            "",
            "| half-spaces | defensive | relative variance in sample (half 1, half 2) "
            "| held out (half 1, half 2) | acceleration held out | first half's choice |",
            "|---|---|---|---|---|---|",
        ]
        for k in (1, 2):
            for dfn in args.defensive:
                runs = [halfspaces((z[a], failed[a]), (z[t], failed[t]), k, dfn) for a, t in folds]
                held = float(np.mean([r[1] for r in runs]))
                lines.append(
                    f"| {k} | {dfn:g} | {runs[0][0]:,.1f}, {runs[1][0]:,.1f} | {held:,.1f} "
                    f"({runs[0][1]:,.1f}, {runs[1][1]:,.1f}) | {mc / held:,.1f}x | {runs[0][2]} |"
                )
                print(lines[-1], flush=True)
    if "tree" in args.shapes:
        lines += [
            "",
            "Axis-aligned partitions of all the coordinates: grown on one half's failures and measured on",
            "the other; the defensive weight and pseudo-count each half's best in sample.",
            "",
            "| min leaf | leaves (half 1, half 2) | defensive, κ (half 1; half 2) "
            "| relative variance held out (half 1, half 2) | acceleration held out |",
            "|---|---|---|---|---|",
        ]
        for min_leaf in (5, 10, 20):
            for most in (8, 16, 32, 64):
                trees = [grow_tree(z[a & failed], min_leaf, most) for a, _ in folds]
                rv, choice = [], []
                for tree, (a, t) in zip(trees, folds, strict=True):  # settings chosen on the fit half
                    _, dfn, kap = min(
                        (tree_relvar(tree, (z[a], failed[a]), dfn, kap), dfn, kap)
                        for dfn in args.defensive
                        for kap in (0.0, 1.0)
                    )
                    rv.append(tree_relvar(tree, (z[t], failed[t]), dfn, kap))
                    choice.append(f"{dfn:g}, {kap:g}")
                m = float(np.mean(rv))
                lines.append(
                    f"| {min_leaf} | at most {most} ({len(trees[0])}, {len(trees[1])}) | {'; '.join(choice)} "
                    f"| {m:,.1f} ({rv[0]:,.1f}, {rv[1]:,.1f}) | {mc / m:,.1f}x |"
                )
                print(lines[-1], flush=True)
    lines += ["", f"{time.time() - t0:.0f} s."]
    name = f"cells{args.cells}" if "tilt" in args.shapes else "-".join(args.shapes)
    write_text(args.out / f"{args.family}-shapes-{name}.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
