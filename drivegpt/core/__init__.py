"""Foundations every part uses: atomic writes, typed configs, checksum manifests, errors, metrics.

Owns: ``atomic`` (crash-safe file writes), ``config`` (frozen pydantic configs filled from YAML),
``device`` (a ``--device`` name to a torch device), ``manifest`` (sha256 manifests of logs, clips and
suites), ``errors`` (the user-error base class the
CLI turns into one-line messages), ``metrics`` (the metric registry and its intervals),
``progress`` (progress bars: live on a terminal, lines in a log),
``resources`` (configs and data shipped inside the package), ``rundir`` (a run directory and the
policy it holds).
May import: nothing from ``drivegpt``.
"""
