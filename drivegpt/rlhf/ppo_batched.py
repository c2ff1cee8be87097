"""PPO on the batched simulator: B monitored episodes per update, a million policy steps on a laptop.

The same clipped-ratio PPO, KL leash and value head as :mod:`drivegpt.rlhf.ppo` (from
:mod:`drivegpt.rlhf.actor_critic`), with rollouts driven by :mod:`drivegpt.sim.batched` under the
batched safety driver (:mod:`drivegpt.takeover.batched`): each update resets ``batch`` training
episodes and drives them all at once, sampling DriveGPT at ``temperature``. The safety driver takes
over as on the road and hands back; the policy then drives on.

Per policy step the reward is::

    r_t = rm_coef · r̂(h_t, a_t) / std  +  progress_coef · v_{t+1} / 30 m/s  −  β · KL_t  −  λ · c_t

r̂ is the reward model's score centred over the action vocabulary (divided by its standard deviation
over the update); ``c_t`` is 1 at a takeover (the proposal was rejected: the end of the policy's
segment) or a collision while the policy drove. λ is ``takeover_penalty``, fixed, or with
``lagrangian`` a Lagrange multiplier: after each update λ ← max(0, λ + ``lagrange_lr`` · (rate /
``cost_limit`` − 1)), rate = the update's takeovers per 100 km of policy driving (PPO-Lagrangian:
progress as the objective, takeovers as the constrained cost). Three counter-measures against
"slower is safer" can be combined: a reward model trained with the human term (its normal driving at
speed on top), the Lagrangian, and ``crawl_ratio``: the safety driver also takes over when the policy
drives below ``crawl_ratio`` × its own desired speed on a clear road (headway ≥ ``crawl_headway``)
while it would itself accelerate harder, for ``crawl_steps`` steps, so crawling is itself a
takeover (the simulated human never triggers it: 0 per 100 km on 128 dense training episodes at the
defaults, the pretrained DriveGPT about 180).

Segments: a policy segment ends at a takeover or a collision (terminal: nothing after it counts for
the policy) or at the episode's time limit (truncated: the last step bootstraps from V of the next
state). After a hand-back a new segment starts with the executed history as context. A takeover on
the episode's first state is not the policy's doing: that step is left out of the loss and the rate.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from drivegpt.core.atomic import write_csv, write_json
from drivegpt.core.device import resolve_device
from drivegpt.core.errors import MissingInputError, OutputExistsError, UserError
from drivegpt.core.progress import progress_bar
from drivegpt.data.windows import StepTable
from drivegpt.model.checkpoint import load_trainer, save_policy, save_trainer
from drivegpt.model.policy import DriveGPTPolicy
from drivegpt.policies.registry import drivegpt_dir
from drivegpt.rlhf.actor_critic import ValueHead, ppo_update, segment_gae
from drivegpt.rlhf.ppo_batched_config import BatchedPPOConfig
from drivegpt.rlhf.preferences import kl_to_reference
from drivegpt.sim import batched
from drivegpt.takeover.batched import NO_TRIGGER, batched_safety_driver, check_triggers, hand_back
from drivegpt_envs.actions import ACCEL_BINS

FIELDS = [
    "update", "policy_steps", "wall_s", "reward", "rm_score", "kl", "takeovers", "takeovers_at_start",
    "crawl_takeovers", "takeovers_per_100km", "collisions", "policy_km", "mean_speed_mps", "lagrange_lambda",
    "clip_fraction", "entropy", "value_loss",
]  # fmt: skip
"""Logged per update (``log.csv`` and TensorBoard): ``takeovers`` counts those after an episode's
first state (the policy's), ``takeovers_per_100km`` divides them by ``policy_km``; ``collisions`` are
the policy's own (while it drove); ``reward``, ``rm_score``, ``kl`` are per-step means."""


def rollout(
    pol: DriveGPTPolicy,
    ref: DriveGPTPolicy,
    reward: DriveGPTPolicy | None,
    critic: ValueHead,
    config: batched.SimConfig,
    seeds: list[int],
    cfg: BatchedPPOConfig,
) -> dict[str, np.ndarray]:
    """Drive ``seeds`` at once under the batched safety driver, sampling ``pol`` at ``temperature``.

    The reference and the reward model follow the same history (each keeps its own state encodings),
    so every step is scored as it is driven: ``logp`` of the proposal, ``kl`` to the reference, ``rm``
    (the reward model's centred score of the proposal; 0 without one) and ``value``. Returns (B, T)
    arrays of those and: ``obs`` (B, T, V, F) raw, ``proposal``/``executed`` tokens, ``acted`` (the
    policy had control), ``takeover`` (its proposal was rejected), ``crawl``, ``crash`` (a collision
    on this step), ``speed`` after the step [m/s], ``moved`` [m], ``truncated`` (the time limit
    ended the episode here), ``valid``; and ``final_obs`` (B, V, F), the observation after the end."""
    state = batched.reset(seeds, config, cfg.device)
    dev, bsz, tau = state.device, len(seeds), cfg.temperature
    safety = batched_safety_driver(config)
    safety.reset(seeds, state)
    streams = [m for m in (pol, ref, reward) if m is not None]
    for m in streams:
        m.reset_batch(bsz)
    done = torch.zeros(bsz, dtype=torch.bool, device=dev)
    in_takeover, safe_run = done.clone(), torch.zeros(bsz, dtype=torch.long, device=dev)
    slow_run = torch.zeros_like(safe_run)  # (B,) consecutive crawling steps
    accel = torch.tensor(ACCEL_BINS, dtype=state.speed.dtype, device=dev)  # [m/s²] of token // 3
    rec: dict[str, list[torch.Tensor]] = {}
    final_obs = batched.observe(state)
    for t in range(cfg.max_steps):
        if bool(done.all()):
            break
        obs = batched.observe(state)  # (B, V, F)
        obs_np = obs.cpu().numpy()
        for m in streams:
            m.push(obs_np)
        h = pol.last_hidden()  # (B, C)
        logp_all = torch.log_softmax(pol.model.head(h) / tau, -1)  # (B, vocab)
        token = torch.multinomial(logp_all.exp(), 1, generator=pol.sampler)[:, 0]  # (B,)
        pol.tokens[:, -1] = token
        score = {
            "logp": logp_all.gather(1, token[:, None])[:, 0],
            "kl": kl_to_reference(logp_all, ref.model.head(ref.last_hidden()) / tau),
            "value": critic(h),
            "rm": torch.zeros(bsz),
        }
        if reward is not None:
            r = reward.model.head(reward.last_hidden())  # (B, vocab)
            score["rm"] = (r - r.mean(-1, keepdim=True)).gather(1, token[:, None])[:, 0]
        proposal = token.to(dev)
        chosen = safety.act(state)  # (B,)
        acted = ~done & ~in_takeover
        code, _, headway, _ = check_triggers(state, pol, proposal, chosen, cfg.monitor, acted)
        crawl = torch.zeros_like(acted)
        if cfg.crawl_ratio:  # held back on a clear road, for crawl_steps in a row
            slow = state.speed[:, 0] < cfg.crawl_ratio * safety.p.desired_speed
            held = accel[safety.decision // 3] - accel[proposal // 3] >= cfg.crawl_margin  # (B,)
            slow_run = torch.where(acted & slow & held & (headway >= cfg.crawl_headway), slow_run + 1, 0)
            crawl = (code == NO_TRIGGER) & (slow_run >= cfg.crawl_steps)
            slow_run = torch.where(crawl | (code != NO_TRIGGER), 0, slow_run)
        start = (code != NO_TRIGGER) | crawl
        in_takeover |= start
        safe_run = torch.where(start, 0, safe_run)
        action = torch.where(in_takeover, chosen, proposal)
        for m in streams:  # the history holds what was driven
            m.tokens[:, -1] = action.cpu()
        x0, y0 = state.x[:, 0], state.y[:, 0]
        state = batched.step(state, action)
        moved = torch.where(done, 0.0, torch.hypot(state.x[:, 0] - x0, state.y[:, 0] - y0))  # (B,) [m]
        crash = ~done & state.crashed[:, 0]
        capped = batched.truncated(state) | (t + 1 == cfg.max_steps)
        ended = batched.terminated(state) | capped
        truncated = ~done & capped & ~batched.terminated(state)
        final_obs = torch.where(truncated[:, None, None], batched.observe(state), final_obs)
        step = {"obs": obs, "proposal": proposal, "executed": action, "acted": acted, "takeover": start}
        step |= {"crawl": crawl, "crash": crash, "speed": state.speed[:, 0], "moved": moved}
        step |= {"truncated": truncated, "valid": ~done, **score}
        for key, value in step.items():
            rec.setdefault(key, []).append(value.cpu())
        in_takeover, safe_run = hand_back(state, cfg.monitor, in_takeover, safe_run)
        done |= ended
    out = {k: torch.stack(v, 1).numpy() for k, v in rec.items()}  # (B, T, ...)
    out["final_obs"] = final_obs.cpu().numpy()
    return out


def lagrange_step(lam: float, rate: float, limit: float, lr: float) -> float:
    """Dual ascent on the takeover constraint: λ + lr · (rate / limit − 1), kept ≥ 0."""
    return max(0.0, lam + lr * (rate / limit - 1.0))


def _load(spec: str) -> DriveGPTPolicy:
    pol = DriveGPTPolicy.load(drivegpt_dir(spec))
    if pol.action_kind != "accel":
        raise UserError(f"{spec}: a {pol.action_kind!r} policy; the batched safety driver drives accel only")
    return pol


def ppo_batched(
    cfg: BatchedPPOConfig,
    policy_spec: str,
    reward_path: str | Path | None,
    out: str | Path,
    reference_spec: str | None = None,
    resume: bool = False,
    command: str = "",
    progress: bool = True,
) -> dict[str, Any]:
    """Fine-tune ``policy_spec`` with PPO on the batched simulator; writes ``out/policy``, ``log.csv``,
    ``tb/``, ``metrics.json`` and ``checkpoint/`` + ``critic/`` (``resume`` continues from them)."""
    from torch.utils.tensorboard import SummaryWriter

    from drivegpt.rlhf.reward_model import load_reward_model

    out = Path(out)
    if (out / "checkpoint").exists() and not resume:
        raise OutputExistsError(f"{out}: a run already exists there; pass --resume or choose another --out")
    if resume and not (out / "checkpoint").exists():
        raise MissingInputError(f"{out / 'checkpoint'}: nothing to resume; drop --resume to start over")
    if cfg.rm_coef and reward_path is None:
        raise UserError("rm_coef > 0 needs a reward model: pass --reward RM_RUN (or set rm_coef: 0)")
    resolve_device(cfg.device)  # an unknown or absent device: one line naming it, before any work
    batched.make_config(cfg.env_id)  # an env id the batched simulator lacks: the same
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    pol = _load(policy_spec)
    policy, meta = pol.model, pol.meta
    pol.temperature = cfg.temperature
    ref = _load(reference_spec or policy_spec)
    ref.model.requires_grad_(False)
    reward = None
    if cfg.rm_coef:
        rm_model, rmeta = load_reward_model(reward_path or "")
        reward = DriveGPTPolicy(rm_model.requires_grad_(False), rmeta)
        if rmeta["action"] != meta["action"]:
            raise UserError(
                f"{reward_path}: a {rmeta['action']!r} reward model for an {meta['action']!r} policy"
            )
    config = batched.make_config(cfg.env_id, "accel", pol.env_config)
    critic = ValueHead(policy.cfg.n_embd, scale=1.0 / (1.0 - cfg.gamma))  # returns ~ reward / (1 - γ)
    opt = torch.optim.Adam(policy.parameters(), lr=cfg.lr)
    vf_opt = torch.optim.Adam(critic.parameters(), lr=cfg.vf_lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    start, lam, log, wall0 = 0, cfg.takeover_penalty, [FIELDS], 0.0
    if resume:
        load_trainer(out / "critic", critic, vf_opt)
        saved = load_trainer(out / "checkpoint", policy, opt)
        start, lam, log, wall0 = saved["update"], saved["lambda"], saved["log"], saved["wall_s"]
        gen.set_state(torch.tensor(saved["generator"], dtype=torch.uint8))
    out.mkdir(parents=True, exist_ok=True)
    run = {
        "command": command,
        "config": cfg.to_dict(),
        "policy": policy_spec,
        "reward": str(reward_path or ""),
    }
    write_json(out / "run.json", run | {"reference": reference_spec or policy_spec})
    tb = SummaryWriter(str(out / "tb"))
    K, tick = policy.cfg.context, time.perf_counter()
    policy_steps = int(log[-1][1]) if len(log) > 1 else 0
    bar = progress_bar(
        range(start, cfg.updates), desc="ppo (batched)", disable=not progress, dynamic_ncols=True
    )
    for u in bar:
        policy.eval()
        pol.sampler = torch.Generator().manual_seed(cfg.seed + u)
        seeds = list(range(cfg.seed + u * cfg.batch, cfg.seed + (u + 1) * cfg.batch))
        with torch.inference_mode():
            r = rollout(pol, ref, reward, critic, config, seeds, cfg)
        B, T = r["valid"].shape
        at_start = r["takeover"][:, 0].copy()  # the first state's takeovers: not the policy's
        acts = r["acted"] & r["valid"]
        acts[:, 0] &= ~at_start
        rm = r["rm"] / (r["rm"][acts].std() + 1e-8) if reward is not None else r["rm"]
        cost = acts & (r["takeover"] | r["crash"])
        rew = np.where(acts, cfg.rm_coef * rm - cfg.beta * r["kl"], 0.0)  # (B, T)
        rew += np.where(acts & ~r["takeover"], cfg.progress_coef * r["speed"] / 30.0, 0.0)
        rew -= lam * cost
        # every recorded step as one table: episode b's steps start at row b·T
        obs = pol.normalizer(r["obs"].reshape(B * T, *r["obs"].shape[2:]).astype(np.float32))
        tokens = r["executed"].reshape(-1)
        table = StepTable(obs, tokens, tokens, np.repeat(np.arange(B) * T, T))
        # V(s_T) where a policy segment ran into the time limit: its window shifted on by the next state
        next_v = np.zeros((B, T))
        trunc = acts & r["truncated"] & ~cost
        rows = np.flatnonzero(trunc.any(1))
        if len(rows):
            fw = table.windows(torch.from_numpy(rows * T + trunc[rows].argmax(1)), K)
            last = torch.from_numpy(pol.normalizer(r["final_obs"][rows].astype(np.float32)))
            fobs = torch.cat([fw.obs[:, 1:], last[:, None]], 1)  # (R, K, V, F)
            facts = torch.cat([fw.actions[:, 1:], torch.zeros_like(fw.actions[:, :1])], 1)  # (R, K)
            with torch.no_grad():
                next_v[rows, trunc[rows].argmax(1)] = critic(policy.hidden(fobs, facts)[:, -1]).numpy()
        adv = segment_gae(rew, r["value"], acts, cost, next_v, cfg.gamma, cfg.gae_lambda)
        idx = np.flatnonzero(acts.reshape(-1))  # the policy's steps
        adv_all = adv.reshape(-1)[idx]
        returns_all = adv_all + r["value"].reshape(-1)[idx]
        adv_all = (adv_all - adv_all.mean()) / (adv_all.std() + 1e-8)
        pick = torch.randperm(len(idx), generator=gen)[: max(1, round(cfg.train_fraction * len(idx)))]
        sub = idx[pick.numpy()]
        w = table.windows(torch.from_numpy(sub), K)
        w.actions[:, -1] = torch.from_numpy(r["proposal"].reshape(-1)[sub])  # the policy's own choice
        old_logp = torch.from_numpy(r["logp"].reshape(-1)[sub]).float()
        adv_t = torch.from_numpy(adv_all[pick.numpy()]).float()
        ret_t = torch.from_numpy(returns_all[pick.numpy()]).float()
        stats = ppo_update(policy, critic, opt, vf_opt, w, old_logp, adv_t, ret_t, cfg, gen)
        if not all(np.isfinite(v) for v in stats.values()):
            raise UserError(f"non-finite PPO update {u + 1} ({stats}); lower lr and run again with --resume")
        km = float((r["moved"] * (acts & ~r["takeover"])).sum()) / 1000.0
        takeovers = int((acts & r["takeover"]).sum())
        rate = 100.0 * takeovers / km if km > 0 else float("nan")
        lam_used = lam
        if cfg.lagrangian and np.isfinite(rate):
            lam = lagrange_step(lam, rate, cfg.cost_limit, cfg.lagrange_lr)
        policy_steps += len(idx)
        wall = wall0 + time.perf_counter() - tick
        row = [u + 1, policy_steps, round(wall, 1), float(rew[acts].mean()), float(r["rm"][acts].mean())]
        row += [float(r["kl"][acts].mean()), takeovers, int(at_start.sum()), int((acts & r["crawl"]).sum())]
        row += [rate, int((acts & r["crash"]).sum()), km, float(r["speed"][r["valid"]].mean()), lam_used]
        row += [stats["clip_fraction"], stats["entropy"], stats["value_loss"]]
        log.append(row)
        for name, v in zip(FIELDS[3:], row[3:], strict=True):
            tb.add_scalar(name, v, policy_steps)
        bar.set_postfix(per_100km=f"{rate:.1f}", speed=f"{row[12]:.2f}", kl=f"{row[5]:.4f}")
        write_csv(out / "log.csv", log)
        save_policy(out / "policy", policy, {**meta, "ppo_update": u + 1})
        save_trainer(out / "critic", critic, vf_opt, {})
        progress_state = {"update": u + 1, "lambda": lam, "log": log, "wall_s": wall}
        save_trainer(
            out / "checkpoint", policy, opt, progress_state | {"generator": gen.get_state().tolist()}
        )
    tb.close()
    metrics = dict(zip(FIELDS, log[-1], strict=True))
    write_json(out / "metrics.json", metrics)
    return metrics
