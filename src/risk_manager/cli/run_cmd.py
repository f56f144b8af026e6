"""`risk-manager run --config DIR [--gateway URL | --sim]`: protect the configured accounts until stopped."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from risk_manager.daemon.config_dir import DaemonConfig, DaemonConfigError, load_config_dir
from risk_manager.daemon.daemon import Daemon, DaemonOptions, DaemonStartError
from risk_manager.daemon.gateway_target import SimulatorEnvironment, point_at
from risk_manager.logs import configure_logging, log_event
from risk_manager.store import StoreError

if TYPE_CHECKING:
    from risk_manager.sim import SimAccount, Simulator

log = logging.getLogger("risk_manager.daemon")


def _sim_accounts(config: DaemonConfig) -> list[SimAccount]:
    from risk_manager.sim import SimAccount

    accounts: list[SimAccount] = []
    next_id = 1001
    for spec in config.accounts:
        if spec.id is not None:
            account_id = spec.id
        else:
            while any(a.id == next_id for a in accounts) or any(s.id == next_id for s in config.accounts):
                next_id += 1
            account_id = next_id
        accounts.append(SimAccount(account_id, spec.name or f"SIM-{account_id}"))
    return accounts


async def _serve(config: DaemonConfig, gateway_url: str | None, sim: bool) -> int:
    simulator: Simulator | None = None
    gateway = config.gateway
    if sim:
        from risk_manager.sim import SimConfig, Simulator  # only here: the daemon alone stays lean

        simulator = Simulator(SimConfig(accounts=_sim_accounts(config)))
        await simulator.start("127.0.0.1", 0)
        gateway = point_at(gateway, simulator.base_url)
        log_event(log, "simulator_in_process", url=simulator.base_url)
    elif gateway_url is not None:
        gateway = point_at(gateway, gateway_url)
    daemon = Daemon(DaemonOptions.from_config(config, gateway))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # Windows: Ctrl-C raises KeyboardInterrupt
            loop.add_signal_handler(sig, stop.set)
    try:
        try:
            await daemon.start()
        except (DaemonStartError, StoreError) as exc:
            typer.echo(f"error: cannot start: {exc}", err=True)
            return 1
        typer.echo(f"protecting {len(daemon.accounts)} account(s) via {gateway.api.base_url} "
                   f"(state {'stale' if daemon.stale else 'fresh'}); Ctrl-C or SIGTERM stops", err=True)
        await stop.wait()
        log_event(log, "daemon_stopping", reason="signal")
        await daemon.aclose(timeout_s=5.0)
        return 0
    finally:
        await daemon.aclose(timeout_s=5.0)
        if simulator is not None:
            await simulator.stop()


def run(
    config_dir: Path = typer.Option(..., "--config", help="The configuration directory (risk-manager init DIR)."),
    gateway: str | None = typer.Option(None, "--gateway", help="Gateway root URL instead of config.yaml's api."),
    sim: bool = typer.Option(False, "--sim", help="Start the Gateway simulator in-process on 127.0.0.1 and use it."),
    log_level: str | None = typer.Option(None, "--log-level", help="Override config.yaml logging.level."),
) -> None:
    """Run the daemon: protect every account of accounts.yaml until SIGTERM/SIGINT."""
    if sim and gateway is not None:
        typer.echo("error: give --gateway or --sim, not both", err=True)
        raise typer.Exit(2)
    try:
        config = load_config_dir(config_dir, SimulatorEnvironment() if sim else None)
    except DaemonConfigError as exc:
        typer.echo(f"error: invalid configuration: {exc}", err=True)
        raise typer.Exit(2) from None
    configure_logging((log_level or config.log_level).upper())
    try:
        code = asyncio.run(_serve(config, gateway, sim))
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(code)
