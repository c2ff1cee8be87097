"""Merge scenario: highway-env's on-ramp merge at highway-fast-like 5 Hz simulation."""

from __future__ import annotations

from highway_env.envs.merge_env import MergeEnv

from drivegpt_envs.actions import is_lane_change
from drivegpt_envs.common import DEFAULT_ACTION, action_config, kinematics_observation
from drivegpt_envs.observation import FastKinematicsEnv
from drivegpt_envs.road import FastRoadEnv


class DriveMergeEnv(FastRoadEnv, FastKinematicsEnv, MergeEnv):
    """Two-lane highway with an on-ramp; the episode ends past the merge (x > 370 m)."""

    @classmethod
    def default_config(cls) -> dict:
        config = super().default_config()
        config.update(
            {
                "observation": kinematics_observation(),
                **action_config(DEFAULT_ACTION),
                "simulation_frequency": 5,  # [Hz]
                "duration": 40,  # [s] safety cap; the merge is normally passed in ~15 s
            }
        )
        return config

    def _rewards(self, action) -> dict[str, float]:
        # highway-env's merge reward tests ``action in [0, 2]``, which only means a lane change for
        # meta-actions; ``accel`` tokens carry the lane intent, continuous control has none.
        lane_change = is_lane_change(self.action_type, action)
        rewards = super()._rewards(1)  # IDLE: no lane-change term
        rewards["lane_change_reward"] = float(lane_change)
        return rewards

    def _is_truncated(self) -> bool:
        # highway-env's merge never truncates; cap the episode at ``duration``.
        return self.time >= self.config["duration"]
