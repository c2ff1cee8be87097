"""Highway scenario: highway-env's ``highway-fast`` road with DriveGPT's observation."""

from __future__ import annotations

from highway_env.envs.highway_env import HighwayEnvFast

from drivegpt_envs.common import DEFAULT_ACTION, action_config, kinematics_observation
from drivegpt_envs.observation import FastKinematicsEnv
from drivegpt_envs.road import FastRoadEnv


class DriveHighwayEnv(FastRoadEnv, FastKinematicsEnv, HighwayEnvFast):
    """3-lane highway, 20 IDM vehicles, 5 Hz simulation, 30 s episodes (``highway-fast-v0``)."""

    @classmethod
    def default_config(cls) -> dict:
        config = super().default_config()
        config.update(
            {
                "observation": kinematics_observation(),
                **action_config(DEFAULT_ACTION),
                "simulation_frequency": 5,  # [Hz]
                "duration": 30,  # [s]
            }
        )
        return config


class DriveHighwayDenseEnv(DriveHighwayEnv):
    """The same road in denser traffic: twice the vehicle density, 30 vehicles."""

    @classmethod
    def default_config(cls) -> dict:
        config = super().default_config()
        config.update({"vehicles_density": 2.0, "vehicles_count": 30})
        return config
