"""The failure-probability estimator's settings (:class:`EstimateConfig`), read by
:mod:`drivegpt.corner.estimate` and its pilot (:mod:`drivegpt.corner.pilot`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from drivegpt.core.config import FrozenConfig

__all__ = ["EstimateConfig", "Method"]

Method = Literal["mc", "is"]


class EstimateConfig(FrozenConfig):
    """Failure-probability estimation settings."""

    method: Method = "is"
    """mc: plain Monte Carlo from the naturalistic distribution; is: importance sampling (CE proposal)."""
    rel_halfwidth: float = Field(0.2, gt=0)
    """Stop once the 95% half-width / estimate is at most this."""
    max_sims: int = Field(10_000, ge=1)
    """Simulations at most (pilot included)."""
    seed: int = Field(0, ge=0)
    """Sampler seed; simulation i uses scenario seed ``seed + i`` (a proposal over the seeds, as
    ``stalled_car``'s surrogate, draws its own from the sampler)."""
    batch: int = Field(50, ge=1)
    """Simulations between two checks of the stopping rule."""
    min_batches: int = Field(4, ge=1)
    """Estimation batches before the stopping rule may stop."""
    pilot_batch: int = Field(100, ge=1)
    """IS: simulations per pilot stage."""
    inflation: tuple[float, ...] = (1.0, 2.0, 3.0, 4.0)
    """IS, yes/no simulators: std factors of the widened nominal the pilot draws from, in turn, until
    failures show up."""
    elite_fraction: float = Field(0.1, gt=0, lt=1)
    """IS, graded simulators: each pilot stage's level is the top fraction of its severities."""
    max_levels: int = Field(10, ge=1)
    """IS, graded simulators: pilot stages at most before the fit on failures."""
    min_elites: int = Field(10, ge=1)
    """IS: failures the pilot wants before fitting the mixture."""
    ce_refine: int = Field(4, ge=0)
    """IS: cross-entropy refinement stages after the first fit."""
    components: int = Field(2, ge=1)
    """IS: Gaussians in the fitted mixture (at most)."""
    defensive: float = Field(0.02, gt=0, lt=1)
    """IS: weight of the nominal in the proposal (support everywhere, weights at most 1/defensive)."""
    widen: float = Field(1.0, ge=1)
    """IS: fitted covariances are multiplied by this (few failures under-estimate spread: heavy weights)."""
    cov_floor: float = Field(1.0, ge=0)
    """IS: eigenvalues of the fitted covariances are raised to at least this (standard units squared);
    at 1 no proposal component is narrower than the naturalistic law in any direction."""
    screen: float = Field(3.0, ge=0)
    """IS: a dimension whose fitted points' weighted mean and variance lie within this many standard
    errors of the nominal's (0 and 1) stays nominal in the proposal (0: never)."""
    reg: float = Field(0.2, gt=0)
    """IS: added to each fitted covariance's diagonal before widening (standard units squared)."""
    min_ess: float = Field(30.0, gt=0)
    """Effective sample size over failures below which weights are flagged as degenerate."""
    refit_floor: float | None = Field(None, ge=0)
    """IS: refit the mixture to the estimate's own failures, with this covariance floor, for the next
    estimate to start from (None: no refit; the pilot's mixture is kept). It helps where the family's
    parameters decide the failures (``slower_lead``: 0.3 halves the variance) and hurts where the
    scenario seed decides much of them (``adversarial_vehicle``: several times the variance, while the
    runs' own intervals look fine): the refit narrows onto the failures its proposal already draws."""
    halfspace_share: float | None = Field(None, gt=0, lt=1)
    """IS: add to the proposal this estimate writes the naturalistic law cut to the half-space beyond
    its failures (:mod:`drivegpt.corner.halfspace`, fitted to all of its simulations), drawn with this
    share (None: none). Where the parameters decide the failures past a flat boundary
    (``slower_lead``) it draws a failure in about every other simulation."""
    halfspace_margin: float | None = Field(None, ge=0)
    """IS: the half-space starts this far [standard units] before the estimate's lowest failure (None:
    where the estimate's own draws say the blend varies least: ``halfspace.best_offset``)."""
