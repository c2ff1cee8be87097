"""``drivegpt pipeline``: the whole loop in one command (see :mod:`drivegpt.pipeline.config`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from drivegpt.cli.util import command_line, friendly_errors


def register(app: typer.Typer) -> None:
    """Add ``pipeline`` to the ``drivegpt`` command."""

    @app.command()
    @friendly_errors
    def pipeline(
        ctx: typer.Context,
        out: Annotated[Path, typer.Option(help="Run directory: one folder per stage, report.md/.html.")],
        config: Annotated[Path, typer.Option(help="Pipeline config.")] = Path("configs/quickstart.yaml"),
        force: Annotated[
            list[str] | None, typer.Option(help="Re-run this stage (repeatable) and the stages reading it.")
        ] = None,
    ) -> None:
        """Run each stage (collect, pretrain, takeovers, ..., replay) lacking a valid output, then report."""
        from drivegpt.core.config import load_config
        from drivegpt.pipeline.config import PipelineConfig
        from drivegpt.pipeline.run import run_pipeline

        cfg = load_config(PipelineConfig, config)
        report = run_pipeline(cfg, out, command_line(ctx), force or (), log=typer.echo)
        typer.echo(f"report: {report} (self-contained HTML: {report.with_suffix('.html')})")
