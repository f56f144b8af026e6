"""`risk-manager sim …`: the ProjectX Gateway simulator."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path

import typer

from risk_manager.logs import configure_logging, log_event
from risk_manager.sim import SimConfig, SimConfigError, Simulator, load_accounts_file, parse_duration

app = typer.Typer(help="The ProjectX Gateway simulator (REST + SignalR hubs on loopback).", no_args_is_help=True)

log = logging.getLogger("risk_manager.sim")


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(5100, help="TCP port (0 = any free port)."),
    accounts: Path | None = typer.Option(None, "--accounts", help="YAML file with users and accounts "
                                         "(see docs/simulator.md)."),
    seed: int = typer.Option(1, help="Seed of the random-walk quote feed."),
    token_lifetime: str = typer.Option("24h", help="Session token lifetime: 30m, 24h, 3600s ..."),
    unwrapped: bool = typer.Option(False, "--unwrapped", help="Send user-hub events unwrapped (the entity itself)."),
    feed: str = typer.Option("random", help="Quote feed: 'random' (seeded walk) or 'scripted' (control API only)."),
    no_fees: bool = typer.Option(False, "--no-fees", help="Do not charge the catalogue's fees on fills."),
    partial_quotes: bool = typer.Option(False, "--partial-quotes",
                                        help="Quotes carry only the fields that changed (after the first)."),
    log_level: str = typer.Option("INFO", help="DEBUG, INFO, WARNING or ERROR."),
) -> None:
    """Run the simulated Gateway until Ctrl-C / SIGTERM."""
    configure_logging(log_level)
    try:
        config = SimConfig(seed=seed, token_lifetime=parse_duration(token_lifetime, "--token-lifetime"),
                           wrap_user_events=not unwrapped, fees=not no_fees, partial_quotes=partial_quotes,
                           quote_feed="scripted" if feed == "scripted" else "random")
        if feed not in ("random", "scripted"):
            raise SimConfigError(f"--feed: expected 'random' or 'scripted', got {feed!r}")
        if accounts is not None:
            config.accounts, config.users = load_accounts_file(accounts)
    except SimConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        asyncio.run(_serve(config, host, port))
    except OSError as exc:
        typer.echo(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}", err=True)
        raise typer.Exit(1) from None


async def _serve(config: SimConfig, host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # Windows: Ctrl-C arrives as KeyboardInterrupt
            loop.add_signal_handler(sig, stop.set)
    sim = Simulator(config)
    await sim.start(host=host, port=port)
    log_event(log, "sim_serving", control=sim.base_url + "/_sim/state",
              accounts=",".join(str(a.id) for a in config.accounts),
              users=",".join(u.user_name for u in config.users) or "any (apiKey >= 8 characters)")
    try:
        await stop.wait()
    finally:
        log_event(log, "sim_shutting_down")
        await sim.stop()
