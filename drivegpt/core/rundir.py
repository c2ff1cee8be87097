"""Run directories: a command's output folder, and the shareable policy it holds.

Every command that trains writes ``RUN/policy/`` (weights + JSON). Everywhere a policy is read, a
user may name either the run or its ``policy/`` folder: :func:`policy_dir` is the one rule for that.
"""

from __future__ import annotations

from pathlib import Path

POLICY = "policy"  #: the policy folder inside a run directory


def policy_dir(path: str | Path) -> Path:
    """``path/policy`` when ``path`` is a run directory holding one, else ``path`` itself."""
    path = Path(path)
    return path / POLICY if (path / POLICY).is_dir() else path
