"""``drivegpt pretrain``'s settings (:mod:`drivegpt.model.pretrain`), closed-loop model selection included."""

from __future__ import annotations

from pydantic import Field, field_validator

from drivegpt.core.config import FrozenConfig
from drivegpt.model.gpt import ModelSize
from drivegpt.sim import batched


class SelectConfig(FrozenConfig):
    """Closed-loop model selection (the ``select:`` section of a pretrain config)."""

    env: str = "drivegpt/HighwayDense-v0"
    """Road the policy drives at each evaluation (an env id of the batched simulator)."""
    episodes: int = Field(200, ge=1)
    """Validation episodes per evaluation, driven at once."""
    seed: int = Field(500_000, ge=0)
    """First validation seed: apart from the logs' (from 0) and held-out evaluation's (from 1,000,000)."""

    @field_validator("env")
    @classmethod
    def _batched_env(cls, env: str) -> str:
        if env not in batched.SUPPORTED_ENV_IDS:
            raise ValueError(f"{env!r} has no batched port; valid: {', '.join(batched.SUPPORTED_ENV_IDS)}")
        return env


class PretrainConfig(FrozenConfig):
    """``drivegpt pretrain``: model, optimisation and evaluation settings."""

    model: ModelSize = ModelSize()
    """Model sizes."""
    bins: int = Field(9, ge=2)
    """Continuous actions: bins per dimension (vocabulary = bins²)."""
    action_dropout: float = Field(0.0, ge=0, lt=1)
    """Probability of hiding each past action token during training (fights copycat behaviour)."""
    batch_size: int = Field(64, ge=1)
    """Windows per step (the global batch: under torchrun, split over the processes)."""
    max_iters: int = Field(2000, ge=1)
    """Optimisation steps."""
    lr: float = Field(1e-3, gt=0)
    """Peak learning rate (AdamW)."""
    min_lr: float = Field(1e-4, ge=0)
    """Learning rate at the end of the cosine decay."""
    warmup_iters: int = Field(100, ge=0)
    """Linear warm-up steps."""
    weight_decay: float = Field(0.1, ge=0)
    """AdamW weight decay."""
    grad_clip: float = Field(1.0, gt=0)
    """Gradient-norm clip."""
    val_fraction: float = Field(0.1, gt=0, lt=1)
    """Share of episodes held out for validation (split by episode)."""
    max_train_episodes: int | None = Field(None, ge=1)
    """Use only this many training episodes (data-scaling studies)."""
    eval_every: int = Field(250, ge=1)
    """Evaluate, log and checkpoint every this many steps."""
    label_weight_power: float = Field(0.0, ge=0, le=1)
    """Weight of each label token in the loss: (its share of the training labels)^-power, scaled so
    the mean weight over the training labels is 1. 0: every step alike; 0.5 or 1 count the rarer
    decisions (hard braking) more."""
    select: SelectConfig | None = None
    """Keep in ``policy/`` the evaluation whose policy collided in the fewest ``select`` episodes
    (ties: lower validation cross-entropy); None: the lowest validation cross-entropy."""
    seed: int = 0
    """Seed of the split, the initialisation and the batch sampling."""
    threads: int | None = Field(None, ge=1)
    """torch CPU threads (None: torch's default)."""
