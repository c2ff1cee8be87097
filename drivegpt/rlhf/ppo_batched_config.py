"""``drivegpt ppo``'s settings: PPO on the batched simulator (:mod:`drivegpt.rlhf.ppo_batched`)."""

from __future__ import annotations

from pydantic import Field, model_validator

from drivegpt.core.config import FrozenConfig
from drivegpt.takeover.monitor import MonitorConfig


class BatchedPPOConfig(FrozenConfig):
    """``drivegpt ppo`` settings (``configs/rlhf/ppo-batched*.yaml``)."""

    env_id: str = "drivegpt/HighwayDense-v0"
    """Road the policy is fine-tuned on (a batched road: Highway or HighwayDense)."""
    updates: int = Field(30, ge=1)
    """PPO updates (each: ``batch`` fresh monitored episodes, then ``epochs`` passes over them)."""
    batch: int = Field(256, ge=1)
    """Training episodes per update, driven at once."""
    seed: int = Field(500_000, ge=0, lt=1_000_000)
    """First training seed; update u drives seeds ``seed + u·batch ...`` (below the held-out 1,000,000)."""
    beta: float = Field(0.05, ge=0)
    """KL coefficient β."""
    rm_coef: float = Field(1.0, ge=0)
    """Weight of the reward model's normalised score (0: no reward model is read)."""
    progress_coef: float = Field(0.0, ge=0)
    """Weight of the progress term v / 30 m/s per step (the objective of PPO-Lagrangian)."""
    takeover_penalty: float = Field(5.0, ge=0)
    """λ: the cost of a takeover or a collision (with ``lagrangian``: its starting value)."""
    lagrangian: bool = False
    """Adapt λ after each update so that takeovers per 100 km approach ``cost_limit``."""
    cost_limit: float = Field(5.0, gt=0)
    """[takeovers per 100 km of policy driving] the constraint's budget (``lagrangian`` only)."""
    lagrange_lr: float = Field(1.0, gt=0)
    """Step of λ per update per unit of relative violation (rate / cost_limit − 1)."""
    crawl_ratio: float = Field(0.0, ge=0, lt=1)
    """Crawl-triggered takeover (0: off): the policy drives below this fraction of the safety
    driver's desired speed on a clear road while the safety driver would accelerate at least
    ``crawl_margin`` harder, for ``crawl_steps`` steps in a row."""
    crawl_headway: float = Field(3.0, gt=0)
    """[s] the road ahead is clear when the time headway to the lead is at least this."""
    crawl_margin: float = Field(1.0, gt=0)
    """[m/s²] the safety driver's acceleration minus the policy's proposed one."""
    crawl_steps: int = Field(10, ge=1)
    """Policy steps the crawl must last (10: 2 s at 5 Hz)."""
    gamma: float = Field(0.95, gt=0, le=1)
    """Discount per policy step."""
    gae_lambda: float = Field(0.9, ge=0, le=1)
    """GAE λ."""
    clip_range: float = Field(0.2, gt=0)
    """PPO ratio clip."""
    epochs: int = Field(2, ge=1)
    """Passes over each update's steps."""
    minibatch_size: int = Field(1024, ge=1)
    """Steps per gradient step."""
    train_fraction: float = Field(0.25, gt=0, le=1)
    """Fraction of each update's policy steps (drawn at random) its gradient steps pass over: every
    step is scored and enters the advantages, a sample of them the loss (a backward pass through a
    K-step window costs about 30 policy steps of driving)."""
    lr: float = Field(3e-5, gt=0)
    """Policy learning rate."""
    vf_lr: float = Field(1e-3, gt=0)
    """Value-head learning rate."""
    entropy_coef: float = Field(0.0, ge=0)
    """Entropy bonus."""
    temperature: float = Field(0.5, gt=0)
    """The trained policy is softmax(logits / temperature); driving after training is greedy."""
    max_grad_norm: float = Field(0.5, gt=0)
    """Gradient clipping."""
    max_steps: int = Field(10_000, ge=1)
    """Cap on policy steps per episode (a truncation, like the env's time limit)."""
    monitor: MonitorConfig = MonitorConfig()
    """The safety driver watching the rollouts."""
    threads: int | None = Field(None, ge=1)
    """torch CPU threads (None: torch's default)."""
    device: str = "cpu"
    """Simulator device (``cuda`` where there is one; the model stays on the CPU)."""

    @model_validator(mode="after")
    def _seeds_below_held_out(self) -> BatchedPPOConfig:
        if self.seed + self.updates * self.batch > 1_000_000:
            raise ValueError(
                f"seed + updates·batch = {self.seed + self.updates * self.batch} reaches the held-out "
                "seeds (from 1,000,000): lower seed, updates or batch"
            )
        if self.monitor.ranking_steps:
            raise ValueError("monitor.ranking_steps is not supported on the batched simulator; set it to 0")
        return self
