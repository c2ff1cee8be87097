"""Imitation pretraining of DriveGPT on human driving logs (next-action-token prediction).

``RUN/`` holds: ``run.json`` (command + resolved config), ``log.csv`` and ``tb/`` (TensorBoard),
``checkpoint/`` (resumable trainer state, rewritten atomically at every evaluation) and
``policy/`` (the shareable policy: safetensors weights + ``policy.json``).

Model selection: ``policy/`` holds the evaluation with the lowest validation cross-entropy, or, with
``select:``, the one that collided least driving validation episodes alone on the batched simulator
(token figures do not rank driving policies: the errors that matter compound in closed loop).

Under ``torchrun --nproc-per-node N`` the same config trains data-parallel (``drivegpt.model.distributed``):
``batch_size`` stays the global batch, split over the N processes; rank 0 alone evaluates and writes.
"""

from __future__ import annotations

import json
import math
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from drivegpt.core.atomic import append_csv_row, write_csv, write_json
from drivegpt.core.errors import MissingInputError, OutputExistsError, TrainingError, UserError
from drivegpt.core.progress import progress_bar
from drivegpt.data.logs import load_logs
from drivegpt.data.tokenizer import ActionTokenizer, ObsNormalizer, tokenizer_to_json
from drivegpt.data.windows import StepTable, WindowBatch, split_episodes
from drivegpt.model.checkpoint import load_trainer, save_policy, save_trainer
from drivegpt.model.distributed import (
    DistContext,
    all_sum,
    broadcast,
    setup,
    shard,
    shard_batch,
    teardown,
    wrap,
)
from drivegpt.model.gpt import DriveGPT, DriveGPTConfig
from drivegpt.model.policy import DriveGPTPolicy
from drivegpt.model.pretrain_config import PretrainConfig, SelectConfig
from drivegpt.sim import batched
from drivegpt.sim.batched.drive import drive_batch
from drivegpt_envs.common import POLICY_FREQUENCY, action_config, kinematics_observation


def lr_at(it: int, cfg: PretrainConfig) -> float:
    """Linear warm-up to ``lr`` then cosine decay to ``min_lr`` at ``max_iters``."""
    if it < cfg.warmup_iters:
        return cfg.lr * (it + 1) / cfg.warmup_iters
    ratio = (it - cfg.warmup_iters) / max(1, cfg.max_iters - cfg.warmup_iters)
    return cfg.min_lr + 0.5 * (1 + math.cos(math.pi * min(1.0, ratio))) * (cfg.lr - cfg.min_lr)


@torch.no_grad()
def evaluate_imitation(
    model: DriveGPT,
    table: StepTable,
    actions: ActionTokenizer,
    raw_actions: np.ndarray | None = None,
    batch: int = 1024,
) -> dict[str, float]:
    """Held-out figures on every step of ``table``, each predicted from its own K-step context."""
    model.eval()
    K, device = model.cfg.context, next(model.parameters()).device
    ce_sum, correct, n, preds = 0.0, 0, 0, []
    for lo in range(0, len(table), batch):
        ends = torch.arange(lo, min(lo + batch, len(table)))
        w = table.windows(ends, K)
        logits = model(w.obs.to(device), w.actions.to(device))[:, -1]  # (B, vocab)
        target = w.targets[:, -1].to(device)
        ce_sum += float(torch.nn.functional.cross_entropy(logits, target, reduction="sum"))
        pred = logits.argmax(-1)
        correct += int((pred == target).sum())
        preds.append(pred.cpu().numpy())
        n += len(ends)
    out = {"cross_entropy": ce_sum / n, "action_accuracy": correct / n}
    if raw_actions is not None and actions.kind == "continuous":
        decoded = actions.decode(np.concatenate(preds))
        err = np.abs(decoded - raw_actions.reshape(-1, 2)).mean(axis=0)
        out["mae_acceleration_mps2"] = float(err[0] * 5.0)  # [-1, 1] -> ±5 m/s²
        out["mae_steering_rad"] = float(err[1] * math.pi / 4)  # [-1, 1] -> ±π/4 rad
    model.train()
    return out


@torch.no_grad()
def drive_validation(model: DriveGPT, info: dict[str, Any], select: SelectConfig) -> dict[str, float]:
    """The policy alone on the ``select`` validation episodes (batched simulator): collisions, speed."""
    device = next(model.parameters()).device
    policy = DriveGPTPolicy(model, info)  # (puts the model in eval mode)
    config = batched.make_config(select.env, info["action"], policy.env_config)
    seeds = list(range(select.seed, select.seed + select.episodes))
    out = drive_batch(policy, config, seeds, device)
    model.train()
    speeds = np.concatenate(out["speeds"])
    return {"collisions": int(out["crashed"].sum()), "mean_speed_mps": float(speeds.mean())}


def drop_actions(actions: torch.Tensor, p: float, gen: torch.Generator, mask_token: int) -> torch.Tensor:
    """Replace each input action token by MASK with probability ``p`` (drawn for the global batch,
    so every rank and a one-process run draw the same mask)."""
    if p <= 0:
        return actions
    drop = torch.rand(actions.shape, generator=gen) < p
    return torch.where(drop, torch.full_like(actions, mask_token), actions)


def label_weights(targets: torch.Tensor, vocab: int, power: float) -> torch.Tensor:
    """(vocab,) loss weight per label token: share^-power, mean 1 over ``targets`` (unseen tokens: 0)."""
    counts = torch.bincount(targets.flatten(), minlength=vocab).double()  # (vocab,)
    w = torch.where(counts > 0, (counts / counts.sum()).pow(-power), 0.0)
    return (w / ((w * counts).sum() / counts.sum())).float()


def train_step(
    model: torch.nn.Module,
    batch: WindowBatch,
    inputs: torch.Tensor,
    ctx: DistContext,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Forward + backward of this rank's slice of the global batch; returns the global mean loss.

    The loss is the mean cross-entropy over the action tokens of the *global* batch: each rank sums
    over its own tokens and divides by the global count, so DDP's gradient average (× world size)
    is exactly the one-process gradient.
    """
    count = batch.mask.sum().clamp_min(1).to(ctx.device)  # real steps in the global batch
    local, local_inputs = shard_batch(batch, ctx), shard(inputs, ctx)
    logits = model(local.obs, local_inputs)  # (b, K, vocab), b = B / world_size
    ce = F.cross_entropy(logits.flatten(0, 1), local.targets.flatten(), reduction="none")  # (b*K,)
    if weights is not None:  # label_weight_power > 0
        ce = ce * weights[local.targets.flatten()]
    loss = (ce * local.mask.flatten().float()).sum() / count
    (loss * ctx.world_size).backward()
    return all_sum(loss.detach(), ctx)


def pretrain(
    cfg: PretrainConfig,
    data: str | Path,
    out: str | Path,
    resume: bool = False,
    command: str = "",
    progress: bool = True,
) -> dict[str, Any]:
    """Train DriveGPT on the logs in ``data``; write the run to ``out``; return the final figures."""
    out = Path(out)
    if (out / "checkpoint").exists() and not resume:
        raise OutputExistsError(
            f"{out}: a run already exists there; pass --resume to continue it or choose another --out"
        )
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    ctx = setup()
    try:
        final = _train(ctx, cfg, data, out, resume, command, progress)
    except BaseException as err:
        traceback.clear_frames(err.__traceback__)  # the failed run's DDP reducer goes before the group
        teardown(ctx, wait=False)  # a rank that fails alone leaves without waiting for the others
        raise
    teardown(ctx)
    return final


def _train(
    ctx: DistContext,
    cfg: PretrainConfig,
    data: str | Path,
    out: Path,
    resume: bool,
    command: str,
    progress: bool,
) -> dict[str, Any]:
    """:func:`pretrain`'s run, on this rank of ``ctx``."""
    if cfg.batch_size % ctx.world_size:
        raise UserError(f"batch_size {cfg.batch_size} must be a multiple of the {ctx.world_size} processes")
    ds = load_logs(data)
    kind = ds.action_kind
    train_eps, val_eps = split_episodes(len(ds), cfg.val_fraction, cfg.seed)
    if cfg.max_train_episodes:
        train_eps = train_eps[: cfg.max_train_episodes]
    tok = ActionTokenizer(kind, cfg.bins)
    train_obs = np.concatenate([ep.observations[:-1] for ep in ds.episodes(train_eps)])
    norm = ObsNormalizer.fit(train_obs)
    train = StepTable.from_logs(ds, train_eps, tok, norm)
    val = StepTable.from_logs(ds, val_eps, tok, norm)
    val_raw = np.concatenate([ep.decisions for ep in ds.episodes(val_eps)]) if kind == "continuous" else None

    weights = (
        label_weights(train.targets, tok.vocab_size, cfg.label_weight_power).to(ctx.device)
        if cfg.label_weight_power
        else None
    )
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank
    mcfg = DriveGPTConfig(vocab_size=tok.vocab_size, **cfg.model.to_dict())
    model = DriveGPT(mcfg).to(ctx.device)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=(0.9, 0.95),
    )
    gen = torch.Generator().manual_seed(cfg.seed)  # the same global batches on every rank
    start, best, best_key = 0, float("inf"), [math.inf, math.inf]  # key: (collisions, val CE)
    if resume and not (out / "checkpoint").exists():
        leftovers = sorted(out.glob(".checkpoint.*")) if out.exists() else []
        hint = f" (an interrupted write left {leftovers[0]}: rename it to checkpoint)" if leftovers else ""
        raise MissingInputError(f"{out / 'checkpoint'}: nothing to resume{hint}; drop --resume to start over")
    if resume:
        was = json.loads((out / "run.json").read_text()) if (out / "run.json").is_file() else {}
        if was.get("data_manifest") not in (None, ds.manifest["files"].get("metadata.json")):
            raise UserError(f"{out}: trained on other logs ({was.get('data')}); resume it with that --data")
        state = load_trainer(out / "checkpoint", model, opt)
        start, best = int(state["iter"]), float(state["best_val_ce"])
        best_key = [float(v) for v in state.get("best_key", [0.0 if cfg.select is None else math.inf, best])]
        gen.set_state(torch.tensor(state["generator"], dtype=torch.uint8))
    info = {
        "action": kind,
        "policy_frequency": POLICY_FREQUENCY[kind],
        "observation": kinematics_observation(),
        "env_config": action_config(kind),  # type: ignore[arg-type]
        "tokenizer": tokenizer_to_json(tok, norm),
        "trained_on": str(data),
    }
    fields = ["iter", "lr", "train_loss", "val_cross_entropy", "val_action_accuracy", "tokens_per_s"]
    if cfg.select is not None:
        fields += ["select_collision_rate", "select_mean_speed_mps"]
    log_path = out / "log.csv"
    if ctx.main:
        from torch.utils.tensorboard import SummaryWriter

        out.mkdir(parents=True, exist_ok=True)
        write_json(
            out / "run.json",
            {
                "command": command,
                "config": cfg.to_dict(),
                "data": str(data),
                "data_manifest": ds.manifest["files"].get("metadata.json"),
                "train_episodes": len(train_eps),
                "val_episodes": len(val_eps),
                "parameters": model.num_params(),
                "processes": ctx.world_size,
            },
        )
        tb = SummaryWriter(str(out / "tb"))
        if not log_path.exists() or start == 0:
            write_csv(log_path, [fields])
    tokens_per_iter = cfg.batch_size * mcfg.context * 2
    bar = progress_bar(
        range(start, cfg.max_iters),
        initial=start,
        total=cfg.max_iters,
        desc="pretrain",
        disable=not (progress and ctx.main),
        dynamic_ncols=True,
    )
    ddp = wrap(model, ctx)
    model.train()
    t0, it_t0, metrics = time.perf_counter(), start, {}
    for it in bar:
        lr = lr_at(it, cfg)
        for g in opt.param_groups:
            g["lr"] = lr
        batch = train.sample(cfg.batch_size, mcfg.context, gen)  # (B, K, ...) global batch
        inputs = drop_actions(batch.actions, cfg.action_dropout, gen, model.mask_token)
        opt.zero_grad(set_to_none=True)
        loss = train_step(ddp, batch, inputs, ctx, weights)
        if not torch.isfinite(loss):  # the same verdict on every rank: the loss is all-reduced
            ckpt = out / "checkpoint"
            fix = (
                f"the last good state is in {ckpt}: lower lr and run with --resume"
                if ckpt.exists()
                else "no checkpoint yet: lower lr and start over"
            )
            raise TrainingError(f"non-finite loss ({float(loss)}) at iter {it}; {fix} (lr now {cfg.lr})")
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        bar.set_postfix(loss=f"{float(loss):.3f}", lr=f"{lr:.1e}")
        last = it + 1 == cfg.max_iters
        if ((it + 1) % cfg.eval_every == 0 or last) and ctx.main:
            tps = tokens_per_iter * (it + 1 - it_t0) / (time.perf_counter() - t0)
            metrics = evaluate_imitation(model, val, tok, val_raw)
            row = [it + 1, lr, float(loss), metrics["cross_entropy"]]
            row += [metrics["action_accuracy"], tps]
            key = [0.0, metrics["cross_entropy"]]
            if cfg.select is not None:
                drove = drive_validation(model, info, cfg.select)
                metrics["select"] = {**cfg.select.to_dict(), **drove}
                row += [drove["collisions"] / cfg.select.episodes, drove["mean_speed_mps"]]
                key[0] = drove["collisions"]
            append_csv_row(log_path, row)
            for name, v in zip(fields[1:], row[1:], strict=True):
                tb.add_scalar(name, v, it + 1)
            best = min(best, metrics["cross_entropy"])
            if key < best_key:
                best_key = key
                save_policy(out / "policy", model, {**info, "iter": it + 1, "val": metrics})
            trainer = {"iter": it + 1, "best_val_ce": best, "best_key": best_key}
            save_trainer(out / "checkpoint", model, opt, {**trainer, "generator": gen.get_state().tolist()})
            t0, it_t0 = time.perf_counter(), it + 1
            metrics = {**metrics, "tokens_per_s": tps}
    bar.close()
    final: dict[str, Any] = {}
    if ctx.main:
        if not metrics:  # resumed a run that had already finished all its steps
            metrics = evaluate_imitation(model, val, tok, val_raw)
        tb.close()
        final = {
            "iter": cfg.max_iters,
            "best_val_cross_entropy": best,
            **metrics,
            "parameters": model.num_params(),
            "train_steps": len(train),
            "val_steps": len(val),
            "processes": ctx.world_size,
        }
        write_json(out / "metrics.json", final)
    return broadcast(final, ctx)  # every rank returns rank 0's figures (DDP's reducer goes with ddp)
