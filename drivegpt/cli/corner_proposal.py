"""``drivegpt corner-cases fit-proposal``: a proposal to reuse, fitted by pooled refits."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from drivegpt.cli.options import ActionOpt, BatchOpt, DeviceOpt, WorkersOpt
from drivegpt.cli.util import command_line, options_config
from drivegpt.core.errors import UserError
from drivegpt.sim.rollout import Simulator
from drivegpt_envs.common import DEFAULT_ACTION


def fit_proposal(
    ctx: typer.Context,
    family: str = typer.Option(..., help="Scenario family."),
    policy: str = typer.Option("human", help="Policy spec under test."),
    refits: int = typer.Option(4, help="Fitting runs per round."),
    rounds: int = typer.Option(2, help="Rounds of refits, each drawn from the pool of the last."),
    fit_sims: int = typer.Option(
        8192, help="Simulations per fitting run (2,048 from a pilot refit nothing)."
    ),
    pilot_sims: int = typer.Option(4000, help="The pilot's simulations at most."),
    pilot_batch: int = typer.Option(200, help="Simulations per pilot stage (100: too loose to refit from)."),
    refit_floor: float = typer.Option(0.3, help="Covariance floor of every refit."),
    defensive: float = typer.Option(0.02, help="Weight of the naturalistic law in each run's proposal."),
    seed: int = typer.Option(0, help="Run k draws scenario seeds SEED + k * 10,000,019 + i."),
    naturalistic: Path | None = typer.Option(None, help="Naturalistic model JSON (default: shipped)."),
    action: ActionOpt = None,
    workers: WorkersOpt = None,
    sim: Annotated[
        Simulator, typer.Option(help="batched | highway-env (slow: 50 steps a second).")
    ] = "batched",
    batch: BatchOpt = 4096,
    device: DeviceOpt = "auto",
    duration: float | None = typer.Option(
        None, help="--sim batched: episode length [s] (default: the family's)."
    ),
    human_traits: bool | None = typer.Option(
        None,
        "--human-traits/--no-human-traits",
        help="Sample the human's personality (default: as estimate).",
    ),
    out: Path = typer.Option(..., help="Output directory (proposal.json, fit.json)."),
) -> None:
    """Fit a proposal to reuse: a pilot, rounds of refits drawn from pools of refits, their pool.

    Where the parameters decide the failures (the human's traits sampled), it needs far fewer
    simulations per later estimate than a pilot's proposal; it pays once (about 70,000 simulations
    with the defaults). Start estimates from it with `corner-cases estimate --proposal OUT/proposal.json`."""
    from drivegpt.core.atomic import write_json
    from drivegpt.core.device import resolve_device
    from drivegpt.corner.estimate import EstimateConfig
    from drivegpt.corner.fit_proposal import fit_proposal as fit
    from drivegpt.corner.proposal_file import save_proposal
    from drivegpt.corner.suite import family_env_id
    from drivegpt.policies.registry import policy_action_kind

    family_env_id(family)  # fail fast on an unknown name
    for flag, value in (("--refits", refits), ("--rounds", rounds), ("--fit-sims", fit_sims),
                        ("--pilot-sims", pilot_sims)):  # fmt: skip
        if value < 1:
            raise UserError(f"bad value for {flag}: {value}; it must be >= 1")
    options = {"defensive": defensive, "pilot_batch": pilot_batch, "refit_floor": refit_floor}
    cfg = options_config(EstimateConfig, options, "fit-proposal options")
    dev = str(resolve_device(device)) if sim == "batched" else "cpu"
    kind = policy_action_kind(policy, action or DEFAULT_ACTION)
    t0 = time.time()
    f = fit(
        family, policy, refits, rounds, fit_sims, pilot_sims, seed, cfg, naturalistic, kind, workers,
        sim=sim, batch=batch, duration=duration, human_traits=human_traits, device=dev,
    )  # fmt: skip
    run = {"command": command_line(ctx), "family": family, "policy": policy, "sim": sim, "seed": seed,
           "refits": refits, "rounds": rounds, "fit_sims_per_run": fit_sims, "seconds": time.time() - t0,
           "device": dev}  # fmt: skip
    kept = sum(r["refitted"] for r in f.runs if r["round"] == rounds)
    save_proposal(
        out / "proposal.json", f.mixture, family, list(f.names), policy=policy, sim=sim,
        command=run["command"], seed=seed, pilot_sims=0, fit_sims=f.sims, fitted_to="pooled refits",
        refits=kept, started_from=None,
    )  # fmt: skip
    write_json(out / "fit.json", {**run, "sims": f.sims, "names": list(f.names), "runs": f.runs})
    typer.echo(
        f"{family} {policy}: a pool of {kept} refits after {rounds} rounds, {f.sims} simulations "
        f"({time.time() - t0:.0f} s): {out / 'proposal.json'}; estimate --proposal starts from it"
    )
