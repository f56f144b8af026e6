"""`risk-manager sim …`: the ProjectX Gateway simulator."""

from __future__ import annotations

import typer

app = typer.Typer(help="The ProjectX Gateway simulator (REST + SignalR hubs on loopback).", no_args_is_help=True)
