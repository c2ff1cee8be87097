"""The scripted cars of the corner-case families on the batched simulator: their settings and their act.

Owns ``Script`` (per-slot script settings and trigger state, (B, N) each) and ``script_commands``
(``act`` of every vehicle with the scripts applied), the batched form of
``drivegpt_envs.families.vehicles``:

* a *stalled* car (``stalled_vehicle``: a plain ``Vehicle``) never acts: it stands still;
* a slow lead (``ScriptedVehicle`` without a trigger) cruises at its initial speed by IDM;
* a *scripted* car (``ScriptedVehicle``) drives IDM in its lane until its trigger fires — at a time
  (``TimedVehicle``) or when its offset to a watched car reaches a gap (``GapVehicle``) — then changes
  to its script lane, if any, and ``brake_delay`` later brakes at ``deceleration`` down to
  ``brake_to_speed`` and holds it; a *blind* one ignores the car ahead until its trigger fires; a gap
  trigger with a ``relative_speed`` sets the car's speed and cruise speed to the watched car's speed
  plus that as it fires (``GapVehicle.relative_speed``);
* a *wave* leader (``WaveLeader``) drives IDM, its acceleration capped by a speed tracker of the
  reference ``mean + amplitude·cos(2π t / period)`` (floored at 0), braking at most ``deceleration``.

Per-vehicle IDM settings (a platoon's time headway and jam distance) live in the state's ``Behavior``;
cars marked ``collides`` can also crash into each other (``traffic_collisions``), not only the ego.

Where the cars are placed, and which settings each family gives them, is ``scenes``' business.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import torch

from drivegpt.sim.batched.config import KP_A
from drivegpt.sim.batched.idm import IdmParams, KinTable, free_road
from drivegpt.sim.batched.simulate import traffic_commands
from drivegpt.sim.batched.state import BatchState


@dataclass(frozen=True)
class Script:
    """Per-slot script settings and trigger state, all (B, N); unscripted slots are inert."""

    stalled: torch.Tensor  # (B, N) bool: never acts (speed 0, no steering)
    collides: torch.Tensor  # (B, N) bool: also collides with the other such cars (``traffic_collisions``)
    scripted: torch.Tensor  # (B, N) bool: a ScriptedVehicle (speed floored at 0)
    blind: torch.Tensor  # (B, N) bool: ignores the car ahead until triggered
    trigger_time: torch.Tensor  # (B, N) [s] time trigger (inf: none)
    watched: torch.Tensor  # (B, N) int64 slot whose offset triggers (-1: none)
    trigger_gap: torch.Tensor  # (B, N) [m] offset x - x_watched that fires the trigger
    start_side: torch.Tensor  # (B, N) [] sign of the initial offset - trigger_gap
    relative_speed: torch.Tensor  # (B, N) [m/s] speed taken at the trigger: watched's + this (NaN: none)
    script_lane: torch.Tensor  # (B, N) int64 lane to change to when triggered (-1: none)
    brake_delay: torch.Tensor  # (B, N) [s] after the trigger (inf: never brakes)
    deceleration: torch.Tensor  # (B, N) [m/s²]
    brake_to_speed: torch.Tensor  # (B, N) [m/s]
    triggered_at: torch.Tensor  # (B, N) [s] clock when the trigger fired (NaN: not yet)
    wave_period: torch.Tensor  # (B, N) [s] a wave leader's speed period (inf: not a wave leader)
    wave_mean: torch.Tensor  # (B, N) [m/s] its reference speed's mean
    wave_amplitude: torch.Tensor  # (B, N) [m/s] and amplitude (the reference starts at the top)
    wave_deceleration: torch.Tensor  # (B, N) [m/s²] its strongest braking toward the reference

    @staticmethod
    def inert(present: torch.Tensor, x: torch.Tensor) -> Script:
        """No script in any slot: every setting at its "none" value (shapes and devices of ``present``
        (B, N) bool and ``x`` (B, N) float)."""
        false, zero = torch.zeros_like(present), torch.zeros_like(x)
        inf, nan, none = torch.full_like(x, torch.inf), torch.full_like(x, torch.nan), torch.full_like(x, -1)
        return Script(
            stalled=false, collides=false.clone(), scripted=false.clone(), blind=false.clone(),
            trigger_time=inf, watched=none.long(), trigger_gap=zero, start_side=zero.clone(),
            relative_speed=nan, script_lane=none.long(), brake_delay=inf.clone(), deceleration=zero.clone(),
            brake_to_speed=zero.clone(), triggered_at=nan.clone(), wave_period=inf.clone(),
            wave_mean=zero.clone(), wave_amplitude=zero.clone(), wave_deceleration=zero.clone(),
        )  # fmt: skip

    def select(self, index: torch.Tensor | slice | list[int]) -> Script:
        """The episodes ``index`` (along the batch axis)."""
        return Script(**{f.name: getattr(self, f.name)[index] for f in fields(self)})


def wave_reference(script: Script, clock: torch.Tensor) -> torch.Tensor:
    """``WaveLeader``'s reference speed (B, N) [m/s] at ``clock`` [s] (broadcastable to (B, N)):
    ``max(0, mean + amplitude·cos(2π clock / period))``; ``mean + amplitude`` where there is no wave."""
    phase = 2 * math.pi * clock / script.wave_period  # (B, N) [rad]
    return (script.wave_mean + script.wave_amplitude * torch.cos(phase)).clamp(min=0.0)


def script_commands(
    s: BatchState, script: Script, dt: float
) -> tuple[BatchState, Script, torch.Tensor, torch.Tensor]:
    """``act`` of every vehicle with the scripts applied: (state, script, accel (B, N), steering (B, N)).

    Triggers fire first (a lane change steers and follows IDM toward the new lane in the same act, a
    relative speed is taken before any car acts on it), then the IDM commands are overridden: blind
    cars see no car ahead, braking cars brake, wave leaders track their reference speed, stalled cars
    stand still."""
    clock = (s.steps.to(s.dtype) * dt)[:, None]  # (B, 1) [s] ScriptedVehicle.clock at this act
    waiting = script.scripted & torch.isnan(script.triggered_at) & ~s.crashed & s.present
    watched = script.watched.clamp(min=0)  # (B, N) slot
    side = s.x - s.x.gather(1, watched) - script.trigger_gap  # (B, N) [m]
    fire = waiting & (
        (clock >= script.trigger_time - 1e-9) | ((script.watched >= 0) & (side * script.start_side <= 0))
    )
    triggered_at = torch.where(fire, clock.expand_as(s.x), script.triggered_at)
    target_lane = torch.where(fire & (script.script_lane >= 0), script.script_lane, s.target_lane)
    matched = fire & ~torch.isnan(script.relative_speed)  # (B, N) take the watched car's speed + offset
    matched_speed = (s.speed.gather(1, watched) + script.relative_speed).clamp(min=0.0)  # (B, N) [m/s]
    s = s.replace(
        target_lane=target_lane,
        speed=torch.where(matched, matched_speed, s.speed),
        target_speed=torch.where(matched, matched_speed, s.target_speed),
    )
    s, accel, steering = traffic_commands(s)  # (B, N) each
    triggered = ~torch.isnan(triggered_at)
    acting = script.scripted & ~s.crashed
    free = free_road(KinTable(s).all, IdmParams.of(s.behavior)).view_as(accel)  # (B, N) [m/s²]
    acc_max = s.behavior.acc_max
    free = torch.maximum(torch.minimum(free, acc_max), -acc_max)
    accel = torch.where(acting & script.blind & ~triggered, free, accel)
    braking = acting & triggered & (clock - triggered_at >= script.brake_delay)
    fast = s.speed > script.brake_to_speed + 0.5  # (B, N)
    brake = torch.where(fast, -script.deceleration, KP_A * (script.brake_to_speed - s.speed))  # [m/s²]
    accel = torch.where(braking, torch.minimum(accel, brake), accel)
    hold = braking & ~fast  # reached: IDM cruises at brake_to_speed from the next act on
    s = s.replace(target_speed=torch.where(hold, script.brake_to_speed, s.target_speed))
    wave = acting & torch.isfinite(script.wave_period)  # (B, N) WaveLeader._speed_profile
    track = KP_A * (wave_reference(script, clock) - s.speed)  # (B, N) [m/s²]
    track = torch.minimum(torch.maximum(track, -script.wave_deceleration), acc_max)
    accel = torch.where(wave, torch.minimum(accel, track), accel)
    accel = torch.where(script.stalled, 0.0, accel)
    steering = torch.where(script.stalled, 0.0, steering)
    return s, replace(script, triggered_at=triggered_at), accel, steering
