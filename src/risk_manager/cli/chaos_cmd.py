"""`risk-manager chaos --runs N --seed S [--out DIR]`: random trading days with random faults against the
real daemon, each judged by the independent oracle (docs/reliability.md)."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import typer

from risk_manager.logs import configure_logging


def chaos(
    runs: int = typer.Option(50, "--runs", min=1, help="How many generated scenarios to run."),
    seed: int = typer.Option(1, "--seed", help="Seed of the first run; run i uses seed + i."),
    minutes: float = typer.Option(1.0, "--minutes", min=0.1, help="Virtual trading minutes per run."),
    accounts: int | None = typer.Option(None, "--accounts", min=1, max=9,
                                        help="Accounts per run (default: 2 or 3, drawn from the seed)."),
    out: Path = typer.Option(Path("."), "--out", help="Folder for chaos-failure-<seed>.yaml of failing runs."),
    scenario_file: Path | None = typer.Option(None, "--scenario",
                                              help="Judge this one scenario file (e.g. a chaos-failure-*.yaml) "
                                                   "instead of generating runs."),
    kill: bool = typer.Option(False, "--kill", help="Run the daemon in a child process, kill -9 it twice per run "
                                                    "at random steps and restart it on the same database files; "
                                                    "check no lock is lost."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the summary as JSON here."),
    log_level: str = typer.Option("CRITICAL", "--log-level", help="Daemon/simulator log level (to stderr)."),
    jobs: int = typer.Option(0, "--jobs", min=0, help="Runs at once, each in its own process (0: one per CPU core; "
                                                     "1: all in this process, in seed order)."),
) -> None:
    """Chaos runs: random trading and faults, judged by an oracle. Exit 0 when every run is clean, 1 otherwise."""
    from risk_manager.chaos.runs import (  # imports the simulator and the daemon
        RunResult,
        judge_command,
        run_many,
        run_scenario,
    )
    from risk_manager.replay.scenario import ScenarioError, load_scenario

    configure_logging(log_level.upper())   # the root level governs every risk_manager logger

    def show(result: RunResult, written: Path | None, index: int | None = None) -> None:
        j = result.judgement
        head = str(scenario_file) if index is None else f"[{index}/{runs}] seed {result.seed}"
        status = "clean" if j.clean else f"FAILED ({len(j.violations)} violation(s))"
        typer.echo(f"{head}: {status} — {j.breaches} breach(es) judged {j.breaches - j.unjudged}, "
                   f"{result.wall_s:.2f} s — {result.scenario.name}")
        for violation in j.violations:
            typer.echo(f"    {violation}")
        if written is not None:
            typer.echo(f"    replay it: {judge_command(result, written)}")

    if scenario_file is not None:
        try:
            scenario = load_scenario(scenario_file)
        except ScenarioError as exc:
            typer.echo(f"invalid scenario: {exc}", err=True)
            raise typer.Exit(2) from None
        result = asyncio.run(run_scenario(scenario, seed, kill=kill))
        show(result, None)
        raise typer.Exit(0 if result.clean else 1)

    count = 0

    def progress(result: RunResult, written: Path | None) -> None:
        nonlocal count
        count += 1
        show(result, written, count)

    workers = min(runs, jobs or os.cpu_count() or 1)
    summary = asyncio.run(run_many(runs, seed, minutes=minutes, accounts=accounts, out=out, on_result=progress,
                                   kill=kill, jobs=workers))
    data = summary.to_json()
    typer.echo("")
    typer.echo(f"chaos: {summary.runs} run(s), {summary.clean} clean, seeds {seed}–{seed + runs - 1}, "
               f"{minutes:g} virtual minute(s) each{', 2 kills each' if kill else ''}, {workers} process(es), "
               f"wall time {summary.wall_s:.1f} s "
               f"(median {data['run_wall_s_median']} s per run)")
    typer.echo(f"daemon actions done: {data['daemon_actions_done']}; kills: {data['kills']}; breaches still open "
               f"after their instant: {data['breaches_judged']} judged, {data['breaches_unjudged']} not judgeable "
               "(deadline after the end of the run, or never knowable)")
    if summary.by_kind:
        kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(summary.by_kind.items()))
        typer.echo(f"violations: {kinds}; failing seeds: {', '.join(map(str, summary.failed_seeds))}")
    else:
        typer.echo("violations: none")
    if json_out is not None:
        json_out.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    raise typer.Exit(0 if summary.clean == summary.runs else 1)
