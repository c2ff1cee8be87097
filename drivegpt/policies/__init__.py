"""Every driver a policy spec names, and the stable-baselines3 baselines.

Owns: ``registry`` (``load_policy(spec) -> DrivePolicy``, the spec kinds, the shipped checkpoint,
a worker-process cache of policy + env), ``sb3`` (train, export and load SB3 DQN/PPO baselines as
safetensors + JSON, no pickle), ``sb3_config`` (``BaselineConfig``: the baselines' settings).
May import: ``drivegpt.core``, ``drivegpt.sim``, ``drivegpt.data``, ``drivegpt.model``.
"""
