"""A fitted importance-sampling proposal as a file: ``proposal.json``, written by an estimate, reused later.

The pilot that finds a family's failure region costs most of an estimate's simulations where failures
are rare (about 1,400 of 1,900 on ``slower_lead``). Its fitted mixture does not depend on which
estimate runs next: any proposal with support everywhere gives an unbiased estimate, and a good one a
narrow interval. So ``drivegpt corner-cases estimate --method is`` writes the mixture it fitted, and
``--proposal FILE`` starts the next estimate from it, with no pilot: another sampler seed, another
policy (a cheap driver's pilot for an expensive policy's estimate), the next checkpoint.

The file is JSON (no pickle): the family, the parameter names of the standard space's dimensions, and
the mixture (weights ``(K,)``, means ``(K, d)``, covariances ``(K, d, d)``), without the defensive
nominal, which the estimate that reuses it mixes in at its own ``--defensive``; since version 2, an
optional half-space (``direction (d,)``, ``offset``, ``share``: :mod:`drivegpt.corner.halfspace`)
blended with it. A file fitted with more dimensions than the estimate samples (the human's traits)
is marginalised onto the estimate's (its half-space too: a soft edge where it leans on the dropped
ones); traits the file lacks are left at the naturalistic law (standard normal, independent).

Several files pool (:func:`pool_proposals`): the equal-weight mixture of their mixtures. Where the
seed decides part of each failure, one refit follows the failures its own proposal happened to draw
and refits vary widely in quality; their pool has at least ``1/N`` of the best one's density
everywhere, so its second moment ``E_p[f p / q]`` is never more than ``N`` times the best one's,
and usually close to it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from drivegpt.core.errors import MissingInputError, UserError
from drivegpt.corner.halfspace import HalfSpace, blend
from drivegpt.corner.mixture import GaussianMixture, Proposal, marginal, pool, with_defensive
from drivegpt.corner.naturalistic import TRAIT_PREFIX

FORMAT = "drivegpt-proposal"  #: the ``format`` field that marks a proposal file
VERSION = 2  #: written; 1 (no half-space) is read too
READS = (1, 2)


def save_proposal(
    path: str | Path,
    mix: GaussianMixture,
    family: str,
    names: list[str],
    halfspace: HalfSpace | None = None,
    **meta: Any,
) -> Path:
    """Write ``mix`` (fitted on ``family``'s standard space, dimensions ``names``) and ``halfspace``
    (if any) to ``path``, atomically.

    ``meta``: JSON-able facts about the run that fitted it (policy, pilot simulations, seed)."""
    from drivegpt.core.atomic import write_json

    if mix.means.shape[1] != len(names):
        raise ValueError(f"{len(names)} names for a {mix.means.shape[1]}-dimensional mixture")
    if halfspace is not None and len(halfspace.direction) != len(names):
        raise ValueError(f"{len(names)} names for a {len(halfspace.direction)}-dimensional half-space")
    write_json(
        path,
        {
            "format": FORMAT,
            "version": VERSION,
            "family": family,
            "names": list(names),
            **meta,
            "weights": mix.weights.tolist(),
            "means": mix.means.tolist(),
            "covs": mix.covs.tolist(),
            **({"halfspace": halfspace.to_dict()} if halfspace is not None else {}),
        },
    )
    return Path(path)


def proposal_from(mix: GaussianMixture, meta: dict[str, Any], defensive: float) -> Proposal:
    """The proposal a loaded file gives with the nominal at weight ``defensive``: its mixture, blended
    with its half-space where it has one (refused, one line, where the two weights leave none to the
    mixture)."""
    halfspace = meta.get("halfspace")
    if halfspace is None:
        return with_defensive(mix, defensive)
    try:
        return blend(halfspace, mix, defensive)
    except ValueError as err:
        raise UserError(f"{meta.get('path', 'proposal file')}: {err}; lower --defensive") from None


def pool_proposals(
    paths: Sequence[str | Path], family: str, names: list[str]
) -> tuple[GaussianMixture, dict[str, Any]]:
    """:func:`load_proposal` of one file; of several, the mixture ``sum_i m_i / N`` of their mixtures,
    with ``fit_sims`` the sum of theirs (files that share a pilot count it once each) and ``path``
    the files'. Files with a half-space are refused in a pool (one line naming the file)."""
    if not paths:
        raise ValueError("pool_proposals needs at least one file")
    loaded = [load_proposal(path, family, names) for path in paths]
    if len(loaded) == 1:
        return loaded[0]
    for _, meta in loaded:
        if meta["halfspace"] is not None:
            raise UserError(
                f"{meta['path']}: has a half-space, and a pool of proposals takes mixtures only; give it "
                f"alone as --proposal, or pool files without one"
            )
    mix = pool([m for m, _ in loaded])
    meta = {
        "family": family,
        "names": list(names),
        "fit_sims": sum(fit_sims(meta) for _, meta in loaded),
        "pooled": [meta["path"] for _, meta in loaded],
        "halfspace": None,
        "path": ", ".join(meta["path"] for _, meta in loaded),
    }
    return mix, meta


def fit_sims(meta: dict[str, Any]) -> int:
    """Every simulation behind a proposal file (its ``fit_sims``; files without it: the pilot's)."""
    return int(meta.get("fit_sims") or meta.get("pilot_sims") or 0)


def load_proposal(path: str | Path, family: str, names: list[str]) -> tuple[GaussianMixture, dict[str, Any]]:
    """The mixture in ``path`` on the dimensions ``names`` of ``family`` (marginalised where the file has
    more), and the file's other fields, ``halfspace`` a :class:`HalfSpace` on ``names`` or None and
    ``path`` the file's. Every problem is one :class:`UserError` naming the file;
    :func:`proposal_from` turns the two into the proposal to draw from."""
    path = Path(path)
    fix = "write one with `drivegpt corner-cases estimate --method is --out DIR` (DIR/proposal.json)"
    if path.is_dir():
        raise UserError(f"{path}: a directory, not a proposal file; pass {path / 'proposal.json'}")
    if not path.is_file():
        raise MissingInputError(f"{path}: no such proposal file; {fix}")
    try:
        doc = json.loads(path.read_text())
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ValueError(f"its format is not {FORMAT!r}")
        if doc.get("version") not in READS:
            raise ValueError(f"version {doc.get('version')!r}; this release reads versions {READS}")
        for key in ("fit_sims", "pilot_sims"):  # the cost behind the file: whole numbers of simulations
            if doc.get(key) is not None and (not isinstance(doc[key], int) or doc[key] < 0):
                raise ValueError(f"{key} is {doc[key]!r}, not a count of simulations")
        weights, means, covs = (np.asarray(doc[k], float) for k in ("weights", "means", "covs"))
        have = [str(n) for n in doc["names"]]
        k, d = means.shape
        if weights.shape != (k,) or covs.shape != (k, d, d) or len(have) != d:
            raise ValueError(
                f"weights {weights.shape}, means {means.shape}, covs {covs.shape}, {len(have)} names"
            )
        hs = doc.get("halfspace")
        if hs is not None:
            direction = np.asarray(hs["direction"], float)
            offset, share, spread = float(hs["offset"]), float(hs["share"]), float(hs.get("spread", 0.0))
            norm = math.hypot(float(np.linalg.norm(direction)), spread) if direction.shape == (d,) else 0.0
            if not (
                math.isfinite(norm) and norm > 0 and spread >= 0 and math.isfinite(offset) and 0 < share < 1
            ):
                raise ValueError(
                    f"halfspace: {d} finite direction numbers, a spread >= 0, an offset, a share in (0, 1)"
                )
            hs = HalfSpace(direction / norm, offset, share, spread / norm)
    except KeyError as err:
        raise UserError(f"{path}: not a proposal file (no {err} field); {fix}") from None
    except (OSError, ValueError, TypeError) as err:  # json.JSONDecodeError is a ValueError
        raise UserError(f"{path}: not a proposal file ({err}); {fix}") from None
    if doc.get("family") != family:
        raise UserError(
            f"{path}: fitted on family {doc.get('family')!r}, not {family!r}; use that "
            f"family's proposal or drop --proposal"
        )
    missing = [n for n in names if n not in have]
    if [n for n in missing if not n.startswith(TRAIT_PREFIX)]:
        raise UserError(
            f"{path}: lacks the parameters {missing} that this estimate samples (it has {have}); "
            f"use a proposal of this family's parameters or drop --proposal"
        )
    if not (
        np.isfinite(means).all()
        and np.isfinite(covs).all()
        and np.isfinite(weights).all()
        and (weights >= 0).all()
        and weights.sum() > 0
    ):
        raise UserError(
            f"{path}: non-finite means or covariances, or weights that are not a distribution; {fix}"
        )
    try:
        np.linalg.cholesky(covs)
    except np.linalg.LinAlgError:
        raise UserError(f"{path}: a covariance is not positive definite; {fix}") from None
    if missing:  # traits the file's run left to the seed: nominal in the proposal too
        k, d = means.shape
        means = np.concatenate([means, np.zeros((k, len(missing)))], 1)  # (K, d + m)
        block = np.tile(np.eye(d + len(missing)), (k, 1, 1))  # (K, d + m, d + m)
        block[:, :d, :d] = covs
        covs, have = block, have + missing
    keep = [have.index(n) for n in names]
    mix = marginal(GaussianMixture(weights / weights.sum(), means, covs), keep)
    if hs is not None:  # traits it lacks: 0 along them; dropped ones: into the spread (a soft edge)
        direction = np.concatenate([hs.direction, np.zeros(len(have) - len(hs.direction))])  # (d + m,)
        dropped = np.delete(direction, keep)
        spread = math.hypot(hs.spread, float(np.linalg.norm(dropped)))
        hs = HalfSpace(direction[keep], hs.offset, hs.share, spread)
    meta = {key: v for key, v in doc.items() if key not in ("weights", "means", "covs")}
    return mix, {**meta, "halfspace": hs, "path": str(path)}
