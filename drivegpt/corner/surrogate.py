"""Physics surrogates of scenario families: reduced-order models that say how close a scenario comes to
a crash without running the simulator.

A surrogate is a few lines of kinematics, vectorised over points of the naturalistic law, whose
*margin* [m] is the smallest bumper gap (negative: a crash). The importance-sampling proposal built
on one, :mod:`drivegpt.corner.surrogate_proposal`, leans on the points with little margin: this is
multi-fidelity importance sampling (Peherstorfer, Cui, Marzouk and Willcox, 2016): a cheap model shapes
the proposal, every simulator run is weighted by p / q, so the estimate stays unbiased however rough
the model is; a good model only makes it cheaper. A family may add a term over the scenario seed for
failures its margin does not see (``stalled_car``: the right lane's traffic as the seed spawns it), and a
wider scale where its margin is least sure (``stalled_car``: stops near the human's braking limit).

Families with a surrogate, each with its own σ, defensive weight δ and terms (``SURROGATES``):
``adversarial_vehicle`` (:func:`adversarial_margin`) and ``stalled_car`` (:func:`stalled_margin`,
:func:`hard_stop`, :func:`stalled_traffic`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from drivegpt.core.errors import UserError
from drivegpt.corner.naturalistic import TRAIT_PREFIX
from drivegpt.sim.personality import Personality, PersonalityRanges
from drivegpt_envs.actions import ACCEL_BINS

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
#: ``stalled_car``'s rarer failure: the human, creeping to a stop behind the stalled car, changes lanes
#: and is hit by the right lane's rearmost car. Its seeds: that car, slower than ``TRAFFIC_V_MAX``
#: [m/s], reaches the stalled car within ``STOP_WINDOW`` [s] after the human stops (both read off the
#: Monte Carlo failures)
STOP_WINDOW, TRAFFIC_V_MAX = (0.4, 2.5), 18.5
#: [m/s] the right lane has slowed this much behind the swerving lead, and the human creeps at this
#: speed, when it changes lanes in those failures (read from their traces on the batched simulator)
TRAFFIC_SLOWING, CREEP = 2.5, 1.5
#: [m/s²] in the window, the traffic term has full weight where the human's MOBIL would predict the
#: rearmost car to brake no harder than this behind it (its own limit is its comfortable deceleration,
#: 4 m/s²); ``OUTSIDE`` of it elsewhere in the window
MERGE_BRAKING, OUTSIDE = -2.0, 0.2
#: [m/s²] a stop that needs at least this deceleration is near the human's braking limit, where the
#: margin is least sure (its few failures at a margin of 1 to 3 m lie there: :func:`hard_stop`)
HARD_STOP = 5.5
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


def _human_idm(
    v: np.ndarray, v_front: np.ndarray, gap: np.ndarray, lead: np.ndarray, trait: dict[str, np.ndarray]
) -> np.ndarray:
    """(n,) [m/s²] the human's IDM (``drivegpt.sim.human.idm_acceleration``) at speed ``v`` [m/s], with
    its traits: behind a front car at ``v_front`` [m/s], bumper ``gap`` [m] away, where ``lead``, else
    on the free road."""
    fixed = Personality()
    a_max, b = fixed.max_acceleration, fixed.comfortable_deceleration  # [m/s²] (not sampled)
    s_star = trait["min_gap"] + np.maximum(
        0.0, v * trait["time_headway"] + v * (v - v_front) / (2 * math.sqrt(a_max * b))
    )  # [m]
    inter = np.where(lead, (s_star / np.maximum(gap, 0.1)) ** 2, 0.0)
    return a_max * (1 - (v / trait["desired_speed"]) ** 4 - inter)


def _human_command(
    v: np.ndarray, v_front: np.ndarray, gap: np.ndarray, lead: np.ndarray, trait: dict[str, np.ndarray]
) -> np.ndarray:
    """(n,) [m/s²] the human's command: its IDM (:func:`_human_idm`) quantised to the nearest
    acceleration bin."""
    idm = _human_idm(v, v_front, gap, lead, trait)
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
    stalled car after. No traffic, no MOBIL, no noise: the human's lane change from a near standstill into
    the right lane's traffic, the family's rarer failure, is :func:`stalled_traffic`'s.
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


def _stop_room(p: dict[str, np.ndarray], trait: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``stalled_car``'s human as its lead swerves away: its cruise ``v = min(ego_speed,
    desired_speed)`` [m/s] and the room it has to stop in [m], ``reveal_distance + min_gap +
    time_headway v − reaction_delay v`` (its following gap less the distance covered while it reacts;
    at least 1 m), (n,) each."""
    v = np.minimum(p["ego_speed"], trait["desired_speed"])  # (n,) [m/s]
    room = p["reveal_distance"] + trait["min_gap"] + (trait["time_headway"] - trait["reaction_delay"]) * v
    return v, np.maximum(room, 1.0)


def hard_stop(params: np.ndarray, names: list[str]) -> np.ndarray:
    """(n,) True where ``stalled_car``'s human needs at least ``HARD_STOP`` [m/s²] to stop behind the stalled
    car, ``v² / (2 room)`` [m/s²] (:func:`_stop_room`): near its braking limit, where
    :func:`stalled_margin` is least sure."""
    from drivegpt_envs.families.stalled_car import StalledCarEnv

    v, room = _stop_room({n: params[:, names.index(n)] for n in StalledCarEnv.PARAMS}, _traits(params, names))
    return v**2 / (2 * room) >= HARD_STOP


def rearmost_after_stop(params: np.ndarray, names: list[str], seeds: np.ndarray) -> np.ndarray:
    """(n, 3) in ``stalled_car``'s episodes of scenario ``seeds`` (n,), for the right lane's rearmost car:
    when it reaches the stalled car, at its spawn speed, after the human has stopped [s]; that speed
    [m/s]; and how hard the human's MOBIL predicts it to brake behind the human changing lanes [m/s²].
    The traffic is the seed's spawn alone (``family_reset``), no simulation.

    The human's stop, a rough clock whose window (``STOP_WINDOW``) was fitted to it: the lead swerves
    after ``(stall_distance − lead_gap − reveal_distance) / ego_speed`` (the lead's gap as the family
    caps it, 10 m short of its reveal point); the human then stops in ``2 room / v``
    (:func:`_stop_room`).

    The braking: the human changes lanes as the next car has passed it, creeping at ``CREEP``, with the
    rearmost car ``TRAFFIC_SLOWING`` below its spawn speed and their spawn spacing less two car lengths
    and the human's ``min_gap`` behind it; the human's IDM of that car, its own traits (MOBIL's safety
    criterion, ``drivegpt.sim.human``).
    """
    from drivegpt.sim.batched.families import family_config, family_reset  # here: it imports torch
    from drivegpt_envs.families.stalled_car import StalledCarEnv

    cols = [names.index(n) for n in StalledCarEnv.PARAMS]
    p = {n: params[:, names.index(n)] for n in StalledCarEnv.PARAMS}  # (n,) each
    trait = _traits(params, names)
    v, room = _stop_room(p, trait)  # (n,) [m/s], [m]
    lead = np.minimum(p["lead_gap"], p["stall_distance"] - p["reveal_distance"] - 10.0)  # (n,) [m]
    swerve = (p["stall_distance"] - lead - p["reveal_distance"]) / p["ego_speed"]  # (n,) [s]
    stop = swerve + 2 * room / v  # (n,) [s]
    config, out = family_config("stalled_car"), [np.zeros((0, 3))]
    for lo in range(0, len(params), 2**16):
        state, _ = family_reset("stalled_car", params[lo : lo + 2**16, cols], seeds[lo : lo + 2**16], config)
        x, u = state.x.numpy(), state.speed.numpy()  # (b, N): slot 1 the stalled car, 3 the rearmost car
        spacing = np.where(state.present[:, 4].numpy(), x[:, 4] - x[:, 3], np.inf)  # (b,) [m] to the next car
        out.append(np.stack([(x[:, 1] - x[:, 3]) / np.maximum(u[:, 3], 1e-6), u[:, 3], spacing], 1))
    car = np.concatenate(out)
    follower = np.maximum(car[:, 1] - TRAFFIC_SLOWING, 0.0)  # (n,) [m/s]
    gap = car[:, 2] - 2 * LENGTH - trait["min_gap"]  # (n,) [m] bumper to bumper
    braking = _human_idm(follower, np.full_like(follower, CREEP), gap, np.ones(len(gap), bool), trait)
    return np.stack([car[:, 0] - stop, car[:, 1], braking], 1)


def stalled_traffic(params: np.ndarray, names: list[str], seeds: np.ndarray) -> np.ndarray:
    """(n,) in [0, 1]: where ``stalled_car``'s scenario ``seeds`` (n,) bring the right lane's rearmost car,
    slower than ``TRAFFIC_V_MAX``, to the stalled car within ``STOP_WINDOW`` of the human's stop
    (:func:`rearmost_after_stop`), 1.0 if the human would predict it to brake no harder than
    ``MERGE_BRAKING`` behind it, else ``OUTSIDE``; 0.0 out of the window."""
    rel, speed, braking = rearmost_after_stop(params, names, seeds).T  # (n,) [s], [m/s], [m/s²]
    inside = (rel > STOP_WINDOW[0]) & (rel < STOP_WINDOW[1]) & (speed < TRAFFIC_V_MAX)
    return np.where(inside, np.where(braking >= MERGE_BRAKING, 1.0, OUTSIDE), 0.0)


class Surrogate(NamedTuple):
    """A family's surrogate: its margin and the proposal's defaults, chosen on Monte Carlo failures."""

    margin: Callable[[np.ndarray, list[str]], np.ndarray]  #: (params (n, d), names) -> (n,) [m]
    sigma: float  #: [m] the surrogate's assumed error: the scale of Φ(−margin / σ)
    defensive: float  #: the nominal's weight δ (large where failures the margin misses carry variance)
    #: (params, names, seeds) -> (n,) in [0, 1]: a term over the scenario seed, for failures the margin
    #: misses (None: none; the proposal then draws seeds as the estimator would)
    traffic: Callable[[np.ndarray, list[str], np.ndarray], np.ndarray] | None = None
    traffic_weight: float = 0.0  #: the traffic term's weight w beside Φ(−margin / σ)
    #: (params, names) -> (n,) bool: where the margin is least sure, and the proposal adds a wider scale
    #: ρ Φ(−margin / σ_wide) (None: nowhere)
    wide: Callable[[np.ndarray, list[str]], np.ndarray] | None = None
    wide_sigma: float = 0.0  #: [m] σ_wide
    wide_weight: float = 0.0  #: ρ


SURROGATES: dict[str, Surrogate] = {
    "adversarial_vehicle": Surrogate(adversarial_margin, 1.5, 0.02),
    # its lane changes as it creeps to a stop: the traffic term; its stops near the braking limit: a wide
    # scale; δ for the few failures outside both
    "stalled_car": Surrogate(stalled_margin, 0.5, 0.02, stalled_traffic, 0.08, hard_stop, 2.0, 0.8),
}
