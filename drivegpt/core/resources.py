"""Files that ship inside the package: configs, the pretrained checkpoint, the standard suite.

An installed package is run from any directory, so library code never reads the repository tree:
``configs/quickstart.yaml`` names the packaged config unless that path exists where the command runs.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[1]  #: the ``drivegpt`` package directory
CHECKPOINTS = PACKAGE_ROOT / "checkpoints"  #: pretrained policies shipped with the package
SUITES = PACKAGE_ROOT / "suites"  #: corner-case suites shipped with the package


def packaged_configs() -> Path:
    """The directory of the packaged configs (the repository's ``configs/``)."""
    return Path(str(files("drivegpt.configs")))


def resolve_config(path: str | Path) -> Path:
    """``path`` when it exists; else the same path inside the packaged configs (a leading ``configs/``
    dropped), when that exists; else ``path`` unchanged (the caller reports it missing)."""
    path = Path(path)
    if path.exists() or path.is_absolute():
        return path
    parts = path.parts[1:] if path.parts[:1] == ("configs",) else path.parts
    packaged = packaged_configs().joinpath(*parts) if parts else None
    return packaged if packaged is not None and packaged.is_file() else path
