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

Families with a surrogate, each with its own σ and defensive weight δ (``SURROGATES``):
``adversarial_vehicle`` (:func:`adversarial_margin`) and ``stalled_car`` (:func:`stalled_margin`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from drivegpt.core.errors import UserError
from drivegpt.corner.mixture import nominal
from drivegpt.corner.naturalistic import TRAIT_PREFIX, FamilyDistribution, _ndtr_v
from drivegpt.sim.personality import Personality, PersonalityRanges
from drivegpt_envs.actions import ACCEL_BINS

Z_DRAWS = 2**20  #: nominal points behind Z (about 13 s on one core; Z's relative error about 1.3%)
DT = 0.1  #: [s] the surrogate's step (the families' simulation frequency is 10 Hz)
DECISION = 0.2  #: [s] the human decides every policy step (5 Hz) and holds it in between
LENGTH, WIDTH = 5.0, 2.0  #: [m] a car's size
LANE_WIDTH = 4.0  #: [m]
#: [m/s²] the stalled car's lead brakes this hard once it steers away (no longer blind, it brakes for
#: the stalled car and the right lane's traffic), read from traces of the batched simulator
LEAD_BRAKE = 4.5
START_BEHIND = 20.0  #: [m] the adversary starts this far behind the ego (the family's constant)
EPISODE, SLACK = 20.0, 4.0  #: [s] the family's episode, and how long past it the surrogate looks
#: the adversary's lateral offset from the ego's lane centre [m] against time since it steers in [s],
#: read from the batched simulator (highway-env's lane-change controller at these speeds)
LATERAL_T = np.array([0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6, 2.0, 3.0])
LATERAL_Y = np.array([4.0, 3.25, 2.25, 1.44, 0.88, 0.52, 0.30, 0.17, 0.10, 0.03, 0.0])
_BINS = np.asarray(ACCEL_BINS)
_EDGES = (_BINS[:-1] + _BINS[1:]) / 2


def _traits(params: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
    """The human's sampled traits, (n,) each; refused when they are not sampled (left to the scenario
    seed, they decide a large part of the failures the surrogate would then miss)."""
    missing = [TRAIT_PREFIX + t for t in PersonalityRanges.model_fields if TRAIT_PREFIX + t not in names]
    if missing:
        raise UserError(
            "--surrogate models the simulated human with its traits sampled: it needs --policy human on the "
            f"batched simulator with --human-traits (missing: {', '.join(missing)})"
        )
    return {t: params[:, names.index(TRAIT_PREFIX + t)] for t in PersonalityRanges.model_fields}


def _human_command(
    v: np.ndarray, v_front: np.ndarray, gap: np.ndarray, lead: np.ndarray, trait: dict[str, np.ndarray]
) -> np.ndarray:
    """(n,) [m/s²] the human's command: its IDM (bumper ``gap`` [m] to a front car at ``v_front``
    [m/s] where ``lead``, else the free road) quantised to the nearest acceleration bin."""
    fixed = Personality()
    a_max, b = fixed.max_acceleration, fixed.comfortable_deceleration  # [m/s²] (not sampled)
    s_star = trait["min_gap"] + np.maximum(
        0.0, v * trait["time_headway"] + v * (v - v_front) / (2 * math.sqrt(a_max * b))
    )  # [m]
    inter = np.where(lead, (s_star / np.maximum(gap, 0.1)) ** 2, 0.0)
    idm = a_max * (1 - (v / trait["desired_speed"]) ** 4 - inter)
    return _BINS[np.searchsorted(_EDGES, np.clip(idm, _BINS[0], _BINS[-1]), side="left")]


class _Reaction:
    """The human's reaction delay: each command executed ``reaction_delay`` late (rounded to whole
    decisions), the queue starting full of its first command, as the human's does (it was already
    driving before the episode)."""

    def __init__(self, reaction_delay: np.ndarray) -> None:
        self.delay = np.round(reaction_delay / DECISION).astype(int)  # (n,) [decisions]
        self.rows = np.arange(len(reaction_delay))
        self.queue: np.ndarray | None = None  # (D+1, n) the last commands, newest last

    def push(self, command: np.ndarray) -> None:
        """Queue this decision's command (n,) [m/s²]; the first fills the whole queue."""
        if self.queue is None:
            self.queue = np.repeat(command[None], int(self.delay.max()) + 1, 0)
        else:
            self.queue = np.concatenate([self.queue[1:], command[None]])

    def executed(self) -> np.ndarray:
        """(n,) [m/s²] the command of ``delay`` decisions ago."""
        assert self.queue is not None, "push a command first"
        return self.queue[len(self.queue) - 1 - self.delay, self.rows]


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
    trait = _traits(params, names)
    n = len(params)
    v_e = p["ego_speed"].copy()  # (n,) [m/s]
    v_a = v_e + p["speed_difference"]  # (n,) [m/s]
    v_floor = np.maximum(v_a - p["speed_drop"], 0.0)  # (n,) [m/s] where its braking stops
    x_e, x_a = np.zeros(n), np.full(n, -START_BEHIND)  # (n,) [m]
    steered = np.full(n, np.inf)  # (n,) [s] when it steers in
    human, margin = _Reaction(trait["reaction_delay"]), np.full(n, np.inf)
    per = round(DECISION / DT)
    for k in range(round((EPISODE + SLACK) / DT)):
        t = k * DT
        steered = np.where(np.isinf(steered) & (x_a - x_e >= p["cut_in_gap"]), t, steered)
        since = np.where(np.isfinite(steered), t - steered, -1.0)
        y = np.where(since >= 0, np.interp(since, LATERAL_T, LATERAL_Y), LANE_WIDTH)  # (n,) [m]
        if k % per == 0:  # a decision: IDM on the bumper gap, once the adversary is in the ego's lane
            gap = x_a - x_e - LENGTH
            command = _human_command(v_e, v_a, gap, (y < LANE_WIDTH / 2) & (gap > 0), trait)
            human.push(command)
        a_e = human.executed()  # (n,) [m/s²]
        braking = (since >= p["brake_delay"]) & (v_a > v_floor)
        a_a = np.where(braking, -p["deceleration"], 0.0)  # (n,) [m/s²]
        x_e, x_a = x_e + v_e * DT, x_a + v_a * DT
        v_e = np.maximum(v_e + a_e * DT, 0.0)
        v_a = np.maximum(np.maximum(v_a + a_a * DT, np.where(braking, v_floor, 0.0)), 0.0)
        since = np.where(np.isfinite(steered), t + DT - steered, -1.0)
        y = np.where(since >= 0, np.interp(since, LATERAL_T, LATERAL_Y), LANE_WIDTH)
        margin = np.where(y < WIDTH, np.minimum(margin, x_a - x_e - LENGTH), margin)
    return margin


def stalled_margin(params: np.ndarray, names: list[str]) -> np.ndarray:
    """(n,) ``stalled_car``'s margin [m]: the smallest bumper gap between the ego and the stalled car
    (negative: the ego runs into it).

    Three cars in one lane. The lead drives the ego's initial speed until its centre is
    ``reveal_distance`` behind the stalled car, then steers away along ``LATERAL_Y`` (mirrored),
    braking at ``LEAD_BRAKE``; the human follows it, with the traits and delay of
    :func:`adversarial_margin`, while the simulator's neighbour search still counts the lead in the
    ego's lane (its centre within half a lane plus ``NEIGHBOUR_MARGIN`` of the lane centre), and the
    stalled car after. No traffic, no MOBIL, no noise: the human's lane change from a standstill into
    the right lane's traffic, the family's rarer failure, is left to the proposal's defensive part.
    """
    from drivegpt.sim.batched.config import NEIGHBOUR_MARGIN  # here: it imports torch
    from drivegpt_envs.families.stalled_car import StalledCarEnv

    if len(params) == 0:
        return np.zeros(0)
    p = {n: params[:, names.index(n)] for n in StalledCarEnv.PARAMS}  # (n,) each
    trait = _traits(params, names)
    n = len(params)
    v_e, v_l = p["ego_speed"].copy(), p["ego_speed"].copy()  # (n,) [m/s] the ego, the lead
    x_s = p["stall_distance"]  # (n,) [m] the stalled car, from the ego's start
    x_e, x_l = np.zeros(n), np.minimum(p["lead_gap"], x_s - p["reveal_distance"] - 10.0)  # (n,) [m]
    steered = np.full(n, np.inf)  # (n,) [s] when the lead steers away
    human, margin = _Reaction(trait["reaction_delay"]), np.full(n, np.inf)
    per = round(DECISION / DT)
    for k in range(round((EPISODE + SLACK) / DT)):
        t = k * DT
        steered = np.where(np.isinf(steered) & (x_l >= x_s - p["reveal_distance"]), t, steered)
        since = np.where(np.isfinite(steered), t - steered, -1.0)
        y = np.where(since >= 0, LANE_WIDTH - np.interp(since, LATERAL_T, LATERAL_Y), 0.0)  # (n,) [m]
        if k % per == 0:  # a decision: the lead while it overlaps the lane, else the stalled car
            ahead = y <= LANE_WIDTH / 2 + NEIGHBOUR_MARGIN
            x_f, v_f = np.where(ahead, x_l, x_s), np.where(ahead, v_l, 0.0)  # (n,) [m], [m/s]
            command = _human_command(v_e, v_f, x_f - x_e - LENGTH, np.ones(n, bool), trait)
            human.push(command)
        a_e = human.executed()  # (n,) [m/s²]
        x_e, x_l = x_e + v_e * DT, x_l + v_l * DT
        v_e = np.maximum(v_e + a_e * DT, 0.0)
        v_l = np.where(np.isfinite(steered), np.maximum(v_l - LEAD_BRAKE * DT, 0.0), v_l)
        margin = np.minimum(margin, x_s - x_e - LENGTH)
    return margin


class Surrogate(NamedTuple):
    """A family's surrogate: its margin and the proposal's defaults, chosen on Monte Carlo failures."""

    margin: Callable[[np.ndarray, list[str]], np.ndarray]  #: (params (n, d), names) -> (n,) [m]
    sigma: float  #: [m] the surrogate's assumed error: the scale of Φ(−margin / σ)
    defensive: float  #: the nominal's weight δ (large where failures the margin misses carry variance)


SURROGATES: dict[str, Surrogate] = {
    "adversarial_vehicle": Surrogate(adversarial_margin, 1.5, 0.02),
    "stalled_car": Surrogate(stalled_margin, 1.0, 0.5),  # its lane changes from a standstill: δ
}


class SurrogateProposal:
    """``q(z) = p(z) (δ + (1 − δ) Φ(−margin(z) / σ) / Z)`` over a family's standard space (a Proposal)."""

    def __init__(
        self,
        dist: FamilyDistribution,
        defensive: float | None = None,
        sigma: float | None = None,
        z_draws: int | None = None,
        seed: int = 0,
    ) -> None:
        """``defensive`` and ``sigma``: None takes the family's own (``SURROGATES``)."""
        z_draws = Z_DRAWS if z_draws is None else z_draws
        if dist.family not in SURROGATES:
            raise UserError(
                f"{dist.family} has no physics surrogate; --surrogate works on: {', '.join(SURROGATES)}"
            )
        own = SURROGATES[dist.family]
        defensive = own.defensive if defensive is None else defensive
        sigma = own.sigma if sigma is None else sigma
        if not (0 < defensive < 1 and sigma > 0 and z_draws >= 1):
            raise ValueError(
                f"need 0 < defensive < 1, sigma > 0, z_draws >= 1: {defensive}, {sigma}, {z_draws}"
            )
        self.dist, self.defensive, self.sigma = dist, defensive, sigma
        self.margin_of = own.margin
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
