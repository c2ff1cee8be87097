"""Simulation layer: environments, rollouts, the simulated human driver and the batched simulator.

Owns: building an env (``make_env``), driving one episode (``run_episode``), the episode record,
mapping jobs over worker processes, the human driver and its personality, road geometry (gaps, TTC),
rendering, and ``drivegpt.sim.batched`` (highway episodes as torch tensors with a leading batch axis).
May import: ``drivegpt.core`` and ``drivegpt_envs`` only.
"""
