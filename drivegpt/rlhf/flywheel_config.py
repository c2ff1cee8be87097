"""The flywheel's settings (``configs/rlhf/*.yaml``) and the simulator its drives run on.

Every stage's own settings nest inside (reward model, PPO, DPO, DAgger, the safety driver); the
rounds themselves are :mod:`drivegpt.rlhf.flywheel`'s.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from drivegpt.core.config import FrozenConfig
from drivegpt.policies.registry import POLICY_KINDS
from drivegpt.rlhf.dagger import DaggerConfig
from drivegpt.rlhf.dpo import DPOConfig
from drivegpt.rlhf.ppo import RLHFConfig
from drivegpt.rlhf.ppo_batched_config import BatchedPPOConfig
from drivegpt.rlhf.reward_model import RewardConfig
from drivegpt.sim.batched import SUPPORTED_ENV_IDS
from drivegpt.takeover.monitor import MonitorConfig
from drivegpt_envs.families import FAMILIES

__all__ = ["FlywheelConfig", "flywheel_simulator"]


class FlywheelConfig(FrozenConfig):
    """``drivegpt rlhf`` settings: ``configs/rlhf/*.yaml``."""

    method: Literal["ppo", "dpo", "hg-dagger", "dagger", "hg-dagger+ppo", "dagger+ppo"] = "ppo"
    """Each round: PPO against the reward model, DPO on the pairs, imitation of the human's
    corrections (HG-DAgger: takeover steps; DAgger: every visited step labelled), or one of the
    DAgger variants followed by PPO."""
    rounds: int = Field(3, ge=1)
    """Flywheel rounds."""
    env_id: str = "drivegpt/HighwayDense-v0"
    """Env of the deployment drives (and of PPO's rollouts)."""
    drive_episodes: int = Field(40, ge=1)
    """Monitored episodes per round that produce the round's takeover clips (``dagger``: the
    unmonitored episodes whose every state the human labels)."""
    drive_seed: int = Field(0, ge=0, lt=1_000_000)
    """First training seed of the drives (round k uses the next ``drive_episodes`` after round k-1's)."""
    monitor: MonitorConfig = MonitorConfig()
    """The safety driver (drives, PPO rollouts and evaluation)."""
    ranking_steps: int = Field(5, ge=0)
    """H of the old ≺ corrected ≺ human segments recorded at each takeover of the drives (0: none)."""
    reward: RewardConfig = RewardConfig()
    """Reward model of each round (trained on every clip so far)."""
    ppo: RLHFConfig = RLHFConfig()
    """PPO of each round on highway-env (its rollout seeds move on by updates × episodes each round)."""
    ppo_batched: BatchedPPOConfig = BatchedPPOConfig()
    """PPO of each round with ``sim: batched``: rollouts of ``batch`` episodes at once on the batched
    simulator under its safety driver (seeds move on by updates × batch each round; ``env_id`` and
    ``monitor`` are the flywheel's)."""
    dpo: DPOConfig = DPOConfig()
    """DPO of each round (on every clip so far)."""
    dagger: DaggerConfig = DaggerConfig()
    """HG-DAgger / DAgger fine-tuning of each round (on every round's labels so far)."""
    eval_episodes: int = Field(40, ge=0)
    """Held-out monitored episodes per round (seeds from 1,000,000); 0 skips evaluation."""
    eval_env: str = "drivegpt/HighwayDense-v0"
    """Env of the held-out evaluation."""
    label_envs: tuple[str, ...] = ()
    """DAgger: the envs whose visited states the human labels, ``drive_episodes`` each (empty:
    ``env_id``); HG-DAgger with ``sim: batched``: the envs of the monitored drives."""
    label_families: tuple[str, ...] = ()
    """DAgger: corner-case families whose visited states the human labels too, ``drive_episodes`` each,
    parameters uniform in their ranges; with ``sim: batched`` a family with a batched port
    (``BATCHED_FAMILIES``) is driven there, any other on highway-env (``workers`` processes)."""
    teachers: dict[str, str] = {}
    """DAgger: who labels a road or family instead of the alert human, ``{env id or family: policy
    spec}`` (e.g. ``{side_swipe: drivegpt-roads}``: an earlier student that fails less than the human
    there keeps teaching it while the student learns elsewhere); the rest the human labels. Each
    round's ``labels/sources.json`` records who labelled what."""
    sim: Literal["auto", "highway-env", "batched"] = "auto"
    """The simulator of the round's drives (``auto``: batched where it can run them, see
    :func:`flywheel_simulator`, else highway-env; ``batched``: ``accel`` policies, B episodes at once):
    DAgger's labelled drives, HG-DAgger's monitored drives (their labels, without clips), for PPO
    and DPO the monitored drive whose takeover clips they learn from (clips that replay on the batched
    simulator; ``ranking_steps`` must then be 0), and PPO's rollouts (``ppo_batched``). The held-out
    evaluation runs on ``eval_sim``."""
    batch: int = Field(512, ge=1)
    """``sim: batched``: episodes stepped at once."""
    eval_sim: Literal["highway-env", "batched"] = "highway-env"
    """The simulator of the held-out evaluation: highway-env (the reference) or batched (``accel``
    policies on its roads, ``batch`` episodes at once: thousands of episodes in minutes)."""

    @model_validator(mode="after")
    def _labelled_drives_exist(self) -> FlywheelConfig:
        """The roads and families of DAgger's drives, checked before any round starts."""
        if self.label_families and (self.method.startswith("hg-") or "dagger" not in self.method):
            raise ValueError(f"label_families are DAgger's labelled drives; method is {self.method!r}")
        for family in self.label_families:
            if family not in FAMILIES:
                raise ValueError(f"label_families: unknown family {family!r}; valid: {', '.join(FAMILIES)}")
        if self.teachers and self.method != "dagger":
            raise ValueError(f"teachers label DAgger's drives; method is {self.method!r}")
        sources = (*(self.label_envs or (self.env_id,)), *self.label_families)
        for source, spec in self.teachers.items():
            if source not in sources:
                raise ValueError(
                    f"teachers: {source!r} is not a labelled road or family; valid: {', '.join(sources)}"
                )
            if spec.partition(":")[0] not in set(POLICY_KINDS) - {"human"}:
                raise ValueError(
                    f"teachers: {source}: {spec!r} is not a policy (the alert human labels by default); "
                    f"name one of {', '.join(k for k in POLICY_KINDS if k != 'human')}"
                )
        if self.sim == "batched" and self.needs_clips and self.ranking_steps:
            raise ValueError(
                "sim: batched records takeover clips without ranking segments; set ranking_steps: 0"
            )
        if self.sim == "batched":
            for env_id in self.label_envs or (self.env_id,):
                if env_id not in SUPPORTED_ENV_IDS:
                    raise ValueError(
                        f"sim: batched has no port of {env_id!r}; valid: {', '.join(SUPPORTED_ENV_IDS)}"
                    )
        if self.eval_sim == "batched" and self.eval_episodes and self.eval_env not in SUPPORTED_ENV_IDS:
            raise ValueError(
                f"eval_sim: batched has no port of {self.eval_env!r}; valid: {', '.join(SUPPORTED_ENV_IDS)}"
            )
        return self

    workers: int | None = None
    """Worker processes (default: all cores)."""

    @property
    def needs_clips(self) -> bool:
        """A round drives with the monitor and writes clips: PPO and DPO learn from them, HG-DAgger on
        highway-env takes its labels from them (DAgger labels its own unmonitored drive)."""
        tuned = self.method.rpartition("+")[2]
        return tuned in ("ppo", "dpo") or (self.method == "hg-dagger" and self.sim == "highway-env")


def flywheel_simulator(cfg: FlywheelConfig, action: str) -> Literal["highway-env", "batched"]:
    """The simulator of a flywheel's drives for a policy of interface ``action``: ``cfg.sim``, or for
    ``auto`` the batched one when it can run them (an ``accel`` policy, every drive env ported, and no
    ranking segments for PPO's or DPO's clips), else highway-env."""
    if cfg.sim != "auto":
        return cfg.sim
    ported = all(env_id in SUPPORTED_ENV_IDS for env_id in cfg.label_envs or (cfg.env_id,))
    clips = cfg.method.rpartition("+")[2] in ("ppo", "dpo")
    return "batched" if action == "accel" and ported and not (clips and cfg.ranking_steps) else "highway-env"
