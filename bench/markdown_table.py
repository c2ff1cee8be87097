"""Shared by the benchmark scripts: write a result as Markdown (title, command line, note, table)."""

from __future__ import annotations

import sys
from pathlib import Path

from drivegpt.core.atomic import write_text


def write_markdown(out: Path, title: str, note: str, head: str, rows: list[str]) -> str:
    """Write ``# title``, the command that ran (``python`` + argv), ``note`` (load average,
    settings) and the table (``head``: its header and separator lines) to ``out``; print it too."""
    command = "python " + " ".join(sys.argv)
    text = f"# {title}\n\n`{command}`\n\n{note}\n\n{head}\n" + "\n".join(rows) + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text(out, text)
    print(text)
    return text
