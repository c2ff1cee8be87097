"""The takeover monitor: a simulated safety driver watching any policy drive.

Each policy step the monitor checks its triggers; when one fires, the human model takes the wheel
until the situation has been safe for ``handback_safe_steps`` steps, then hands back. Triggers:

* ``ttc``: time-to-collision to the lead in the ego's lane below ``ttc_threshold`` [s];
* ``headway``: time headway (gap / ego speed) below ``headway_threshold`` [s];
* ``offroad``: the ego left the road;
* ``predicted_failure``: rolling the policy forward ``lookahead_steps`` steps in a deep copy of the
  simulator ends in a collision (only when something is close: TTC < 5 s or headway < 1.5 s);
* ``disagreement`` (off by default): the policy's action differs from the human's while TTC is
  below ``disagreement_ttc``.

Every takeover becomes a :class:`~drivegpt.takeover.clips.Clip`: context before it, the policy's proposals
(rejected), the human's actions (chosen), the trigger and its figures, and what replay needs.
"""

from __future__ import annotations

import copy
from typing import Any

import gymnasium as gym
import numpy as np
from pydantic import Field

from drivegpt.core.config import FrozenConfig
from drivegpt.sim.episode import Episode
from drivegpt.sim.geometry import lead_figures
from drivegpt.sim.human import HumanDriver
from drivegpt.sim.personality import PersonalityRanges
from drivegpt.sim.rollout import ego_state
from drivegpt.takeover.clips import Clip, vehicle_snapshot

TRIGGERS = ("ttc", "headway", "offroad", "predicted_failure", "disagreement")


class MonitorConfig(FrozenConfig):
    """Safety-driver settings."""

    ttc_threshold: float = Field(1.5, ge=0)
    """Take over when time-to-collision to the lead is below this [s] (0 disables)."""
    headway_threshold: float = Field(0.4, ge=0)
    """Take over when the time headway to the lead is below this [s] (0 disables)."""
    offroad: bool = True
    """Take over when the ego leaves the road."""
    lookahead_steps: int = Field(5, ge=0)
    """Policy steps rolled forward in a copy of the simulator to predict a crash (0 disables); 5 is
    1 s with the default ``accel`` interface (5 Hz); meta-actions decide at 1 Hz."""
    disagreement_ttc: float = Field(0.0, ge=0)
    """Take over on a policy/human disagreement while TTC is below this [s] (0 disables)."""
    handback_safe_steps: int = Field(5, ge=1)
    """The human hands back after this many consecutive safe steps (5: 1 s at 5 Hz)."""
    context_steps: int = Field(20, ge=0)
    """Steps before the takeover stored in each clip (>= a policy's context to replay it faithfully;
    20: 4 s at 5 Hz, the shipped accel checkpoint's context)."""
    ranking_steps: int = Field(0, ge=0)
    """With H > 0, each clip also holds three H-step segments simulated from copies of the takeover
    moment, for HAOMO's ranking old policy ≺ takeover-corrected ≺ human (costs 3·H steps a takeover)."""

    def thresholds_only(self) -> MonitorConfig:
        """The same monitor without look-ahead and disagreement: "is the situation safe now?"."""
        return self.model_copy(update={"lookahead_steps": 0, "disagreement_ttc": 0.0})


def safety_driver() -> HumanDriver:
    """The human who takes over: a sampled personality, but alert (no reaction delay, no noise), with
    the authority of the env's action interface: with ``accel`` (the default) it brakes as hard as IDM
    asks, down to -8 m/s² (emergency braking); with meta-actions it can only step the target speed
    down 5 m/s per decision, so a hard-braking situation may be lost whoever drives."""
    return HumanDriver(ranges=PersonalityRanges(reaction_delay=(0.0, 0.0), action_noise=(0.0, 0.0)))


def check_triggers(
    env: gym.Env, policy: Any, proposal: Any, human_action: Any, cfg: MonitorConfig
) -> tuple[str, dict[str, float]] | None:
    """The first trigger that fires now, with its figures, or None when the state is safe."""
    ttc, headway = lead_figures(env)
    figures = {"ttc_s": ttc, "headway_s": headway, "speed_mps": float(env.unwrapped.vehicle.speed)}
    if cfg.ttc_threshold and ttc < cfg.ttc_threshold:
        return "ttc", figures
    if cfg.headway_threshold and headway < cfg.headway_threshold:
        return "headway", figures
    if cfg.offroad and not env.unwrapped.vehicle.on_road:
        return "offroad", figures
    if cfg.lookahead_steps and policy is not None and (ttc < 5.0 or headway < 1.5):
        crash_in = predict_crash(env, policy, proposal, cfg.lookahead_steps)
        if crash_in is not None:
            return "predicted_failure", {**figures, "crash_in_steps": float(crash_in)}
    if cfg.disagreement_ttc and ttc < cfg.disagreement_ttc and not np.array_equal(proposal, human_action):
        return "disagreement", figures
    return None


def predict_crash(env: gym.Env, policy: Any, proposal: Any, horizon: int) -> int | None:
    """Roll ``policy`` forward in a deep copy of the simulator; steps until a crash, or None."""
    sim, pol = copy.deepcopy((env.unwrapped, policy))  # one memo: a policy bound to env follows the copy
    action = proposal
    for k in range(1, horizon + 1):
        obs, _, terminated, truncated, _ = sim.step(action)
        if sim.vehicle.crashed:
            return k
        if terminated or truncated:
            return None
        action = pol.act(obs)
    return None


def ranked_segments(
    env: gym.Env, policy: Any, human: Any, first: tuple[Any, Any], cfg: MonitorConfig
) -> dict[str, np.ndarray]:
    """Three H-step futures from the current state, each in its own copy of the simulator:
    the policy alone (old), the human until the state is safe then the policy (takeover-corrected),
    the human alone. ``first``: (policy proposal, human action) already computed for this step.
    Arrays padded to H; ``ranked_len`` says how long each lasted."""
    H = cfg.ranking_steps
    obs0 = env.unwrapped.observation_type.observe()
    segs_obs, segs_act, lens = [], [], []
    for mode in ("old", "corrected", "human"):
        sim, pol, hum = copy.deepcopy((env.unwrapped, policy, human))
        if hasattr(pol, "sampler"):
            pol.sampler = None  # segments are the greedy policy's
        obs, o_seq, a_seq, safe = obs0, [], [], 0
        for k in range(H):
            p_act, h_act = first if k == 0 else (pol.act(obs), hum.act(obs))
            use_human = mode == "human" or (mode == "corrected" and safe < cfg.handback_safe_steps)
            action = h_act if use_human else p_act
            if hasattr(pol, "executed"):
                pol.executed(action)
            o_seq.append(obs)
            a_seq.append(action)
            obs, _, terminated, truncated, _ = sim.step(action)
            if mode == "corrected":
                safe = safe + 1 if check_triggers(sim, None, None, None, cfg.thresholds_only()) is None else 0
            if terminated or truncated or sim.vehicle.crashed:
                break
        lens.append(len(a_seq))
        pad = H - len(a_seq)
        segs_obs.append(
            np.concatenate([np.asarray(o_seq, np.float32), np.zeros((pad, *np.shape(obs0)), np.float32)])
        )
        acts = np.asarray(a_seq)
        segs_act.append(np.concatenate([acts, np.zeros((pad, *acts.shape[1:]), acts.dtype)]))
    return {
        "ranked_obs": np.stack(segs_obs),
        "ranked_actions": np.stack(segs_act),
        "ranked_len": np.asarray(lens),
    }


def run_monitored_episode(
    env: gym.Env,
    policy: Any,
    human: Any,
    seed: int,
    cfg: MonitorConfig,
    policy_spec: str = "",
    max_steps: int = 10_000,
    stop_at_takeover: bool = False,
) -> tuple[Episode, list[Clip]]:
    """Drive one episode with ``policy`` under the monitor; the human (shadowing every step) takes over.

    Returns the episode (with ``controller``: 0 policy, 1 human, per step) and its clips.
    ``stop_at_takeover``: end the episode at the first takeover, before the human's step (RL
    rollouts: the takeover ends the policy's control; the clip holds that one step).
    """
    obs, _ = env.reset(seed=seed)
    policy.reset(seed=seed, env=env)
    human.reset(seed=seed, env=env)
    observations, actions, rewards, terms, truncs, controller = [obs], [], [], [], [], []
    states = [ego_state(env)]
    clips: list[Clip] = []
    clip: Clip | None = None
    safe_run = 0
    for t in range(max_steps):
        proposal = policy.act(obs)
        human_action = human.act(obs)
        if clip is None:
            fired = check_triggers(env, policy, proposal, human_action, cfg)
            if fired is not None:
                c0 = max(0, t - cfg.context_steps)
                clip = Clip.start(
                    env=env,
                    seed=seed,
                    step=t,
                    trigger=fired[0],
                    figures=fired[1],
                    policy=policy_spec,
                    action_prefix=np.asarray(actions),
                    context_obs=np.asarray(observations[c0 : t + 1]),
                    context_actions=np.asarray(actions[c0:t]),
                    personality=human.personality.to_dict(),
                    snapshot=vehicle_snapshot(env),
                )
                if cfg.ranking_steps:
                    clip.ranked = ranked_segments(env, policy, human, (proposal, human_action), cfg)
                clips.append(clip)
                safe_run = 0
        if clip is not None:
            clip.add(obs, proposal, human_action)
            if stop_at_takeover:
                break
            action = human_action
            if hasattr(policy, "executed"):
                policy.executed(action)
        else:
            action = proposal
        controller.append(0 if clip is None else 1)
        obs, reward, terminated, truncated, _ = env.step(action)
        observations.append(obs)
        actions.append(action)
        rewards.append(reward)
        terms.append(terminated)
        truncs.append(truncated)
        states.append(ego_state(env))
        if clip is not None:
            if env.unwrapped.vehicle.crashed:
                clip.late = True
            safe_run = (
                safe_run + 1 if check_triggers(env, None, None, None, cfg.thresholds_only()) is None else 0
            )
            if safe_run >= cfg.handback_safe_steps:
                clip = None
        if terminated or truncated:
            break
    ep = Episode.from_steps(env, seed, observations, actions, rewards, terms, truncs, states)
    ep.controller = np.asarray(controller, np.int8)
    return ep, clips
