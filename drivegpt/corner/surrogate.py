"""Physics surrogates of scenario families, and the importance-sampling proposal built on one.

A surrogate is a reduced-order model of a family: a few lines of kinematics, vectorised over points
of the naturalistic law, that say how close each point comes to a crash, its *margin* [m], without
running the simulator. The proposal leans on the points with little margin:

    q(z) = p(z) (δ + (1 − δ) Φ(−margin(z) / σ) / Z),    Z = E_p[Φ(−margin / σ)],

``Φ(−margin / σ)`` read as the chance that the true margin is negative when the surrogate's is off by
N(0, σ²). This is multi-fidelity importance sampling (Peherstorfer, Cui, Marzouk and Willcox, 2016): a
cheap model shapes the proposal, every simulator run is weighted by p / q, so the estimate stays
unbiased however rough the model is; a good model only makes it cheaper. It needs no pilot, so an
estimate's first use costs only the simulations of the estimate itself. ``Z`` comes from ``z_draws``
nominal points of their own; the weights divide by that estimate, which scales the estimate by about
``Ẑ / Z`` (unbiased to first order; its relative standard error ``z_rel_se``, about 1.3%, is added to
the estimate's interval). A draw from ``q`` is a nominal point with probability δ, else a nominal
point accepted with probability ``Φ(−margin / σ)``.

Families with a surrogate: ``adversarial_vehicle`` (:func:`adversarial_margin`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from drivegpt.core.errors import UserError
from drivegpt.corner.mixture import nominal
from drivegpt.corner.naturalistic import TRAIT_PREFIX, FamilyDistribution, _ndtr_v
from drivegpt.sim.personality import Personality, PersonalityRanges
from drivegpt_envs.actions import ACCEL_BINS

SIGMA = 1.5  #: [m] the surrogate's assumed error: the scale of Φ(−margin / σ)
Z_DRAWS = 2**20  #: nominal points behind Z (about 13 s on one core; Z's relative error about 1.3%)
DT = 0.1  #: [s] the surrogate's step (the families' simulation frequency is 10 Hz)
DECISION = 0.2  #: [s] the human decides every policy step (5 Hz) and holds it in between
LENGTH, WIDTH = 5.0, 2.0  #: [m] a car's size
LANE_WIDTH = 4.0  #: [m]
START_BEHIND = 20.0  #: [m] the adversary starts this far behind the ego (the family's constant)
EPISODE, SLACK = 20.0, 4.0  #: [s] the family's episode, and how long past it the surrogate looks
#: the adversary's lateral offset from the ego's lane centre [m] against time since it steers in [s],
#: read from the batched simulator (highway-env's lane-change controller at these speeds)
LATERAL_T = np.array([0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6, 2.0, 3.0])
LATERAL_Y = np.array([4.0, 3.25, 2.25, 1.44, 0.88, 0.52, 0.30, 0.17, 0.10, 0.03, 0.0])
_BINS = np.asarray(ACCEL_BINS)
_EDGES = (_BINS[:-1] + _BINS[1:]) / 2


def adversarial_margin(params: np.ndarray, names: list[str]) -> np.ndarray:
    """(n,) ``adversarial_vehicle``'s margin [m]: the smallest bumper gap while the adversary overlaps
    the ego's lane (negative: the cars overlap, a crash), +inf where it never cuts in.

    Two cars on a straight road. The adversary drives its speed in the next lane until it is
    ``cut_in_gap`` ahead (centre to centre), steers in along ``LATERAL_Y`` and, ``brake_delay`` later,
    brakes at ``deceleration`` until it has shed ``speed_drop``. The ego is the human on the accel
    interface: its IDM, with the personality's sampled traits (without them the model is refused: the
    traits then decide a large part of the failures), follows the adversary once its centre is within half
    a lane of the ego's lane centre (the simulator's neighbour search takes it a metre earlier; half a
    lane is the surrogate's choice, and scores better); the command is quantised to the nearest
    acceleration bin and executed ``reaction_delay`` late, its queue starting full of its first
    command as the human's does. No other
    traffic, no noise, no MOBIL.
    """
    from drivegpt_envs.families.adversarial_vehicle import AdversarialVehicleEnv

    if len(params) == 0:
        return np.zeros(0)
    p = {n: params[:, names.index(n)] for n in AdversarialVehicleEnv.PARAMS}  # (n,) each
    missing = [TRAIT_PREFIX + t for t in PersonalityRanges.model_fields if TRAIT_PREFIX + t not in names]
    if missing:  # left to the scenario seed, the traits decide a large part of the failures
        raise UserError(
            "--surrogate models the simulated human with its traits sampled: it needs --policy human on the "
            f"batched simulator with --human-traits (missing: {', '.join(missing)})"
        )
    trait = {t: params[:, names.index(TRAIT_PREFIX + t)] for t in PersonalityRanges.model_fields}
    fixed = Personality()
    a_max, b = fixed.max_acceleration, fixed.comfortable_deceleration  # [m/s²] (not sampled)
    n = len(params)
    v_e = p["ego_speed"].copy()  # (n,) [m/s]
    v_a = v_e + p["speed_difference"]  # (n,) [m/s]
    v_floor = np.maximum(v_a - p["speed_drop"], 0.0)  # (n,) [m/s] where its braking stops
    x_e, x_a = np.zeros(n), np.full(n, -START_BEHIND)  # (n,) [m]
    steered = np.full(n, np.inf)  # (n,) [s] when it steers in
    delay = np.round(trait["reaction_delay"] / DECISION).astype(int)  # (n,) [decisions]
    queue = np.zeros((int(delay.max()) + 1, n))  # (D+1, n) the last commands, newest last
    rows, margin = np.arange(n), np.full(n, np.inf)
    per = round(DECISION / DT)
    for k in range(round((EPISODE + SLACK) / DT)):
        t = k * DT
        steered = np.where(np.isinf(steered) & (x_a - x_e >= p["cut_in_gap"]), t, steered)
        since = np.where(np.isfinite(steered), t - steered, -1.0)
        y = np.where(since >= 0, np.interp(since, LATERAL_T, LATERAL_Y), LANE_WIDTH)  # (n,) [m]
        if k % per == 0:  # a decision: IDM on the bumper gap, once the adversary is in the ego's lane
            gap = x_a - x_e - LENGTH
            lead = (y < LANE_WIDTH / 2) & (gap > 0)
            s_star = trait["min_gap"] + np.maximum(
                0.0, v_e * trait["time_headway"] + v_e * (v_e - v_a) / (2 * math.sqrt(a_max * b))
            )
            inter = np.where(lead, (s_star / np.maximum(gap, 0.1)) ** 2, 0.0)
            idm = a_max * (1 - (v_e / trait["desired_speed"]) ** 4 - inter)
            command = _BINS[np.searchsorted(_EDGES, np.clip(idm, _BINS[0], _BINS[-1]), side="left")]
            # the driver was already driving before the episode: its queue starts full of its first command
            queue = (
                np.concatenate([queue[1:], command[None]]) if k else np.repeat(command[None], len(queue), 0)
            )
        a_e = queue[len(queue) - 1 - delay, rows]  # (n,) [m/s²] the command of `delay` decisions ago
        braking = (since >= p["brake_delay"]) & (v_a > v_floor)
        a_a = np.where(braking, -p["deceleration"], 0.0)  # (n,) [m/s²]
        x_e, x_a = x_e + v_e * DT, x_a + v_a * DT
        v_e = np.maximum(v_e + a_e * DT, 0.0)
        v_a = np.maximum(np.maximum(v_a + a_a * DT, np.where(braking, v_floor, 0.0)), 0.0)
        since = np.where(np.isfinite(steered), t + DT - steered, -1.0)
        y = np.where(since >= 0, np.interp(since, LATERAL_T, LATERAL_Y), LANE_WIDTH)
        margin = np.where(y < WIDTH, np.minimum(margin, x_a - x_e - LENGTH), margin)
    return margin


SURROGATES: dict[str, Callable[[np.ndarray, list[str]], np.ndarray]] = {
    "adversarial_vehicle": adversarial_margin,
}


class SurrogateProposal:
    """``q(z) = p(z) (δ + (1 − δ) Φ(−margin(z) / σ) / Z)`` over a family's standard space (a Proposal)."""

    def __init__(
        self,
        dist: FamilyDistribution,
        defensive: float,
        sigma: float = SIGMA,
        z_draws: int | None = None,
        seed: int = 0,
    ) -> None:
        z_draws = Z_DRAWS if z_draws is None else z_draws
        if dist.family not in SURROGATES:
            raise UserError(
                f"{dist.family} has no physics surrogate; --surrogate works on: {', '.join(SURROGATES)}"
            )
        if not (0 < defensive < 1 and sigma > 0 and z_draws >= 1):
            raise ValueError(
                f"need 0 < defensive < 1, sigma > 0, z_draws >= 1: {defensive}, {sigma}, {z_draws}"
            )
        self.dist, self.defensive, self.sigma = dist, defensive, sigma
        self.margin_of = SURROGATES[dist.family]
        rng = np.random.default_rng([seed, 0x5A])  # Z's own draws: one stream, in chunks (small arrays)
        chunks = [min(2**16, z_draws - lo) for lo in range(0, z_draws, 2**16)]
        g = np.concatenate([self.g(rng.standard_normal((n, dist.dim))) for n in chunks])
        self.z = float(g.mean())
        if self.z <= 0:
            raise UserError(f"{dist.family}: the surrogate puts no mass anywhere in {z_draws} nominal draws")
        self.z_rel_se = float(g.std() / math.sqrt(z_draws) / self.z)
        self.z_draws = z_draws

    def g(self, z: np.ndarray) -> np.ndarray:
        """(n,) Φ(−margin / σ) at standard points ``z`` (n, d)."""
        return _ndtr_v(-self.margin_of(self.dist.to_params(z), self.dist.names) / self.sigma)

    def logpdf(self, z: np.ndarray) -> np.ndarray:
        z = np.atleast_2d(z)
        tilt = self.defensive + (1 - self.defensive) * self.g(z) / self.z  # (n,) q / p
        return nominal(self.dist.dim).logpdf(z) + np.log(tilt)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """(n, d): each a nominal draw with probability δ, else a nominal draw accepted with probability g."""
        k = int(rng.binomial(n, self.defensive))
        out, need = [rng.standard_normal((k, self.dist.dim))], n - k
        while need > 0:
            cand = rng.standard_normal((max(1024, int(2 * need / self.z)), self.dist.dim))
            kept = cand[rng.random(len(cand)) < self.g(cand)][:need]
            out.append(kept)
            need -= len(kept)
        z = np.concatenate(out)
        return z[rng.permutation(n)]

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "surrogate",
            "family": self.dist.family,
            "sigma_m": self.sigma,
            "defensive": self.defensive,
            "z": self.z,
            "z_rel_se": self.z_rel_se,
            "z_draws": self.z_draws,
        }
