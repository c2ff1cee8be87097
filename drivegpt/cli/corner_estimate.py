"""``drivegpt corner-cases`` failure rates under naturalistic traffic: ``fit-naturalistic`` (the law from
human logs), ``estimate`` (P(failure) by Monte Carlo or importance sampling) and ``fit-proposal`` (a
proposal to reuse, fitted by pooled refits)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from drivegpt.cli.options import (
    MAX_SEED,
    ActionOpt,
    BatchOpt,
    DeviceOpt,
    DurationOpt,
    HumanTraitsOpt,
    Method,
    SimOrDefaultOpt,
    WorkersOpt,
    out_dir,
)
from drivegpt.cli.util import command_line, options_config
from drivegpt.core.errors import UserError


def simulator_and_checks(family: str, policy: str, sim: str | None, duration: float | None) -> str:
    """The simulator an estimate runs on (default: batched where it runs the family and the policy, else
    highway-env), after the checks that need no simulation: the family's name and ``--duration``."""
    from drivegpt.corner.search import search_simulator
    from drivegpt.corner.suite import family_env_id

    family_env_id(family)  # fail fast on an unknown name
    if duration is not None and not duration > 0:
        raise UserError(f"bad value for --duration: {duration}; an episode lasts more than 0 s")
    sim = search_simulator(sim or "auto", family, policy)
    if duration is not None and sim != "batched":
        raise UserError(f"--duration shortens the batched simulator's episodes; {sim} runs the family's")
    return sim


def fit_naturalistic(
    ctx: typer.Context,
    logs: Path = typer.Option(..., help="Human-driving log dataset (`drivegpt collect`)."),
    out: Path = typer.Option(..., help="Naturalistic model JSON to write."),
) -> None:
    """Fit each family's naturalistic parameter distribution from human logs (priors elsewhere)."""
    from drivegpt.corner.naturalistic import save_naturalistic
    from drivegpt.corner.naturalistic_fit import fit_naturalistic as fit

    model = fit(logs, command_line(ctx))
    save_naturalistic(model, out)
    steps = model.logs["steps"]
    typer.echo(f"wrote {len(model.families)} families fitted from {steps} logged steps to {out}")


def estimate(
    ctx: typer.Context,
    family: str = typer.Option(..., help="Scenario family."),
    policy: str = typer.Option("human", help="Policy spec under test."),
    method: Annotated[Method, typer.Option(help="mc (plain Monte Carlo) | is (importance sampling).")] = "is",
    rel_halfwidth: float = typer.Option(0.2, help="Stop at this 95% half-width / estimate."),
    max_sims: int = typer.Option(2000, min=1, help="Simulations at most."),
    seed: int = typer.Option(
        0,
        min=0,
        max=MAX_SEED,
        help="Sampler seed; simulation i uses scenario seed SEED + i (so runs with consecutive seeds share "
        "most scenario seeds: space them, e.g. 10000000 apart, for independent runs).",
    ),
    naturalistic: Path | None = typer.Option(None, help="Naturalistic model JSON (default: shipped)."),
    action: ActionOpt = None,
    workers: WorkersOpt = None,
    sim: SimOrDefaultOpt = None,
    batch: BatchOpt = 4096,
    device: DeviceOpt = "auto",
    duration: DurationOpt = None,
    human_traits: HumanTraitsOpt = None,
    defensive: float | None = typer.Option(
        None,
        help="--method is: weight of the naturalistic law itself in the proposal (in (0, 1); every "
        "weight stays below 1/DEFENSIVE; default 0.02, with --surrogate the family's own: "
        "adversarial_vehicle 0.02, stalled_car 0.5). Raise it (0.3-0.7) where some failures come from the "
        "scenario seed's randomness rather than the family's parameters: it costs up to 1/(1-DEFENSIVE) "
        "more simulations, and bounds what a failure the pilot never found can add to the variance.",
    ),
    pilot_batch: int = typer.Option(
        100,
        help="--method is: simulations per pilot stage; 200 fits a proposal about half as variable for "
        "twice the pilot (worth it for a proposal that later estimates reuse).",
    ),
    proposal: list[Path] | None = typer.Option(
        None,
        metavar="FILE",
        help="--method is: start from the proposal.json an earlier estimate of FAMILY wrote (another seed, "
        "policy or checkpoint), with no pilot; the human's trait dimensions it has and the estimate does "
        "not sample are dropped, those it lacks stay naturalistic. Repeated: the pool of the files' "
        "mixtures (equal weights), steadier than any one refit where the seed decides part of each failure.",
    ),
    surrogate: bool = typer.Option(
        False,
        "--surrogate",
        help="--method is: draw from the family's physics surrogate (a model of a few cars that says how "
        "close each point comes to a crash, no simulator run), with no pilot: for the human (batched "
        "simulator, traits sampled) about 200x fewer simulations than Monte Carlo on first use on "
        "adversarial_vehicle, about 150x on stalled_car (episodes of 15 s), whose proposal also draws the "
        "scenario seeds for the right lane's traffic. Needs the human's traits "
        "sampled (--human-traits, batched only). Families: adversarial_vehicle, stalled_car.",
    ),
    refit_floor: float | None = typer.Option(
        None,
        help="--method is: write to proposal.json the mixture refitted to this estimate's own failures, "
        "covariance floor REFIT_FLOOR (0.3 halved the variance on slower_lead, where the parameters decide "
        "failures; it multiplied it on adversarial_vehicle, where the seed does). Default: the pilot's "
        "mixture (none when the estimate started from --proposal).",
    ),
    sims_per_check: int = typer.Option(
        50,
        help="Simulations between two checks of the stopping rule (at least 4 checks); raise it (1024) "
        "for a long run that fits a proposal to reuse, lower it (25) for one from a good reused proposal.",
    ),
    halfspace_share: float | None = typer.Option(
        None,
        help="--method is: add to proposal.json the naturalistic law cut to the half-space beyond this "
        "estimate's failures (a logistic regression on all its simulations), drawn with this share "
        "(0.5) when the next estimate reuses it. Where the parameters decide failures past a flat "
        "boundary (slower_lead) a reused file needs about 86 simulations for +-20% when fitted to 2,048 "
        "(--max-sims 2048 --rel-halfwidth 0.001 --sims-per-check 1024), 160 when fitted by an ordinary "
        "estimate, against a refitted mixture's 194.",
    ),
    halfspace_margin: float | None = typer.Option(
        None,
        help="--method is, --halfspace-share: start the half-space this far (in standard units) before "
        "the estimate's lowest failure. Default: where the estimate's own draws say the proposal varies "
        "least (a plane through the lowest failure is loose where the boundary bends).",
    ),
    out: Path = typer.Option(
        ..., help="Output directory (estimate.json, convergence.png, proposal.json).", callback=out_dir
    ),
) -> None:
    """P(failure) of POLICY on FAMILY under naturalistic traffic, by Monte Carlo or importance sampling.

    Runs on the batched simulator where it has FAMILY and a driver for POLICY, else on highway-env."""
    from drivegpt.core.device import resolve_device
    from drivegpt.corner.estimate import EstimateConfig, write_estimate
    from drivegpt.corner.estimate_family import estimate as run_estimate
    from drivegpt.corner.estimate_family import samples_human_traits
    from drivegpt.policies.registry import policy_action_kind
    from drivegpt_envs.common import DEFAULT_ACTION

    sim = simulator_and_checks(family, policy, sim, duration)
    if halfspace_share is not None and method != "is":
        raise UserError("--halfspace-share shapes an importance-sampling proposal: it needs --method is")
    dev = str(resolve_device(device)) if sim == "batched" else "cpu"
    kind = policy_action_kind(policy, action or DEFAULT_ACTION)
    t0 = time.time()
    traits = samples_human_traits(policy, sim) if human_traits is None else human_traits
    options = {"defensive": defensive, "pilot_batch": pilot_batch, "refit_floor": refit_floor,
               "halfspace_share": halfspace_share, "halfspace_margin": halfspace_margin,
               "batch": sims_per_check, "method": method, "rel_halfwidth": rel_halfwidth,
               "max_sims": max_sims, "seed": seed}  # fmt: skip
    if defensive is None:  # left unset: the config's default, or the surrogate's own (estimate_family)
        del options["defensive"]
    cfg = options_config(EstimateConfig, options, "estimate options", {"batch": "--sims-per-check"})
    est = run_estimate(
        family, policy, method, rel_halfwidth, max_sims, seed, cfg, naturalistic, kind, workers,
        sim=sim, batch=batch, duration=duration, human_traits=traits, device=dev, proposal=proposal,
        surrogate=surrogate,
    )  # fmt: skip
    run = {
        "command": command_line(ctx), "family": family, "policy": policy, "sim": sim, "seed": seed,
        "human_traits": traits, "duration": duration,
        "defensive": est.proposal.get("defensive", cfg.defensive),  # the weight the proposal used
        "seconds": time.time() - t0, "device": dev,
        "proposal": [str(p) for p in proposal] if proposal else None, "surrogate": surrogate,
    }  # fmt: skip
    write_estimate(est, out, run)
    lo, hi = est.failure_probability_ci
    flag = " (degenerate weights: no interval)" if est.degenerate else ""
    p = est.failure_probability
    sims = f"{est.sims} sims ({est.pilot_sims} pilot)" if method == "is" else f"{est.sims} sims"
    if not est.converged and not est.degenerate and est.rel_halfwidth is not None:
        flag = f" (not converged: ±{est.rel_halfwidth:.0%} > ±{rel_halfwidth:.0%}; raise --max-sims)"
    typer.echo(f"{family} {policy} {method} on {sim}: P(failure) {p:.3g} [{lo:.3g}, {hi:.3g}]{flag}, {sims}")
    if est.mixture is not None:
        how = "its pilot's" if est.fitted_to == "pilot" else "refitted to its failures"
        how = "its mixture and a half-space fitted to its simulations" if est.halfspace is not None else how
        typer.echo(f"proposal ({how}): {out / 'proposal.json'}; --proposal starts the next estimate from it")
    if halfspace_share is not None and est.halfspace is None:
        typer.echo(
            f"no half-space: it needs failures and runs that did not fail, and weights that are not "
            f"degenerate ({est.failures} failures in {est.sims - est.pilot_sims} simulations)"
        )


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
    seed: int = typer.Option(
        0, min=0, max=MAX_SEED, help="Run k draws scenario seeds SEED + k * 10,000,019 + i."
    ),
    naturalistic: Path | None = typer.Option(None, help="Naturalistic model JSON (default: shipped)."),
    action: ActionOpt = None,
    workers: WorkersOpt = None,
    sim: SimOrDefaultOpt = None,
    batch: BatchOpt = 4096,
    device: DeviceOpt = "auto",
    duration: DurationOpt = None,
    human_traits: HumanTraitsOpt = None,
    out: Path = typer.Option(..., help="Output directory (proposal.json, fit.json).", callback=out_dir),
) -> None:
    """Fit a proposal to reuse: a pilot, rounds of refits drawn from pools of refits, their pool.

    Where the parameters decide the failures (the human's traits sampled), it needs far fewer
    simulations per later estimate than a pilot's proposal; it pays once (about 70,000 simulations
    with the defaults). Start estimates from it with `corner-cases estimate --proposal OUT/proposal.json`."""
    from drivegpt.core.atomic import write_json
    from drivegpt.core.device import resolve_device
    from drivegpt.corner.estimate import EstimateConfig
    from drivegpt.corner.estimate_family import samples_human_traits
    from drivegpt.corner.fit_proposal import fit_proposal as fit
    from drivegpt.corner.proposal_file import save_proposal
    from drivegpt.policies.registry import policy_action_kind
    from drivegpt_envs.common import DEFAULT_ACTION

    sim = simulator_and_checks(family, policy, sim, duration)
    for flag, value in (("--refits", refits), ("--rounds", rounds), ("--fit-sims", fit_sims),
                        ("--pilot-sims", pilot_sims)):  # fmt: skip
        if value < 1:
            raise UserError(f"bad value for {flag}: {value}; it must be >= 1")
    options = {"defensive": defensive, "pilot_batch": pilot_batch, "refit_floor": refit_floor}
    cfg = options_config(EstimateConfig, options, "fit-proposal options")
    dev = str(resolve_device(device)) if sim == "batched" else "cpu"
    kind = policy_action_kind(policy, action or DEFAULT_ACTION)
    traits = samples_human_traits(policy, sim) if human_traits is None else human_traits
    t0 = time.time()
    f = fit(
        family, policy, refits, rounds, fit_sims, pilot_sims, seed, cfg, naturalistic, kind, workers,
        sim=sim, batch=batch, duration=duration, human_traits=traits, device=dev,
    )  # fmt: skip
    run = {"command": command_line(ctx), "family": family, "policy": policy, "sim": sim, "seed": seed,
           "human_traits": traits, "duration": duration, "refits": refits, "rounds": rounds,
           "fit_sims_per_run": fit_sims, "seconds": time.time() - t0, "device": dev}  # fmt: skip
    kept = sum(r["refitted"] for r in f.runs if r["round"] == rounds)
    save_proposal(
        out / "proposal.json", f.mixture, family, list(f.names), policy=policy, sim=sim,
        human_traits=traits, duration=duration, command=run["command"], seed=seed, pilot_sims=0,
        fit_sims=f.sims, fitted_to="pooled refits", refits=kept, started_from=None,
    )  # fmt: skip
    write_json(out / "fit.json", {**run, "sims": f.sims, "names": list(f.names), "runs": f.runs})
    typer.echo(
        f"{family} {policy}: a pool of {kept} refits after {rounds} rounds, {f.sims} simulations "
        f"({time.time() - t0:.0f} s): {out / 'proposal.json'}; estimate --proposal starts from it"
    )
