"""The reward model's speed bias, measured on the human's own held-out driving.

The simulated human (reaction delay, action noise) drives ``--episodes`` held-out episodes (seeds from
1,000,000) of ``--env`` on the batched simulator, alone. At every step the reward model scores every
acceleration token with the lane intent the human chose (``accel`` language), and we report:

* **preferred − human** [m/s²]: the acceleration the reward model scores highest minus the one the
  human drove, mean over steps with a bootstrap 95% interval (resampling episodes); negative means the
  reward model would have the human drive slower than the human does;
* the share of steps where the reward model prefers a lower / higher acceleration than the human's;
* **score against speed**: the centred score of the human's own token, r(h, a) − mean over tokens,
  by ego-speed bin, and its least-squares slope against speed [per m/s] (bootstrap 95% interval):
  a negative slope means the reward model likes the human's driving less the faster the human goes.

    python bench/reward_speed_bias.py --reward runs/rm-accel --episodes 200 \\
        --out bench/results/reward_speed_bias

Writes ``--out``/``results.json``, ``results.md`` and ``speed_bias.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from drivegpt.core.atomic import write_json, write_text
from drivegpt.data.tokenizer import tokenizer_from_json
from drivegpt.data.windows import StepTable
from drivegpt.eval.closed_loop import EVAL_SEED
from drivegpt.rlhf.reward_model import load_reward_model
from drivegpt.sim import batched
from drivegpt.takeover.batched import WatchedHuman
from drivegpt.takeover.batched_drive import run_monitored_batch
from drivegpt.takeover.monitor import MonitorConfig
from drivegpt_envs.actions import ACCEL_BINS, LANE_INTENTS

NO_MONITOR = MonitorConfig(ttc_threshold=0, headway_threshold=0, offroad=False, lookahead_steps=0)


def human_drives(env: str, episodes: int, batch: int) -> list[dict[str, np.ndarray]]:
    """Per episode: raw observations (T, V, F), executed tokens (T,), ego speed at each decision (T,)
    [m/s]."""
    config = batched.make_config(env, "accel")
    out = []
    for lo in range(0, episodes, batch):
        seeds = list(range(EVAL_SEED + lo, EVAL_SEED + min(lo + batch, episodes)))
        start_speed = batched.reset(seeds, config).speed[:, 0].numpy()  # (B,) [m/s]
        run = run_monitored_batch(WatchedHuman(config), config, seeds, NO_MONITOR, alone=False)
        assert run.obs is not None
        for b in range(len(seeds)):
            n = int(run.steps[b])
            speed = np.concatenate([[start_speed[b]], run.speed[b, : n - 1]])  # before each step
            out.append({"obs": run.obs[b, :n], "tokens": run.executed[b, :n], "speed": speed})
    return out


@torch.no_grad()
def scores(model: torch.nn.Module, meta: dict, ep: dict[str, np.ndarray]) -> np.ndarray:
    """(T, vocab) centred reward-model scores r(h_t, a) − mean_a r(h_t, a) along one episode."""
    _, norm = tokenizer_from_json(meta["tokenizer"])
    T = len(ep["tokens"])
    tokens = ep["tokens"].astype(np.int64)
    table = StepTable(norm(ep["obs"].astype(np.float32)), tokens, tokens, np.zeros(T, np.int64))
    w = table.windows(torch.arange(T), model.cfg.context)
    r = model(w.obs, w.actions)[:, -1]  # (T, vocab)
    return (r - r.mean(-1, keepdim=True)).numpy()


def per_step(model: torch.nn.Module, meta: dict, drives: list[dict]) -> dict[str, np.ndarray]:
    """Flattened per-step figures with the episode index of each step."""
    bins, k = np.asarray(ACCEL_BINS), len(LANE_INTENTS)
    cols: dict[str, list[np.ndarray]] = {
        "episode": [],
        "speed": [],
        "human_acc": [],
        "pref_acc": [],
        "score": [],
    }
    for i, ep in enumerate(drives):
        s = scores(model, meta, ep)  # (T, vocab)
        tok = ep["tokens"].astype(np.int64)
        intent = tok % k
        same_intent = s.reshape(len(tok), len(bins), k)[np.arange(len(tok)), :, intent]  # (T, bins)
        cols["episode"].append(np.full(len(tok), i))
        cols["speed"].append(ep["speed"])
        cols["human_acc"].append(bins[tok // k])
        cols["pref_acc"].append(bins[same_intent.argmax(1)])
        cols["score"].append(s[np.arange(len(tok)), tok])
    return {name: np.concatenate(v) for name, v in cols.items()}


def bootstrap(stat, episodes: np.ndarray, n: int = 1000, seed: int = 0) -> list[float]:
    """95% percentile interval of ``stat(mask)`` over episode-resampled masks (counts per step)."""
    rng = np.random.default_rng(seed)
    ids = np.unique(episodes)
    vals = []
    for _ in range(n):
        counts = np.bincount(rng.choice(ids, len(ids)), minlength=ids.max() + 1)
        vals.append(stat(counts[episodes]))
    return [float(np.quantile(vals, 0.025)), float(np.quantile(vals, 0.975))]


def summarise(d: dict[str, np.ndarray], bin_width: float) -> dict:
    diff = d["pref_acc"] - d["human_acc"]

    def mean_diff(w: np.ndarray) -> float:
        return float((w * diff).sum() / w.sum())

    def slope(w: np.ndarray) -> float:
        x, y = d["speed"], d["score"]
        mx, my = (w * x).sum() / w.sum(), (w * y).sum() / w.sum()
        return float((w * (x - mx) * (y - my)).sum() / (w * (x - mx) ** 2).sum())

    one = np.ones_like(diff)
    edges = np.arange(np.floor(d["speed"].min()), d["speed"].max() + bin_width, bin_width)
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        m = (d["speed"] >= lo) & (d["speed"] < hi)
        if m.sum() >= 50:
            rows.append({
                "speed": [float(lo), float(hi)], "steps": int(m.sum()), "score": float(d["score"][m].mean()),
                "pref_minus_human": float(diff[m].mean()), "slower": float((diff[m] < 0).mean()),
            })  # fmt: skip
    return {
        "steps": len(diff),
        "episodes": int(d["episode"].max()) + 1,
        "pref_minus_human": mean_diff(one),
        "pref_minus_human_ci": bootstrap(mean_diff, d["episode"]),
        "prefers_slower": float((diff < 0).mean()),
        "prefers_faster": float((diff > 0).mean()),
        "score_speed_slope": slope(one),
        "score_speed_slope_ci": bootstrap(slope, d["episode"]),
        "by_speed": rows,
    }


def plot(s: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mid = [(r["speed"][0] + r["speed"][1]) / 2 for r in s["by_speed"]]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.5))
    a1.plot(mid, [r["score"] for r in s["by_speed"]], marker="o")
    a1.set(
        xlabel="ego speed [m/s]", ylabel="centred score of the human's action", title="score against speed"
    )
    a2.plot(mid, [r["pref_minus_human"] for r in s["by_speed"]], marker="o", color="C1")
    a2.axhline(0, color="k", lw=0.8)
    a2.set(
        xlabel="ego speed [m/s]", ylabel="preferred − human [m/s²]", title="what the reward model would do"
    )
    for a in (a1, a2):
        a.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reward", type=Path, required=True, help="a `drivegpt reward train` run (accel)")
    ap.add_argument("--env", default="drivegpt/HighwayDense-v0")
    ap.add_argument("--episodes", type=int, default=200)
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--bin", type=float, default=2.0, help="speed bin width [m/s]")
    ap.add_argument("--out", type=Path, default=Path("bench/results/reward_speed_bias"))
    args = ap.parse_args()
    t0, load0 = time.time(), os.getloadavg()
    model, meta = load_reward_model(args.reward)
    drives = human_drives(args.env, args.episodes, args.batch)
    s = summarise(per_step(model, meta, drives), args.bin)
    cmd = f"python bench/reward_speed_bias.py --reward {args.reward} --env {args.env}"
    cmd += f" --episodes {args.episodes}"
    result = {"command": cmd, "reward": str(args.reward), "env": args.env, "seed": EVAL_SEED, **s}
    result |= {"wall_s": time.time() - t0, "load_average": [load0, os.getloadavg()]}
    metrics = args.reward / "metrics.json"
    if metrics.is_file():
        result["reward_metrics"] = json.loads(metrics.read_text())
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "results.json", result)
    lo, hi = s["pref_minus_human_ci"]
    slo, shi = s["score_speed_slope_ci"]
    lines = [
        f"# Reward model speed bias on the human's held-out driving (`{args.env}`)",
        "",
        f"`{cmd}`; {s['episodes']} episodes, {s['steps']:,} steps, seeds from {EVAL_SEED}; "
        f"wall {result['wall_s']:.0f} s, load average {load0[0]:.2f} at the start.",
        "",
        f"* preferred − human acceleration: **{s['pref_minus_human']:+.3f} m/s²** [{lo:+.3f}, {hi:+.3f}]",
        f"* steps where the reward model prefers a lower / higher acceleration than the human's: "
        f"{s['prefers_slower']:.3f} / {s['prefers_faster']:.3f}",
        f"* slope of the human's centred score against speed: {s['score_speed_slope']:+.4f} per m/s "
        f"[{slo:+.4f}, {shi:+.4f}]",
        "",
        "| ego speed [m/s] | steps | centred score of the human's action | preferred − human [m/s²] "
        "| share preferring lower |",
        "|---|---|---|---|---|",
    ]
    for r in s["by_speed"]:
        lines.append(
            f"| {r['speed'][0]:.0f}-{r['speed'][1]:.0f} | {r['steps']:,} | {r['score']:+.3f} | "
            f"{r['pref_minus_human']:+.3f} | {r['slower']:.3f} |"
        )
    lines += ["", "![score and preferred acceleration against speed](speed_bias.png)", ""]
    write_text(args.out / "results.md", "\n".join(lines))
    plot(s, args.out / "speed_bias.png")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
