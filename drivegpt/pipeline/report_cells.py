"""What every section of the pipeline report shares: the run's files and the tables' cells.

Owns ``RunFiles`` (a run folder's JSON outputs; a file that exists but does not parse is remembered,
to be named at the top of the report, never dropped silently) and the cells the tables format.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class RunFiles:
    """The outputs of the run in ``out``, read for one report."""

    out: Path  #: the run folder
    unreadable: list[str] = field(default_factory=list)  #: "`path`: why" per file that did not parse

    def json(self, path: Path) -> dict[str, Any] | None:
        """``path`` parsed, or None when it does not exist (a stage that did not run); a file that
        exists but does not parse is added to ``unreadable`` (and None returned)."""
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            self.unreadable.append(f"`{path}`: {str(err).splitlines()[0]}")
            return None


def num(x: float | None, fmt: str = ".2f") -> str:
    """``x`` in ``fmt``, or "-" for a figure the run does not have."""
    return "-" if x is None else format(x, fmt)


def rate_cell(m: dict[str, Any]) -> str:
    """``0.025 [0.004, 0.129]`` from a metrics.json with a Wilson interval."""
    lo, hi = m["collision_rate_ci"]
    return f"{m['collision_rate']:.3f} [{lo:.3f}, {hi:.3f}]"


def takeover_row(name: str, env: str, m: dict[str, Any]) -> tuple[str, tuple[float, float] | None]:
    """A table row of takeover figures with the Poisson 95% interval of the rate per 100 km."""
    n, per100 = m["takeovers"], m["takeovers_per_100km"]
    ci = tuple(m["takeovers_per_100km_ci"]) if m.get("takeovers_per_100km_ci") else None
    ci_txt = "-" if ci is None else f"[{ci[0]:.1f}, {ci[1]:.1f}]"
    after, after_ci = m.get("takeovers_after_start_per_100km"), m.get("takeovers_after_start_per_100km_ci")
    after_txt = "-" if after_ci is None else f"{after:.1f} [{after_ci[0]:.1f}, {after_ci[1]:.1f}]"
    row = (
        f"| {name} | `{env}` | {m['episodes']} | {n} ({m['late_takeovers']} late) | "
        f"{num(per100, '.1f')} {ci_txt} | {num(m.get('takeovers_at_start'), '.0f')} | {after_txt} | "
        f"{num(m['km_per_takeover'])} | {rate_cell(m)} | {m['mean_speed_mps']:.2f} |"
    )
    return row, ci


__all__ = ["RunFiles", "num", "rate_cell", "takeover_row"]
