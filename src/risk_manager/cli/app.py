"""The `risk-manager` command. Each command group lives in its own module and is registered here.

Command modules are imported only when their command runs (or when `--help` lists them all), so
`risk-manager run` does not carry the simulator, aiohttp, argon2 or the dashboard in its memory:
the daemon's resident size is measured against a target (docs/performance.md).
"""

from __future__ import annotations

import importlib
from typing import Literal

import typer
from typer import _click
from typer.core import TyperGroup

from risk_manager import __version__

# name → (module under risk_manager.cli, attribute, "group" for a typer.Typer sub-app or "command" for a
# function). One line per command; keep the order: it is the order of `--help`.
COMMANDS: dict[str, tuple[str, str, Literal["group", "command"]]] = {
    "sim": ("sim_cmd", "app", "group"),
    "admin": ("admin_cmd", "app", "group"),
    "bench": ("bench_cmd", "bench", "command"),
    "config": ("config_cmd", "app", "group"),
    "service": ("service_cmd", "app", "group"),
    "status": ("status_cmd", "status", "command"),
    "init": ("init_cmd", "init", "command"),
    "replay": ("replay_cmd", "replay", "command"),
    "run": ("run_cmd", "run", "command"),
    "demo": ("demo_cmd", "demo", "command"),
    "chaos": ("chaos_cmd", "chaos", "command"),
}


def load_command(name: str) -> _click.Command:
    """Import the module of command `name` and build its click command (KeyError if unknown)."""
    module_name, attribute, kind = COMMANDS[name]
    target = getattr(importlib.import_module(f"risk_manager.cli.{module_name}"), attribute)
    if kind == "group":
        command: _click.Command = typer.main.get_group(target)
    else:
        single = typer.Typer(add_completion=False)
        single.command(name=name)(target)
        command = typer.main.get_command(single)
    command.name = name
    return command


class LazyCommands(TyperGroup):
    """The root group: a subcommand's module is imported the first time the subcommand is looked up."""

    def list_commands(self, ctx: _click.Context) -> list[str]:
        return [*COMMANDS, *(name for name in super().list_commands(ctx) if name not in COMMANDS)]

    def get_command(self, ctx: _click.Context, cmd_name: str) -> _click.Command | None:
        found = super().get_command(ctx, cmd_name)
        if found is None and cmd_name in COMMANDS:
            found = self.commands[cmd_name] = load_command(cmd_name)
        return found


app = typer.Typer(
    name="risk-manager",
    cls=LazyCommands,
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


def main() -> None:
    app()
