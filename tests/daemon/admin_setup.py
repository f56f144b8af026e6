"""A real daemon on the in-process simulator (127.0.0.1), with its admin side: an initialised admin
directory that is also the daemon's configuration directory, the admin CLI run through CliRunner."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from typer.testing import CliRunner, Result

from risk_manager.cli.app import app
from risk_manager.daemon.admin_services import AdminServices
from risk_manager.daemon.config_dir import load_config_dir
from risk_manager.daemon.daemon import Daemon, DaemonOptions
from risk_manager.daemon.gateway_target import point_at
from risk_manager.sim import SimAccount, SimConfig, Simulator
from tests.security.conftest import ADMIN_PW

ACCOUNT = 1001
CONFIG_YAML = ("authentication: {storage: {type: memory}}\n"
               "signalr: {reconnection: {delays: [0, 100, 200], maxDelayMs: 200, jitter: 0}}\n"
               "stateReconciliation: {minInterval: 0}\n"
               "database: {path: state/risk.db, durableFsync: false}\n")
ACCOUNTS_YAML = (f"credentials: {{default: {{userName: demo, apiKey: demo-api-key}}}}\n"
                 f"accounts: [{{id: {ACCOUNT}}}]\n")
RISK_YAML = """\
# the coach's rules
rules:
  max_contracts: {enabled: true, limit: 4}
  daily_realized_loss: {enabled: true, loss_limit: 500}
admin: {allow_manual_unlock: false}
"""

runner = CliRunner()


def admin(config: Path, *args: str, stdin: str = f"{ADMIN_PW}\n") -> Result:
    return runner.invoke(app, ["admin", *args, "--config", str(config), "--password-stdin"], input=stdin)


def admin_plain(config: Path, *args: str) -> Result:
    """An admin command that asks for no password (`admin daemon status`)."""
    return runner.invoke(app, ["admin", *args, "--config", str(config)])


async def admin_async(config: Path, *args: str, stdin: str = f"{ADMIN_PW}\n") -> Result:
    """The CLI in a thread: the daemon in this loop keeps running while the command waits for it."""
    return await asyncio.to_thread(admin, config, *args, stdin=stdin)


def write_private(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)


def make_config_dir(tmp_path: Path, risk: str = RISK_YAML, accounts: str = ACCOUNTS_YAML) -> Path:
    """`admin init` (password-derived key), then config.yaml, accounts.yaml and risk.yaml (0600)."""
    directory = tmp_path / "cfg"
    result = admin(directory, "init", "--key-source", "password")
    assert result.exit_code == 0, result.output
    write_private(directory / "config.yaml", CONFIG_YAML)
    write_private(directory / "accounts.yaml", accounts)
    write_private(directory / "risk.yaml", risk)
    return directory


@dataclass
class Running:
    directory: Path
    sim: Simulator
    daemon: Daemon
    services: AdminServices


@asynccontextmanager
async def running_daemon(directory: Path, sim: Simulator | None = None) -> AsyncIterator[Running]:
    own_sim = sim is None
    if sim is None:
        sim = Simulator(SimConfig(accounts=[SimAccount(ACCOUNT, "SIM-1001")], quote_feed="scripted"))
        await sim.start("127.0.0.1", 0)
        sim.market.set_quote("MNQ", 20000.0)
    config = load_config_dir(directory)
    daemon = Daemon(DaemonOptions.from_config(config, point_at(config.gateway, sim.base_url)))
    services = AdminServices(daemon, config, lambda: load_config_dir(directory))
    try:
        await daemon.start()
        services.start()
        yield Running(directory, sim, daemon, services)
    finally:
        await services.aclose()
        await daemon.aclose()
        if own_sim:
            await sim.stop()


async def until(condition: Callable[[], object], timeout: float, what: str) -> float:  # noqa: ASYNC109
    """Seconds it took for `condition()` to hold (AssertionError after `timeout`)."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)
    return time.monotonic() - started


def position_size(sim: Simulator, symbol: str = "MNQ") -> int:
    contract = sim.broker.contract(symbol).id
    return sum(p.size for p in sim.broker.positions(ACCOUNT) if p.contract_id == contract)
