"""Data and model scaling: validation cross-entropy for 3 model sizes x 3 dataset sizes.

Same validation episodes for every cell (the split depends only on the seed); the training set is
the first N training episodes; every cell trains for the same number of steps.

    python bench/scaling.py --data runs/logs-meta --iters 1500 --out bench/results/scaling
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

from scaling_plot import write_outputs  # bench/ is on sys.path when run as a script

from drivegpt.model.pretrain import pretrain
from drivegpt.model.pretrain_config import PretrainConfig

SIZES = {
    "tiny (1x32)": {"n_layer": 1, "n_head": 2, "n_embd": 32, "context": 8},
    "small (2x64)": {"n_layer": 2, "n_head": 4, "n_embd": 64, "context": 8},
    "medium (4x128)": {"n_layer": 4, "n_head": 4, "n_embd": 128, "context": 8},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True)
    ap.add_argument("--episodes", nargs=3, type=int, default=[100, 300, 900])
    ap.add_argument("--iters", type=int, default=1500)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="bench/results/scaling")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for size, model in SIZES.items():
        for n in args.episodes:
            cfg = PretrainConfig(
                model=model,
                max_iters=args.iters,
                eval_every=args.iters // 3,
                max_train_episodes=n,
                threads=args.threads,
                warmup_iters=100,
            )
            t0 = time.time()
            with tempfile.TemporaryDirectory() as tmp:
                m = pretrain(cfg, args.data, Path(tmp) / "run", progress=False)
            rows.append(
                {
                    "model": size,
                    "params": m["parameters"],
                    "train_episodes": n,
                    "train_steps": m["train_steps"],
                    "val_ce": m["best_val_cross_entropy"],
                    "val_acc_final": m["action_accuracy"],
                    "wall_s": time.time() - t0,
                }
            )
            print(
                f"{size:15s} params={m['parameters']:7d} episodes={n:4d} steps={m['train_steps']:6d} "
                f"best val CE={m['best_val_cross_entropy']:.4f} acc={m['action_accuracy']:.4f} "
                f"({time.time() - t0:.0f}s)",
                flush=True,
            )
    (out / "scaling.json").write_text(
        json.dumps({"rows": rows, "iters": args.iters, "machine": platform.platform()}, indent=2)
    )
    print(write_outputs(rows, out))
    print(f"wrote {out / 'scaling.png'}")


if __name__ == "__main__":
    main()
