"""The simulated human driver of ``drivegpt.sim.human`` on the batched simulator, for all episodes at once.

Owns ``BatchedHuman``: ``HumanDriver`` on the ``accel`` interface (IDM up to emergency braking,
quantised to the nearest acceleration bin, and MOBIL as the lane intent), with a ``Personality`` per
episode, the reaction-delay queue and the action noise, as (B,) tensors. Only the ``accel``
interface is ported (``meta`` and ``continuous`` are refused with a ``UserError``).

What matches ``HumanDriver`` (``tests/test_batched_human.py``):

* the personality of episode ``i`` comes from ``np.random.default_rng([seed_i, 0x48554D])``, exactly
  as ``HumanDriver.reset`` draws it, so the same seed gives the same driver in both simulators and an
  episode never depends on the batch size B;
* the noise: ``HumanDriver`` draws one normal per step from that same generator; here the whole
  sequence is drawn at ``reset`` (``NOISE_STEPS`` per episode, repeated beyond), so the executed
  tokens equal ``HumanDriver``'s on the same states; likewise its AR(1) form (``noise_correlation``)
  and its moments of inattention (``Lapses``: the same schedule per seed);
* the clean decision (``decision``): the same IDM, neighbour search, MOBIL rules (side lanes left
  first, ties to the left, the 80 m lane-end rule, the gap and safety criteria) and lane-change timer.

The IDM of the human is ``drivegpt.sim.human.idm_acceleration`` (bumper-to-bumper gap, exponent 4,
the personality's parameters): :func:`human_idm` is its elementwise torch form, checked against it
value for value by the tests. It differs from the traffic's IDM in ``idm.py`` (centre gap,
randomised exponent), so only the neighbour search (``road.neighbours``) and the vehicle table
(``idm.KinTable``) are shared with the traffic.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

import numpy as np
import torch

from drivegpt.core.errors import UserError
from drivegpt.sim.batched.config import LENGTH, ROAD_LENGTH, SimConfig
from drivegpt.sim.batched.idm import Kin, KinTable
from drivegpt.sim.batched.road import neighbours, reachable
from drivegpt.sim.batched.state import BatchState
from drivegpt.sim.human import HumanDriver
from drivegpt.sim.personality import LAPSE_STEPS, Lapses, Personality, PersonalityRanges
from drivegpt_envs.actions import ACCEL_BINS, KEEP, LANE_INTENTS, LEFT, RIGHT

SEED_STREAM = 0x48554D  #: ``HumanDriver.reset``'s second seed word ("HUM"): the human's own generator
NOISE_STEPS = 256  #: [steps] noise draws per episode (30 s at 5 Hz is 150); the sequence repeats beyond
LANE_END_MARGIN = 80.0  #: [m] ``HumanDriver._mobil`` never enters a lane ending closer than this
SUPPORTED_ACTIONS = ("accel",)


class UnsupportedHumanInterface(UserError):
    """The batched human was asked to drive an action interface it has no port for."""


def human_idm(
    speed: torch.Tensor,
    desired_speed: torch.Tensor,
    gap: torch.Tensor,
    closing: torch.Tensor,
    has_front: torch.Tensor,
    p: Personalities,
) -> torch.Tensor:
    """``drivegpt.sim.human.idm_acceleration``, elementwise [m/s²] (all inputs broadcastable).

    ``gap`` is bumper to bumper [m], ``closing`` the speed minus the lead's along the heading [m/s];
    where ``has_front`` is False the free-road value is returned (gap and closing ignored).
    """
    free = 1.0 - (speed.clamp(min=0.0) / desired_speed.clamp(min=1e-3)) ** 4
    ab = 2.0 * torch.sqrt(p.max_acceleration * p.comfortable_deceleration)  # [m/s²]
    s_star = p.min_gap + (speed * p.time_headway + speed * closing / ab).clamp(min=0.0)  # [m]
    interaction = (s_star / gap.clamp(min=0.1)) ** 2  # []
    return p.max_acceleration * torch.where(has_front, free - interaction, free)


@dataclass(frozen=True)
class Personalities:
    """One ``Personality`` per episode, field by field, each (B,) [units of ``Personality``]."""

    desired_speed: torch.Tensor  # (B,) [m/s]
    time_headway: torch.Tensor  # (B,) [s]
    min_gap: torch.Tensor  # (B,) [m]
    politeness: torch.Tensor  # (B,) []
    lane_change_threshold: torch.Tensor  # (B,) [m/s²]
    reaction_delay: torch.Tensor  # (B,) [s]
    action_noise: torch.Tensor  # (B,) []
    max_acceleration: torch.Tensor  # (B,) [m/s²]
    comfortable_deceleration: torch.Tensor  # (B,) [m/s²]

    @staticmethod
    def stack(people: Sequence[Personality], like: torch.Tensor) -> Personalities:
        names = [f.name for f in fields(Personalities)]
        assert set(names) == set(Personality.model_fields), "Personalities must mirror Personality"
        table = torch.tensor([[getattr(p, n) for n in names] for p in people], dtype=like.dtype)
        return Personalities(*table.to(like.device).unbind(1))

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> Personalities:
        return Personalities(*(fn(getattr(self, f.name)) for f in fields(self)))

    def unsqueeze(self) -> Personalities:
        """(B, 1) columns, to broadcast against (B, K) candidate lanes."""
        return self.map(lambda t: t.unsqueeze(1))


class BatchedHuman:
    """``HumanDriver`` (``accel`` interface) for B episodes of the batched simulator at once.

    ``reset(seeds, state)`` starts one driver per episode; ``act(state)`` returns the executed tokens
    (delayed, noisy) and keeps the clean decision in ``decision``; ``clone``/``select``/``put`` copy,
    slice and splice the driver's state along the batch axis like ``BatchState``.
    """

    LANE_CHANGE_PERIOD = HumanDriver.LANE_CHANGE_PERIOD  # [s]
    ACCEL_NOISE_SCALE = HumanDriver.ACCEL_NOISE_SCALE  # [m/s²]

    def __init__(
        self,
        config: SimConfig,
        ranges: PersonalityRanges | None = None,
        personality: Personality | None = None,
        noise_correlation: float = 0.0,
        lapses: Lapses | None = None,
    ) -> None:
        if not 0.0 <= noise_correlation < 1.0:
            raise ValueError(f"noise_correlation must be in [0, 1), got {noise_correlation}")
        self.noise_correlation = noise_correlation  # AR(1) coefficient of the noise, as HumanDriver's
        self.lapses = lapses or Lapses()  # moments of inattention, as HumanDriver's
        if config.action not in SUPPORTED_ACTIONS:
            raise UnsupportedHumanInterface(
                f"the batched human drives the {', '.join(SUPPORTED_ACTIONS)} interface only, not "
                f"{config.action!r}; use --action accel, or --sim highway-env for meta and continuous"
            )
        self.config = config
        self.ranges = ranges or PersonalityRanges()
        self.fixed_personality = personality
        self.dt = 1.0 / config.policy_frequency  # [s] one policy step, as HumanDriver computes it
        self.decision = torch.zeros(0, dtype=torch.long)  # (B,) clean decision token of the last act

    # -- episode state ---------------------------------------------------------------------
    def reset(
        self, seeds: Sequence[int], state: BatchState, people: Sequence[Personality] | None = None
    ) -> None:
        """One driver per episode: personality and noise from a generator seeded by that seed only.

        ``people`` (one per episode) replaces the drawn personalities; the generator still draws them
        first, so the noise of a seed is the same whichever personality drives."""
        seeds = [int(s) for s in seeds]
        if len(seeds) != state.batch_size:
            raise ValueError(f"reset needs one seed per episode: {len(seeds)} seeds for B={state.batch_size}")
        if people is not None and len(people) != len(seeds):
            raise ValueError(f"reset needs one personality per episode: {len(people)} for B={len(seeds)}")
        drivers, noise, delays = [], np.zeros((len(seeds), NOISE_STEPS)), []
        for i, seed in enumerate(seeds):  # reset only: one generator per episode, as HumanDriver.reset
            rng = np.random.default_rng([seed, SEED_STREAM])
            person = self.fixed_personality or self.ranges.sample(rng)
            person = people[i] if people is not None else person
            drivers.append(person)
            noise[i] = rng.standard_normal(NOISE_STEPS)
            delays.append(round(person.reaction_delay * self.config.policy_frequency))  # [steps]
        dev, dt = state.device, state.dtype
        self.p = Personalities.stack(drivers, state.x)
        self.noise = torch.as_tensor(noise, dtype=dt, device=dev)  # (B, T) standard normal draws
        self.delay = torch.tensor(delays, dtype=torch.long, device=dev)  # (B,) [steps]
        length = int(self.delay.max()) + 1 if seeds else 1
        self.history = torch.zeros(len(seeds), length, dtype=dt, device=dev)  # (B, D+1) [m/s²] newest last
        self.primed = torch.zeros(len(seeds), dtype=torch.bool, device=dev)  # (B,) history filled
        self.t = torch.zeros(len(seeds), dtype=torch.long, device=dev)  # (B,) acts done
        self.target_lane = state.lane[:, 0].clone()  # (B,) the lane the driver is heading for
        self.since_lane_change = torch.zeros(len(seeds), dtype=dt, device=dev)  # (B,) [s]
        self.decision = torch.zeros(len(seeds), dtype=torch.long, device=dev)
        self.noise_state = torch.zeros(len(seeds), dtype=dt, device=dev)  # (B,) AR(1) noise of the last act
        lapsed = (
            np.stack([self.lapses.schedule(s, self.dt) for s in seeds])
            if seeds
            else np.zeros((0, LAPSE_STEPS))
        )
        self.lapsed = torch.as_tensor(lapsed, dtype=torch.bool, device=dev)  # (B, LAPSE_STEPS)

    _TENSORS = (
        "noise",
        "delay",
        "history",
        "primed",
        "t",
        "target_lane",
        "since_lane_change",
        "decision",
        "noise_state",
        "lapsed",
    )

    def _with(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> BatchedHuman:
        """A shallow copy with ``fn`` applied to every per-episode tensor."""
        out = BatchedHuman.__new__(BatchedHuman)
        out.__dict__.update(self.__dict__)
        for name in self._TENSORS:
            setattr(out, name, fn(getattr(self, name)))
        out.p = self.p.map(fn)
        return out

    def clone(self) -> BatchedHuman:
        """An independent copy of every internal tensor."""
        return self._with(lambda t: t.clone())

    def select(self, index: torch.Tensor | slice | list[int]) -> BatchedHuman:
        """The drivers of episodes ``index`` (along the batch axis), as an independent copy."""
        return self._with(lambda t: t[index].clone())

    def put(self, index: torch.Tensor | list[int], other: BatchedHuman) -> BatchedHuman:
        """A copy whose drivers ``index`` (K,) are replaced by the K drivers of ``other`` (auto-reset)."""
        width = max(self.history.shape[1], other.history.shape[1])
        mine, theirs = self._padded(width), other._padded(width)

        def put(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            out = a.clone()
            out[index] = b
            return out

        out = mine._with(lambda t: t)
        for name in self._TENSORS:
            setattr(out, name, put(getattr(mine, name), getattr(theirs, name)))
        out.p = Personalities(
            *(put(getattr(mine.p, f.name), getattr(theirs.p, f.name)) for f in fields(Personalities))
        )
        return out

    def _padded(self, width: int) -> BatchedHuman:
        """The same drivers with a history ``width`` long (older entries prepended; never read)."""
        pad = width - self.history.shape[1]
        if pad == 0:
            return self
        out = self._with(lambda t: t)
        out.history = torch.cat([self.history[:, :1].expand(-1, pad), self.history], dim=1)
        return out

    # -- driving -----------------------------------------------------------------------------
    def act(self, state: BatchState) -> torch.Tensor:
        """Decide for every episode; return the executed tokens (B,) int64 (delayed, noisy)."""
        if state.batch_size != self.t.shape[0]:
            raise ValueError(
                f"act got B={state.batch_size} episodes; the drivers were reset for {self.t.shape[0]}"
            )
        acc, intent = self._decide(state)
        self.decision = tokens(acc, intent)
        std = self.p.action_noise * self.ACCEL_NOISE_SCALE  # (B,) [m/s²]
        z = self.noise.gather(1, (self.t % self.noise.shape[1]).unsqueeze(1)).squeeze(1)  # (B,)
        rho = self.noise_correlation
        if rho == 0.0:
            noisy = acc + (0.0 + std * z)  # (B,) [m/s²] rng.normal(0, std) = 0 + std * z
        else:  # HumanDriver's AR(1) noise: e_t = rho e_{t-1} + sqrt(1 - rho²) z_t, e_0 = z_0
            ar = rho * self.noise_state + math.sqrt(1 - rho * rho) * z  # (B,)
            self.noise_state = torch.where(self.primed, ar, z)
            noisy = acc + std * self.noise_state  # (B,) [m/s²]
        if self.lapses.rate > 0:  # inattentive: the foot stays where it was (the newest history entry)
            lapsed = self.lapsed.gather(1, (self.t % LAPSE_STEPS).unsqueeze(1)).squeeze(1)  # (B,)
            noisy = torch.where(lapsed & self.primed, self.history[:, -1], noisy)
        shifted = torch.cat([self.history[:, 1:], noisy.unsqueeze(1)], dim=1)
        self.history = torch.where(self.primed.unsqueeze(1), shifted, noisy.unsqueeze(1).expand_as(shifted))
        self.primed = torch.ones_like(self.primed)
        self.t = self.t + 1
        at = (self.history.shape[1] - 1 - self.delay).unsqueeze(1)  # (B, 1) the decision `delay` steps ago
        return tokens(self.history.gather(1, at).squeeze(1), intent)

    def _decide(self, s: BatchState) -> tuple[torch.Tensor, torch.Tensor]:
        """``HumanDriver._decide`` (accel): (IDM acceleration (B,) [m/s²], lane intent (B,) 0/1/2)."""
        bsz, n, k = s.batch_size, s.slots, s.config.lanes_count
        p = self.p
        lane, speed = s.lane[:, 0], s.speed[:, 0]  # (B,)
        self.since_lane_change = self.since_lane_change + self.dt
        self.target_lane = torch.where(lane == self.target_lane, lane, self.target_lane)
        nb = neighbours(s.x, s.y, s.present, k)
        table = KinTable(s)
        ego_row = torch.arange(bsz, device=s.device) * n  # (B,) flat index of each ego
        rows = ego_row.unsqueeze(1).expand(bsz, 3)  # (B, 3)
        lanes = torch.stack([lane, lane - 1, lane + 1], dim=1)  # (B, 3) own, left, right
        front_i, rear_i = nb.around(rows, lanes)  # (B, 3) flat indices or NONE
        front, rear, me = table.at(front_i), table.at(rear_i), table.at(ego_row.unsqueeze(1))
        pc = p.unsqueeze()
        a_lane = self._acc(me, _part(front, 0, 1), pc).squeeze(1)  # (B,) IDM in the own lane
        # -- MOBIL, every LANE_CHANGE_PERIOD, only while not changing lanes ------------------
        consult = (self.since_lane_change >= self.LANE_CHANGE_PERIOD) & (lane == self.target_lane)
        consult &= speed.abs() >= 1.0
        side = lanes[:, 1:]  # (B, 2) left, right
        new_front, new_rear = _part(front, 1), _part(rear, 1)  # (B, 2)
        old_front, old_rear = _part(front, 0, 1), _part(rear, 0, 1)  # (B, 1)
        ok = (side >= 0) & (side < k) & reachable(s.x[:, :1], s.y[:, :1], side)
        ok &= ROAD_LENGTH - s.x[:, :1] >= LANE_END_MARGIN
        room = LENGTH + pc.min_gap  # (B, 1) [m] centre distance needed to either neighbour
        ok &= ~new_front.exists | (new_front.x - me.x >= room)
        ok &= ~new_rear.exists | (me.x - new_rear.x >= room)
        new_rear_after = self._acc(new_rear, me, pc)  # (B, 2) [m/s²]
        ok &= new_rear_after >= -pc.comfortable_deceleration  # safety criterion
        gain = (
            self._acc(me, new_front, pc)
            - a_lane.unsqueeze(1)
            + pc.politeness
            * (
                new_rear_after
                - self._acc(new_rear, new_front, pc)
                + self._acc(old_rear, old_front, pc)
                - self._acc(old_rear, me, pc)
            )
        )  # (B, 2) [m/s²]
        threshold = p.lane_change_threshold
        left = consult & ok[:, 0] & (gain[:, 0] > threshold)
        bar = torch.where(left, gain[:, 0], threshold)  # the best gain so far, left lane first
        right = consult & ok[:, 1] & (gain[:, 1] > bar)
        change = left | right  # (B,)
        choice = torch.where(right, side[:, 1], side[:, 0])  # (B,) valid where change
        self.target_lane = torch.where(change, choice, self.target_lane)
        self.since_lane_change = torch.where(change, torch.zeros_like(speed), self.since_lane_change)
        # -- longitudinal: own lane and, while changing, the target lane too ----------------
        acc = a_lane
        changing = self.target_lane != lane
        if bool(changing.any()):
            target_front = table.at(nb.front(ego_row, self.target_lane.clamp(0, k - 1)).unsqueeze(1))
            a_target = self._acc(me, target_front, pc).squeeze(1)
            acc = torch.where(changing, torch.minimum(acc, a_target), acc)
        intent = torch.full_like(lane, KEEP)
        go = change & (acc > -p.comfortable_deceleration / 2)
        intent = torch.where(go, torch.where(choice < lane, LEFT, RIGHT), intent)
        return acc, intent

    @staticmethod
    def _acc(vehicle: Kin, front: Kin, p: Personalities) -> torch.Tensor:
        """``HumanDriver._acc``: IDM of ``vehicle`` behind ``front`` with the driver's personality; 0
        where no vehicle."""
        closing = (vehicle.speed * vehicle.cos_h - front.speed * front.cos_h) * vehicle.cos_h + (
            vehicle.speed * vehicle.sin_h - front.speed * front.sin_h
        ) * vehicle.sin_h  # [m/s] along the vehicle's heading
        gap = front.x - vehicle.x - LENGTH  # [m] bumper to bumper on a straight lane
        acc = human_idm(vehicle.speed, p.desired_speed, gap, closing, front.exists, p)
        return torch.where(vehicle.exists, acc, torch.zeros_like(acc))


def _part(kin: Kin, lo: int, hi: int | None = None) -> Kin:
    """Columns ``lo:hi`` of (B, 3) neighbour kinematics."""
    return kin.map(lambda t: t[:, lo:hi])


_EDGES = [(a + b) / 2 for a, b in zip(ACCEL_BINS[:-1], ACCEL_BINS[1:], strict=True)]  # [m/s²]


def tokens(acc: torch.Tensor, intent: torch.Tensor) -> torch.Tensor:
    """``encode_accel_lane``: nearest acceleration bin (ties to the lower one) × 3 + intent, (B,) int64."""
    edges = torch.tensor(_EDGES, dtype=acc.dtype, device=acc.device)
    return torch.searchsorted(edges, acc.contiguous(), right=False) * len(LANE_INTENTS) + intent


__all__ = ["NOISE_STEPS", "SEED_STREAM", "BatchedHuman", "Personalities", "human_idm", "tokens"]
