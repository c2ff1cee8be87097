"""A simulated driver's personality: its IDM/MOBIL parameters, the ranges drivers are drawn from, and
its moments of inattention.

:class:`Personality` is one driver; :class:`PersonalityRanges` the uniform law every driver of a run is
drawn from (in a fixed order, so the same generator state gives the same driver); :class:`Lapses` the
opt-in schedule of inattention, drawn from a generator of its own so that it changes no other draw.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pydantic import Field, field_validator

from drivegpt.core.config import FrozenConfig

Range = tuple[float, float]
LAPSE_STREAM = 0x4C4150  #: the lapse schedule's second seed word ("LAP"): a generator of its own
LAPSE_STEPS = 256  #: [steps] decisions per lapse schedule (30 s at 5 Hz is 150); it repeats beyond


class Personality(FrozenConfig):
    """One driver's parameters (sampled once per driver from :class:`PersonalityRanges`)."""

    desired_speed: float = Field(27.0, gt=0)
    """IDM desired speed v0 [m/s]."""
    time_headway: float = Field(1.5, gt=0)
    """IDM safe time headway T [s]."""
    min_gap: float = Field(3.0, ge=0)
    """IDM jam distance s0, bumper to bumper [m]."""
    politeness: float = Field(0.2, ge=0, le=1)
    """MOBIL politeness p: weight of the followers' acceleration changes []."""
    lane_change_threshold: float = Field(0.2, ge=0)
    """MOBIL threshold Δa_th: acceleration gain needed to change lane [m/s²]."""
    reaction_delay: float = Field(0.0, ge=0)
    """Decisions are executed this late [s], rounded to whole policy steps (accel and continuous:
    0.2 s steps; meta: 1 s steps)."""
    action_noise: float = Field(0.0, ge=0, le=1)
    """Meta: probability of a random longitudinal action; continuous: std of normalised noise;
    accel: std of the acceleration noise in units of ``ACCEL_NOISE_SCALE`` (5 m/s²) []."""
    max_acceleration: float = Field(3.0, gt=0)
    """IDM comfortable acceleration a [m/s²]."""
    comfortable_deceleration: float = Field(4.0, gt=0)
    """IDM comfortable deceleration b [m/s²]; also MOBIL's safe braking limit for the new follower."""


class PersonalityRanges(FrozenConfig):
    """Uniform ranges ``[lo, hi]`` from which each driver's personality is sampled."""

    desired_speed: Range = (24.0, 30.0)
    """[m/s]"""
    time_headway: Range = (1.2, 2.0)
    """[s]"""
    min_gap: Range = (2.0, 5.0)
    """[m]"""
    politeness: Range = (0.0, 0.5)
    """[]"""
    lane_change_threshold: Range = (0.1, 0.4)
    """[m/s²]"""
    reaction_delay: Range = (0.2, 0.6)
    """[s] perception-reaction delay of an attentive driver in traffic."""
    action_noise: Range = (0.0, 0.05)
    """[] (see Personality.action_noise)"""

    @field_validator("*")
    @classmethod
    def _a_range(cls, value: Range) -> Range:
        lo, hi = value
        if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
            raise ValueError(f"a range [lo, hi] of finite numbers with lo <= hi, got [{lo}, {hi}]")
        return value

    def sample(self, rng: np.random.Generator) -> Personality:
        """Draw one personality; the draw order is fixed so the same generator state gives the same driver."""
        values: dict[str, Any] = {}
        for name in type(self).model_fields:
            lo, hi = getattr(self, name)
            values[name] = float(rng.uniform(lo, hi))
        return Personality(**values)


class Lapses(FrozenConfig):
    """Moments of inattention (``accel``): for a few seconds the driver's foot stays where it was.

    During a lapse the acceleration the driver executes is the one it executed just before, whatever
    happens ahead; its clean decision (the imitation label) is unaffected. Noise injection of the DART
    kind aimed at the states imitation fails in: closing on a slower car unnoticed, then braking hard.
    The schedule of episode ``seed`` comes from its own generator, so it is the same on both simulators
    and adding lapses changes no other draw."""

    rate: float = Field(0.0, ge=0)
    """[1/s] how often a lapse starts while the driver is attentive (0: never)."""
    seconds: Range = (1.0, 2.5)
    """[s] how long a lapse lasts, uniform in this range (rounded to whole decisions, at least one)."""

    @field_validator("seconds")
    @classmethod
    def _positive_range(cls, seconds: Range) -> Range:
        if not 0 < seconds[0] <= seconds[1]:
            raise ValueError(f"lapses.seconds must be [lo, hi] with 0 < lo <= hi, got {list(seconds)}")
        return seconds

    def schedule(self, seed: int, dt: float) -> np.ndarray:
        """(LAPSE_STEPS,) bool: which decisions of episode ``seed``, ``dt`` [s] apart, fall in a lapse."""
        lo, hi = self.seconds
        out = np.zeros(LAPSE_STEPS, bool)
        if self.rate == 0:
            return out
        rng = np.random.default_rng([int(seed), LAPSE_STREAM])
        start, length = rng.random(LAPSE_STEPS), rng.uniform(lo, hi, LAPSE_STEPS)  # (T,), (T,) [s]
        p_start = 1.0 - math.exp(-self.rate * dt)  # a Poisson process of starts, per decision
        t = 0
        while t < LAPSE_STEPS:
            if start[t] < p_start:
                steps = max(1, round(length[t] / dt))
                out[t : t + steps] = True
                t += steps
            else:
                t += 1
        return out
