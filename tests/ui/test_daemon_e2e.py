"""End to end: the dashboard against the REAL daemon on the project's simulator (127.0.0.1).

`wire(daemon, server)` below is the reference wiring of the daemon's status hook to the broadcast
server (docs/dashboard.md § Wiring); it runs only where the daemon package exists (branch `daemon`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

daemon_module = pytest.importorskip("risk_manager.daemon.daemon", reason="the daemon is not merged yet")
config_dir = pytest.importorskip("risk_manager.daemon.config_dir")

from textual.widgets import DataTable, Static  # noqa: E402

from risk_manager.broadcast import (  # noqa: E402
    ActionEntry,
    AlertEntry,
    BroadcastServer,
    RecentActivity,
    account_snapshot,
    build_snapshot,
    connection_state,
    read_token_file,
)
from risk_manager.engine import parse_rules_block  # noqa: E402
from risk_manager.gateway import GatewayConfig, MemoryTokenStore  # noqa: E402
from risk_manager.sim import SimAccount, SimConfig, Simulator  # noqa: E402
from risk_manager.ui.app import DashboardApp  # noqa: E402

Daemon, DaemonOptions, AlertRecord = daemon_module.Daemon, daemon_module.DaemonOptions, daemon_module.AlertRecord
AccountSpec, Credential = config_dir.AccountSpec, config_dir.Credential
ACCOUNT = 1001


def wire(daemon: Any, server: BroadcastServer) -> Callable[[], None]:
    """Publish a snapshot after every batch the daemon processes and every outcome/alert."""
    recent = RecentActivity()

    def publish(_: object = None) -> None:
        now = daemon.clock.now()
        accounts = [account_snapshot(p.engine.status(aid), connection_state(p.connection.client.user_hub.state.value),
                                     p.connection.fresh, None, p.mirror.open_orders.values(), recent.actions(aid),
                                     recent.alerts(aid), now)
                    for aid, p in daemon.accounts.items()]
        server.publish(build_snapshot(accounts, now, daemon={"state": "stale" if daemon.stale else "fresh"}))

    def on_activity(item: Any) -> None:
        if isinstance(item, AlertRecord):
            recent.add_alert(item.account_id, AlertEntry(item.at, item.level, item.message, item.rules))
        else:
            recent.add_action(item.action.account_id,
                              ActionEntry.of(item.action, str(item.status), item.finished, item.reason))
        publish()

    daemon.subscribe_activity(on_activity)
    return daemon.subscribe_status(publish)  # type: ignore[no-any-return]


def text_of(app: DashboardApp, widget_id: str) -> str:
    return str(app.query_one(f"#{widget_id}", Static).content)


def positions(app: DashboardApp) -> int:
    return app.query_one("#positions-table", DataTable).row_count


async def until(pilot: Any, predicate: Callable[[], bool], within_s: float = 10.0) -> float:
    started = time.perf_counter()
    while not predicate():
        assert time.perf_counter() - started < within_s, "not on screen in time"
        await pilot.pause(0.005)
    return time.perf_counter() - started


@pytest.mark.slow
async def test_a_daily_loss_breach_on_the_simulator_appears_on_the_dashboard(tmp_path: Path) -> None:
    sim = Simulator(SimConfig(accounts=[SimAccount(ACCOUNT, "E2E-1001")], quote_feed="scripted"))
    await sim.start("127.0.0.1", 0)
    sim.market.set_quote("MNQ", 20000.0)
    risk = parse_rules_block({"daily_realized_loss": {"enabled": True, "loss_limit": 500}}, "e2e")
    gateway = GatewayConfig.for_server(sim.base_url, {"authentication": {"storage": {"type": "memory"}}})
    daemon = Daemon(DaemonOptions(
        gateway=gateway, accounts=(AccountSpec(ACCOUNT, None, Credential("e2e", "e2e", "e2e-api-key"), risk),),
        database_path=tmp_path / "risk.db", durable_fsync=False, token_store=MemoryTokenStore))
    server = BroadcastServer("127.0.0.1", 0, token_file=tmp_path / "dashboard.token")
    await server.start()
    wire(daemon, server)
    try:
        await daemon.start()
        app = DashboardApp(server.url, lambda: read_token_file(server.token_file), bell=False)
        async with app.run_test(size=(130, 40)) as pilot:
            await until(pilot, lambda: "(1001)" in text_of(app, "summary"))
            assert "connected" in text_of(app, "summary") and "FRESH" in text_of(app, "summary")
            sim.trader.place_order(ACCOUNT, "MNQ", side="buy", size=5, type="market")
            await until(pilot, lambda: positions(app) == 1)

            sim.market.set_quote("MNQ", 19930.0)  # 70 points × 5 MNQ × $2 = −$700 open: RULE-003 breached
            shown = await until(pilot, lambda: "LOCKED until_reset" in text_of(app, "locks"))
            print(f"daemon on simulator: quote → lock on screen {shown * 1000:.0f} ms")
            await until(pilot, lambda: positions(app) == 0)  # flattened at the broker
            assert "RULE-003" in text_of(app, "locks")
            first = text_of(app, "locks")
            await until(pilot, lambda: text_of(app, "locks") != first, within_s=3)  # the countdown runs
            assert "ends in" in text_of(app, "locks")
    finally:
        await daemon.aclose()
        await server.aclose()
        await sim.stop()
