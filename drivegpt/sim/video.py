"""Headless rendering of an episode to a GIF (or MP4 when imageio-ffmpeg is installed)."""

from __future__ import annotations

import os
from pathlib import Path

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
