"""DriveGPT inference latency (batch 1, full context) and throughput (batch 64), training tokens/s.

Each timed decision (``act``: one new state encoding, the transformer over the 2K-1 visible
tokens) alternates with a timed full-context forward pass over the same history (``forward`` on
all K observations, the decision path before the state encodings were kept), so both see the
same machine load.

python bench/latency.py --policy drivegpt            # the shipped checkpoint
python bench/latency.py --policy drivegpt:runs/pretrain-accel --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from drivegpt.policies.registry import load_policy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--policy", default="drivegpt")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--out", default="bench/results/latency.json")
    args = ap.parse_args()
    pol = load_policy(args.policy)
    torch.set_num_threads(args.threads)
    K = pol.K
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(args.n + K, 10, 7)).astype(np.float32)
    obs[..., 0] = 1.0
    pol.reset(0)
    for t in range(K):  # fill the context: every timed call sees the full K steps
        pol.act(obs[t])
    lat, cpu, full, full_cpu = [], [], [], []
    for t in range(K, K + args.n):
        t0, c0 = time.perf_counter(), time.process_time()
        pol.act(obs[t])
        lat.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        t0, c0 = time.perf_counter(), time.process_time()
        with torch.no_grad():
            pol.model(pol.obs, pol.tokens)[:, -1].argmax(-1)
        full.append(time.perf_counter() - t0)
        full_cpu.append(time.process_time() - c0)
    lat_ms, full_ms = np.array(lat) * 1000, np.array(full) * 1000
    # CPU time of the call: what it costs on an idle core (wall time waits for the core on a busy machine)
    cpu_ms, full_cpu_ms = np.array(cpu) * 1000, np.array(full_cpu) * 1000
    B = 64
    pol.reset_batch(B)
    batch = rng.normal(size=(K + 50, B, 10, 7)).astype(np.float32)
    batch[..., 0] = 1.0
    for t in range(K):
        pol.act_batch(batch[t])
    t0 = time.perf_counter()
    for t in range(K, K + 50):
        pol.act_batch(batch[t])
    dps = 50 * B / (time.perf_counter() - t0)
    # training throughput: forward + backward + AdamW on batches of 64 windows
    model = pol.model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    o = torch.randn(64, K, 10, 7)
    o[..., 0] = 1.0
    a = torch.randint(0, model.cfg.vocab_size, (64, K))
    m = torch.ones(64, K, dtype=torch.bool)
    for _ in range(3):
        model.loss(o, a, m).backward()
    t0, iters = time.perf_counter(), 30
    for _ in range(iters):
        opt.zero_grad()
        model.loss(o, a, m).backward()
        opt.step()
    tps = iters * 64 * K * 2 / (time.perf_counter() - t0)
    res = {
        "policy": args.policy,
        "threads": args.threads,
        "context": K,
        "parameters": model.num_params(),
        "p50_ms": float(np.percentile(lat_ms, 50)),
        "p99_ms": float(np.percentile(lat_ms, 99)),
        "cpu_p50_ms": float(np.percentile(cpu_ms, 50)),
        "cpu_p99_ms": float(np.percentile(cpu_ms, 99)),
        "full_forward_p50_ms": float(np.percentile(full_ms, 50)),
        "full_forward_cpu_p50_ms": float(np.percentile(full_cpu_ms, 50)),
        "batch64_decisions_per_s": dps,
        "train_tokens_per_s": tps,
        "machine": platform.platform(),
        "load_average": [float(x) for x in os.getloadavg()],
    }
    print(
        f"{args.policy}: {res['parameters']} params, context {K} steps ({2 * K} tokens), "
        f"{args.threads} thread(s)"
    )
    print(f"batch 1 latency: p50 {res['p50_ms']:.3f} ms, p99 {res['p99_ms']:.3f} ms (target p50 <= 2 ms)")
    print(f"batch 1 CPU time per decision: p50 {res['cpu_p50_ms']:.3f} ms, p99 {res['cpu_p99_ms']:.3f} ms")
    print(
        "full-context forward alone (the previous path's network cost): "
        f"p50 {res['full_forward_p50_ms']:.3f} ms, CPU p50 {res['full_forward_cpu_p50_ms']:.3f} ms"
    )
    print(f"batch 64: {dps:.0f} decisions/s; training: {tps:.0f} tokens/s")
    print(f"load average (1, 5, 15 min): {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
