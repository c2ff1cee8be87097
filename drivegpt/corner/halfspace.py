"""A half-space proposal: the naturalistic law cut to the side of a boundary where the failures lie.

Where a family's parameters decide its failures past a nearly flat boundary (``slower_lead``: an ego
closing on a slow lead faster than it can brake), a Gaussian that covers the failure region also puts
mass on the side that cannot fail, however many failures it is fitted to. The naturalistic law
restricted to the half-space ``H = {z : a.z > c}`` has exactly the region's shape, and its likelihood
ratio is a constant there, ``P(H) / share``. Blended with a fitted mixture ``m`` (which keeps every
failure outside ``H`` at a bounded weight) and the nominal ``p``:

    q(z) = share p(z) 1_H(z) / P(H)  +  (1 - share - defensive) m(z)  +  defensive p(z)

``P(H) = Phi(-c)`` exactly (``a`` a unit vector, ``z ~ N(0, I)``). The boundary comes from the draws
of an estimate (:func:`fit_halfspace`): its direction ``a`` from a logistic regression of failure on
them, and ``c`` where the draws' own estimate of the blend's second moment is least
(:func:`best_offset`), or the smallest ``a.z`` among the failures less a margin. A plane through the
lowest failure is loose where the boundary bends. Any such ``q`` has support everywhere (the nominal
part), so the estimate stays unbiased whatever the fit; a good fit makes it narrow.

On fewer dimensions (an estimate that does not sample the human's traits reusing a half-space fitted
with them) the half-space's marginal is exact too: with ``a = (a_k, a_d)`` split into the kept and the
dropped coordinates, ``a_d . z_d ~ N(0, |a_d|^2)``, so the kept coordinates have the density
``p(z_k) Phi((a_k . z_k - c) / spread) / P(H)``, ``spread = |a_d|``: a soft edge.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import torch

from drivegpt.corner.mixture import GaussianMixture, nominal, with_defensive

RIDGE = 1e-2  #: L2 penalty of the logistic regression's weights (separable draws stay finite)


class HalfSpace(NamedTuple):
    """``H = {z : direction . z + spread e > offset}`` on the standard space (``e ~ N(0, 1)``, the
    dimensions marginalised away; ``|direction|^2 + spread^2 = 1``), drawn with weight ``share``."""

    direction: np.ndarray  # (d,)
    offset: float  # c [standard units]
    share: float  # the half-space's weight in the proposal, in (0, 1)
    spread: float = 0.0  # |a_d|: the part of the direction along marginalised dimensions (0: a sharp edge)

    def log_prob(self) -> float:
        """log P(H) under the nominal ``N(0, I)``: ``log Phi(-offset)``."""
        return float(torch.special.log_ndtr(torch.tensor(-self.offset, dtype=torch.float64)))

    def log_inside(self, z: np.ndarray) -> np.ndarray:
        """(n,) log P(z in H | z) for ``z`` (n, d): 0 or -inf on a sharp edge, ``log Phi`` on a soft one."""
        proj = z @ self.direction - self.offset
        if self.spread == 0:
            return np.where(proj > 0, 0.0, -np.inf)
        return torch.special.log_ndtr(torch.as_tensor(proj / self.spread, dtype=torch.float64)).numpy()

    def to_dict(self) -> dict[str, Any]:
        out = {"direction": self.direction.tolist(), "offset": self.offset, "share": self.share}
        return out | ({"spread": self.spread} if self.spread else {})


class HalfSpaceBlend(NamedTuple):
    """``share p 1_H / P(H) + (1 - share - defensive) m + defensive p``: a :class:`Proposal`."""

    halfspace: HalfSpace
    mixture: GaussianMixture  # m, without the nominal
    defensive: float  # the nominal's weight

    def rest(self) -> GaussianMixture:
        """The mixture and the nominal, as one mixture of weight ``1 - share`` in the blend."""
        return with_defensive(self.mixture, self.defensive / (1 - self.halfspace.share))

    def logpdf(self, z: np.ndarray) -> np.ndarray:
        """(n,) log q at ``z`` (n, d)."""
        h = self.halfspace
        log_h = nominal(z.shape[1]).logpdf(z) + h.log_inside(z) - h.log_prob()  # (n,) log p 1_H / P(H)
        return np.logaddexp(math.log(h.share) + log_h, math.log(1 - h.share) + self.rest().logpdf(z))

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """(n, d) draws: each from the half-space with probability ``share``, else from the rest."""
        h, d = self.halfspace, len(self.halfspace.direction)
        from_h = rng.random(n) < h.share  # (n,)
        z = np.empty((n, d))
        z[~from_h] = self.rest().sample(rng, int((~from_h).sum()))
        k = int(from_h.sum())
        a = np.r_[h.direction, h.spread] if h.spread else h.direction  # unit; the last: the dropped ones
        xi = rng.standard_normal((k, len(a)))  # the law across a: unchanged
        u = np.maximum(rng.random(k), np.finfo(float).tiny)  # a.z > c: P(a.z > t) = Phi(-t) = u Phi(-c)
        tail = torch.as_tensor(np.log(u) + h.log_prob(), dtype=torch.float64)
        t = -torch.special.ndtri(torch.exp(tail)).numpy()  # (k,) all > c
        z[from_h] = (xi - np.outer(xi @ a, a) + np.outer(t, a))[:, :d]
        return z

    def describe(self) -> dict[str, Any]:
        h = self.halfspace
        return {
            "kind": "halfspace_blend",
            "halfspace": {
                "direction": h.direction.round(4).tolist(),
                "offset": round(h.offset, 4),
                "share": h.share,
                "spread": round(h.spread, 4),
                "log_prob": round(h.log_prob(), 4),
            },
            "mixture_weights": self.mixture.weights.round(4).tolist(),
            "defensive": self.defensive,
        }


def blend(halfspace: HalfSpace, mixture: GaussianMixture, defensive: float) -> HalfSpaceBlend:
    """The blend; ``ValueError`` where the half-space and the nominal leave the mixture no weight."""
    if not 0 < halfspace.share < 1 - defensive:
        raise ValueError(
            f"the half-space's share {halfspace.share:g} and the defensive weight {defensive:g} must add up "
            f"to less than 1"
        )
    return HalfSpaceBlend(halfspace, mixture, defensive)


def logistic_direction(z: np.ndarray, failed: np.ndarray, iters: int = 50) -> np.ndarray:
    """(d,) unit vector: the weights of a logistic regression of ``failed`` (n,) on ``z`` (n, d), by
    Newton's method (iteratively reweighted least squares) with a small ridge on the weights."""
    n, d = z.shape
    x = np.concatenate([z, np.ones((n, 1))], 1)  # (n, d + 1): the last column is the intercept
    y = failed.astype(float)
    beta = np.zeros(d + 1)
    ridge = np.diag(np.r_[np.full(d, RIDGE * n), 0.0])  # (d + 1, d + 1)
    for _ in range(iters):
        prob = 1 / (1 + np.exp(-np.clip(x @ beta, -30, 30)))  # (n,)
        grad = x.T @ (prob - y) + ridge @ beta
        hess = (x * (prob * (1 - prob))[:, None]).T @ x + ridge + 1e-9 * np.eye(d + 1)
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.abs(step).max() < 1e-8:
            break
    a = beta[:d]
    norm = float(np.linalg.norm(a))
    if not norm > 0 or not np.isfinite(norm):
        raise ValueError("the failures do not lean any way: no half-space to fit")
    return a / norm


def fit_halfspace(
    z: np.ndarray,
    failed: np.ndarray,
    share: float,
    margin: float | None = 0.0,
    w: np.ndarray | None = None,
    mixture: GaussianMixture | None = None,
    defensive: float = 0.02,
) -> HalfSpace:
    """The half-space beyond the boundary between failures and the rest of the draws ``z`` (n, d).

    Direction: :func:`logistic_direction`. Offset: the smallest ``a.z`` of a failure, less ``margin``
    (failures the draws never showed, past the offset, keep the mixture's weight); or, with ``margin``
    None, the offset :func:`best_offset` picks from the draws' weights ``w = p / q`` (n,) for the
    blend with ``mixture`` at ``defensive``."""
    failed = np.asarray(failed, bool)
    if not failed.any() or failed.all():
        raise ValueError("a half-space needs failures and non-failures among the draws")
    a = logistic_direction(z, failed)
    if margin is not None:
        return HalfSpace(a, float((z[failed] @ a).min() - margin), share)
    if w is None or mixture is None:
        raise ValueError("an offset chosen by variance needs the draws' weights and the mixture")
    return HalfSpace(a, best_offset(a, z[failed], w[failed], len(z), share, mixture, defensive), share)


def best_offset(
    a: np.ndarray,
    zf: np.ndarray,
    wf: np.ndarray,
    draws: int,
    share: float,
    mixture: GaussianMixture,
    defensive: float,
    candidates: int = 200,
) -> float:
    """The offset whose blend has the least second moment ``E_p[f p / q]`` as the draws estimate it.

    ``zf`` (k, d): the draws' failures, ``wf`` (k,) their ``p / q_draw``, among ``draws`` draws in all:
    ``sum(wf * p / q_c(zf)) / draws`` is unbiased for the blend's second moment at offset ``c``. A plane
    through the lowest failure is loose where the boundary bends (its ``P(H)`` many times the failure
    probability); one higher up leaves the few failures below it to the mixture. The candidates are
    quantiles of the failures' ``a.z``, the lowest included."""
    proj = zf @ a  # (k,)
    cs = np.unique(np.r_[np.quantile(proj, np.linspace(0, 0.5, candidates)), proj.min()]) - 1e-9  # (C,)
    p0 = nominal(zf.shape[1])
    rest = (1 - share - defensive) * np.exp(mixture.logpdf(zf) - p0.logpdf(zf)) + defensive  # (k,) m / p part
    log_ph = torch.special.log_ndtr(torch.as_tensor(-cs, dtype=torch.float64)).numpy()  # (C,) log P(H)
    ratio = share * (proj[None, :] > cs[:, None]) * np.exp(-log_ph)[:, None] + rest[None, :]  # (C, k) q / p
    second = (wf[None, :] / ratio).sum(1) / draws  # (C,)
    return float(cs[int(np.argmin(second))])
