import os

from drivegpt.sim.human import HumanDriver
from drivegpt.sim.video import is_blank, render_episode


def test_rendered_frames_are_not_blank(tmp_path):
    assert os.environ.get("SDL_VIDEODRIVER") != "dummy"
    frames = render_episode("drivegpt/Highway-v0", "meta", HumanDriver(), 3, tmp_path / "a.gif", max_steps=3)
    assert (tmp_path / "a.gif").stat().st_size > 1000
    assert len(frames) == 4
    assert not any(is_blank(f) for f in frames)
