"""Fitting the naturalistic model: each family's marginals from the project's human-driving logs.

Where the logs show a parameter it is fitted from them (moments of per-step statistics of the
highway episodes); where they do not, the marginal is a documented prior (:data:`PRIORS`, its
reason stored as ``source`` in the JSON). Which one each parameter uses, per family:

* ``ego_speed`` (every family but stop-and-go), ``high_speed`` (stop-and-go),
  ``oncoming_speed`` (oncoming overtake): fitted, normal, ego speed at every logged step
  (oncoming traffic is assumed to drive like the ego's).
* ``lead_gap`` (stalled car), ``gap`` (hard-braking lead), ``ego_gap`` (stop-and-go),
  ``slow_distance`` (oncoming overtake): fitted, log-normal, centre-to-centre distance to the nearest
  car ahead in the ego's lane (from the Kinematics observation).
* ``speed_difference`` (side-swipe: side car minus ego): fitted, normal, speed of cars in an adjacent
  lane within 20 m of the ego minus the ego's; ``speed_difference`` (cut-in: ego minus cutting car):
  the same statistic negated.
* ``traffic_spacing`` (slower lead): fitted, log-normal, distance between consecutive observed cars
  of one lane.
* every other parameter: a prior, listed in :data:`PRIORS` with its reason (``source`` in the JSON).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from drivegpt.core.errors import UserError
from drivegpt.corner.naturalistic import Kind, Marginal, NaturalisticModel, box_of

__all__ = ["FITTED", "PRIORS", "fit_naturalistic", "log_statistics"]

LANE_HALF_WIDTH = 2.0  #: [m] a car within this lateral distance of the ego is in the ego's lane
X_SCALE, VX_SCALE = 200.0, 80.0  #: [m], [m/s] Kinematics normalisation (highway-env: 5 and 2 x 40 m/s)
HIGHWAY_ENVS = ("drivegpt/Highway-v0", "drivegpt/HighwayDense-v0")  #: episodes the statistics read

#: family -> parameter -> (kind, centre, sigma, reason). ``centre`` is the mean (normal) or the median
#: (lognormal; ``sigma`` is then the std of ``log x``). Chosen, not fitted: the logs never show them.
PRIORS: dict[str, dict[str, tuple[Kind, float, float, str]]] = {
    "stalled_car": {
        "stall_distance": ("normal", 185.0, 60.0, "broad: where a stalled car sits is unrelated to traffic"),
        "reveal_distance": ("lognormal", 60.0, 0.35, "leads mostly swerve early; late reveals are rare"),
    },
    "hard_braking_lead": {
        "brake_time": ("normal", 3.5, 1.5, "broad: when the lead brakes is unrelated to the ego"),
        "deceleration": ("lognormal", 2.5, 0.4, "braking above ~0.6 g is rare in ordinary driving"),
    },
    "slower_lead": {
        "lead_speed": ("normal", 13.0, 4.0, "slow vehicles mostly crawl; stopped ones are rare"),
        "distance": ("lognormal", 90.0, 0.3, "a slow car is usually seen from far away"),
    },
    "cut_in": {
        "cut_in_gap": ("lognormal", 25.0, 0.35, "cutting drivers mostly leave about a second of headway"),
    },
    "side_swipe": {
        "offset": ("normal", 1.0, 8.0, "broad: the side car may be anywhere beside the ego"),
        "swerve_time": ("normal", 4.0, 1.5, "broad: when the side car moves is unrelated to the ego"),
    },
    "aggressive_merge": {
        "merger_speed": ("normal", 22.0, 4.0, "mergers mostly match traffic speed"),
        "arrival_offset": ("normal", 10.0, 12.0, "mergers mostly aim for a gap ahead of the ego"),
    },
    "stop_and_go": {
        "low_speed": ("normal", 6.0, 3.0, "waves mostly slow down rather than stop"),
        "period": ("normal", 9.0, 2.5, "broad over the family's range"),
        "leader_deceleration": ("lognormal", 3.0, 0.35, "braking above ~0.6 g is rare"),
        "platoon_size": ("normal", 2.0, 1.5, "broad over the family's range"),
    },
    "adversarial_vehicle": {
        "speed_difference": ("normal", 3.0, 2.0, "an overtaking car is mostly a few m/s faster"),
        "cut_in_gap": ("lognormal", 15.0, 0.4, "tight cut-ins are rare"),
        "brake_delay": ("normal", 1.5, 0.6, "brake-checks right after cutting in are rare"),
        "deceleration": ("lognormal", 2.5, 0.4, "braking above ~0.6 g is rare"),
        "speed_drop": ("normal", 10.0, 4.0, "most slow-downs shed little speed"),
    },
    "oncoming_overtake": {
        "slow_speed": ("normal", 15.0, 3.0, "slow vehicles mostly drive 12-18 m/s"),
        "oncoming_distance": ("normal", 300.0, 100.0, "oncoming cars mostly appear far away"),
    },
    "intersection": {
        "ego_speed": ("normal", 8.5, 1.5, "approaches mostly near the 10 m/s limit"),
        "ego_distance": ("normal", 32.5, 10.0, "broad: where the ego is when the other car comes is chance"),
        "crossing_speed": ("normal", 9.0, 1.2, "priority traffic mostly at the limit; 20 % over is rare"),
        "arrival_offset": ("normal", 0.5, 2.5, "broad: arrivals on the two roads are independent"),
    },
    "roundabout": {
        "ego_speed": ("normal", 9.0, 2.0, "approaches mostly slow to 7-11 m/s"),
        "ego_distance": ("normal", 30.0, 8.0, "broad: where the ego is when the other car comes is chance"),
        "circulating_speed": ("normal", 10.0, 2.0, "circulating traffic mostly at 8-12 m/s"),
        "arrival_offset": ("normal", 0.5, 2.5, "broad: arrivals on the ring and the entry are independent"),
    },
}

#: family -> parameter -> (statistic of the logs, sign). Every parameter not here has a prior.
FITTED: dict[str, dict[str, tuple[str, float]]] = {
    "stalled_car": {"ego_speed": ("ego_speed", 1), "lead_gap": ("lead_gap", 1)},
    "hard_braking_lead": {"ego_speed": ("ego_speed", 1), "gap": ("lead_gap", 1)},
    "slower_lead": {"ego_speed": ("ego_speed", 1), "traffic_spacing": ("lane_spacing", 1)},
    "cut_in": {"ego_speed": ("ego_speed", 1), "speed_difference": ("side_speed_difference", -1)},
    "side_swipe": {"ego_speed": ("ego_speed", 1), "speed_difference": ("side_speed_difference", 1)},
    "aggressive_merge": {"ego_speed": ("ego_speed", 1)},
    "stop_and_go": {"high_speed": ("ego_speed", 1), "ego_gap": ("lead_gap", 1)},
    "adversarial_vehicle": {"ego_speed": ("ego_speed", 1)},
    "oncoming_overtake": {
        "ego_speed": ("ego_speed", 1),
        "slow_distance": ("lead_gap", 1),
        "oncoming_speed": ("ego_speed", 1),
    },
}
LOG_NORMAL_STATISTICS = ("lead_gap", "lane_spacing")  #: positive statistics fitted in log space


def log_statistics(logs: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Per-step statistics of the highway episodes of a log dataset, and what was read."""
    from drivegpt.data.logs import load_logs

    ds = load_logs(logs)
    stats: dict[str, list[float]] = {k: [] for k in ("ego_speed", "lead_gap", "side_speed_difference")}
    stats["lane_spacing"] = []
    episodes = steps = 0
    for ep in ds.episodes():
        if ep.env_id not in HIGHWAY_ENVS:
            continue
        lanes = int((ep.meta.get("env_config") or {}).get("lanes_count", 3))
        y_scale = 4.0 * lanes  # highway-env: y normalised by lane width x lanes of the road
        episodes, steps = episodes + 1, steps + len(ep.observations)
        stats["ego_speed"] += ep.states["speed"].tolist()
        for obs in ep.observations:  # (V, F): presence, x, y, vx, vy, cos_h, sin_h; row 0 the ego
            rows = obs[1:][obs[1:, 0] > 0.5]
            dx, dy, dvx = rows[:, 1] * X_SCALE, rows[:, 2] * y_scale, rows[:, 3] * VX_SCALE
            ahead = (np.abs(dy) < LANE_HALF_WIDTH) & (dx > 0) & (dx < X_SCALE)
            if ahead.any():
                stats["lead_gap"].append(float(dx[ahead].min()))
            side = (np.abs(dy) > LANE_HALF_WIDTH) & (np.abs(dy) < 3 * LANE_HALF_WIDTH) & (np.abs(dx) < 20)
            stats["side_speed_difference"] += dvx[side].tolist()
            lane_of = np.round(dy / (2 * LANE_HALF_WIDTH))
            for lane in np.unique(lane_of):
                xs = np.sort(dx[lane_of == lane])
                stats["lane_spacing"] += np.diff(xs).tolist()
    run = Path(logs) / "run.json"
    made_by = json.loads(run.read_text()).get("command", "") if run.is_file() else ""
    info = {"path": str(logs), "made_by": made_by, "episodes": episodes, "steps": steps}
    if not episodes:
        raise UserError(f"{logs}: no episode of {', '.join(HIGHWAY_ENVS)} to fit from; collect some")
    return {k: np.asarray(v, float) for k, v in stats.items()}, info


def fit_naturalistic(logs: str | Path, command: str) -> NaturalisticModel:
    """Fit every family's marginals: moments of the log statistics where they apply, priors elsewhere."""
    from drivegpt_envs.families import FAMILIES, family_class

    stats, info = log_statistics(logs)
    families: dict[str, dict[str, Marginal]] = {}
    for family in FAMILIES:
        out = {}
        for name, spec in family_class(family).PARAMS.items():
            fitted = FITTED.get(family, {}).get(name)
            if fitted is not None:
                key, sign = fitted
                x = sign * stats[key][stats[key] > 0] if key in LOG_NORMAL_STATISTICS else sign * stats[key]
                if len(x) < 20:
                    raise UserError(f"{logs}: only {len(x)} samples of {key}; collect more episodes")
                kind: Kind = "lognormal" if key in LOG_NORMAL_STATISTICS else "normal"
                v = np.log(x) if kind == "lognormal" else x
                sigma = max(float(v.std()), 1e-3)
                source = f"logs: {'-' if sign < 0 else ''}{key} (n={len(x)})"
                out[name] = Marginal(
                    kind=kind, mu=float(v.mean()), sigma=sigma, **box_of(spec), source=source
                )
            else:
                kind, centre, sigma, why = PRIORS[family][name]
                mu = math.log(centre) if kind == "lognormal" else centre
                out[name] = Marginal(kind=kind, mu=mu, sigma=sigma, **box_of(spec), source=f"prior: {why}")
        families[family] = out
    return NaturalisticModel(created_by=command, logs=info, families=families)
