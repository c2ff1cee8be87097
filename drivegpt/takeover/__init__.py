"""The simulated safety driver and what it records: the monitor, takeover clips and exact replay.

Owns: ``monitor`` (triggers, the safety driver's takeover and hand-back, look-ahead, ranked futures),
``clips`` (the takeover clip format: write, verify, load), ``replay`` (re-simulate a clip exactly,
then hand the wheel to another policy), ``batched`` (the same safety driver on the batched simulator:
B monitored episodes at once, accel interface).
May import: ``drivegpt.core``, ``drivegpt.sim``, ``drivegpt.data``, ``drivegpt.model``,
``drivegpt.policies``.
"""
