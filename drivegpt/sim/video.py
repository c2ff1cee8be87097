"""Headless rendering of an episode to a GIF (or MP4 when imageio-ffmpeg is installed)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from drivegpt.sim.policy import DrivePolicy
from drivegpt.sim.rollout import make_env


def ensure_headless() -> None:
    """Render offscreen: never ``dummy`` (highway-env then draws black frames)."""
    if os.environ.get("SDL_VIDEODRIVER") in (None, "", "dummy"):
        os.environ["SDL_VIDEODRIVER"] = "offscreen"


def is_blank(frame: np.ndarray) -> bool:
    """A frame with (almost) a single colour shows nothing."""
    return bool(frame.std() < 1.0)


def render_episode(
    env_id: str,
    action: str,
    driver: DrivePolicy,
    seed: int,
    path: str | Path,
    max_steps: int = 60,
    fps: int = 5,
) -> list[np.ndarray]:
    """Drive one episode with rendering on and write it to ``path``; returns the frames."""
    ensure_headless()
    env = make_env(env_id, action, render_mode="rgb_array")  # type: ignore[arg-type]
    obs, _ = env.reset(seed=seed)
    driver.reset(seed=seed, env=env)
    frames = [env.render()]
    for _ in range(max_steps):
        obs, _, terminated, truncated, _ = env.step(driver.act(obs))
        frames.append(env.render())
        if terminated or truncated:
            break
    env.close()
    write_video(path, frames, fps)
    return frames


def draw_batched(env: gym.Env, state: Any, b: int = 0) -> np.ndarray:
    """A frame of episode ``b`` of a batched-simulator ``state`` (``drivegpt.sim.batched.BatchState``),
    drawn by highway-env's renderer: its vehicles placed on ``env``'s road (an env of the same road made
    with ``render_mode="rgb_array"``), in highway-env's colours (ego green, traffic blue, crashed red)."""
    from highway_env.vehicle.graphics import VehicleGraphics
    from highway_env.vehicle.kinematics import Vehicle

    u, s = env.unwrapped, state.select([b]).to("cpu")
    cars = []
    for i in np.flatnonzero(s.present[0].numpy()):
        xy = [s.x[0, i].item(), s.y[0, i].item()]
        car = Vehicle(u.road, xy, s.heading[0, i].item(), s.speed[0, i].item())
        car.crashed = bool(s.crashed[0, i])
        if not car.crashed:
            car.color = VehicleGraphics.EGO_COLOR if i == 0 else VehicleGraphics.BLUE
        cars.append(car)
    u.road.vehicles, u.controlled_vehicles = cars, cars[:1]
    return env.render()  # type: ignore[return-value]


def write_video(path: str | Path, frames: list[np.ndarray], fps: int = 5) -> None:
    """Write frames to a GIF (or MP4 with imageio-ffmpeg) atomically."""
    import imageio.v3 as iio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    if path.suffix == ".gif":
        iio.imwrite(tmp, np.stack(frames), duration=1000 / fps, loop=0)
    else:
        iio.imwrite(tmp, np.stack(frames), fps=fps)
    os.replace(tmp, path)
