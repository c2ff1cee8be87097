"""DriveGPT: learn driving policies from human driving logs and simulated takeovers."""

from drivegpt.policy import load_policy

__version__ = "0.1.0"
__all__ = ["load_policy", "__version__"]
