"""Scripted vehicles: deterministic IDM cars that run one manoeuvre when their trigger fires.

A :class:`ScriptedVehicle` drives IDM in its lane (no MOBIL) until :meth:`ScriptedVehicle.trigger` is
true; then it changes to ``script_lane`` (if given, without looking) and, ``brake_delay`` seconds later,
brakes at ``deceleration`` down to ``brake_to_speed`` and holds it. Subclasses only define the trigger.
Every input is a plain attribute (vehicles, numbers, lane indices), so a deep copy of the road copies
the script with it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from highway_env.road.road import LaneIndex, Road
from highway_env.vehicle.behavior import IDMVehicle
from highway_env.vehicle.kinematics import Vehicle


class ScriptedVehicle(IDMVehicle):
    """IDM car with a one-shot script: lane change to ``script_lane``, then braking."""

    def __init__(
        self,
        road: Road,
        position: Any,
        speed: float,  # [m/s]
        lane_index: LaneIndex,
        script_lane: LaneIndex | None = None,
        brake_delay: float = math.inf,  # [s] after the trigger
        deceleration: float = 0.0,  # [m/s²]
        brake_to_speed: float = 0.0,  # [m/s]
    ):
        lane = road.network.get_lane(lane_index)
        super().__init__(
            road,
            position,
            heading=lane.heading_at(lane.local_coordinates(position)[0]),
            speed=speed,
            target_lane_index=lane_index,
            target_speed=speed,
            enable_lane_change=False,
        )
        self.script_lane = script_lane
        self.brake_delay = brake_delay
        self.deceleration = deceleration
        self.brake_to_speed = brake_to_speed
        self.clock = 0.0  # [s] since the episode start
        self.triggered_at: float | None = None  # [s]

    #: ignore the car ahead until the script fires (a lead that "does not see" a stalled car)
    blind: bool = False

    def trigger(self) -> bool:
        """Whether the script starts now (called each simulation frame until it fires)."""
        return False

    def acceleration(self, ego_vehicle: Any, front_vehicle: Any = None, rear_vehicle: Any = None) -> float:
        if self.blind and self.triggered_at is None and ego_vehicle is self:
            front_vehicle = None
        return super().acceleration(ego_vehicle, front_vehicle, rear_vehicle)

    def act(self, action: Any = None) -> None:
        if self.crashed:
            return
        if self.triggered_at is None and self.trigger():
            self.triggered_at = self.clock
            if self.script_lane is not None:
                self.target_lane_index = self.script_lane
        super().act()
        if self.triggered_at is not None and self.clock - self.triggered_at >= self.brake_delay:
            if self.speed > self.brake_to_speed + 0.5:
                scripted = -self.deceleration  # (IDM keeps its cruise speed: only a car ahead brakes it more)
            else:
                self.target_speed = self.brake_to_speed  # reached: hold it
                scripted = self.KP_A * (self.brake_to_speed - self.speed)
            self.action["acceleration"] = min(self.action["acceleration"], scripted)
        self.action["acceleration"] = self._speed_profile(self.action["acceleration"])

    def _speed_profile(self, acceleration: float) -> float:
        """Hook for a time-varying speed command (see :class:`WaveLeader`)."""
        return acceleration

    def step(self, dt: float) -> None:
        super().step(dt)
        self.clock += dt
        if self.speed < 0.0:  # braking stops the car, it never reverses
            self.speed = 0.0


class TimedVehicle(ScriptedVehicle):
    """Runs its script at ``trigger_time`` [s]."""

    trigger_time: float = math.inf

    def trigger(self) -> bool:
        return self.clock >= self.trigger_time - 1e-9


class GapVehicle(ScriptedVehicle):
    """Runs its script when its longitudinal offset ``self.x - watched.x`` [m] reaches ``trigger_gap``
    from whichever side it started (negative: behind ``watched``)."""

    watched: Vehicle | None = None
    trigger_gap: float = 0.0  # [m]
    start_side: float = 0.0  # sign of the first offset - trigger_gap
    #: if set, the speed relative to ``watched`` the car takes when the script fires [m/s]
    #: (so a cut-in happens at a known gap *and* closing speed, whatever the ego did before)
    relative_speed: float | None = None

    def trigger(self) -> bool:
        if self.watched is None:
            return False
        side = self.position[0] - self.watched.position[0] - self.trigger_gap
        if self.start_side == 0.0:
            self.start_side = 1.0 if side >= 0 else -1.0
        fired = side * self.start_side <= 0.0
        if fired and self.relative_speed is not None:
            self.speed = self.target_speed = max(0.0, self.watched.speed + self.relative_speed)
        return fired


class WaveLeader(ScriptedVehicle):
    """Lead of a stop-and-go wave: speed ``mean + amplitude·cos(2π t / period)`` [m/s] (it starts at the
    top), never below 0, braking at most ``max_deceleration``."""

    mean_speed: float = 15.0  # [m/s]
    amplitude: float = 5.0  # [m/s]
    period: float = 8.0  # [s]
    max_deceleration: float = 6.0  # [m/s²]

    def _speed_profile(self, acceleration: float) -> float:
        reference = max(0.0, self.mean_speed + self.amplitude * np.cos(2 * np.pi * self.clock / self.period))
        command = float(np.clip(self.KP_A * (reference - self.speed), -self.max_deceleration, self.ACC_MAX))
        return min(acceleration, command)


def stalled_vehicle(road: Road, lane_index: LaneIndex, x: float) -> Vehicle:
    """A car standing still at longitudinal position ``x`` [m] of a lane (it never acts)."""
    lane = road.network.get_lane(lane_index)
    return Vehicle(road, lane.position(x, 0.0), lane.heading_at(x), speed=0.0)


class ForwardIDMVehicle(IDMVehicle):
    """highway-env's IDM car that brakes to a stop but never reverses (a stock IDM car that brakes hard
    at a junction, or yields there, backs up at negative speed). Its IDM constants are highway-env's
    defaults, pinned here: highway-env's intersection-v0, made by ``gym.make`` alone, overwrites them on
    ``IDMVehicle`` for every later env of the process."""

    COMFORT_ACC_MAX = 3.0  # [m/s²]
    COMFORT_ACC_MIN = -5.0  # [m/s²]
    DISTANCE_WANTED = 10.0  # [m] jam distance, front to front

    def step(self, dt: float) -> None:
        super().step(dt)
        self.speed = max(self.speed, 0.0)


class IntersectionIDMVehicle(IDMVehicle):
    """highway-env's IDM car, for its stock ``intersection-v0``: that env's reset overwrites the IDM
    constants (jam distance, comfortable accelerations) on the class of its other vehicles, which is
    ``IDMVehicle`` itself unless configured; ``drivegpt.sim.rollout.make_env`` configures this subclass
    instead, so every other env of the process keeps highway-env's IDM."""
