"""DPO on takeover pairs: the cheap alternative to reward model + PPO.

No reward model and no rollouts: the policy is trained directly on the same (context, human
correction ≻ policy proposal) pairs the reward model learns from, against the frozen pretrained
reference, plus a behaviour-cloning term on the human's actions so the chosen action's own
likelihood does not drop along with the rejected one's, and (``weak_weight``) one on the policy's
own weakly-good steps so that driving away from takeovers stays as it was.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from pydantic import Field
from torch.nn import functional as F

from drivegpt.core.atomic import write_csv, write_json
from drivegpt.core.config import FrozenConfig
from drivegpt.core.errors import TrainingError
from drivegpt.core.progress import progress_bar
from drivegpt.data.tokenizer import tokenizer_from_json
from drivegpt.model.checkpoint import save_policy
from drivegpt.rlhf.ppo import load_run_policy
from drivegpt.rlhf.preferences import PreferenceBatch, dpo_loss, load_preferences, split_pairs


class DPOConfig(FrozenConfig):
    """``drivegpt dpo`` settings."""

    iters: int = Field(200, ge=1)
    """Optimizer steps."""
    batch_size: int = Field(64, ge=1)
    """Pairs per step."""
    lr: float = Field(5e-5, gt=0)
    """AdamW learning rate."""
    beta: float = Field(0.1, gt=0)
    """DPO β: how far the policy's log-ratios may move from the reference's."""
    bc_weight: float = Field(0.1, ge=0)
    """Weight of the behaviour-cloning term -log π(human action)."""
    weak_weight: float = Field(0.0, ge=0)
    """Weight of -log π(own action) on the weakly-good steps (the policy's driving far from any
    takeover): an anchor that keeps normal driving as it was while the takeover states change."""
    val_fraction: float = Field(0.2, ge=0, lt=1)
    """Clips held out to report the preference accuracy of the implicit reward."""
    seed: int = 0
    """Split and batch-sampling seed."""
    threads: int = Field(1, ge=1)
    """torch threads (1 is fastest for models this small, and robust when the cores are shared)."""


def _logps(model: torch.nn.Module, b: PreferenceBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """log π(chosen), log π(rejected) at each pair's decision step, (B,) each."""
    logp = F.log_softmax(model(b.obs, b.actions)[:, -1], -1)  # (B, vocab)
    return logp.gather(1, b.chosen[:, None])[:, 0], logp.gather(1, b.rejected[:, None])[:, 0]


@torch.no_grad()
def implicit_accuracy(model: torch.nn.Module, ref: torch.nn.Module, b: PreferenceBatch) -> float:
    """Pairs where the implicit reward log π/π_ref ranks the human's action above the proposal."""
    if len(b.chosen) == 0:
        return float("nan")
    c, r = _logps(model, b)
    rc, rr = _logps(ref, b)
    return float(((c - rc) > (r - rr)).float().mean())


def dpo(
    cfg: DPOConfig,
    clip_dirs: list[str | Path],
    policy_path: str | Path,
    out: str | Path,
    reference_path: str | Path | None = None,
    command: str = "",
    progress: bool = True,
) -> dict[str, Any]:
    """Fine-tune the policy in ``policy_path`` by DPO on the clips; writes ``out/policy``."""
    out = Path(out)
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    policy, meta = load_run_policy(policy_path)
    ref, _ = load_run_policy(reference_path or policy_path)
    ref.eval().requires_grad_(False)
    tok, norm = tokenizer_from_json(meta["tokenizer"])
    data = load_preferences(clip_dirs, tok, norm, policy.cfg.context)
    train, val = split_pairs(data.pairs, cfg.val_fraction, cfg.seed)
    with torch.no_grad():
        ref_c, ref_r = _logps(ref, train)  # (N,) fixed: the reference never moves
    opt = torch.optim.AdamW(policy.parameters(), lr=cfg.lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(cfg.seed)
    out.mkdir(parents=True, exist_ok=True)
    run = {"command": command, "config": cfg.to_dict(), "clips": list(map(str, clip_dirs))}
    run |= {"policy": str(policy_path), "reference": str(reference_path or policy_path)}
    log = [["iter", "loss", "dpo_loss", "bc_loss", "val_implicit_accuracy"]]
    policy.eval()  # no dropout: log-ratios against the reference compare like with like
    for it in progress_bar(range(cfg.iters), desc="dpo", disable=not progress, dynamic_ncols=True):
        i = torch.randint(len(train.chosen), (cfg.batch_size,), generator=gen)
        c, r = _logps(policy, train.take(i))
        d = dpo_loss(c, r, ref_c[i], ref_r[i], cfg.beta)
        bc = -c.mean()
        loss = d + cfg.bc_weight * bc
        if data.weak is not None and cfg.weak_weight > 0:
            j = torch.randint(len(data.weak.obs), (cfg.batch_size,), generator=gen)
            logits = policy(data.weak.obs[j], data.weak.actions[j])[:, -1]  # (B, vocab)
            loss = loss + cfg.weak_weight * F.cross_entropy(logits, data.weak.targets[j, -1])
        if not torch.isfinite(loss):
            raise TrainingError(f"non-finite DPO loss at iter {it}; lower lr (now {cfg.lr}) or beta")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        opt.step()
        if (it + 1) % max(1, cfg.iters // 5) == 0 or it + 1 == cfg.iters:
            row = [it + 1, float(loss.detach()), float(d.detach()), float(bc.detach())]
            log.append(row + [implicit_accuracy(policy, ref, val)])
    write_csv(out / "log.csv", log)
    save_policy(out / "policy", policy, {**meta, "dpo_reference": str(reference_path or policy_path)})
    write_json(out / "run.json", run)  # with the outputs it made: a failed run leaves an earlier run's whole
    metrics = {
        "val_implicit_accuracy": implicit_accuracy(policy, ref, val),
        "train_pairs": len(train.chosen),
        "val_pairs": len(val.chosen),
        "clips": data.clips,
    }
    write_json(out / "metrics.json", metrics)
    return metrics
