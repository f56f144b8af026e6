"""`risk-manager replay SCENARIO.yaml [--rules RISK.yaml] [--json REPORT.json] [--check]` (scenarios.md)."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import typer

from risk_manager.logs import configure_logging, log_event
from risk_manager.replay.scenario import ScenarioError, load_scenario

log = logging.getLogger("risk_manager.replay")


def replay(
    scenario_file: Path = typer.Argument(..., help="The scenario (YAML, format of docs/scenarios.md)."),
    rules: Path | None = typer.Option(None, "--rules", help="A risk config file; overrides the scenario's rules."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the JSON report here ('-' for stdout)."),
    check: bool = typer.Option(False, "--check", help="Verify the scenario's expect: block (exit 1 on a mismatch)."),
    log_level: str = typer.Option("ERROR", "--log-level", help="DEBUG, INFO, WARNING or ERROR (to stderr)."),
) -> None:
    """Replay a scripted trading day: the real daemon against the simulator on a virtual clock.

    Exit 0 when the run completed, 2 on an invalid scenario, 1 on an internal error (or a failed --check)."""
    from risk_manager.replay.report import render_table  # the simulator: imported only by this command
    from risk_manager.replay.runner import replay as run_replay

    configure_logging(log_level.upper())
    try:
        scenario = load_scenario(scenario_file)
        result = asyncio.run(run_replay(scenario, rules, source=str(scenario_file), check=check))
    except ScenarioError as exc:
        typer.echo(f"invalid scenario: {exc}", err=True)
        raise typer.Exit(2) from None
    except Exception as exc:
        log_event(log, "replay_failed", logging.ERROR, scenario=str(scenario_file), error=repr(exc))
        typer.echo(f"internal error while replaying {scenario_file}: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(1) from None
    text = json.dumps(result.report, indent=2)
    if json_out is None:
        typer.echo(render_table(result.report))
    elif str(json_out) == "-":
        typer.echo(text)
    else:
        json_out.write_text(text + "\n", encoding="utf-8")
    if check:
        if result.problems:
            typer.echo(f"check FAILED: {len(result.problems)} mismatch(es) in {scenario_file}:", err=True)
            for problem in result.problems:
                typer.echo(f"  - {problem}", err=True)
            raise typer.Exit(1)
        typer.echo(f"check passed: {scenario_file} ({result.wall_s:.2f} s)", err=True)
