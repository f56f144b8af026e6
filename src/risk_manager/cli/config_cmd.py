"""`risk-manager config validate FILE` and `risk-manager config schema`."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from risk_manager.engine.config import RiskConfig
from risk_manager.engine.config_loader import load_risk_config
from risk_manager.engine.errors import ConfigError

app = typer.Typer(help="Check a risk config file or print its JSON Schema.", no_args_is_help=True)


@app.command()
def validate(file: Path = typer.Argument(..., help="The risk config (YAML) to check.")) -> None:
    """Validate a risk config: exit 0 when valid, 2 with every problem (file, key, what is allowed)."""
    try:
        config = load_risk_config(file)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    enabled = config.rules.enabled_ids()
    typer.echo(f"{file}: valid; {len(enabled)} rule(s) enabled: {', '.join(enabled) or 'none'}")


@app.command()
def schema() -> None:
    """Print the JSON Schema of the risk config to stdout."""
    typer.echo(json.dumps(RiskConfig.model_json_schema(mode="validation"), indent=2))


@app.command()
def docs() -> None:
    """Print the config reference (Markdown) generated from the schema; docs/configuration.md is this."""
    from risk_manager.engine.config_docs import render_configuration_reference

    typer.echo(render_configuration_reference(), nl=False)
