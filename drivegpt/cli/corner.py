"""``drivegpt corner-cases`` (failure search, suite replay and info) and ``drivegpt bench``; the
failure-rate commands (``fit-naturalistic``, ``estimate``, ``fit-proposal``) are in ``corner_estimate``."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from drivegpt.cli.options import (
    MAX_SEED,
    ActionOpt,
    BackendOpt,
    Keep,
    RayAddressOpt,
    SearchMethod,
    SimOrDefaultOpt,
    WorkersOpt,
    out_dir,
)
from drivegpt.cli.util import command_line, friendly_errors
from drivegpt.core.config import load_config
from drivegpt.core.errors import UserError


def register(app: typer.Typer) -> None:
    """Add the ``corner-cases`` group and the ``bench`` command to ``app``."""
    from drivegpt.cli.corner_estimate import estimate, fit_naturalistic, fit_proposal

    corner = typer.Typer(
        no_args_is_help=True,
        help="Search corner cases; replay and inspect suites; estimate naturalistic failure rates.",
    )
    app.add_typer(corner, name="corner-cases")
    corner.command("search")(friendly_errors(search))
    corner.command("replay")(friendly_errors(replay))
    corner.command("info")(friendly_errors(info))
    corner.command("fit-naturalistic")(friendly_errors(fit_naturalistic))
    corner.command("estimate")(friendly_errors(estimate))
    corner.command("fit-proposal")(friendly_errors(fit_proposal))
    app.command("bench")(friendly_errors(bench))


def search(
    ctx: typer.Context,
    family: list[str] = typer.Option(..., help="Scenario family (repeatable), or 'all'."),
    policy: str = typer.Option("human", help="Policy spec under test (human, drivegpt, drivegpt:RUN, ...)."),
    budget: int | None = typer.Option(None, min=1, help="Simulations per family (overrides the config)."),
    method: SearchMethod | None = typer.Option(None, help="random, lhs (baselines) or cem (adaptive)."),
    seed: int | None = typer.Option(
        None, min=0, max=MAX_SEED, help="Sampler seed; simulation i uses scenario seed SEED + i."
    ),
    config: Path | None = typer.Option(None, help="YAML SearchConfig (CEM, clustering, feasibility)."),
    action: ActionOpt = None,
    keep: Keep = typer.Option("failures", help="Suite content: failures, or all simulations."),
    sim: SimOrDefaultOpt = None,
    workers: WorkersOpt = None,
    backend: BackendOpt = "local",
    ray_address: RayAddressOpt = None,
    out: Path = typer.Option(
        ..., help="Suite directory to write (with summary.json and sims.csv).", callback=out_dir
    ),
) -> None:
    """Search the parameters of scenario families for failures of POLICY; write a replayable suite.

    --sim: default the config's, else auto: batched for the families it runs, else highway-env."""
    from drivegpt.core.atomic import write_json, write_text
    from drivegpt.corner.search import SearchConfig, search_family, to_scenarios
    from drivegpt.corner.suite import family_env_id, write_suite
    from drivegpt.policies.registry import policy_action_kind
    from drivegpt_envs.common import DEFAULT_ACTION
    from drivegpt_envs.families import FAMILIES

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
    suite: str = typer.Argument(
        ..., metavar="SUITE", help="Suite directory (or a shipped suite name, e.g. standard)."
    ),
    ids: list[str] | None = typer.Option(None, "--id", help="Replay only these scenario ids (repeatable)."),
    policy: str | None = typer.Option(None, help="Drive with this policy instead (no outcome comparison)."),
    workers: WorkersOpt = None,
    backend: BackendOpt = "local",
    ray_address: RayAddressOpt = None,
) -> None:
    """Re-simulate a suite's scenarios, each on the simulator it was made on.

    Without --policy every recorded outcome must match exactly."""
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


def info(
    suite: str = typer.Argument(..., metavar="SUITE", help="Suite directory (or a shipped suite name)."),
) -> None:
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
    out: Path = typer.Option(
        ..., help="Output directory (results.csv/.md, plots/, gifs/, run.json).", callback=out_dir
    ),
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
    workers: WorkersOpt = None,
    backend: BackendOpt = "local",
    ray_address: RayAddressOpt = None,
) -> None:
    """Run every policy on every scenario of a suite; write results.csv, results.md, plots and GIFs.

    --sim: default each scenario's own simulator, the one it was made on."""
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
