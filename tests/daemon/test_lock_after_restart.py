"""Chaos finding 4: after a restart, an order placed under a restored lock is cancelled at once.

The engine snapshot held a short position that the trader closed while the daemon was down. The
reconciler diffs the broker against the daemon's mirror (empty after a restart), so nothing told the
engine the short was gone, and a buy stop placed under the lock looked like one that only reduces
the short: it was left working. In-process daemon on the simulator (127.0.0.1), real protocol.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

from risk_manager.daemon.daemon import Daemon, DaemonOptions
from risk_manager.engine import LockKind, ManualLock
from risk_manager.sim import SimAccount, SimConfig, Simulator

from .admin_setup import ACCOUNT, until


def _options(tmp_path: Path, sim: Simulator) -> DaemonOptions:
    from risk_manager.daemon.config_dir import AccountSpec, Credential
    from risk_manager.engine import parse_rules_block
    from risk_manager.gateway import GatewayConfig, MemoryTokenStore

    gateway = GatewayConfig.for_server(sim.base_url, {"authentication": {"storage": {"type": "memory"}},
                                                      "stateReconciliation": {"minInterval": 0}})
    spec = AccountSpec(ACCOUNT, None, Credential("t", "demo", "demo-api-key"),
                       parse_rules_block({"max_contracts": {"enabled": True, "limit": 4}}))
    return DaemonOptions(gateway=gateway, accounts=(spec,), database_path=tmp_path / "risk.db",
                         durable_fsync=False, token_store=MemoryTokenStore)


async def test_order_under_a_restored_lock_is_cancelled_within_1s(tmp_path: Path) -> None:
    sim = Simulator(SimConfig(accounts=[SimAccount(ACCOUNT, "SIM-1001")], quote_feed="scripted"))
    await sim.start("127.0.0.1", 0)
    sim.market.set_quote("MNQ", 20000.0)
    try:
        first = Daemon(_options(tmp_path, sim))
        await first.start()
        try:
            sim.trader.place_order(ACCOUNT, "MNQ", side="sell", size=1, type="market")
            await until(lambda: first.accounts[ACCOUNT].engine.status(ACCOUNT).positions, 5, "the short seen")
            done = first.submit_command(ManualLock(ACCOUNT, timedelta(hours=1), "coach's lock", by="test"))
            assert done is not None
            await done
            await first.idle()
        finally:
            await first.aclose()
        sim.trader.place_order(ACCOUNT, "MNQ", side="buy", size=1, type="market")   # closed while down
        assert not sim.broker.positions(ACCOUNT)

        second = Daemon(_options(tmp_path, sim))
        await second.start()
        try:
            assert [lk.kind for lk in second.accounts[ACCOUNT].engine.locks(ACCOUNT)] == [LockKind.MANUAL]
            await second.idle()
            assert not second.accounts[ACCOUNT].engine.status(ACCOUNT).positions   # the stale short dropped
            order = sim.trader.place_order(ACCOUNT, "MNQ", side="buy", size=1, type="stop", stop_price=20010.0)
            placed = time.monotonic()
            await until(lambda: all(o.id != order.id for o in sim.broker.open_orders(ACCOUNT)), 1.0,
                        "the stop placed under the restored lock cancelled")
            assert time.monotonic() - placed < 1.0
        finally:
            await second.aclose()
    finally:
        await sim.stop()
