"""A half-space beside a reused mixture: how far it takes `slower_lead` towards 10,000x.

On ``slower_lead`` the parameters decide every failure (an ego closing on a slow lead faster than it
can brake), and a refitted Gaussian mixture reused without a pilot needs about 190 simulations for a
relative half-width of 0.2 (``bench/proposal_reuse.py``: relative variance 1.8-2.0, 7,331x-8,221x).
Fitting that mixture to thousands of failures instead of hundreds does not lower it (below): a
Gaussian covering a region cut off by a nearly flat boundary keeps mass on the side that cannot fail.
The naturalistic law restricted to a half-space ``H = {z : a.z > c}`` has exactly that shape:

    q(z) = s p(z) 1_H(z) / P(H)  +  (1 - s - d) m(z)  +  d p(z)

with ``s`` the half-space's share (``--halves``), ``m`` the reused mixture (which keeps every
failure outside ``H`` at a bounded weight) and ``d`` the defensive weight. ``a``: a logistic
regression of failure on ``z`` over ``--sims`` simulations drawn from the file's proposal; ``c``:
the smallest ``a.z`` of their failures, less ``margin``. ``P(H) = Phi(-c)`` exactly (``a`` a unit
vector, ``z ~ N(0, I)``). Several ``--proposal`` files are taken in turn, with the median over them
at the end. Each blend's relative variance is
measured on the failures plain Monte Carlo found (``E_q[(w f)^2] = E_p[f p / q]``, as in
``bench/is_second_moment.py``), which the fit never saw; a bootstrap over them gives its interval.
"Reused" counts only the simulations the blend needs for the half-width, as ``proposal_reuse.py``
does; "first use" adds the file's ``fit_sims`` and this run's ``--sims``.

    .venv/bin/python bench/halfspace_proposal.py --family slower_lead \\
        --proposal bench/results/estimate_reuse/human-refit-0.3/slower_lead-proposals/seed-*.json \\
        --failures bench/results/is_second_moment --out bench/results/estimate_reuse/halfspace-slower_lead.md
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from statistics import NormalDist

import numpy as np
import torch
from estimate_batched import DURATION, load  # bench/ is on sys.path when run as a script
from is_second_moment import mc_failures, mc_sims_needed

from drivegpt.core.atomic import write_text
from drivegpt.core.errors import UserError
from drivegpt.corner.batched import batched_family_simulator
from drivegpt.corner.estimate import Z95, EstimateConfig
from drivegpt.corner.halfspace import HalfSpace, blend
from drivegpt.corner.mixture import GaussianMixture, fit_mixture, nominal, shape, with_defensive
from drivegpt.corner.naturalistic import WithHumanTraits, family_distribution, load_naturalistic
from drivegpt.corner.proposal_file import fit_sims, load_proposal
from drivegpt.sim.batched.families import BATCHED_FAMILIES

FIRST_SEED = 9 * 10**8  #: scenario seeds of the draws from the file's proposal: no MC stream's


def logistic_direction(z: np.ndarray, failed: np.ndarray) -> np.ndarray:
    """(d,) unit vector: the weights of a logistic regression of ``failed`` on ``z`` (n, d), without a
    penalty (the fit behind ``halfspace-slower_lead.md``; the estimator's, with a small ridge, is
    :func:`drivegpt.corner.halfspace.logistic_direction`)."""
    x, y = torch.as_tensor(z, dtype=torch.float64), torch.as_tensor(failed, dtype=torch.float64)
    lin = torch.nn.Linear(z.shape[1], 1).double()
    torch.nn.init.zeros_(lin.weight)
    torch.nn.init.zeros_(lin.bias)
    opt = torch.optim.LBFGS(lin.parameters(), max_iter=500, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(lin(x)[:, 0], y)
        loss.backward()
        return loss

    opt.step(closure)
    a = lin.weight.detach().numpy()[0]
    return a / np.linalg.norm(a)


def blend_ratio(
    z: np.ndarray, a: np.ndarray, c: float, mix: GaussianMixture, half: float, defensive: float
) -> np.ndarray:
    """(n,) q / p at ``z`` of the blend ``half p 1_H / P(H) + (1 - half - defensive) m + defensive p``
    (``H = {a.z > c}``, ``m`` the mixture): the estimator's ``HalfSpaceBlend``."""
    q = blend(HalfSpace(a, c, half), mix, defensive)
    return np.exp(q.logpdf(z) - nominal(z.shape[1]).logpdf(z))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--family", default="slower_lead", choices=BATCHED_FAMILIES)
    ap.add_argument(
        "--proposal", type=Path, nargs="+", required=True, help="proposal.json files, each in turn"
    )
    ap.add_argument("--failures", type=Path, required=True, help="folder of FAMILY-failures-*.npz (MC)")
    ap.add_argument("--sims", type=int, default=8192, help="draws from each file's proposal, to fit H")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--margins", type=float, nargs="+", default=[0.0, 0.1, 0.25])
    ap.add_argument(
        "--halves", type=float, nargs="+", default=[0.9, 0.7, 0.5], help="the half-space's shares"
    )
    ap.add_argument("--defensive", type=float, default=0.02)
    ap.add_argument("--rel-halfwidth", type=float, default=0.2)
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--no-human-traits", action="store_true", help="the family's parameters alone")
    ap.add_argument("--out", type=Path, required=True, help="the Markdown tables to write")
    args = ap.parse_args()
    if args.sims < 100 or not 0 < args.defensive < 1 or not 0 < args.rel_halfwidth < 1:
        ap.error("--sims >= 100, --defensive and --rel-halfwidth in (0, 1)")
    if any(not 0 < h < 1 - args.defensive for h in args.halves) or any(m < 0 for m in args.margins):
        ap.error("every --halves share in (0, 1 - defensive), every --margins >= 0")
    torch.set_num_threads(1)
    t0, before = time.time(), load()
    dist = family_distribution(args.family, load_naturalistic(None))
    dist = dist if args.no_human_traits else WithHumanTraits(dist)
    files = []
    for path in args.proposal:
        try:
            files.append((path, *load_proposal(path, args.family, dist.names)))
        except UserError as err:
            ap.error(str(err))
    mc_z, _, draws = mc_failures(args.failures, args.family)
    if mc_z.shape[1] != dist.dim:
        ap.error(f"{args.failures}: {mc_z.shape[1]}-dimensional failures, the law has {dist.dim}")
    p_mc = len(mc_z) / draws
    mc_need = mc_sims_needed(p_mc, args.rel_halfwidth)
    sim = batched_family_simulator(
        args.family, "human", dist.names, "accel", 4096, DURATION.get(args.family), "cpu"
    )
    need = Z95**2 / args.rel_halfwidth**2  # simulations per unit of relative variance
    picks = np.random.default_rng(0).integers(0, len(mc_z), (args.bootstrap, len(mc_z)))
    p0 = nominal(dist.dim)
    reused: dict[str, list[float]] = {}  # per proposal kind: each file's reused acceleration
    lines = [
        f"# A half-space beside a reused mixture on `{args.family}`",
        "",
        f"`{' '.join(['.venv/bin/python bench/halfspace_proposal.py', *sys.argv[1:]])}`",
        "",
        f"Monte Carlo: {len(mc_z)} failures in {draws:,} draws, P = {p_mc:.3g}, {mc_need:,.0f} simulations "
        f"for r = {args.rel_halfwidth:g}. Defensive weight {args.defensive:g} throughout.",
    ]

    for path, mix, meta in files:
        start = len(lines)  # this file's section, printed as it is done
        q = with_defensive(mix, args.defensive)
        z = q.sample(np.random.default_rng(args.seed), args.sims)  # (n, d)
        failed = np.asarray(sim(dist.to_params(z), FIRST_SEED + np.arange(args.sims))) >= 1
        w = np.exp(p0.logpdf(z) - q.logpdf(z))
        a = logistic_direction(z, failed)
        proj = z[failed] @ a
        paid = fit_sims(meta) + args.sims

        def row(name: str, ratio: np.ndarray, outside: int | str, paid: int = paid) -> str:
            rv = (1 / ratio).sum() / draws / p_mc**2 - 1  # E_p[f p / q] / P^2 - 1, on the MC draws
            boot = (1 / ratio[picks]).sum(1) / draws / p_mc**2 - 1
            lo, hi = np.quantile(boot, [0.025, 0.975])
            sims = need * rv
            reused.setdefault(name.split(" (")[0], []).append(mc_need / sims)
            return (f"| {name} | {outside} | {rv:.2f} [{lo:.2f}, {hi:.2f}] | {sims:.0f} | "
                    f"{mc_need / (sims + paid):,.0f}x | **{mc_need / sims:,.0f}x** |")  # fmt: skip

        refit = fit_mixture(
            z[failed], w[failed], EstimateConfig().components, EstimateConfig().reg, np.random.default_rng(0)
        )
        lines += [
            "",
            f"## `{path}`",
            "",
            f"{args.sims:,} simulations from its proposal: {failed.sum():,} failures, importance-sampling "
            f"estimate {np.mean(w * failed):.3g}. Half-space direction `a` (logistic regression on them): "
            + ", ".join(f"{n} {v:+.2f}" for n, v in zip(dist.names, a, strict=True) if abs(v) >= 0.05)
            + f"; the failures' smallest a.z: {proj.min():.2f}.",
            "",
            "| proposal | MC failures outside H | relative variance [bootstrap 95%] | simulations for r | "
            "first use | reused |",
            "|---|---|---|---|---|---|",
            row("the file's mixture", np.exp(q.logpdf(mc_z) - p0.logpdf(mc_z)), "-"),
        ]
        for floor in (0.0, 0.3):
            refit_q = with_defensive(
                GaussianMixture(refit.weights, refit.means, shape(refit.covs, floor)), args.defensive
            )
            ratio = np.exp(refit_q.logpdf(mc_z) - p0.logpdf(mc_z))
            lines.append(row(f"mixture refitted to the draws' failures, floor {floor:g}", ratio, "-"))
        for margin in args.margins:
            c = float(proj.min() - margin)
            outside = int(np.sum(mc_z @ a <= c))
            for half in args.halves:
                ratio = blend_ratio(mc_z, a, c, mix, half, args.defensive)
                name = f"H at margin {margin:g}, share {half:g} (P(H) = {NormalDist().cdf(-c) / p_mc:.1f} P)"
                lines.append(row(name, ratio, f"{outside} of {len(mc_z)}"))
        print("\n".join(lines[start:]), flush=True)
    start = len(lines)
    if len(files) > 1:
        lines += ["", f"## Reused acceleration over the {len(files)} files: median [min, max]", "",
                  "| proposal | reused |", "|---|---|"]  # fmt: skip
        for name, accs in reused.items():
            lines.append(f"| {name} | **{np.median(accs):,.0f}x** [{min(accs):,.0f}, {max(accs):,.0f}] |")
    lines += ["", f"{time.time() - t0:.0f} s, load average {before} -> {load()}."]
    write_text(args.out, "\n".join(lines) + "\n")
    print("\n".join(lines[start:]))


if __name__ == "__main__":
    main()
