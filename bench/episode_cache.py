"""Shared by the benchmark scripts: one slow episode's record kept on disk, so a run resumes."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from drivegpt.core.atomic import write_bytes


def cached(path: Path, make: Callable[[], dict[str, Any]]) -> dict[str, np.ndarray]:
    """The arrays stored at ``path`` (``.npz``), or ``make()``'s record written there atomically first.
    Scalars come back as 0-d arrays either way."""
    if not path.exists():
        buf = io.BytesIO()
        np.savez(buf, **make())
        write_bytes(path, buf.getvalue())
    with np.load(path) as z:
        return {k: z[k] for k in z.files}
