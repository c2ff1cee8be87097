"""``drivegpt corner-cases`` (failure search, suite replay and info) and ``drivegpt bench``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from drivegpt.cli.options import (
    ActionOpt,
    BackendOpt,
    BatchOpt,
    DeviceOpt,
    RayAddressOpt,
    SimOrDefaultOpt,
    WorkersOpt,
)
from drivegpt.cli.util import command_line, friendly_errors, options_config
from drivegpt.core.config import load_config
from drivegpt.core.errors import UserError
from drivegpt.corner.estimate import Method
from drivegpt.sim.rollout import Simulator
from drivegpt_envs.common import DEFAULT_ACTION


def register(app: typer.Typer) -> None:
    """Add the ``corner-cases`` group and the ``bench`` command to ``app``."""
    from drivegpt.cli.corner_proposal import fit_proposal

    corner = typer.Typer(no_args_is_help=True, help="Search corner cases; replay and inspect suites.")
    app.add_typer(corner, name="corner-cases")
    corner.command("search")(friendly_errors(search))
    corner.command("replay")(friendly_errors(replay))
    corner.command("info")(friendly_errors(info))
    corner.command("fit-naturalistic")(friendly_errors(fit_naturalistic))
    corner.command("estimate")(friendly_errors(estimate))
    corner.command("fit-proposal")(friendly_errors(fit_proposal))  # drivegpt/cli/corner_proposal.py
    app.command("bench")(friendly_errors(bench))


def search(
    ctx: typer.Context,
    family: list[str] = typer.Option(..., help="Scenario family (repeatable), or 'all'."),
    policy: str = typer.Option("human", help="Policy spec under test (human, drivegpt, drivegpt:RUN, ...)."),
    budget: int | None = typer.Option(None, min=1, help="Simulations per family (overrides the config)."),
    method: str | None = typer.Option(None, help="random | lhs (baselines) | cem (adaptive)."),
    seed: int | None = typer.Option(None, help="Sampler seed; simulation i uses scenario seed SEED + i."),
    config: Path | None = typer.Option(None, help="YAML SearchConfig (CEM, clustering, feasibility)."),
    action: ActionOpt = None,
    keep: str = typer.Option("failures", help="Suite content: failures, or all simulations."),
    sim: SimOrDefaultOpt = None,
    workers: int | None = typer.Option(None, help="Worker processes (default: all cores)."),
    backend: BackendOpt = "local",
    ray_address: RayAddressOpt = None,
    out: Path = typer.Option(..., help="Suite directory to write (with summary.json and sims.csv)."),
) -> None:
    """Search the parameters of scenario families for failures of POLICY; write a replayable suite
    (--sim: default the config's, else auto: batched for the families it runs, else highway-env)."""
    from drivegpt.core.atomic import write_json, write_text
    from drivegpt.corner.search import SearchConfig, search_family, to_scenarios
    from drivegpt.corner.suite import family_env_id, write_suite
    from drivegpt.policies.registry import policy_action_kind
    from drivegpt_envs.families import FAMILIES

    if keep not in ("failures", "all"):
        raise UserError(f"--keep {keep!r}: valid choices are failures, all")
    over = {"budget": budget, "method": method, "seed": seed, "sim": sim}
    if config is not None:
        cfg = load_config(SearchConfig, config, over)
    else:
        cfg = SearchConfig(**{k: v for k, v in over.items() if v is not None})
    families = list(FAMILIES) if family == ["all"] else family
    for f in families:
        family_env_id(f)  # fail fast on an unknown name
    if cfg.sim == "batched":
        from drivegpt.corner.batched import family_of

        for f in families:
            family_of(FAMILIES[f])  # fail fast on a family without a batched port
    kind = policy_action_kind(policy, action or DEFAULT_ACTION)
    cmd = command_line(ctx)
    results = []
    for f in families:
        r = search_family(f, policy, cfg, kind, workers, backend, ray_address)
        results.append(r)
        s = r.summary
        typer.echo(
            f"{f}: {s['failures']}/{s['sims']} failed ({s['failure_rate']:.3f}), first at sim "
            f"{s['sims_to_first_failure']}, {s['clusters']} clusters, {s['unavoidable']} unavoidable"
        )
    scenarios = [sc for r in results for sc in to_scenarios(r, kind, keep)]
    sims = {r.family: r.sim for r in results}  # the simulator each family ran on
    write_suite(
        out,
        scenarios,
        cmd,
        {
            "search": cfg.to_dict(),
            "policy": policy,
            "keep": keep,
            "sim": ", ".join(sorted(set(sims.values()))),
        }
        | {"family_sims": sims},
    )
    write_json(out / "summary.json", {r.family: r.summary for r in results})
    rows = ["family,index,seed,params,failed,crashed,offroad,risk,min_ttc_s,min_gap_m,feasible"]
    for r in results:
        for x in r.sims:
            p = ";".join(f"{k}={v:.4f}" for k, v in x.params.items())
            o = x.outcome
            rows.append(
                f"{r.family},{x.index},{x.seed},{p},{int(o.failed)},{int(o.crashed)},{int(o.offroad)},"
                f"{o.risk:.4f},{o.min_ttc_s:.3f},{o.min_gap_m:.3f},{r.feasible.get(x.index, '')}"
            )
    write_text(out / "sims.csv", "\n".join(rows) + "\n")
    run = {"command": cmd, "config": cfg.to_dict(), "policy": policy, "families": families}
    write_json(out / "run.json", run)
    typer.echo(f"wrote {len(scenarios)} scenarios to {out}")


def replay(
    suite: str = typer.Argument(..., help="Suite directory (or a shipped suite name, e.g. standard)."),
    ids: list[str] | None = typer.Option(None, "--id", help="Replay only these scenario ids (repeatable)."),
    policy: str | None = typer.Option(None, help="Drive with this policy instead (no outcome comparison)."),
    workers: int | None = typer.Option(None, help="Worker processes (default: all cores)."),
    backend: BackendOpt = "local",
    ray_address: RayAddressOpt = None,
) -> None:
    """Re-simulate a suite's scenarios, each on the simulator it was made on; without --policy every
    recorded outcome must match exactly."""
    from drivegpt.corner.runner import run_jobs
    from drivegpt.corner.suite import SuiteError, job_of, load_suite, replay_mismatches, resolve_suite
    from drivegpt.policies.registry import policy_action_kind

    path = resolve_suite(suite)
    _, scenarios = load_suite(path)
    if ids:
        unknown = sorted(set(ids) - {s.id for s in scenarios})
        if unknown:
            raise SuiteError(f"{path}: no scenario {unknown[0]!r}; see `drivegpt corner-cases info {suite}`")
        scenarios = [s for s in scenarios if s.id in ids]
    jobs = [job_of(s, policy, policy_action_kind(policy, s.action) if policy else None) for s in scenarios]
    outs = run_jobs(jobs, workers, backend, "replay", True, ray_address)
    if policy:
        failed = [s.id for s, o in zip(scenarios, outs, strict=True) if o.failed]
        typer.echo(f"{policy}: {len(failed)}/{len(scenarios)} scenarios failed {failed[:10]}")
        return
    bad = {s.id: m for s, o in zip(scenarios, outs, strict=True) if (m := replay_mismatches(s, o))}
    if bad:
        first = next(iter(bad))
        raise SuiteError(
            f"{path}: {len(bad)}/{len(scenarios)} scenarios replay differently, e.g. {first}: {bad[first]}; "
            "check the package versions in metadata.json or regenerate the suite"
        )
    typer.echo(f"ok: {len(scenarios)} scenarios of {path} replayed exactly")


def info(suite: str = typer.Argument(..., help="Suite directory (or a shipped suite name).")) -> None:
    """Families, scenario counts, failures and feasibility of a suite."""
    from drivegpt.corner.suite import load_suite, resolve_suite

    path = resolve_suite(suite)
    meta, scenarios = load_suite(path)
    sims = ", ".join(sorted({s.sim for s in scenarios})) or "none"
    typer.echo(f"{path}: {len(scenarios)} scenarios on {sims}, created by: {meta.get('created_by')}")
    for fam in meta["families"]:
        group = [s for s in scenarios if s.family == fam]
        failed = sum(bool(s.outcome.get("failed")) for s in group)
        unavoidable = sum(s.feasible is False for s in group)
        typer.echo(f"  {fam}: {len(group)} scenarios, {failed} failed, {unavoidable} unavoidable")


def bench(
    ctx: typer.Context,
    suite: str = typer.Option("standard", help="Suite directory, or a shipped suite name (standard)."),
    policy: list[str] = typer.Option(..., help="NAME=SPEC (repeatable), e.g. human=human gpt=drivegpt."),
    out: Path = typer.Option(..., help="Output directory (results.csv/.md, plots/, gifs/, run.json)."),
    takeovers: bool = typer.Option(False, "--takeovers", help="Drive under the monitor: km per takeover."),
    monitor_config: Path | None = typer.Option(None, help="YAML MonitorConfig (with --takeovers)."),
    gifs: int = typer.Option(3, min=0, help="GIFs of the worst failures."),
    naturalistic_episodes: int = typer.Option(
        1000,
        min=0,
        help="Episodes of naturalistic dense traffic per policy: collisions per 10⁶ km and its running "
        "estimate, naturalistic.csv and plots/naturalistic_rate.png (0: skip).",
    ),
    sim: SimOrDefaultOpt = None,
    workers: int | None = typer.Option(None, help="Worker processes (default: all cores)."),
    backend: BackendOpt = "local",
    ray_address: RayAddressOpt = None,
) -> None:
    """Run every policy on every scenario of a suite; write results.csv, results.md, plots and GIFs
    (--sim: default each scenario's own simulator, the one it was made on)."""
    from drivegpt.corner.suite import load_suite, resolve_suite
    from drivegpt.eval.benchmark import BenchConfig, parse_policies
    from drivegpt.eval.benchmark import bench as run_bench

    if monitor_config is not None and not takeovers:
        raise UserError("--monitor-config needs --takeovers")
    monitor = {}
    if monitor_config is not None:
        from drivegpt.takeover.monitor import MonitorConfig

        monitor = load_config(MonitorConfig, monitor_config).to_dict()
    cfg = BenchConfig(
        policies=parse_policies(policy), takeovers=takeovers, monitor=monitor, gifs=gifs,
        naturalistic_episodes=naturalistic_episodes, sim=sim,
    )  # fmt: skip
    path = resolve_suite(suite)
    meta, scenarios = load_suite(path)
    t0 = time.time()
    run = {"command": command_line(ctx), "suite": str(path), "suite_files": meta["files"], "workers": workers}
    entries = run_bench(scenarios, cfg, out, run, workers, backend, ray_address)
    for e in (e for e in entries if e["family"] == "all"):
        lo, hi = e["collision_rate_ci"]
        road = ""
        if e["collisions_per_1e6km"] is not None:
            r_lo, r_hi = e["collisions_per_1e6km_ci"]
            rate = e["collisions_per_1e6km"]
            road = f", {rate:.0f} [{r_lo:.0f}, {r_hi:.0f}] collisions per 10⁶ km naturalistic"
        typer.echo(
            f"{e['policy']}: collision rate {e['collision_rate']:.3f} [{lo:.3f}, {hi:.3f}], "
            f"score {e['score']:.3f}, progress {e['progress']:.3f}{road}"
        )
    n = len(scenarios)
    typer.echo(f"{n} scenarios x {len(cfg.policies)} policies in {time.time() - t0:.1f} s -> {out}")


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
    max_sims: int = typer.Option(2000, help="Simulations at most."),
    seed: int = typer.Option(
        0,
        help="Sampler seed; simulation i uses scenario seed SEED + i (so runs with consecutive seeds share "
        "most scenario seeds: space them, e.g. 10000000 apart, for independent runs).",
    ),
    naturalistic: Path | None = typer.Option(None, help="Naturalistic model JSON (default: shipped)."),
    action: ActionOpt = None,
    workers: WorkersOpt = None,
    sim: Annotated[
        Simulator,
        typer.Option(
            help="highway-env (one env per simulation) | batched (stalled_car, hard_braking_lead, "
            "slower_lead, cut_in, adversarial_vehicle, stop_and_go, side_swipe)."
        ),
    ] = "highway-env",
    batch: BatchOpt = 4096,
    device: DeviceOpt = "auto",
    duration: float | None = typer.Option(
        None, help="--sim batched: episode length [s] (default: the family's)."
    ),
    human_traits: bool | None = typer.Option(
        None,
        "--human-traits/--no-human-traits",
        help="Sample the simulated human's personality with the scenario (the same P(failure)); "
        "default: on with --policy human --sim batched.",
    ),
    defensive: float = typer.Option(
        0.02,
        help="--method is: weight of the naturalistic law itself in the proposal (in (0, 1); every "
        "weight stays below 1/DEFENSIVE). Raise it (0.3-0.7) where some failures come from the scenario "
        "seed's randomness rather than the family's parameters: it costs up to 1/(1-DEFENSIVE) more "
        "simulations, and bounds what a failure the pilot never found can add to the variance.",
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
        help="--method is, --halfspace-share: start the half-space this far [standard units] before "
        "the estimate's lowest failure. Default: where the estimate's own draws say the proposal varies "
        "least (a plane through the lowest failure is loose where the boundary bends).",
    ),
    out: Path = typer.Option(..., help="Output directory (estimate.json, convergence.png, proposal.json)."),
) -> None:
    """P(failure) of POLICY on FAMILY under naturalistic traffic, by Monte Carlo or importance sampling."""
    from drivegpt.core.device import resolve_device
    from drivegpt.corner.estimate import EstimateConfig, write_estimate
    from drivegpt.corner.estimate_family import estimate as run_estimate
    from drivegpt.corner.estimate_family import samples_human_traits
    from drivegpt.corner.suite import family_env_id
    from drivegpt.policies.registry import policy_action_kind

    family_env_id(family)  # fail fast on an unknown name
    if halfspace_share is not None and method != "is":
        raise UserError("--halfspace-share shapes an importance-sampling proposal: it needs --method is")
    dev = str(resolve_device(device)) if sim == "batched" else "cpu"
    kind = policy_action_kind(policy, action or DEFAULT_ACTION)
    t0 = time.time()
    traits = samples_human_traits(policy, sim) if human_traits is None else human_traits
    options = {"defensive": defensive, "pilot_batch": pilot_batch, "refit_floor": refit_floor,
               "halfspace_share": halfspace_share, "halfspace_margin": halfspace_margin,
               "batch": sims_per_check}  # fmt: skip
    cfg = options_config(EstimateConfig, options, "estimate options", {"batch": "--sims-per-check"})
    est = run_estimate(
        family, policy, method, rel_halfwidth, max_sims, seed, cfg, naturalistic, kind, workers,
        sim=sim, batch=batch, duration=duration, human_traits=traits, device=dev, proposal=proposal,
    )  # fmt: skip
    run = {
        "command": command_line(ctx), "family": family, "policy": policy, "sim": sim, "seed": seed,
        "human_traits": traits, "defensive": defensive, "seconds": time.time() - t0, "device": dev,
        "proposal": [str(p) for p in proposal] if proposal else None,
    }  # fmt: skip
    write_estimate(est, out, run)
    lo, hi = est.failure_probability_ci
    flag = " (degenerate weights: no interval)" if est.degenerate else ""
    p = est.failure_probability
    sims = f"{est.sims} sims ({est.pilot_sims} pilot)" if method == "is" else f"{est.sims} sims"
    typer.echo(f"{family} {policy} {method}: P(failure) {p:.3g} [{lo:.3g}, {hi:.3g}]{flag}, {sims}")
    if est.mixture is not None:
        how = "its pilot's" if est.fitted_to == "pilot" else "refitted to its failures"
        how = "its mixture and a half-space fitted to its simulations" if est.halfspace is not None else how
        typer.echo(f"proposal ({how}): {out / 'proposal.json'}; --proposal starts the next estimate from it")
    if halfspace_share is not None and est.halfspace is None:
        typer.echo(
            f"no half-space: it needs failures and runs that did not fail, and weights that are not "
            f"degenerate ({est.failures} failures in {est.sims - est.pilot_sims} simulations)"
        )
