"""highway-env's ``Kinematics`` observation without pandas: the same array, 12-33× faster.

highway-env's ``KinematicObservation.observe`` builds a pandas DataFrame per step (one row per
vehicle, then a concat, a column selection, a normalisation per column and another concat for the
padding rows); on the project's scenarios that is most of a policy step's time. ``FastKinematics``
computes the same rows with plain numpy: every value comes from the same vehicle properties
(``position``, ``velocity``, ``direction``, ...) through the same float64 operations in the same
order (the offset to the observer, then highway-env's own ``normalize_obs`` on the columns), so the
observation is equal bit for bit (``tests/test_envs.py`` compares the two on every scenario). A
vehicle class that overrides ``to_dict`` (highway-env's road objects, for example) is read through
its own ``to_dict``.

``FastKinematicsEnv`` is the mixin that puts it in place of the stock class: it goes before the
highway-env env class in the bases of every DriveGPT scenario.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from highway_env.envs.common.observation import KinematicObservation
from highway_env.vehicle.kinematics import Vehicle

#: feature -> its value for a vehicle whose ``to_dict`` is ``Vehicle.to_dict`` (the same expression)
_FEATURE: dict[str, Callable[[Vehicle], Any]] = {
    "presence": lambda v: 1,
    "x": lambda v: v.position[0],
    "y": lambda v: v.position[1],
    "vx": lambda v: v.velocity[0],
    "vy": lambda v: v.velocity[1],
    "heading": lambda v: v.heading,
    "cos_h": lambda v: v.direction[0],
    "sin_h": lambda v: v.direction[1],
}
_RELATIVE = ("x", "y", "vx", "vy")  # the features ``to_dict`` gives relative to the observer


class FastKinematics(KinematicObservation):
    """``KinematicObservation`` whose ``observe`` returns the same array without pandas."""

    def _row(self, vehicle: Any, origin: dict[str, Any] | None, known: bool) -> list[Any]:
        """One vehicle's features, as ``vehicle.to_dict(origin)`` would give them (``known``: every
        feature is in ``_FEATURE``)."""
        if not (known and type(vehicle).to_dict is Vehicle.to_dict):
            observer = self.observer_vehicle if origin is not None else None
            d = vehicle.to_dict(observer, observe_intentions=self.observe_intentions)
            return [d.get(f, math.nan) for f in self.features]  # a missing key: NaN, as in pandas
        row = []
        for f in self.features:
            value = _FEATURE[f](vehicle)
            if origin is not None and f in _RELATIVE:
                value -= origin[f]
            row.append(value)
        return row

    def observe(self) -> np.ndarray:
        if not self.env.road:
            return np.zeros(self.space().shape)
        ego = self.observer_vehicle
        origin = ego.to_dict()  # (its own row is absolute)
        rows = [[origin[f] for f in self.features]]
        close = self.env.road.close_objects_to(
            ego,
            self.env.PERCEPTION_DISTANCE,
            count=self.vehicles_count - 1,
            see_behind=self.see_behind,
            sort=self.order == "sorted",
            vehicles_only=not self.include_obstacles,
        )
        if close:
            relative = None if self.absolute else origin
            known = all(f in _FEATURE for f in self.features)
            rows += [self._row(v, relative, known) for v in close[-self.vehicles_count + 1 :]]
        obs = np.array(rows, dtype=np.float64)  # (vehicles seen, F)
        if self.normalize:  # highway-env's own normalize_obs, on a dict of columns instead of a DataFrame
            columns = self.normalize_obs(dict(zip(self.features, obs.T, strict=True)))
            obs = np.stack([columns[f] for f in self.features], axis=1)
        if len(obs) < self.vehicles_count:  # absent vehicles: rows of zeros
            obs = np.concatenate([obs, np.zeros((self.vehicles_count - len(obs), len(self.features)))])
        if self.order == "shuffled":
            self.env.np_random.shuffle(obs[1:])
        return obs.astype(self.space().dtype)  # (vehicles_count, F)


class FastKinematicsEnv:
    """Mixin placed before a highway-env env class: its ``Kinematics`` observation is ``FastKinematics``."""

    config: dict
    observation_type: Any
    observation_space: Any

    def define_spaces(self) -> None:
        super().define_spaces()  # type: ignore[misc]
        if type(self.observation_type) is KinematicObservation:
            self.observation_type = FastKinematics(self, **self.config["observation"])
            self.observation_space = self.observation_type.space()
