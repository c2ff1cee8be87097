"""Writing a failure-probability estimate: ``estimate.json``, its convergence plot and ``proposal.json``.

Owns ``write_estimate`` and ``plot_convergence`` (the estimators live in
:mod:`drivegpt.corner.estimate`, which re-exports both).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

Estimate = Any  #: a ``drivegpt.corner.estimate.Estimate`` (not imported: that module imports this one)


def plot_convergence(est: Estimate, path: str | Path, title: str = "") -> None:
    """Estimate and 95% interval against simulations, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = np.array(est.history, float).reshape(-1, 4)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if len(h):
        ax.fill_between(h[:, 0], h[:, 2], h[:, 3], alpha=0.3, label="95% interval")
        ax.plot(h[:, 0], h[:, 1], "o-", ms=3, label="estimate")
        ax.legend()
    else:  # no estimate to draw (e.g. no failure seen: degenerate weights)
        ax.text(0.5, 0.5, "no estimate yet", ha="center", va="center", transform=ax.transAxes)
    log = len(h) > 0 and bool((h[:, 1:] > 0).all())  # log scale unless an estimate or a bound is 0
    ax.set(xlabel="simulations (pilot included)", ylabel="P(failure)", yscale="log" if log else "linear")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_estimate(est: Estimate, out: str | Path, run: dict[str, Any]) -> Path:
    """``OUT/estimate.json`` (metrics, the rest of the estimate, ``run``), ``OUT/convergence.png`` and,
    where the estimate fitted a proposal on known dimensions, ``OUT/proposal.json`` to start the next from
    (else an ``OUT/proposal.json`` an earlier run left there is removed, unless this estimate started
    from it)."""
    from drivegpt.core.atomic import write_json
    from drivegpt.corner.proposal_file import save_proposal

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    skip = {*est.metrics(), "mixture", "halfspace"}
    rest = {k: v for k, v in est._asdict().items() if k not in skip}
    rest["halfspace"] = est.halfspace.to_dict() if est.halfspace is not None else None
    rest["fit_sims"] = est.fit_sims() if est.mixture is not None else None
    if est.mixture is not None and est.names:
        facts = ("policy", "sim", "human_traits", "duration", "command", "seed")
        meta = {k: run[k] for k in facts if k in run}
        meta.update(pilot_sims=est.pilot_sims, fit_sims=est.fit_sims(), fitted_to=est.fitted_to)
        meta.update(started_from=run.get("proposal"))
        save_proposal(
            out / "proposal.json", est.mixture, run.get("family", ""), list(est.names), est.halfspace, **meta
        )
        rest["proposal_file"] = "proposal.json"
    else:  # an earlier run's proposal in this folder is not this estimate's, unless it started from it
        inputs = {Path(p).resolve() for p in run.get("proposal") or []}
        if (out / "proposal.json").resolve() not in inputs:
            (out / "proposal.json").unlink(missing_ok=True)
    write_json(out / "estimate.json", {**est.metrics(), **rest, "run": run})
    title = f"{run.get('family', '')} {run.get('policy', '')} {est.method}"
    plot_convergence(est, out / "convergence.png", title)
    return out
