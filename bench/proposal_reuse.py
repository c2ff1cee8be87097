"""What a reused proposal saves: the pilot's cost, measured against Monte Carlo failures.

Most of an importance-sampling estimate's simulations on a rare family are its pilot's (about 1,400 of
1,900 on ``slower_lead``). ``drivegpt corner-cases estimate --proposal FILE`` starts from a proposal an
earlier estimate fitted, with no pilot. How good such a proposal is, for the same driver and for
another one, is measured without running it, as in ``bench/is_second_moment.py``: its relative
variance per simulation from the failures plain Monte Carlo found under the naturalistic law
(``E_q[(w f)^2] = E_p[f p / q]``, :func:`drivegpt.corner.mixture.relvar_from_failures`). A proposal
fitted with more dimensions than the failures have (the human's traits) is marginalised onto theirs,
as ``--proposal`` does.

Proposals: each pilot of ``--pilots DIR`` (``FAMILY-pilots.npz`` of ``is_second_moment.py --parts
pilots``) and each ``--proposal FILE`` (``proposal.json``), or with ``--pool N`` each pool of N
consecutive files (the equal-weight mixture of their mixtures). Failures: ``--failures DIR``
(``FAMILY-failures-*.npz``). Per proposal and ``--defensive`` weight: the relative variance, the
simulations it needs for a 95% relative half-width ``--rel-halfwidth``, and the acceleration over
plain Monte Carlo at its first use (every simulation behind the proposal added: the pilot's, or a
file's ``fit_sims``) and reused (nothing added: paid once, by an earlier estimate). No simulations.

    .venv/bin/python bench/proposal_reuse.py --family slower_lead \\
        --failures bench/results/is_second_moment/drivegpt-rlhf --pilots bench/results/is_second_moment
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from is_second_moment import load_pilots, mc_failures, mc_sims_needed  # bench/ is on sys.path

from drivegpt.core.atomic import write_json
from drivegpt.core.errors import UserError
from drivegpt.corner.estimate import Z95
from drivegpt.corner.mixture import GaussianMixture, marginal, relvar_from_failures
from drivegpt.corner.naturalistic import WithHumanTraits, family_distribution, load_naturalistic
from drivegpt.corner.proposal_file import fit_sims, pool_proposals, proposal_from
from drivegpt.sim.batched.families import BATCHED_FAMILIES


def names_of(family: str, dim: int) -> list[str]:
    """The standard space's dimensions of a ``dim``-dimensional point of ``family`` (traits or not)."""
    dist = family_distribution(family, load_naturalistic(None))
    for d in (dist, WithHumanTraits(dist)):
        if d.dim == dim:
            return list(d.names)
    raise SystemExit(f"{family}: no distribution with {dim} dimensions")


def proposals(args: argparse.Namespace, names: list[str]) -> list[tuple[str, GaussianMixture, dict, int]]:
    """(label, mixture on ``names``, the file's fields (its half-space), every simulation behind it) of
    every proposal asked for: a pilot's simulations, or a file's ``fit_sims`` (the runs that fitted and
    refitted it)."""
    out = []
    if args.pilots:
        pil = load_pilots(args.pilots, args.pilots_stem or args.family)
        have = names_of(args.family, pil["means"].shape[2])
        if missing := [n for n in names if n not in have]:
            raise SystemExit(f"the pilots of {args.pilots} lack {missing}")
        for i, seed in enumerate(pil["seeds"]):
            keep = pil["weights"][i] > 0  # the padding dropped
            mix = GaussianMixture(pil["weights"][i][keep], pil["means"][i][keep], pil["covs"][i][keep])
            out.append(
                (
                    f"{args.pilots} seed {seed}",
                    marginal(mix, [have.index(n) for n in names]),
                    {},
                    int(pil["sims"][i]),
                )
            )
    size = args.pool
    for k in range(0, len(args.proposal), size):  # one file, or a pool of `size` consecutive ones
        group = args.proposal[k : k + size]
        try:
            mix, meta = pool_proposals(group, args.family, names)
        except UserError as err:
            raise SystemExit(str(err)) from None
        fit = fit_sims(meta)
        label = f"{group[0].parent}/*.json" + (f", pools of {size}" if size > 1 else "")
        out.append((f"{label} seed {group[0].name}", mix, meta, fit))
    if not out:
        raise SystemExit("give --pilots DIR or --proposal FILE")
    return out


def plot_runs(folders: list[Path], family: str, path: Path) -> None:
    """Each run's estimate and 95% interval (``estimate_batched.py`` results in ``folders``), one panel
    per folder, against that folder's Monte Carlo estimate and interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(folders), figsize=(3.2 * len(folders), 3.2), sharey=True, squeeze=False)
    for ax, folder in zip(axes[0], folders, strict=True):
        r = json.loads((folder / f"{family}.json").read_text())
        runs, mc = r["is"]["runs"], r.get("mc")
        p = np.array([x["p"] for x in runs])
        lo, hi = np.array([x["ci"] for x in runs]).T
        ax.errorbar(np.arange(len(p)), p, yerr=[p - lo, hi - p], fmt="o", ms=3, label="IS run, 95% interval")
        if mc:
            ax.axhspan(*mc["ci"], color="grey", alpha=0.25, label="Monte Carlo, 95%")
            ax.axhline(mc["p"], color="k", lw=1)
        sims = np.mean([x["sims"] for x in runs])
        ax.set(title=f"{folder.name}\n{r['policy']}, {sims:.0f} sims per run", xlabel="run")
    axes[0][0].set_ylabel("P(failure)")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--family", required=True, choices=BATCHED_FAMILIES)
    ap.add_argument(
        "--failures", type=Path, help="folder of FAMILY-failures-*.npz (required but for --plot-runs)"
    )
    ap.add_argument("--pilots", type=Path, help="folder of FAMILY-pilots.npz (is_second_moment.py)")
    ap.add_argument("--pilots-stem", help="the pilots file's stem, e.g. slower_lead-pb100 (default: FAMILY)")
    ap.add_argument("--proposal", type=Path, nargs="*", default=[], help="proposal.json files")
    ap.add_argument(
        "--pool", type=int, default=1,
        help="measure the --proposal files pooled, this many consecutive files to a pool (as repeated "
        "--proposal options of corner-cases estimate do)",
    )  # fmt: skip
    ap.add_argument("--defensive", type=float, nargs="+", default=[0.02])
    ap.add_argument(
        "--halfspace-margins", type=float, nargs="+", default=[0.0],
        help="files with a half-space: move its edge this much further out [standard units], in turn",
    )  # fmt: skip
    ap.add_argument("--rel-halfwidth", type=float, default=0.2)
    ap.add_argument("--out", type=Path, help="write the rows as JSON here")
    ap.add_argument("--plot-runs", type=Path, nargs="*", default=[],
                    help="estimate_batched.py result folders: plot their runs to --plot")  # fmt: skip
    ap.add_argument("--plot", type=Path, help="the PNG of --plot-runs")
    args = ap.parse_args()
    if args.pool < 1 or len(args.proposal) % args.pool:
        ap.error(f"--pool must be >= 1 and divide the {len(args.proposal)} --proposal files, got {args.pool}")
    if any(m < 0 for m in args.halfspace_margins):
        ap.error(f"every --halfspace-margins value >= 0, got {args.halfspace_margins}")
    if not all(0 < a < 1 for a in args.defensive) or not args.rel_halfwidth > 0:
        ap.error(f"every --defensive weight in (0, 1) and --rel-halfwidth > 0, got {args.defensive}, "
                 f"{args.rel_halfwidth}")  # fmt: skip
    if args.plot_runs:
        if not args.plot:
            ap.error("--plot-runs needs --plot FILE.png")
        plot_runs(args.plot_runs, args.family, args.plot)
        return
    if not args.failures:
        ap.error("--failures DIR is required")
    z, _, draws = mc_failures(args.failures, args.family)
    names = names_of(args.family, z.shape[1])
    p, rel = len(z) / draws, args.rel_halfwidth
    need = mc_sims_needed(p, rel)
    print(
        f"{args.family}: {len(z)} MC failures in {draws} draws ({args.failures}), P {p:.3g}, "
        f"plain MC {need:,.0f} sims at r = {rel}"
    )
    rows, loaded = [], list(proposals(args, names))  # each file read once
    for a in args.defensive:
        for label, mix, meta, behind in loaded:
            hs = meta.get("halfspace")
            for margin in args.halfspace_margins if hs is not None else [0.0]:
                moved = (
                    {**meta, "halfspace": hs._replace(offset=hs.offset - margin)} if hs is not None else meta
                )
                try:
                    q = proposal_from(mix, moved, a)  # the mixture, or its blend with the file's half-space
                except UserError as err:
                    raise SystemExit(str(err)) from None
                rv = relvar_from_failures(q, z, draws)
                final = Z95**2 * rv / rel**2  # the proposal's simulations for a half-width rel
                rows.append(
                    {
                        "proposal": label,
                        "defensive": a,
                        "margin": margin if hs is not None else None,
                        "relvar": rv,
                        "final_sims": final,
                        "fit_sims": behind,
                        "acceleration_first_use": need / (behind + final),
                        "acceleration_reused": need / final,
                    }
                )
    print(
        "| proposals | defensive | half-space moved out by | relative variance, median [min, max] | final "
        "simulations (median) | first use (all that fitted it counted): median [min, max] | reused: median "
        "[min, max] |"
    )
    print("|---|---|---|---|---|---|---|")
    groups: dict[tuple[str, float, float | None], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["proposal"].split(" seed ")[0], r["defensive"], r["margin"]), []).append(r)
    for (label, a, margin), g in groups.items():

        def cell(key: str, fmt: str, g=g) -> str:
            v = np.array([r[key] for r in g])
            return f"{np.median(v):{fmt}}" + (f" [{v.min():{fmt}}, {v.max():{fmt}}]" if len(v) > 1 else "")

        n = f" ({len(g)})" if len(g) > 1 else ""
        final = np.median([r["final_sims"] for r in g])
        print(
            f"| {label}{n} | {a:g} | {'-' if margin is None else f'{margin:g}'} | {cell('relvar', '.1f')} "
            f"| {final:,.0f} "
            f"| {cell('acceleration_first_use', '.0f')}× | {cell('acceleration_reused', '.0f')}× |"
        )
    if args.out:
        record = {"family": args.family, "failures": str(args.failures), "mc_draws": draws}
        record |= {"mc_failures": len(z), "P": p, "mc_sims_needed": need, "rows": rows}
        write_json(args.out, record)  # atomic, its folder made


if __name__ == "__main__":
    main()
