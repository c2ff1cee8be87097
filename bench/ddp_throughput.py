"""Pretraining throughput (tokens/s) with 1 and 2 DDP processes (torchrun, gloo on CPU), and how
closely the 2-process loss curve follows the 1-process one at the same global batch.

Variants: 1 process with 1 thread, 1 process with 2 threads, 2 processes x 1 thread (torchrun).
Tokens/s is the trainer's own figure (global batch x 2K tokens per step over the training time,
evaluation excluded) from ``log.csv``, averaged over the logging intervals after the first.
Without ``--data`` a small human log dataset is collected first (throughput does not depend on it).

    nice -n 10 python bench/ddp_throughput.py --config configs/pretrain/meta-small.yaml --iters 300
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml


def run(config: dict, data: Path, out: Path, procs: int) -> dict:
    cfg_path = out.with_suffix(".yaml")
    cfg_path.write_text(yaml.safe_dump(config))
    cli = ["-m", "drivegpt.cli.app", "pretrain", "--config", str(cfg_path), "--data", str(data)]
    cli += ["--out", str(out)]
    if procs > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(procs)]
    else:
        cmd = [sys.executable]
    env = {**os.environ, "OMP_NUM_THREADS": str(config["threads"])}
    subprocess.run([*cmd, *cli], check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(out / "log.csv") as f:
        rows = list(csv.DictReader(f))
    losses = [float(r["train_loss"]) for r in rows]
    tps = [float(r["tokens_per_s"]) for r in rows[1:]]  # the first interval includes start-up
    metrics = json.loads((out / "metrics.json").read_text())
    return {**metrics, "losses": losses, "tokens_per_s": sum(tps) / len(tps)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--config", default="configs/pretrain/meta-small.yaml")
    ap.add_argument("--data", type=Path, default=None, help="log dataset (default: collect 40 episodes)")
    ap.add_argument("--iters", type=int, default=300)
    ap.add_argument("--log-every", type=int, default=25, help="loss-curve points (evaluations)")
    ap.add_argument("--out", default="bench/results/ddp_throughput")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    data = args.data
    if data is None:
        from drivegpt.data.collect import CollectConfig, collect

        data = collect(CollectConfig(episodes=40, workers=2), tmp / "logs", progress=False)
    base = yaml.safe_load(Path(args.config).read_text())
    base.update(max_iters=args.iters, eval_every=args.log_every)
    variants = {
        "1 process, 1 thread": (1, 1),
        "1 process, 2 threads": (1, 2),
        "2 processes x 1 thread": (2, 1),
    }
    res: dict = {}
    for name, (procs, threads) in variants.items():
        run_dir = tmp / name.replace(" ", "_").replace(",", "")
        res[name] = run({**base, "threads": threads}, data, run_dir, procs)
        print(f"{name}: {res[name]['tokens_per_s']:.0f} tokens/s", flush=True)
    one, two = res["1 process, 1 thread"], res["2 processes x 1 thread"]
    diff = max(abs(a - b) for a, b in zip(one["losses"], two["losses"], strict=True))
    summary = {
        "config": args.config,
        "iters": args.iters,
        "global_batch": base["batch_size"],
        "tokens_per_s": {k: v["tokens_per_s"] for k, v in res.items()},
        "speedup_2_processes_vs_1_thread": two["tokens_per_s"] / one["tokens_per_s"],
        "speedup_2_processes_vs_2_threads": two["tokens_per_s"] / res["1 process, 2 threads"]["tokens_per_s"],
        "loss_curve_max_abs_diff_1_vs_2_processes": diff,
        "losses": {k: v["losses"] for k, v in res.items()},
        "cpus": len(os.sched_getaffinity(0)),
        "load_average_1min": os.getloadavg()[0],
        "machine": platform.platform(),
    }
    lines = [
        f"# DDP pretraining throughput: {args.config}, {args.iters} steps, global batch {base['batch_size']}",
        "",
        "| variant | tokens/s |",
        "|---|---|",
        *(f"| {k} | {v['tokens_per_s']:.0f} |" for k, v in res.items()),
        "",
        f"2 processes vs 1 process x 1 thread: {summary['speedup_2_processes_vs_1_thread']:.2f}x; "
        f"vs 1 process x 2 threads: {summary['speedup_2_processes_vs_2_threads']:.2f}x.",
        f"Loss curve, 2 processes vs 1 ({len(one['losses'])} points): max abs difference {diff:.2e}.",
        f"Machine: {summary['cpus']} CPUs (1-min load average at the end: "
        f"{summary['load_average_1min']:.1f}).",
    ]
    print("\n".join(lines))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
