"""The simulated safety driver and what it records: the monitor, takeover clips and exact replay.

Owns: ``monitor`` (triggers, the safety driver's takeover and hand-back, look-ahead, ranked futures),
``clips`` (the takeover clip format: write, verify, load), ``replay`` (re-simulate a clip exactly,
then hand the wheel to another policy), ``batched`` (the same safety driver on the batched simulator,
its per-step rule for B episodes at once, accel interface), ``batched_drive`` (monitored drives of B
episodes there) and ``batched_clips`` (their takeover clips and replay).
May import: ``drivegpt.core``, ``drivegpt.sim``, ``drivegpt.data``, ``drivegpt.model``,
``drivegpt.policies``.
"""
