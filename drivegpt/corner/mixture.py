"""Gaussian mixtures on the standard space: the importance-sampling proposals and their fitting.

Owns the :class:`Proposal` protocol, :class:`GaussianMixture` (density, sampling), the nominal
``N(0, I)`` and its defensive mix, the support check that refuses a biased proposal, a proposal's
relative variance measured on Monte Carlo failures, weighted EM (:func:`fit_mixture`), the
shaping of a fit (covariance floor, nominal dimensions) and its marginal on fewer dimensions. The
estimator that uses them is :mod:`drivegpt.corner.estimate`; a fitted proposal's file is
:mod:`drivegpt.corner.proposal_file`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

import numpy as np

from drivegpt.core.errors import UserError

SCREEN_MIN_ESS = 50.0  #: fitted points (effective) below which no dimension is judged nominal


class Proposal(Protocol):
    """A sampling density on the standard space."""

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray: ...
    def logpdf(self, z: np.ndarray) -> np.ndarray: ...


class GaussianMixture(NamedTuple):
    """``sum_k weights[k] N(means[k], covs[k])`` on R^d."""

    weights: np.ndarray  # (K,)
    means: np.ndarray  # (K, d)
    covs: np.ndarray  # (K, d, d)

    def component_logpdf(self, z: np.ndarray) -> np.ndarray:
        """(n, K) log density of each component (without its weight)."""
        out = []
        for m, c in zip(self.means, self.covs, strict=True):
            chol = np.linalg.cholesky(c)
            sol = np.linalg.solve(chol, (z - m).T)  # (d, n)
            logdet = 2 * np.log(np.diag(chol)).sum()
            out.append(-0.5 * (sol**2).sum(0) - 0.5 * logdet - 0.5 * len(m) * math.log(2 * math.pi))
        return np.stack(out, 1)

    def logpdf(self, z: np.ndarray) -> np.ndarray:
        a = self.component_logpdf(z) + np.log(self.weights)
        top = a.max(1, keepdims=True)
        return (top + np.log(np.exp(a - top).sum(1, keepdims=True)))[:, 0]

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        k = rng.choice(len(self.weights), size=n, p=self.weights)
        eps = rng.standard_normal((n, self.means.shape[1]))
        chols = np.linalg.cholesky(self.covs)  # (K, d, d)
        return self.means[k] + np.einsum("nij,nj->ni", chols[k], eps)


def nominal(d: int, scale: float = 1.0) -> GaussianMixture:
    """``N(0, scale^2 I_d)``: the naturalistic distribution in standard space (``scale`` 1)."""
    return GaussianMixture(np.ones(1), np.zeros((1, d)), scale**2 * np.eye(d)[None])


def with_defensive(mix: GaussianMixture, defensive: float) -> GaussianMixture:
    """``defensive * nominal + (1 - defensive) * mix``."""
    d = mix.means.shape[1]
    return GaussianMixture(
        np.concatenate([[defensive], (1 - defensive) * mix.weights]),
        np.concatenate([np.zeros((1, d)), mix.means]),
        np.concatenate([np.eye(d)[None], mix.covs]),
    )


def pool(mixes: Sequence[GaussianMixture]) -> GaussianMixture:
    """``sum_i m_i / N``: the equal-weight mixture of ``N`` mixtures on the same dimensions."""
    n = len(mixes)
    if n == 0:
        raise ValueError("pool needs at least one mixture")
    return GaussianMixture(
        np.concatenate([m.weights / n for m in mixes]),
        np.concatenate([m.means for m in mixes]),
        np.concatenate([m.covs for m in mixes]),
    )


def check_support(q: Proposal, d: int, rng: np.random.Generator, n: int = 4096) -> None:
    """Refuse a proposal with zero density (or an invalid one) where the nominal has mass."""
    z = np.concatenate([rng.standard_normal((n, d)), 6.0 * np.concatenate([np.eye(d), -np.eye(d)])])
    try:
        logq = np.asarray(q.logpdf(z), float)
    except np.linalg.LinAlgError as err:
        raise UserError(f"proposal refused: a covariance is not positive definite ({err})") from None
    bad = ~np.isfinite(logq)
    if isinstance(q, GaussianMixture) and (np.any(q.weights < 0) or abs(q.weights.sum() - 1) > 1e-9):
        raise UserError(f"proposal refused: mixture weights {q.weights} are not a distribution")
    if bad.any():
        where = np.round(z[np.flatnonzero(bad)[0]], 3).tolist()
        raise UserError(
            f"proposal refused: no support at {bad.sum()}/{len(z)} points where the naturalistic "
            f"distribution has mass (e.g. z={where}); the estimate would be biased"
        )


def relvar_from_failures(q: Proposal, failures: np.ndarray, draws: int) -> float:
    """Relative variance per simulation of importance sampling from ``q``, measured without running it.

    ``failures`` (k, d): the points of the failures plain Monte Carlo found in ``draws`` nominal draws.
    ``E_q[(w f)^2] = E_p[f p / q]``, so the second moment is the mean of ``p / q`` over the MC draws (0
    where they did not fail), and the relative variance ``E_q[(w f)^2] / P^2 - 1`` with ``P = k / draws``.
    Unlike a run's own sample variance, this counts the failures the proposal almost never draws."""
    d = failures.shape[1]
    return relvar_from_ratios(np.exp(nominal(d).logpdf(failures) - q.logpdf(failures)), draws)


def relvar_from_ratios(p_over_q: np.ndarray, draws: int) -> float:
    """``relvar_from_failures`` from ``p / q`` at each of the k failures among ``draws`` nominal draws
    (for proposals whose density is known only at those points)."""
    k = len(p_over_q)
    if k == 0 or draws < k:
        raise ValueError(f"need at least one failure among the draws, got {k} in {draws}")
    p = k / draws
    return float(p_over_q.sum() / draws / p**2 - 1)


def fit_mixture(
    z: np.ndarray, w: np.ndarray, k: int, reg: float, rng: np.random.Generator, iters: int = 50
) -> GaussianMixture:
    """Weighted EM fit of a ``k``-Gaussian mixture to points ``z`` (n, d) with weights ``w`` (n,)."""
    n, d = z.shape
    w = w / w.sum()
    k = max(1, min(k, int((w > 0).sum())))
    centres = [z[rng.choice(n, p=w)]]  # farthest-point start: separate modes, separate Gaussians
    for _ in range(1, k):
        far = np.min([((z - c) ** 2).sum(1) for c in centres], 0) * (w > 1e-3 * w.max())
        centres.append(z[int(far.argmax())])
    spread = np.cov(z.T, aweights=w + 1e-300, bias=True).reshape(d, d) if n > 1 else np.eye(d)
    mix = GaussianMixture(np.full(k, 1 / k), np.stack(centres), np.stack([spread + reg * np.eye(d)] * k))
    for _ in range(iters):
        a = mix.component_logpdf(z) + np.log(mix.weights)
        r = np.exp(a - a.max(1, keepdims=True))
        r = r / r.sum(1, keepdims=True) * w[:, None]  # (n, K) weighted responsibilities
        mass = r.sum(0)
        keep = mass > 1e-3
        r, mass = r[:, keep], mass[keep]
        means = (r.T @ z) / mass[:, None]
        covs = np.stack(
            [
                ((z - m).T * rk) @ (z - m) / mk + reg * np.eye(d)
                for m, rk, mk in zip(means, r.T, mass, strict=True)
            ]
        )
        mix = GaussianMixture(mass / mass.sum(), means, covs)
    return mix


def inert(z: np.ndarray, w: np.ndarray, screen: float) -> np.ndarray:
    """(d,) bool: the dimensions where the points ``z`` (n, d), weighted by ``w``, look nominal.

    Their weighted mean is within ``screen`` standard errors of 0 and their variance within ``screen``
    standard errors of 1, the errors those of ``ess = (sum w)^2 / sum w^2`` standard-normal draws
    (none below ``SCREEN_MIN_ESS``: too few to tell). A proposal that leaves such a dimension at the
    nominal spends nothing on it; fitting its noise multiplies every weight by a random factor."""
    w = w / w.sum()
    ess = 1.0 / (w**2).sum()
    if screen <= 0 or ess < SCREEN_MIN_ESS:
        return np.zeros(z.shape[1], bool)
    mean = w @ z
    var = w @ (z - mean) ** 2
    return (np.abs(mean) < screen / np.sqrt(ess)) & (np.abs(var - 1) < screen * np.sqrt(2 / ess))


def nominal_in(mix: GaussianMixture, dims: np.ndarray) -> GaussianMixture:
    """``mix`` with dimensions ``dims`` (d,) bool set to the nominal: mean 0, variance 1, uncorrelated."""
    if not dims.any():
        return mix
    means, covs = mix.means.copy(), mix.covs.copy()
    means[:, dims] = 0.0
    covs[:, dims, :] = 0.0
    covs[:, :, dims] = 0.0
    covs[:, dims, dims] = 1.0
    return GaussianMixture(mix.weights, means, covs)


def marginal(mix: GaussianMixture, keep: Sequence[int] | np.ndarray) -> GaussianMixture:
    """The mixture's marginal on the dimensions ``keep`` (indices, in the new order): exact, since
    each Gaussian's marginal is the Gaussian of its mean's and covariance's kept rows and columns."""
    keep = np.asarray(keep, int)
    return GaussianMixture(mix.weights, mix.means[:, keep], mix.covs[:, keep][:, :, keep])


def shape(covs: np.ndarray, floor: float) -> np.ndarray:
    """(K, d, d) covariances with every eigenvalue raised to at least ``floor``."""
    if floor <= 0:
        return covs
    vals, vecs = np.linalg.eigh(covs)  # (K, d), (K, d, d)
    return np.einsum("kij,kj,klj->kil", vecs, np.maximum(vals, floor), vecs)


def describe(q: Proposal) -> dict[str, Any]:
    """JSON-able description of a proposal (its own ``describe()`` where it has one)."""
    if hasattr(q, "describe"):
        return q.describe()
    if not isinstance(q, GaussianMixture):
        return {"kind": type(q).__name__}
    return {
        "kind": "gaussian_mixture",
        "weights": q.weights.round(4).tolist(),
        "means": q.means.round(3).tolist(),
    }
