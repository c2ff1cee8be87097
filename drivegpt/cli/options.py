"""Option types shared by every ``drivegpt`` command: one definition, so every command accepts the
same values and typer validates them (an invalid value fails with the list of valid ones)."""

from __future__ import annotations

from typing import Annotated

import typer

from drivegpt.sim.rollout import Backend
from drivegpt_envs.common import ActionKind

BackendOpt = Annotated[Backend, typer.Option(help="Rollout backend: local processes or a ray cluster.")]
RayAddressOpt = Annotated[
    str | None, typer.Option(help="With --backend ray: an existing cluster (`auto`: the one on this node).")
]
ActionOpt = Annotated[
    ActionKind | None,
    typer.Option(help="Action interface for human/idm (default: the env's); learned policies carry theirs."),
]
WorkersOpt = Annotated[int | None, typer.Option(min=1, help="Worker processes (default: all cores).")]
