"""Where the pipeline's stages find each other's outputs under ``RUN/``: the policy specs of the
pretrained and the final policy, a stage output's JSON read with its keys checked, and a partial
run folder kept only when it can resume.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any


def read_json(path: Path, *keys: str) -> dict[str, Any]:
    """``path`` parsed; ``KeyError`` naming the first missing key."""
    data = json.loads(path.read_text())
    missing = [k for k in keys if k not in data]
    if missing:
        raise KeyError(f"{path}: no {missing[0]!r}")
    return data


def resume_or_clear(run: Path, config: dict[str, Any]) -> None:
    """Keep a partial ``run`` left by a kill only when it was started with ``config`` (it resumes)."""
    started = run / "run.json"
    if not started.is_file() or json.loads(started.read_text()).get("config") != config:
        shutil.rmtree(run, ignore_errors=True)


def pretrained_spec(out: Path) -> str:
    return f"drivegpt:{out / 'pretrain'}"


def final_spec(out: Path) -> str:
    """The policy at the end of the loop: after RLHF when that stage exists, else the pretrained one."""
    rlhf = out / "rlhf" / "policy"
    return f"drivegpt:{rlhf}" if (rlhf / "policy.json").is_file() else pretrained_spec(out)
