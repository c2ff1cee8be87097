"""Progress bars (drivegpt/core/progress.py): tqdm's live bar on a terminal, plain lines in a log."""

from __future__ import annotations

import io

from drivegpt.core import progress
from drivegpt.core.progress import progress_bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_one_plain_line_per_update_and_no_carriage_returns() -> None:
    log = io.StringIO()
    bar = progress_bar(total=1000, desc="sims", file=log, mininterval=0.0, miniters=1)
    for _ in range(4):
        bar.update(250)
    bar.close()
    text = log.getvalue()
    assert "\r" not in text and text.endswith("\n")
    lines = text.splitlines()
    assert lines[0].startswith("sims:   0%") and all(line.startswith("sims:") for line in lines)
    assert [line.split("|")[2].split()[0] for line in lines[1:5]] == ["250/1000", "500/1000", "750/1000",
                                                                     "1000/1000"]  # fmt: skip


def test_a_log_is_written_at_most_every_log_interval(monkeypatch) -> None:
    """10,000 quick updates in a log: the first line, and the last when it closes; nothing between."""
    monkeypatch.delenv("TQDM_MININTERVAL", raising=False)
    log = io.StringIO()
    with progress_bar(total=10_000, desc="eps", file=log) as bar:
        for _ in range(10_000):
            bar.update(1)
    lines = log.getvalue().splitlines()
    assert progress.LOG_INTERVAL == 30.0 and 2 <= len(lines) <= 3
    assert "0/10000" in lines[0] and "10000/10000" in lines[-1]


def test_a_terminal_keeps_tqdms_live_bar_and_disabled_bars_write_nothing() -> None:
    term = Terminal()
    bar = progress_bar(total=10, desc="live", file=term, mininterval=0.0, miniters=1)
    bar.update(5)
    bar.close()
    assert "\r" in term.getvalue()  # redrawn in place
    quiet = io.StringIO()
    bar = progress_bar(total=10, file=quiet, disable=True)
    bar.update(10)
    bar.close()
    assert quiet.getvalue() == ""


def test_a_postfix_waits_for_the_next_line_and_cursor_moves_are_dropped(monkeypatch) -> None:
    """In a log a per-iteration ``set_postfix`` does not force a line (20 iterations in about 0.4 s,
    lines at most every 0.25 s: the first, one or two between, the last twice at most), each line with
    the count and postfix of its time; tqdm's cursor moves between stacked bars are dropped."""
    import time

    monkeypatch.delenv("TQDM_MININTERVAL", raising=False)
    monkeypatch.setattr(progress, "LOG_INTERVAL", 0.25)
    log = io.StringIO()
    bar = progress_bar(range(20), desc="train", file=log)
    for i in bar:
        bar.set_postfix(loss=i)
        time.sleep(0.02)
    lines = log.getvalue().splitlines()
    assert 2 <= len(lines) <= 6 and "20/20" in lines[-1] and "loss=19" in lines[-1]
    out = io.StringIO()
    progress._Lines(out).write("\x1b[A\rtrain:  50%|#####     | 1/2\n")
    assert out.getvalue() == "train:  50%|#####     | 1/2\n"
