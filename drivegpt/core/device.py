"""Where tensors run: ``resolve_device`` turns a user's ``--device`` into a ``torch.device``.

``auto`` is the first CUDA device when torch sees one, else the CPU; ``cpu``, ``cuda`` and ``cuda:N``
are taken as given. Asking for CUDA where there is none fails with one clear line, never silently
falls back: a figure measured "on the GPU" must have run there.
"""

from __future__ import annotations

import re

import torch

from drivegpt.core.errors import UserError

DEVICE_CHOICES = "auto, cpu, cuda, cuda:N"  #: what ``--device`` accepts


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """The ``torch.device`` named by ``name`` (``auto``: CUDA when available, else the CPU)."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    match = re.fullmatch(r"cuda(?::(\d+))?", name)
    if match is None:
        raise UserError(f"unknown device {name!r}; valid: {DEVICE_CHOICES}")
    if not torch.cuda.is_available():
        raise UserError(f"device {name!r}: torch sees no CUDA device here; use --device cpu (or auto)")
    index = int(match.group(1) or 0)
    if index >= torch.cuda.device_count():
        raise UserError(f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    return torch.device("cuda", index)
