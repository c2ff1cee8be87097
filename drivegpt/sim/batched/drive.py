"""Drive one batch of episodes to its end: the loop every closed-loop figure on the batched simulator
shares (``drivegpt.eval.batched``, closed-loop model selection in ``drivegpt pretrain``).

A driver is the batched human (:class:`~drivegpt.sim.batched.human.BatchedHuman`, reads the state),
anything with ``act_batch`` (DriveGPT, stable-baselines3: reads the Kinematics observation) or a
constant action (``action``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from drivegpt.sim import batched
from drivegpt.sim.batched.human import BatchedHuman


@torch.inference_mode()  # no autograd records: about a fifth less time per step at small batches
def drive_batch(
    driver: Any, config: batched.SimConfig, seeds: list[int], device: torch.device | str = "cpu"
) -> dict[str, Any]:
    """One batch to the end of its longest episode; a finished episode stops counting."""
    B = len(seeds)
    state = batched.reset(seeds, config, device)
    dev = state.device
    if isinstance(driver, BatchedHuman):
        driver.reset(seeds, state)  # one personality per episode, from its seed
    elif hasattr(driver, "reset_batch"):
        driver.reset_batch(B)
    done = torch.zeros(B, dtype=torch.bool, device=dev)
    crashed = torch.zeros(B, dtype=torch.bool, device=dev)
    distance = torch.zeros(B, dtype=torch.float64, device=dev)
    steps = torch.zeros(B, dtype=torch.long, device=dev)
    lane_changes = torch.zeros(B, dtype=torch.long, device=dev)  # (B,) steps that ended in another lane
    speed_rows: list[torch.Tensor] = []  # (B,) per step, NaN once an episode has ended
    while not bool(done.all()):
        if isinstance(driver, BatchedHuman):  # reads the state, as HumanDriver reads the env
            act: Any = driver.act(state)
        elif hasattr(driver, "act_batch"):
            obs = batched.observe(state).cpu().numpy()  # (B, V, F)
            act = np.asarray(driver.act_batch(obs))
        else:  # constant: the same action for every episode
            act = np.repeat(np.asarray(driver.action)[None], B, axis=0)
        x0, y0, lane0 = state.x[:, 0], state.y[:, 0], state.lane[:, 0]
        state = batched.step(state, torch.as_tensor(act))
        moved = torch.hypot(state.x[:, 0] - x0, state.y[:, 0] - y0)  # (B,) [m]
        alive = ~done
        distance += torch.where(alive, moved, 0.0)
        steps += alive.long()
        lane_changes += (alive & (state.lane[:, 0] != lane0)).long()
        crashed |= alive & state.crashed[:, 0]
        speed_rows.append(torch.where(alive, state.speed[:, 0], torch.nan))
        done |= batched.terminated(state) | batched.truncated(state)
    speeds = torch.stack(speed_rows, 1).cpu().numpy()  # (B, T)
    return {
        "crashed": crashed.cpu().numpy(),
        "distance_m": distance.cpu().numpy(),
        "steps": steps.cpu().numpy(),
        "lane_changes": lane_changes.cpu().numpy(),
        "speeds": [row[~np.isnan(row)] for row in speeds],
    }
