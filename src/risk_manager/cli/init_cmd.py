"""`risk-manager init [DIR]`: write a commented example configuration directory."""

from __future__ import annotations

from pathlib import Path

import typer

from risk_manager.daemon.config_templates import InitRefusedError, write_example_config


def init(
    directory: Path = typer.Argument(Path("risk-manager-config"), help="Directory to create (0700)."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing files."),
) -> None:
    """Write config.yaml, accounts.yaml and risk.yaml (0600) with every key commented."""
    try:
        written = write_example_config(directory, force=force)
    except InitRefusedError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except OSError as exc:
        typer.echo(f"error: cannot write {directory}: {exc.strerror or exc}", err=True)
        raise typer.Exit(1) from None
    for path in written:
        typer.echo(f"wrote {path}")
    typer.echo(f"next: export TOPSTEPX_USER and TOPSTEPX_API_KEY, edit {directory / 'accounts.yaml'}, then\n"
               f"      risk-manager run --config {directory}      (or --sim to try it on the simulator)")
