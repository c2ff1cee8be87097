"""Settings shared by every DriveGPT scenario: the observation and the three action interfaces."""

from __future__ import annotations

from typing import Any, Literal

ActionKind = Literal["accel", "meta", "continuous"]

#: every action kind, the default first.
ACTION_KINDS: tuple[str, ...] = ("accel", "meta", "continuous")

#: the action interface chosen wherever none is given: the ``accel`` driving language.
DEFAULT_ACTION: ActionKind = "accel"

#: Kinematics features per vehicle row, in this order. ``presence`` masks absent vehicles;
#: x, y, vx, vy are relative to the ego (its own row is absolute); cos_h, sin_h give the heading.
FEATURES: tuple[str, ...] = ("presence", "x", "y", "vx", "vy", "cos_h", "sin_h")

#: Vehicles per observation: the ego first, then the 9 nearest others (sorted by distance).
VEHICLES_COUNT = 10


def kinematics_observation(vehicles_count: int = VEHICLES_COUNT) -> dict[str, Any]:
    """highway-env ``Kinematics`` observation config used by all DriveGPT logs and policies."""
    return {
        "type": "Kinematics",
        "vehicles_count": vehicles_count,
        "features": list(FEATURES),
        "absolute": False,
        "normalize": True,
        "order": "sorted",
    }


#: policy steps per second for each action kind: 5 Hz ``accel`` tokens (a braking decision at least
#: every 0.2 s), 1 Hz meta-actions (highway-env's default), 5 Hz continuous control (steering needs a
#: faster loop than one command per second).
POLICY_FREQUENCY: dict[str, int] = {"accel": 5, "meta": 1, "continuous": 5}


#: discrete target speeds of the meta-action ego [m/s]: FASTER / SLOWER move one level. highway-env's
#: default (20, 25, 30) cannot slow below 20 m/s, so no driver could avoid a slower car ahead
#: (traffic drives 18-25 m/s); 0..30 m/s in 5 m/s steps lets it brake to a stop.
META_TARGET_SPEEDS: tuple[float, ...] = (0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0)


def action_config(kind: ActionKind) -> dict[str, Any]:
    """Env config entries that select an action interface (``accel``, ``meta`` or ``continuous``)."""
    if kind == "accel":  # see drivegpt_envs.actions: 14 acceleration bins × keep/left/right
        return {"action": {"type": "AccelLaneAction"}, "policy_frequency": POLICY_FREQUENCY[kind]}
    if kind == "meta":
        return {
            "action": {"type": "DiscreteMetaAction", "target_speeds": list(META_TARGET_SPEEDS)},
            "policy_frequency": POLICY_FREQUENCY[kind],
        }
    if kind == "continuous":
        return {
            "action": {
                "type": "ContinuousAction",
                "acceleration_range": [-5.0, 5.0],  # [m/s²] mapped from [-1, 1]
                "steering_range": [-0.7853981633974483, 0.7853981633974483],  # [rad] ±π/4
            },
            "policy_frequency": POLICY_FREQUENCY[kind],
        }
    raise ValueError(f"unknown action kind {kind!r}; valid: {', '.join(ACTION_KINDS)}")
