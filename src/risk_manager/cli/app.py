"""The `risk-manager` command. Each command group lives in its own module and is registered here."""

from __future__ import annotations

import typer

from risk_manager import __version__

app = typer.Typer(
    name="risk-manager",
    help="Real-time risk manager for TopstepX (ProjectX Gateway) futures accounts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"risk-manager {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit.",
                                 callback=_version, is_eager=True),
) -> None:
    """Real-time risk manager for TopstepX (ProjectX Gateway) futures accounts."""


def _register() -> None:
    # Command groups, one module each (imported here so `--help` lists them all).
    from risk_manager.cli import (
        admin_cmd,
        bench_cmd,
        chaos_cmd,
        config_cmd,
        demo_cmd,
        init_cmd,
        replay_cmd,
        run_cmd,
        service_cmd,
        sim_cmd,
        status_cmd,
    )

    app.add_typer(sim_cmd.app, name="sim")
    app.add_typer(admin_cmd.app, name="admin")
    app.command(name="bench")(bench_cmd.bench)
    app.add_typer(config_cmd.app, name="config")
    app.add_typer(service_cmd.app, name="service")
    app.command(name="status")(status_cmd.status)
    app.command(name="init")(init_cmd.init)
    app.command(name="replay")(replay_cmd.replay)
    app.command(name="run")(run_cmd.run)
    app.command(name="demo")(demo_cmd.demo)
    app.command(name="chaos")(chaos_cmd.chaos)


_register()


def main() -> None:
    app()
