"""Junction rules of the simulated human: speed for curves and limits, gap acceptance at crossings.

On a road with junctions (highway-env's intersection and roundabout, and the families built on them)
the human driver of :mod:`drivegpt.sim.human` also

* keeps to the lane's speed limit and slows for curves ahead: the speed it wants at a point ``d`` m
  ahead on its route is ``sqrt(A_LATERAL * R)`` in a curve of radius ``R``, and it starts braking
  comfortably early enough to get there at that speed;
* yields by gap acceptance: it predicts where its route will take it (the next ``PATH_AHEAD`` m) and
  where every other vehicle goes over the next ``HORIZON`` s (along its route, at its speed or
  speeding up to its cruise speed).
  Where another vehicle's path comes within ``CONFLICT_DISTANCE`` of its own, the two share a
  conflict zone. It enters only if it clears the zone at least ``margin`` seconds before the other
  arrives, or arrives at least ``margin`` seconds after the other has left; ``margin`` is the
  driver's own time headway. Otherwise it stops short of the zone (IDM against a standing car at the
  zone's edge). Once it cannot stop before the zone any more it drives on and clears it.
* stops for a wreck (a crashed car, sliding to rest) that lies or will lie within ``WRECK_CLEARANCE``
  of its path, however hard it must brake.

Vehicles already on the ego's path (a lead, a follower) are left to the car-following model. All of
it reads the simulator's state, like the rest of the human; it draws no random numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

#: the driver's IDM: (speed [m/s], desired speed [m/s], bumper gap [m] or None, closing speed [m/s]) -> [m/s²]
Idm = Callable[[float, float, float | None, float], float]

A_LATERAL = 3.5  # [m/s²] lateral acceleration a driver accepts in a curve
PATH_AHEAD = 60.0  # [m] how far along its route the driver looks for conflicts
PATH_STEP = 1.0  # [m] spacing of the route samples
HORIZON = 6.0  # [s] how far ahead other vehicles are predicted
TIME_STEP = 0.2  # [s] spacing of the predictions
CONFLICT_DISTANCE = 3.0  # [m] centre-to-centre distance at which two paths share a conflict zone
#: [m] the same for a wreck, which may lie across the road: its half length, the ego's half width, 1 m
WRECK_CLEARANCE = 4.5
MAX_BRAKING = 8.0  # [m/s²] hardest braking (the last accel bin): beyond it the driver is committed
OTHERS_ACCELERATION = 2.0  # [m/s²] how fast another car below its cruise speed is assumed to speed up
MIN_GO_SPEED = 2.0  # [m/s] a stopped driver that decides to go is assumed to reach this at once
ALIGNED = math.cos(math.radians(35.0))  # a vehicle heading within 35° of the route drives along it


def uses_junction_rules(env: Any) -> bool:
    """Whether the human drives ``env`` with junction rules: the env's ``junction_rules`` config entry,
    or by default on highway-env's intersection and roundabout envs and their subclasses."""
    from highway_env.envs.intersection_env import IntersectionEnv
    from highway_env.envs.roundabout_env import RoundaboutEnv

    base = env.unwrapped
    return bool(base.config.get("junction_rules", isinstance(base, IntersectionEnv | RoundaboutEnv)))


def along_route(vehicle: Any, distances: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positions (N, 2) [m], headings (N,) [rad] and route segments (N,) (0: the vehicle's lane, 1: the
    next, ...) ``distances`` (N,) [m] ahead of ``vehicle``'s centre along its route (its lane, then
    the route's next segments; past the last, straight on).
    A route segment with no lane id is resolved as highway-env's ``next_lane`` does: the same lane id
    where the segment has as many lanes, else the lane nearest the end of the previous one."""
    network, (prev_from, prev_to, prev_id) = vehicle.road.network, vehicle.lane_index
    lanes = [vehicle.lane]
    for _from, _to, _id in getattr(vehicle, "route", None) or []:  # continuous control: no route
        if (_from, _to) == (prev_from, prev_to) or _from != prev_to or len(lanes) > 4:
            continue
        options = network.graph[_from][_to]
        if _id is None and len(options) == len(network.graph[prev_from][prev_to]):
            _id = prev_id
        elif _id is None:  # the lane closest to where the last one ends
            end = lanes[-1].position(lanes[-1].length, 0.0)
            _id = min(range(len(options)), key=lambda k: options[k].distance(end))
        lanes.append(options[_id])
        prev_from, prev_to, prev_id = _from, _to, _id
    ends = np.cumsum([lane.length for lane in lanes])  # (L,) [m] from the start of the vehicle's lane
    x = vehicle.lane.local_coordinates(vehicle.position)[0] + np.asarray(distances, float)  # (N,)
    which = np.minimum(np.searchsorted(ends, x, side="right"), len(lanes) - 1)  # (N,)
    local = x - np.concatenate([[0.0], ends])[which]  # (N,) [m] along each sample's lane
    positions = np.asarray([lanes[k].position(s, 0.0) for k, s in zip(which, local, strict=True)], float)
    headings = np.asarray([lanes[k].heading_at(s) for k, s in zip(which, local, strict=True)], float)
    return positions, np.unwrap(headings), which


class RoutePath(NamedTuple):
    """Samples of the ego's route ahead, every ``PATH_STEP`` up to ``PATH_AHEAD``."""

    d: np.ndarray  #: (N,) [m] distance from the ego's centre
    positions: np.ndarray  #: (N, 2) [m]
    headings: np.ndarray  #: (N,) [rad], unwrapped
    segments: np.ndarray  #: (N,) which lane of the route each sample is on


def route_path(ego: Any) -> RoutePath:
    """The ego's route ahead (see :class:`RoutePath`)."""
    d = np.arange(0.0, PATH_AHEAD + PATH_STEP / 2, PATH_STEP)  # (N,)
    return RoutePath(d, *along_route(ego, d))


def curve_speed(path: RoutePath, braking: float) -> float:
    """Highest speed [m/s] from which the driver can slow to every curve's ``sqrt(A_LATERAL * R)``
    ahead, braking at ``braking`` [m/s²]; inf on a straight route. The curvature is the heading change
    between neighbouring samples of one lane (the step where one lane meets the next is no curve)."""
    curvature = np.abs(np.diff(path.headings)) / np.diff(path.d)  # (N-1,) [1/m]
    bends = (curvature > 1e-3) & (np.diff(path.segments) == 0)
    if not bends.any():
        return math.inf
    v_curve = np.sqrt(A_LATERAL / curvature[bends])  # [m/s]
    return float(np.min(np.sqrt(v_curve**2 + 2.0 * braking * path.d[:-1][bends])))


def predicted_positions(vehicle: Any, times: np.ndarray) -> np.ndarray:
    """(T, 2) positions [m] of ``vehicle`` at ``times`` (T,) [s], along its route: at its speed, or,
    if it drives slower than the speed it aims for (``target_speed``), speeding up to it at
    ``OTHERS_ACCELERATION`` (a car that waits may go: the driver does not bet on it waiting)."""
    t = np.asarray(times, float)
    if vehicle.crashed:  # a wreck slides on: highway-env brakes it at -speed [m/s²], so v(t) = v e^-t
        return vehicle.position + np.outer(1.0 - np.exp(-t), vehicle.velocity)
    if vehicle.lane_index is None or vehicle.lane is None:
        return vehicle.position + np.outer(t, vehicle.velocity)
    v0, a = vehicle.speed, OTHERS_ACCELERATION  # [m/s], [m/s²]
    v1 = max(float(getattr(vehicle, "target_speed", v0)), v0)  # [m/s]
    ramp = (v1 - v0) / a  # [s] to reach it
    s = np.where(t < ramp, v0 * t + 0.5 * a * t**2, v0 * ramp + 0.5 * a * ramp**2 + v1 * (t - ramp))  # [m]
    return along_route(vehicle, s)[0]


def travel_time(distance: float, speed: float, acceleration: float, top_speed: float) -> float:
    """Seconds to cover ``distance`` [m] from ``speed`` [m/s], accelerating at ``acceleration`` [m/s²]
    up to ``top_speed`` [m/s]."""
    if distance <= 0.0:
        return 0.0
    v0 = max(speed, MIN_GO_SPEED)
    top = max(top_speed, v0)
    ramp = (top**2 - v0**2) / (2.0 * acceleration)  # [m] to reach the top speed
    if distance <= ramp:
        return (math.sqrt(v0**2 + 2.0 * acceleration * distance) - v0) / acceleration
    return (top - v0) / acceleration + (distance - ramp) / top


class GapAcceptance:
    """One driver's view of the junction ahead: the cars it follows along its route and where it stops."""

    def __init__(self, margin: float, acceleration: float, length: float = 5.0) -> None:
        self.margin = margin  # [s] time the driver keeps between itself and a crossing car
        self.drive_off = acceleration  # [m/s²] how briskly it would drive off
        self.length = length  # [m] its car's length

    def acceleration(
        self, ego: Any, others: list[Any], desired_speed: float, braking: float, idm: Idm
    ) -> float:
        """The lowest acceleration [m/s²] the junction asks for: the driver's IDM ``idm(speed, desired
        speed, gap or None, closing speed)`` at the speed the road allows, behind every obstacle."""
        path = route_path(ego)
        limit = getattr(ego.lane, "speed_limit", None) or math.inf  # [m/s]
        v0 = min(desired_speed, limit, curve_speed(path, braking))  # [m/s]
        acc = idm(ego.speed, v0, None, 0.0)
        for gap, speed in self.obstacles(ego, others, path, v0):
            acc = min(acc, idm(ego.speed, v0, gap, ego.speed - speed))
        return acc

    def obstacles(
        self, ego: Any, others: list[Any], path: RoutePath, top_speed: float
    ) -> list[tuple[float, float]]:
        """(bumper gap [m], speed [m/s]) of what the driver must stay behind: vehicles driving along its
        route ahead (at their speed) and, where it yields, the edge of the conflict zone (standing)."""
        d, positions, headings, _ = path
        times = np.arange(0.0, HORIZON + TIME_STEP / 2, TIME_STEP)  # (T,)
        front = self.length / 2  # [m] the ego's centre to its front bumper
        out: list[tuple[float, float]] = []
        stop = math.inf
        for other in others:
            if np.linalg.norm(other.position - ego.position) > PATH_AHEAD + HORIZON * other.speed:
                continue
            future = predicted_positions(other, times)  # (T, 2)
            reach = WRECK_CLEARANCE if other.crashed else CONFLICT_DISTANCE  # [m]
            near = np.linalg.norm(future[:, None, :] - positions[None, :, :], axis=-1) < reach
            if not near.any():
                continue  # its path never meets the ego's
            if near[0].any():  # on the ego's path now: a lead when it drives along it
                n = int(np.argmax(near[0]))
                if math.cos(other.heading - headings[n]) > ALIGNED and d[n] > 0.0:
                    out.append((d[n] - (self.length + other.LENGTH) / 2, float(other.speed)))
                    continue
            t_in, n_in = np.nonzero(near)  # (K,) the shared (time, place) pairs
            zone_in, zone_out = d[n_in.min()], d[n_in.max()]  # [m] the zone along the ego's route
            if other.crashed:  # a wreck in the way: stop short of it, however hard that is
                out.append((max(zone_in - reach - front, 0.0), 0.0))
                continue
            if zone_in < self.length:
                continue  # the zone is where the ego already is: yielding cannot help
            other_in = times[t_in.min()]  # [s]
            other_out = times[t_in.max()] + other.LENGTH / max(other.speed, 0.1)  # [s]
            ego_in = travel_time(zone_in - reach - front, ego.speed, self.drive_off, top_speed)
            ego_out = travel_time(zone_out + reach + front, ego.speed, self.drive_off, top_speed)
            if ego_out + self.margin <= other_in or other_out + self.margin <= ego_in:
                continue  # an accepted gap: through before it, or after it
            stop = min(stop, zone_in - reach - front)
        # Yield only while it can still stop short of the zone; past that point it clears the zone.
        if math.isfinite(stop) and stop >= ego.speed**2 / (2.0 * MAX_BRAKING):
            out.append((stop, 0.0))
        return out
