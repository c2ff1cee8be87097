"""Driving data: the human logs (Minari datasets), the tokenizer and the training windows.

Owns: ``collect`` (human-driven episodes into a log dataset), ``logs`` (write, verify and load
Minari logs with a checksum manifest), ``tokenizer`` (actions <-> tokens, observation normalisation),
``windows`` (left-padded context windows over a table of steps: the one builder every learner uses).
May import: ``drivegpt.core``, ``drivegpt.sim``.
"""
