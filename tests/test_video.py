import os
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from drivegpt.sim.human import HumanDriver
from drivegpt.sim.video import is_blank, render_episode


def test_rendered_frames_are_not_blank_even_when_asked_for_the_dummy_driver(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")  # highway-env draws black frames with it
    frames = render_episode("drivegpt/Highway-v0", "meta", HumanDriver(), 3, tmp_path / "a.gif", max_steps=3)
    assert os.environ["SDL_VIDEODRIVER"] == "offscreen"  # switched to a driver that draws
    assert len(frames) == 4  # the reset frame and one per step
    assert not any(is_blank(f) for f in frames)
    assert is_blank(np.zeros_like(frames[0])) and is_blank(np.full_like(frames[0], 200))
    gif = iio.imread(tmp_path / "a.gif")
    assert gif.shape[0] == 4 and (tmp_path / "a.gif").stat().st_size > 1000
