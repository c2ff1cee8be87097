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


def write_outputs(rows: list[dict], out: Path) -> str:
    """``scaling.md`` (validation CE table) and ``scaling.png`` from rows with keys model, params,
    train_episodes, train_steps, val_ce; returns the table."""
    out.mkdir(parents=True, exist_ok=True)
    models = list(dict.fromkeys(r["model"] for r in rows))
    sizes = sorted({int(r["train_episodes"]) for r in rows})
    lines = [
        "| model | params | " + " | ".join(f"{n} episodes" for n in sizes) + " |",
        "|---|---|" + "---|" * len(sizes),
    ]
    for m in models:
        cells = {int(r["train_episodes"]): r for r in rows if r["model"] == m}
        lines.append(
            f"| {m} | {next(iter(cells.values()))['params']} | "
            + " | ".join(f"{float(cells[n]['val_ce']):.4f}" if n in cells else "not run" for n in sizes)
            + " |"
        )
    table = "\n".join(lines)
    (out / "scaling.md").write_text("Validation cross-entropy [nats]\n\n" + table + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for m in models:
        r = [x for x in rows if x["model"] == m]
        ax.plot([int(x["train_steps"]) for x in r], [float(x["val_ce"]) for x in r], marker="o", label=m)
    ax.set_xscale("log")
    ax.set_xlabel("training steps (logged decisions)")
    ax.set_ylabel("validation cross-entropy [nats]")
    ax.set_title("DriveGPT scaling (meta-actions)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "scaling.png", dpi=120)
    return table


def main() -> None:
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    rows = [
        {
            "model": m["model"],
            "params": m["params"],
            "train_episodes": m["eps"],
            "train_steps": m["steps"],
            "val_ce": m["ce"],
        }
        for line in src.read_text().splitlines()
        if (m := LINE.match(line))
    ]
    print(write_outputs(rows, out))


if __name__ == "__main__":
    main()
