"""Live reload on a running daemon (simulator on loopback, one process): how long from a risk file saved
(atomically, as the rules editor does) until the daemon's engine enforces the new version, and what
one reload costs when it runs (load + validate + compare + apply, without the 250 ms polling period)."""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from pathlib import Path

from risk_manager.benchkit import Figure, Progress, median, percentile
from risk_manager.daemon.admin_services import AdminServices
from risk_manager.daemon.config_dir import load_config_dir
from risk_manager.daemon.daemon import Daemon, DaemonOptions
from risk_manager.daemon.gateway_target import point_at
from risk_manager.logs import configure_logging
from risk_manager.security.paths import write_private_atomic
from risk_manager.sim import SimAccount, SimConfig, Simulator

DESCRIPTION = "live reload: risk file saved → new rules in force on the running daemon (20 saves), one reload's cost"

ROUNDS = 20
ACCOUNT = 1001
RISK = "rules:\n  max_contracts: {{enabled: true, limit: {limit}}}\n  daily_realized_loss: {{enabled: true, " \
       "loss_limit: 500}}\n"


def _write(directory: Path, name: str, text: str) -> None:
    write_private_atomic(directory / name, text.encode())


async def _measure(progress: Progress) -> tuple[list[float], list[float]]:
    configure_logging("WARNING")
    sim = Simulator(SimConfig(accounts=[SimAccount(ACCOUNT, "SIM-1001")], quote_feed="scripted"))
    await sim.start("127.0.0.1", 0)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "cfg"
        directory.mkdir(mode=0o700)
        _write(directory, "config.yaml", "authentication: {storage: {type: memory}}\n"
                                         "database: {path: state/risk.db, durableFsync: false}\n")
        _write(directory, "accounts.yaml", "credentials: {default: {userName: demo, apiKey: demo-api-key}}\n"
                                           f"accounts: [{{id: {ACCOUNT}}}]\n")
        _write(directory, "risk.yaml", RISK.format(limit=10))
        config = load_config_dir(directory)
        daemon = Daemon(DaemonOptions.from_config(config, point_at(config.gateway, sim.base_url)))
        services = AdminServices(daemon, config, lambda: load_config_dir(directory))
        applied, costs = [], []
        phases = random.Random(7)
        try:
            await daemon.start()
            services.start()
            engine = daemon.accounts[ACCOUNT].engine
            for i in range(ROUNDS):
                progress(f"save {i + 1}/{ROUNDS}")
                limit = 9 - i % 5
                saved = time.perf_counter()
                _write(directory, "risk.yaml", RISK.format(limit=limit))
                while engine.config.rules.max_contracts.limit != limit:  # noqa: ASYNC110 - observing, 2 ms steps
                    await asyncio.sleep(0.002)
                applied.append((time.perf_counter() - saved) * 1000)
                # past the next poll, then a random phase against the 250 ms period (seeded: repeatable)
                await asyncio.sleep(0.3 + phases.random() * 0.25)
            await services.reload.aclose()   # from here on, reloads are called directly
            for i in range(ROUNDS):
                progress(f"reload {i + 1}/{ROUNDS}")
                _write(directory, "risk.yaml", RISK.format(limit=20 + i))
                started = time.perf_counter()
                await services.reload.reload()
                costs.append((time.perf_counter() - started) * 1000)
        finally:
            await services.aclose()
            await daemon.aclose()
            await sim.stop()
    return applied, costs


def run(progress: Progress) -> list[Figure]:
    applied, costs = asyncio.run(_measure(progress))
    return [
        Figure("risk file saved → new rules in force, median", median(applied), "ms", target=1000.0),
        Figure("risk file saved → new rules in force, max", max(applied), "ms", target=1000.0),
        Figure("one reload (load + validate + compare + apply), median", median(costs), "ms"),
        Figure("one reload, p95", percentile(costs, 95), "ms"),
    ]
