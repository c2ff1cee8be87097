"""Progress bars for long work: a live tqdm bar on a terminal, readable lines in a log.

On a terminal tqdm redraws one line in place. Written to a file or a pipe (``make demo > log``, a CI
job, ``nohup``), the same redraws pile up as carriage returns on one endless line. ``progress_bar`` keeps
tqdm's bar on a terminal; elsewhere it writes one plain line at most every ``LOG_INTERVAL`` seconds
(a postfix or description set in between waits for the next), plus the last unless ``leave=False``.
``TQDM_MININTERVAL`` still sets that interval.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable
from typing import Any, TextIO

from tqdm import tqdm

LOG_INTERVAL = 30.0  #: [s] the shortest time between two progress lines in a log
_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # cursor moves tqdm writes between stacked bars


class _Lines:
    """A text stream that turns tqdm's in-place redraws (a carriage return before each) into lines."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        for line in _ESCAPE.sub("", text).replace("\r", "\n").split("\n"):
            if line.strip():  # tqdm's blanking of the previous redraw is dropped
                self.stream.write(line.rstrip() + "\n")
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


class _LogBar(tqdm):
    """tqdm whose postfix and description wait for the next scheduled line instead of forcing one."""

    def set_postfix(self, ordered_dict: Any = None, refresh: bool | None = True, **kwargs: Any) -> None:
        super().set_postfix(ordered_dict, refresh=False, **kwargs)

    def set_description(self, desc: str | None = None, refresh: bool | None = True) -> None:
        super().set_description(desc, refresh=False)


def _terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def progress_bar(iterable: Iterable[Any] | None = None, **kwargs: Any) -> tqdm:
    """``tqdm(iterable, **kwargs)`` on a terminal; in a log, lines at most every ``LOG_INTERVAL`` s."""
    stream = kwargs.pop("file", None) or sys.stderr
    if not _terminal(stream) and not kwargs.get("disable"):
        if "TQDM_MININTERVAL" not in os.environ:  # tqdm reads it only where no value is passed
            kwargs.setdefault("mininterval", LOG_INTERVAL)
        # tqdm's monitor forces a line after maxinterval (10 s): no sooner than the interval here
        kwargs.setdefault("maxinterval", max(kwargs.get("mininterval", LOG_INTERVAL), LOG_INTERVAL))
        kwargs.setdefault("ncols", 100)  # no terminal to size the bar to
        kwargs.pop("dynamic_ncols", None)
        return _LogBar(iterable, file=_Lines(stream), **kwargs)
    return tqdm(iterable, file=stream, **kwargs)
