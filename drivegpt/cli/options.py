"""Option types shared by every ``drivegpt`` command: one definition, so every command accepts the
same values and typer validates them (an invalid value fails with the list of valid ones)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

# The choices of the options, as the library names them: ``drivegpt.sim.rollout.Backend`` and
# ``Simulator``, ``drivegpt.corner.estimate.Method``, ``drivegpt.corner.search.Method`` and ``Keep``,
# ``drivegpt.policies.sb3_config.Algo``, ``drivegpt_envs.ACTION_KINDS``. Importing those
# modules loads torch and highway-env (seconds), so the command line spells them here and answers
# ``--help`` or a wrong option at once; tests/test_cli.py checks each against the library's.
Backend = Literal["local", "ray"]
Simulator = Literal["highway-env", "batched"]
Method = Literal["mc", "is"]
SearchMethod = Literal["random", "lhs", "cem"]
Keep = Literal["failures", "all"]
Algo = Literal["dqn", "ppo"]
ActionKind = Literal["accel", "meta", "continuous"]

BackendOpt = Annotated[Backend, typer.Option(help="Rollout backend: local processes or a ray cluster.")]
RayAddressOpt = Annotated[
    str | None, typer.Option(help="With --backend ray: an existing cluster (`auto`: the one on this node).")
]
ActionOpt = Annotated[
    ActionKind | None,
    typer.Option(help="Action interface for human/idm (default: the env's); learned policies carry theirs."),
]
SimOpt = Annotated[
    Simulator,
    typer.Option(help="Simulator: highway-env (the reference) or batched (torch, many episodes per step)."),
]
SimOrDefaultOpt = Annotated[
    Simulator | None,
    typer.Option(
        help="Simulator: highway-env or batched (families with a batched port); default: the command's."
    ),
]
BatchOpt = Annotated[int, typer.Option(min=1, help="On the batched simulator: episodes stepped together.")]
DeviceOpt = Annotated[
    str,
    typer.Option(help="On the batched simulator: auto (CUDA if present, else CPU), cpu, cuda or cuda:N."),
]
DurationOpt = Annotated[
    float | None,
    typer.Option(help="On the batched simulator: episode length in seconds (default: the family's)."),
]
HumanTraitsOpt = Annotated[
    bool | None,
    typer.Option(
        "--human-traits/--no-human-traits",
        help="Sample the simulated human's personality with the scenario (the same P(failure)); "
        "default: on with --policy human on the batched simulator.",
    ),
]
MAX_SEED = 2**62  #: the largest seed an option takes: seeds SEED + i stay 64-bit integers
WorkersOpt = Annotated[int | None, typer.Option(min=1, help="Worker processes (default: all cores).")]


def out_dir(value: Path | None) -> Path | None:
    """The ``callback`` of an option naming a directory to write into: a file there is refused at once,
    before any work (the directory itself is made when the command writes)."""
    if value is not None and value.exists() and not value.is_dir():
        raise typer.BadParameter(f"{value} is a file, not a directory; pass a directory to write into")
    return value
