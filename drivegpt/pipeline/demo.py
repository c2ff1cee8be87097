"""``drivegpt demo`` / ``make demo``: the pipeline with ``configs/quickstart.yaml`` (laptop-sized)."""

from __future__ import annotations

from pathlib import Path

from drivegpt.core.config import load_config
from drivegpt.pipeline.config import PipelineConfig
from drivegpt.pipeline.run import run_pipeline


def run_demo(config_path: str | Path, out: str | Path, command: str) -> Path:
    """Run the pipeline described by ``config_path`` into ``out``; returns ``out/report.md``."""
    return run_pipeline(load_config(PipelineConfig, config_path), out, command)
