"""Table + PNG from the lines `bench/scaling.py` printed (for a run that was stopped before its end).

python bench/scaling_plot.py bench/results/scaling.txt bench/results/scaling
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

LINE = re.compile(
    r"^(?P<model>.+?\))\s+params=\s*(?P<params>\d+) episodes=\s*(?P<eps>\d+) steps=\s*(?P<steps>\d+) "
    r"best val CE=(?P<ce>[\d.]+) acc=(?P<acc>[\d.]+)"
)


def main() -> None:
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    rows = [m.groupdict() for line in src.read_text().splitlines() if (m := LINE.match(line))]
    out.mkdir(parents=True, exist_ok=True)
    models = list(dict.fromkeys(r["model"] for r in rows))
    sizes = sorted({int(r["eps"]) for r in rows})
    lines = [
        "| model | params | " + " | ".join(f"{n} episodes" for n in sizes) + " |",
        "|---|---|" + "---|" * len(sizes),
    ]
    for m in models:
        cells = {int(r["eps"]): r for r in rows if r["model"] == m}
        lines.append(
            f"| {m} | {next(iter(cells.values()))['params']} | "
            + " | ".join(f"{float(cells[n]['ce']):.4f}" if n in cells else "not run" for n in sizes)
            + " |"
        )
    (out / "scaling.md").write_text("Validation cross-entropy [nats]\n\n" + "\n".join(lines) + "\n")
    print("\n".join(lines))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for m in models:
        r = [x for x in rows if x["model"] == m]
        ax.plot([int(x["steps"]) for x in r], [float(x["ce"]) for x in r], marker="o", label=m)
    ax.set_xscale("log")
    ax.set_xlabel("training steps (logged decisions)")
    ax.set_ylabel("validation cross-entropy [nats]")
    ax.set_title("DriveGPT scaling (meta-actions)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "scaling.png", dpi=120)


if __name__ == "__main__":
    main()
