"""RLHF fine-tuning: PPO on DriveGPT against the reward model, with a KL leash to the pretrained policy.

Per step the policy earns ``reward_scale · r̂(h_t, a_t) − β · KL(π(·|h_t) ‖ π_ref(·|h_t))``, where r̂ is
the reward model's score centred over the action vocabulary and scaled to unit standard deviation over
each update (so states carry no offset, β has a fixed meaning, and ending an
episode early is never a reward in itself). Rollouts run under the live safety driver: a takeover
ends the policy's control at once and costs ``takeover_penalty``; so does a collision.

How an episode ends decides its advantages (``gae``). A *termination* has nothing after it: a
collision (or any other end the env reports as terminal), and a takeover, which is terminal for the
policy (its control is over and the penalty is the last reward it gets). A *truncation* (the env's
time limit, or the ``max_steps`` cap) only stops the rollout in a state the policy would drive on
from, so the last step bootstraps from the value head's V(s_T) on the observation after it (an
episode of T steps acts on s_0..s_{T-1}; s_T is where it was cut off).

Why our own compact PPO and not stable-baselines3's: the policy acts on a K-step history of
(state, action) tokens, the KL term needs the frozen reference's full action distribution at every
step, and the episode must end on the monitor's verdict. SB3's PPO takes a per-observation policy
and an env reward; carrying history, reference and monitor would mean wrapping all three around it.
The SB3 PPO baseline (``drivegpt baseline train``) is still trained on the env reward for comparison.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import torch
from pydantic import Field
from torch.nn import functional as F

from drivegpt.core.atomic import write_csv, write_json
from drivegpt.core.config import FrozenConfig
from drivegpt.core.progress import progress_bar
from drivegpt.core.rundir import policy_dir
from drivegpt.data.tokenizer import tokenizer_from_json
from drivegpt.data.windows import StepTable, WindowBatch
from drivegpt.model.checkpoint import load_policy_dir, save_policy
from drivegpt.model.gpt import DriveGPT
from drivegpt.rlhf.actor_critic import ValueHead, gae, ppo_update
from drivegpt.rlhf.preferences import kl_to_reference
from drivegpt.sim.rollout import parallel_map
from drivegpt.takeover.monitor import MonitorConfig


class RLHFConfig(FrozenConfig):
    """``drivegpt rlhf`` settings (``configs/rlhf/*.yaml``)."""

    env_id: str = "drivegpt/HighwayDense-v0"
    """Env the policy is fine-tuned in."""
    updates: int = Field(8, ge=1)
    """PPO updates (each: fresh rollouts, then ``epochs`` passes over them)."""
    episodes_per_update: int = Field(16, ge=1)
    """Rollout episodes per update."""
    seed: int = Field(500_000, ge=0, lt=1_000_000)
    """First rollout seed: training seeds, away from the drives' (from 0) and below the evaluation
    seeds (from 1,000,000)."""
    beta: float = Field(0.05, ge=0)
    """KL coefficient β."""
    reward_scale: float = Field(1.0, ge=0)
    """Multiplier of the reward model's centred score (after normalisation, if on)."""
    normalize_reward: bool = True
    """Divide the reward model's scores by their standard deviation over the update's steps, so β
    and the takeover penalty are in units of one typical step's reward whatever the model's scale."""
    progress_coef: float = Field(0.0, ge=0)
    """Bonus per step of ``progress_coef · speed / 30 m/s`` (the env's own progress term): keeps the
    policy from buying fewer takeovers by crawling. 0: the reward is the reward model − β·KL only."""
    takeover_penalty: float = Field(5.0, ge=0)
    """Reward at a takeover (or a collision) is minus this; the episode ends there."""
    gamma: float = Field(0.95, gt=0, le=1)
    """Discount per policy step."""
    gae_lambda: float = Field(0.9, ge=0, le=1)
    """GAE λ."""
    clip_range: float = Field(0.2, gt=0)
    """PPO ratio clip."""
    epochs: int = Field(4, ge=1)
    """Passes over each update's rollouts."""
    minibatch_size: int = Field(128, ge=1)
    """Steps per gradient step."""
    lr: float = Field(5e-5, gt=0)
    """Policy learning rate (small: the policy should move, not forget)."""
    vf_lr: float = Field(1e-3, gt=0)
    """Value-head learning rate."""
    entropy_coef: float = Field(0.0, ge=0)
    """Entropy bonus."""
    temperature: float = Field(0.5, gt=0)
    """The trained policy is softmax(logits / temperature) (also for the KL); driving is greedy.
    Below 1 it explores near the greedy driver instead of far from it."""
    max_grad_norm: float = Field(0.5, gt=0)
    """Gradient clipping."""
    max_steps: int = Field(200, ge=1)
    """Cap on policy steps per episode (a truncation, like the env's time limit: the last step
    bootstraps from the value of the state after it)."""
    monitor: MonitorConfig = MonitorConfig()
    """The live safety driver."""
    workers: int | None = None
    """Rollout worker processes (default: all cores)."""
    backend: Literal["local", "ray"] = "local"
    """Rollout backend."""
    threads: int = Field(1, ge=1)
    """torch threads (1 is fastest for models this small, and robust when the cores are shared)."""


class RolloutJob(NamedTuple):
    policy_dir: str
    temperature: float
    version: int  # bumps every update: workers reload the weights
    env_id: str
    seed: int
    monitor: dict[str, Any]
    max_steps: int


class Rollout(NamedTuple):
    obs: np.ndarray  # (T, V, F) raw observations the policy acted on
    actions: np.ndarray  # (T,) executed action ids; the last one is the rejected proposal if taken over
    taken_over: bool
    crashed: bool
    policy_km: float
    speeds: np.ndarray  # (T',) ego speed per step [m/s]
    final_obs: np.ndarray | None = None
    """(V, F) raw observation after the last step when the episode was truncated (time limit or step
    cap): the state the advantage bootstraps from. None when it terminated (collision, takeover)."""

    @property
    def truncated(self) -> bool:
        """Stopped by a time limit in a live state (else terminated: nothing follows the last step)."""
        return self.final_obs is not None


_WORKER: dict[str, Any] = {}


def rollout_one(job: RolloutJob) -> Rollout:
    """One sampled episode under the monitor, ended by the first takeover (runs in a worker)."""
    from drivegpt.model.policy import DriveGPTPolicy
    from drivegpt.sim.rollout import make_env
    from drivegpt.takeover.monitor import run_monitored_episode, safety_driver

    if _WORKER.get("key") != (job.policy_dir, job.version):
        torch.set_num_threads(1)
        policy = DriveGPTPolicy.load(job.policy_dir)
        _WORKER.update(key=(job.policy_dir, job.version), policy=policy)
        env_key = (job.env_id, policy.action_kind)  # the env speaks the policy's action interface
        if _WORKER.get("env_key") != env_key:
            env = make_env(job.env_id, policy.action_kind, policy.env_config)  # type: ignore[arg-type]
            _WORKER.update(env_key=env_key, env=env)
    policy, env = _WORKER["policy"], _WORKER["env"]
    policy.sampler = torch.Generator().manual_seed(job.seed)
    policy.temperature = job.temperature
    cfg = MonitorConfig(**job.monitor)
    ep, clips = run_monitored_episode(
        env, policy, safety_driver(), job.seed, cfg, max_steps=job.max_steps, stop_at_takeover=True
    )
    actions = list(ep.actions)
    obs = ep.observations[: len(actions)]
    if clips:  # the proposal that was rejected is the policy's last action
        actions.append(clips[0].rejected[0])
        obs = ep.observations[: len(actions)]
    # a takeover or a collision is terminal, and so is any end the env calls terminal; otherwise the
    # env's time limit or the step cap stopped a live episode, and its last observation is s_T
    terminated = bool(clips) or ep.crashed or bool(ep.terminations.any())
    return Rollout(
        np.asarray(obs, np.float32),
        np.asarray(actions, np.int64),
        bool(clips),
        ep.crashed,
        ep.policy_distance_m / 1000.0,
        ep.speeds,
        None if terminated else np.asarray(ep.observations[len(actions)], np.float32),
    )


def _step_table(rollouts: list[Rollout], meta: dict[str, Any]) -> StepTable:
    _, norm = tokenizer_from_json(meta["tokenizer"])
    lengths = [len(r.actions) for r in rollouts]
    first = np.cumsum([0, *lengths[:-1]])  # index of each rollout's first step
    starts = np.repeat(first, lengths)
    obs = norm(np.concatenate([r.obs for r in rollouts]))
    tokens = np.concatenate([r.actions for r in rollouts])
    return StepTable(obs, tokens, tokens, starts.astype(np.int64))


def windows_of(rollouts: list[Rollout], meta: dict[str, Any], K: int) -> WindowBatch:
    """Every step of every rollout as a K-step window (B = total steps)."""
    table = _step_table(rollouts, meta)
    return table.windows(torch.arange(len(table)), K)


def final_windows(rollouts: list[Rollout], meta: dict[str, Any], K: int) -> WindowBatch | None:
    """One K-step window per truncated rollout, ending at s_T (its ``final_obs``, after the T steps
    s_0..s_{T-1}) with the episode's own history, in rollout order; None if no rollout was truncated.

    The action token at s_T is a placeholder (0): the hidden state at a state token never sees its
    own action, so V(s_T) does not depend on it."""
    ext = [
        r._replace(obs=np.concatenate([r.obs, r.final_obs[None]]), actions=np.append(r.actions, 0))
        for r in rollouts
        if r.final_obs is not None
    ]
    if not ext:
        return None
    table = _step_table(ext, meta)
    ends = np.cumsum([len(r.actions) for r in ext]) - 1  # the appended step of each rollout
    return table.windows(torch.from_numpy(ends), K)


@torch.no_grad()
def bootstrap_values(
    policy: DriveGPT, critic: ValueHead, rollouts: list[Rollout], meta: dict[str, Any], K: int
) -> list[float | None]:
    """Per rollout: V(s_T) from the value head if it was truncated, None if it terminated."""
    w = final_windows(rollouts, meta, K)
    if w is None:
        return [None] * len(rollouts)
    policy.eval()
    v = iter(critic(policy.hidden(w.obs, w.actions)[:, -1]).tolist())
    return [next(v) if r.truncated else None for r in rollouts]


@torch.no_grad()
def score_steps(
    policy: DriveGPT, ref: DriveGPT, reward: DriveGPT, critic: ValueHead, w: WindowBatch, tau: float
) -> dict[str, torch.Tensor]:
    """Per step: log π(a_t), KL to the reference, the reward model's centred score, V(h_t)."""
    policy.eval()
    h = policy.hidden(w.obs, w.actions)[:, -1]  # (B, C)
    logits = policy.head(h) / tau  # (B, vocab)
    a = w.actions[:, -1]
    r = reward(w.obs, w.actions)[:, -1]  # (B, vocab)
    return {
        "logp": F.log_softmax(logits, -1).gather(1, a[:, None])[:, 0],
        "kl": kl_to_reference(logits, ref(w.obs, w.actions)[:, -1] / tau),
        "rm": (r - r.mean(-1, keepdim=True)).gather(1, a[:, None])[:, 0],
        "value": critic(h),
    }


def load_run_policy(path: str | Path) -> tuple[DriveGPT, dict[str, Any]]:
    """The policy of a run directory or a policy directory."""
    return load_policy_dir(policy_dir(path))


def rlhf(
    cfg: RLHFConfig,
    policy_path: str | Path,
    reward_path: str | Path,
    out: str | Path,
    reference_path: str | Path | None = None,
    command: str = "",
    progress: bool = True,
) -> dict[str, Any]:
    """PPO fine-tuning of the policy in ``policy_path``; the KL reference is ``reference_path``
    (default: the starting policy). Writes ``out/policy``, ``log.csv``, ``tb/``, ``metrics.json``."""
    from torch.utils.tensorboard import SummaryWriter

    from drivegpt.rlhf.reward_model import load_reward_model

    out = Path(out)
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    policy, meta = load_run_policy(policy_path)
    ref, _ = load_run_policy(reference_path or policy_path)
    reward, _ = load_reward_model(reward_path)
    for m in (ref, reward):
        m.eval().requires_grad_(False)
    critic = ValueHead(policy.cfg.n_embd)
    opt = torch.optim.Adam(policy.parameters(), lr=cfg.lr)
    vf_opt = torch.optim.Adam(critic.parameters(), lr=cfg.vf_lr)
    K = policy.cfg.context
    out.mkdir(parents=True, exist_ok=True)
    run = {"command": command, "config": cfg.to_dict(), "policy": str(policy_path)}
    run |= {"reward": str(reward_path), "reference": str(reference_path or policy_path)}
    write_json(out / "run.json", run)
    tb = SummaryWriter(str(out / "tb"))
    fields = ["update", "episodes", "steps", "reward", "rm_score", "kl", "takeovers", "takeovers_per_100km"]
    fields += ["collisions", "mean_speed_mps", "clip_fraction", "entropy", "value_loss"]
    log = [fields]
    gen = torch.Generator().manual_seed(cfg.seed)
    bar = progress_bar(range(cfg.updates), desc="rlhf (ppo)", disable=not progress, dynamic_ncols=True)
    for u in bar:
        save_policy(out / "policy", policy, {**meta, "rlhf_update": u})
        first_seed = cfg.seed + u * cfg.episodes_per_update
        mon, tau = cfg.monitor.to_dict(), cfg.temperature
        jobs = [
            RolloutJob(str(out / "policy"), tau, u, cfg.env_id, first_seed + i, mon, cfg.max_steps)
            for i in range(cfg.episodes_per_update)
        ]
        rollouts = parallel_map(rollout_one, jobs, cfg.workers, cfg.backend, progress=False)
        w = windows_of(rollouts, meta, K)
        s = score_steps(policy, ref, reward, critic, w, cfg.temperature)
        rm = s["rm"] / (s["rm"].std() + 1e-8) if cfg.normalize_reward else s["rm"]
        step_r = (cfg.reward_scale * rm - cfg.beta * s["kl"]).numpy()
        boot = bootstrap_values(policy, critic, rollouts, meta, K)
        adv, ret, lo = [], [], 0
        for r, next_v in zip(rollouts, boot, strict=True):
            n = len(r.actions)
            rew = step_r[lo : lo + n].copy()
            k = min(n, len(r.speeds))  # a rejected last proposal was never executed: no progress
            rew[:k] += cfg.progress_coef * r.speeds[:k] / 30.0
            if r.taken_over or r.crashed:
                rew[-1] -= cfg.takeover_penalty
            # truncated: bootstrap from V(s_T); terminated (takeover, collision): next_v is None
            a = gae(rew, s["value"][lo : lo + n].numpy(), cfg.gamma, cfg.gae_lambda, next_v)
            adv.append(a)
            ret.append(a + s["value"][lo : lo + n].numpy())
            lo += n
        advantages = torch.from_numpy(np.concatenate(adv)).float()
        returns = torch.from_numpy(np.concatenate(ret)).float()
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        stats = ppo_update(policy, critic, opt, vf_opt, w, s["logp"], advantages, returns, cfg, gen)
        km = sum(r.policy_km for r in rollouts)
        takeovers = sum(r.taken_over for r in rollouts)
        row = [u + 1, len(rollouts), len(w.obs), float(step_r.mean()), float(s["rm"].mean())]
        row += [float(s["kl"].mean()), takeovers, 100.0 * takeovers / km if km > 0 else float("nan")]
        row += [sum(r.crashed for r in rollouts)]
        row += [float(np.mean(np.concatenate([r.speeds for r in rollouts])))]
        row += [stats["clip_fraction"], stats["entropy"], stats["value_loss"]]
        log.append(row)
        for name, v in zip(fields[3:], row[3:], strict=True):
            tb.add_scalar(name, v, u + 1)
        bar.set_postfix(takeovers=takeovers, kl=f"{row[5]:.3f}")
        write_csv(out / "log.csv", log)
    tb.close()
    save_policy(out / "policy", policy, {**meta, "rlhf_update": cfg.updates})
    metrics = dict(zip(fields, log[-1], strict=True))
    write_json(out / "metrics.json", metrics)
    return metrics
