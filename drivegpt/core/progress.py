"""Progress bars for long work: a live tqdm bar on a terminal, readable lines in a log.

On a terminal tqdm redraws one line in place. Written to a file or a pipe (``make demo > log``, a CI
job, ``nohup``), the same redraws pile up as carriage returns on one endless line. ``progress_bar`` keeps
tqdm's bar on a terminal; elsewhere it writes one plain line per update, at most every
``LOG_INTERVAL`` seconds, plus the last. ``TQDM_MININTERVAL`` and the other ``TQDM_*`` variables
still override tqdm's defaults.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any, TextIO

from tqdm import tqdm

LOG_INTERVAL = 30.0  #: [s] the shortest time between two progress lines in a log


class _Lines:
    """A text stream that turns tqdm's in-place redraws (a carriage return before each) into lines."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        for line in text.replace("\r", "\n").split("\n"):
            if line.strip():  # tqdm's blanking of the previous redraw is dropped
                self.stream.write(line.rstrip() + "\n")
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def _terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def progress_bar(iterable: Iterable[Any] | None = None, **kwargs: Any) -> tqdm:
    """``tqdm(iterable, **kwargs)`` on a terminal; in a log, lines at most every ``LOG_INTERVAL`` s."""
    stream = kwargs.pop("file", None) or sys.stderr
    if not _terminal(stream) and not kwargs.get("disable"):
        if "TQDM_MININTERVAL" not in os.environ:  # tqdm reads it only where no value is passed
            kwargs.setdefault("mininterval", LOG_INTERVAL)
        kwargs.setdefault("ncols", 100)  # no terminal to size the bar to
        kwargs.pop("dynamic_ncols", None)
        stream = _Lines(stream)  # type: ignore[assignment]
    return tqdm(iterable, file=stream, **kwargs)
