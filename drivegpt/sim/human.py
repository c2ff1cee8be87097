"""The simulated human driver: IDM (longitudinal) + MOBIL (lane change) with a personality.

The human drives the ego vehicle through the env's *own* action space, so its logs can be imitated
token for token:

* ``DiscreteMetaAction``: the IDM acceleration gives a speed the driver wants one policy step ahead;
  it is mapped to FASTER / SLOWER / IDLE against the ego's discrete target speeds, and a MOBIL
  lane change to LANE_LEFT / LANE_RIGHT.
* ``AccelLaneAction`` (``accel``, the default): the IDM acceleration quantised to the nearest bin,
  braking down to -8 m/s² when IDM asks for it (emergency braking, not just the comfortable
  deceleration), and the MOBIL lane change as the lane intent.
* ``ContinuousAction``: the IDM acceleration [m/s²] and a lateral controller's steering angle [rad]
  toward the MOBIL target lane, normalised to the env's [-1, 1] ranges.

Reaction delay queues each decision for ``reaction_delay`` seconds (rounded to policy steps); action
noise perturbs it, and (``accel``, opt-in) moments of inattention (``Lapses``) hold it.
Everything random comes from generators seeded at ``reset`` (the driver's own, and one for the lapse
schedule): same seed and personality give the same episode, exactly.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import gymnasium as gym
import numpy as np
from highway_env import utils
from highway_env.envs.common.action import ContinuousAction, DiscreteMetaAction
from highway_env.vehicle.behavior import IDMVehicle

from drivegpt.sim.geometry import bumper_gap, closing_speed
from drivegpt.sim.junction import GapAcceptance, uses_junction_rules
from drivegpt.sim.personality import LAPSE_STEPS, Lapses, Personality, PersonalityRanges
from drivegpt_envs.actions import (
    ACCEL_BINS,
    KEEP,
    LEFT,
    NEUTRAL_TOKEN,
    RIGHT,
    AccelLaneAction,
    encode_accel_lane,
)

LANE_LEFT, IDLE, LANE_RIGHT, FASTER, SLOWER = 0, 1, 2, 3, 4
META_ACTIONS = ("LANE_LEFT", "IDLE", "LANE_RIGHT", "FASTER", "SLOWER")


def idm_acceleration(
    speed: float, desired_speed: float, gap: float | None, closing_speed: float, p: Personality
) -> float:
    """Intelligent Driver Model acceleration [m/s²].

    ``gap`` is the bumper-to-bumper distance to the lead [m] (None: free road) and ``closing_speed``
    the ego speed minus the lead speed along the lane [m/s].
    a = a_max [1 - (v/v0)^4 - (s*/s)^2],  s* = s0 + max(0, v T + v Δv / (2 sqrt(a_max b))).
    """
    free = 1.0 - (max(speed, 0.0) / max(desired_speed, 1e-3)) ** 4
    if gap is None:
        return p.max_acceleration * free
    ab = 2.0 * np.sqrt(p.max_acceleration * p.comfortable_deceleration)
    s_star = p.min_gap + max(0.0, speed * p.time_headway + speed * closing_speed / ab)
    return float(p.max_acceleration * (free - (s_star / max(gap, 0.1)) ** 2))


class HumanDriver:
    """IDM + MOBIL driver acting through the env's action space. Needs the env (privileged state)."""

    LANE_CHANGE_PERIOD = 1.0  # [s] MOBIL is consulted at most this often
    ACCEL_NOISE_SCALE = 5.0  # [m/s²] accel: action_noise 1 is a noise std of this
    LATERAL_TAU = 1.0  # [s] lateral offset → lateral speed
    HEADING_TAU = 0.4  # [s] heading error → heading rate

    def __init__(
        self,
        personality: Personality | None = None,
        ranges: PersonalityRanges | None = None,
        noise_correlation: float = 0.0,
        lapses: Lapses | None = None,
    ):
        if not 0.0 <= noise_correlation < 1.0:
            raise ValueError(f"noise_correlation must be in [0, 1), got {noise_correlation}")
        self.fixed_personality = personality
        self.ranges = ranges or PersonalityRanges()
        self.noise_correlation = noise_correlation  # accel: AR(1) coefficient of the noise, per decision
        self.lapses = lapses or Lapses()  # accel: moments of inattention
        self.personality: Personality = personality or Personality()
        self.env: Any = None
        self.rng = np.random.default_rng(0)
        self.queue: deque[Any] = deque()

    # -- DrivePolicy interface -------------------------------------------------------------
    def reset(self, seed: int, env: gym.Env | None = None) -> None:
        """Start an episode: seed the driver's randomness and (if not fixed) sample its personality."""
        if env is None:
            raise ValueError("HumanDriver needs the env at reset: it reads the simulator state")
        self.env = env.unwrapped
        self.rng = np.random.default_rng([int(seed), 0x48554D])  # "HUM": independent of env rng
        if self.fixed_personality is None:
            self.personality = self.ranges.sample(self.rng)
        action_type = self.env.action_type
        self.continuous = isinstance(action_type, ContinuousAction)
        self.accel = isinstance(action_type, AccelLaneAction)
        if not (self.continuous or self.accel or isinstance(action_type, DiscreteMetaAction)):
            raise ValueError(
                "HumanDriver drives AccelLaneAction, DiscreteMetaAction or ContinuousAction envs only"
            )
        self.target_lane = self.env.vehicle.lane_index
        self.since_lane_change = 0.0  # [s]
        p = self.personality  # at junctions: the time headway is also the gap it keeps to crossing cars
        rules = uses_junction_rules(env)
        self.junction = GapAcceptance(p.time_headway, p.max_acceleration) if rules else None
        delay = round(self.personality.reaction_delay * self.env.config["policy_frequency"])  # [steps]
        # what the delay's first steps execute: accel, placeholder accelerations [m/s²] that the first
        # decision replaces; continuous, a new array each (no two actions, nor the infos that hold
        # them, share an object); meta, IDLE
        self.queue = deque(
            0.0 if self.accel else np.zeros(2, np.float32) if self.continuous else IDLE for _ in range(delay)
        )
        self.primed = False
        self.noise_state = 0.0  # accel with noise_correlation > 0: the AR(1) noise of the last decision
        self.lapsed = self.lapses.schedule(seed, 1.0 / self.env.config["policy_frequency"])  # (T,) bool
        self.t = 0  # decisions made
        self.last_acc = 0.0  # [m/s²] accel: the newest acceleration in the queue

    def act(self, observation: Any = None) -> Any:
        """Decide now, execute ``reaction_delay`` steps later, with action noise.

        ``self.decision`` keeps what the driver decided from the current state before delay and
        noise: the label imitation learns from (DART-style: the logs hold noisy, delayed driving
        — recoveries included — labelled with the clean decision).
        """
        self.decision = self._decide()
        if self.accel:  # the acceleration is delayed; the lane intent (a self-paced manoeuvre) is not
            std = self.personality.action_noise * self.ACCEL_NOISE_SCALE  # [m/s²]
            rho = self.noise_correlation
            if rho == 0.0:
                acc = self.acc + self.rng.normal(0.0, std)
            else:  # e_t = rho e_{t-1} + sqrt(1 - rho²) z_t: unit variance, correlated over ~1/(1-rho) steps
                z = self.rng.standard_normal()
                self.noise_state = rho * self.noise_state + math.sqrt(1 - rho * rho) * z if self.primed else z
                acc = self.acc + std * self.noise_state
            if self.primed and self.lapsed[self.t % LAPSE_STEPS]:  # inattentive: the foot stays
                acc = self.last_acc
            if not self.primed:  # the driver was already driving before the episode began
                self.queue, self.primed = deque([acc] * len(self.queue)), True
            self.queue.append(acc)
            self.last_acc, self.t = acc, self.t + 1  # [m/s²] the newest acceleration in the queue
            return self._token(self.queue.popleft(), self.intent)
        self.queue.append(self._noisy(self.decision))
        return self.queue.popleft()

    def _noisy(self, action: Any) -> Any:
        p = self.personality
        if self.continuous:
            if p.action_noise > 0:
                action = np.clip(action + self.rng.normal(0.0, p.action_noise, size=2), -1.0, 1.0)
            return np.array(action, np.float32)  # a copy: the action never is the decision's label
        if self.rng.random() < p.action_noise:
            return int(self.rng.choice([IDLE, FASTER, SLOWER]))
        return action

    # -- decision ----------------------------------------------------------------------------
    def _lead_acceleration(self, vehicle: Any, lane_index: Any) -> float:
        front, _ = self.env.road.neighbour_vehicles(vehicle, lane_index)
        return self._acc(vehicle, front)

    def _acc(self, vehicle: Any, front: Any) -> float:
        """IDM acceleration of ``vehicle`` (with this driver's parameters) behind ``front``."""
        if vehicle is None:
            return 0.0
        if front is None:
            return idm_acceleration(
                vehicle.speed, self.personality.desired_speed, None, 0.0, self.personality
            )
        gap, closing = bumper_gap(vehicle, front), closing_speed(vehicle, front)
        return idm_acceleration(vehicle.speed, self.personality.desired_speed, gap, closing, self.personality)

    def _mobil(self) -> Any:
        """Best lane to change to according to MOBIL, or None to stay."""
        ego, road, p = self.env.vehicle, self.env.road, self.personality
        if ego.lane_index != self.target_lane or abs(ego.speed) < 1.0:
            return None
        old_front, old_rear = road.neighbour_vehicles(ego, ego.lane_index)
        a_self = self._acc(ego, old_front)
        best, best_gain = None, p.lane_change_threshold
        for lane_index in road.network.side_lanes(ego.lane_index):
            lane = road.network.get_lane(lane_index)
            if not lane.is_reachable_from(ego.position) or lane.forbidden:
                continue
            s = lane.local_coordinates(ego.position)[0]
            if lane.length - s < 80.0:  # [m] lane ends soon (merge ramp): never enter it
                continue
            new_front, new_rear = road.neighbour_vehicles(ego, lane_index)
            if new_front is not None and ego.lane_distance_to(new_front) < (ego.LENGTH + p.min_gap):
                continue
            if new_rear is not None and new_rear.lane_distance_to(ego) < (ego.LENGTH + p.min_gap):
                continue
            new_rear_after = self._acc(new_rear, ego)
            if new_rear_after < -p.comfortable_deceleration:  # safety criterion
                continue
            gain = (
                self._acc(ego, new_front)
                - a_self
                + p.politeness
                * (
                    new_rear_after
                    - self._acc(new_rear, new_front)
                    + self._acc(old_rear, old_front)
                    - self._acc(old_rear, ego)
                )
            )
            if gain > best_gain:
                best, best_gain = lane_index, gain
        return best

    def _decide(self) -> Any:
        ego = self.env.vehicle
        dt = 1.0 / self.env.config["policy_frequency"]  # [s]
        self.since_lane_change += dt
        if ego.lane_index == self.target_lane or self.target_lane is None or self.junction is not None:
            self.target_lane = ego.lane_index
        lane_change = None
        if self.since_lane_change >= self.LANE_CHANGE_PERIOD and self.junction is None:
            lane_change = self._mobil()
            if lane_change is not None:
                self.target_lane = lane_change
                self.since_lane_change = 0.0
        # Longitudinal: IDM in the current lane and, while changing, in the target lane too.
        acc = self._lead_acceleration(ego, ego.lane_index)
        if self.target_lane != ego.lane_index:
            acc = min(acc, self._lead_acceleration(ego, self.target_lane))
        if self.junction is not None:  # speed limits, curves and yielding (no lane changes at junctions)
            p = self.personality
            others = [v for v in self.env.road.vehicles if v is not ego]
            acc = min(
                acc,
                self.junction.acceleration(
                    ego,
                    others,
                    p.desired_speed,
                    p.comfortable_deceleration,
                    lambda v, v0, gap, closing: idm_acceleration(v, v0, gap, closing, p),
                ),
            )
        if self.continuous:
            return self._continuous(acc)
        if self.accel:  # IDM as it is (emergency braking included), MOBIL as the lane intent
            self.acc, self.intent = acc, KEEP  # [m/s²], lane intent
            if lane_change is not None and acc > -self.personality.comfortable_deceleration / 2:
                self.intent = LEFT if lane_change[2] < ego.lane_index[2] else RIGHT
            return self._token(acc, self.intent)
        return self._meta(acc, lane_change, dt)

    @staticmethod
    def _token(acc: float, intent: int) -> int:
        """The nearest acceleration bin (braking down to -8 m/s²) joined with the lane intent."""
        return int(encode_accel_lane(float(np.clip(acc, ACCEL_BINS[0], ACCEL_BINS[-1])), intent))

    def _meta(self, acc: float, lane_change: Any, dt: float) -> int:
        ego, p = self.env.vehicle, self.personality
        if lane_change is not None and acc > -p.comfortable_deceleration / 2:
            return LANE_LEFT if lane_change[2] < ego.lane_index[2] else LANE_RIGHT
        # Target-speed changes with hysteresis, one discrete level per step: step down when holding
        # the current target would need braking (IDM < -1 m/s² there), step up when the next level
        # is comfortably free (IDM > +0.3 m/s² there) and not above the desired speed (+2.5 m/s).
        fronts = [
            self.env.road.neighbour_vehicles(ego, lane)[0] for lane in {ego.lane_index, self.target_lane}
        ]

        def comfortable(speed: float, margin: float) -> bool:
            return all(self._acc_at(ego, front, speed) >= margin for front in fronts)

        speeds = np.asarray(ego.target_speeds)
        above = speeds[speeds > ego.target_speed + 1e-6]
        action = IDLE
        if not comfortable(float(ego.target_speed), -1.0):
            action = SLOWER
        elif above.size and above[0] <= p.desired_speed + 2.5 and comfortable(float(above[0]), 0.3):
            action = FASTER
        if acc < -p.comfortable_deceleration:  # closing in fast right now: brake whatever the level
            action = SLOWER
        return action

    def _acc_at(self, ego: Any, front: Any, speed: float) -> float:
        """IDM acceleration the ego would have at ``speed`` [m/s] behind ``front``."""
        p = self.personality
        if front is None:
            return idm_acceleration(speed, p.desired_speed + 2.5, None, 0.0, p)
        gap = bumper_gap(ego, front)
        lead_speed = float(np.dot(front.velocity, ego.direction))
        return idm_acceleration(speed, p.desired_speed + 2.5, gap, speed - lead_speed, p)

    def _continuous(self, acc: float) -> np.ndarray:
        ego = self.env.vehicle
        lane = self.env.road.network.get_lane(self.target_lane)
        s, lateral = lane.local_coordinates(ego.position)
        speed = max(ego.speed, 1.0)
        # Lateral offset → lateral speed → heading reference → heading rate → steering (bicycle model).
        lateral_speed = -lateral / self.LATERAL_TAU  # [m/s]
        heading_ref = lane.heading_at(s + speed * 0.2) + np.clip(
            np.arcsin(np.clip(lateral_speed / speed, -1, 1)), -np.pi / 4, np.pi / 4
        )
        heading_rate = utils.wrap_to_pi(heading_ref - ego.heading) / self.HEADING_TAU  # [rad/s]
        slip = np.arcsin(np.clip(ego.LENGTH / 2 / speed * heading_rate, -1, 1))
        steering = float(np.arctan(2 * np.tan(slip)))  # [rad]
        a_lo, a_hi = self.env.action_type.acceleration_range
        s_lo, s_hi = self.env.action_type.steering_range
        action = np.array(
            [utils.lmap(acc, [a_lo, a_hi], [-1, 1]), utils.lmap(steering, [s_lo, s_hi], [-1, 1])]
        )
        return np.clip(action, -1.0, 1.0).astype(np.float32)


class StockIDMDriver:
    """highway-env's own ``IDMVehicle`` put at the wheel of the ego (the comparison baseline).

    At reset the ego is replaced by an IDMVehicle at the same state; the env's action is then ignored
    by the vehicle, so ``act`` returns a neutral action that is not meaningful to imitate.
    """

    def reset(self, seed: int, env: gym.Env | None = None) -> None:
        if env is None:
            raise ValueError("StockIDMDriver needs the env at reset")
        base = env.unwrapped
        ego = base.vehicle
        idm = IDMVehicle(
            base.road,
            ego.position,
            ego.heading,
            ego.speed,
            target_lane_index=ego.lane_index,
            target_speed=30.0,
        )  # [m/s] lane speed limit
        base.road.vehicles[base.road.vehicles.index(ego)] = idm
        base.controlled_vehicles[0] = idm
        self.continuous = isinstance(base.action_type, ContinuousAction)
        self.neutral = NEUTRAL_TOKEN if isinstance(base.action_type, AccelLaneAction) else IDLE

    def act(self, observation: Any = None) -> Any:
        return np.zeros(2, np.float32) if self.continuous else self.neutral
