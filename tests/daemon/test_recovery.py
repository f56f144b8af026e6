"""Crash recovery and gaps, end to end over the real protocol on loopback.

- `kill -9` of a `risk-manager run` subprocess while its enforcement request is in flight, then a
  restart: the lock is still there, the account ends flat, no order was placed twice.
- a user-hub cut during which the trader opens a position on a locked account: closed within 1 s
  of the reconnection.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from risk_manager.daemon.config_dir import AccountSpec, Credential
from risk_manager.daemon.daemon import Daemon, DaemonOptions
from risk_manager.domain import default_catalogue
from risk_manager.engine import parse_rules_block
from risk_manager.gateway import GatewayConfig, HubState, MemoryTokenStore
from risk_manager.sim import SimAccount, SimConfig, Simulator
from risk_manager.store import StoreReader

ACCOUNT = 1001
MNQ = default_catalogue().get("MNQ").contract.id
RULES = "rules:\n  daily_realized_loss: {enabled: true, loss_limit: 500}\n"

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def _config_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "cfg"
    directory.mkdir(mode=0o700)
    (directory / "config.yaml").write_text(
        "authentication: {storage: {type: memory}}\n"
        "signalr: {reconnection: {delays: [0, 100, 200], maxDelayMs: 200, jitter: 0}}\n"
        "stateReconciliation: {minInterval: 0}\n"
        "database: {path: state/risk.db, durableFsync: false}\n"
        "logging: {level: INFO}\n")
    (directory / "accounts.yaml").write_text(
        "credentials: {default: {userName: demo, apiKey: demo-api-key}}\n"
        f"accounts: [{{id: {ACCOUNT}}}]\n")
    (directory / "risk.yaml").write_text(RULES)
    return directory


async def _until(condition: object, timeout: float, what: str) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


def _start_daemon(config: Path, url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    handle = log.open("ab")
    return subprocess.Popen([sys.executable, "-m", "risk_manager", "run", "--config", str(config), "--gateway", url],
                            stdout=handle, stderr=handle, env=env)


async def test_kill_9_mid_enforcement_then_restart(tmp_path: Path) -> None:
    config = _config_dir(tmp_path)
    log = tmp_path / "daemon.log"
    sim = Simulator(SimConfig(accounts=[SimAccount(ACCOUNT, "SIM-1001")], quote_feed="scripted"))
    await sim.start("127.0.0.1", 0)
    first = second = None
    try:
        sim.market.set_quote("MNQ", 20000.0)
        sim.trader.place_order(ACCOUNT, "MNQ", side="buy", size=3, type="market")
        first = _start_daemon(config, sim.base_url, log)
        await _until(lambda: "daemon_protecting" in log.read_text(), 20, "the daemon to protect the account")
        sim.faults.latency(rest_ms=3000)      # every REST request now hangs 3 s in the simulator
        sim.market.set_quote("MNQ", 19900.0)  # -$600: RULE-003 locks, flattens, cancels
        await _until(lambda: sim.rest.in_flight > 0 and "action account=1001 kind=flatten_account" in log.read_text(),
                     10, "the flatten request to be in flight")
        first.send_signal(signal.SIGKILL)
        first.wait(5)
        sim.faults.clear()
        with StoreReader(config / "state" / "risk.db") as reader:
            stored = reader.active_locks(ACCOUNT)
        assert [lk.kind for lk in stored] == ["until_reset"], "the lock is on disk before the broker call"
        second = _start_daemon(config, sim.base_url, log)
        await _until(lambda: log.read_text().count("daemon_protecting") >= 2, 20, "the restarted daemon")
        await _until(lambda: not [p for p in sim.broker.positions(ACCOUNT) if p.size > 0], 10, "the account flat")
        # A trade while locked, after the restart: the restored lock still holds.
        sim.trader.place_order(ACCOUNT, "MNQ", side="buy", size=1, type="market")
        await _until(lambda: not [p for p in sim.broker.positions(ACCOUNT) if p.size > 0], 10, "the new trade closed")
        assert sim.recorder.duplicate_orders == []
        assert not [i for i in sim.recorder.intents if i.kind == "place"], "closing never places orders"
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(6)
                except subprocess.TimeoutExpired:
                    process.kill()
        await sim.stop()
    assert second is not None and second.returncode == 0, log.read_text()[-3000:]
    text = log.read_text()
    assert "engine_restored account=1001" in text and "locks=1" in text


async def test_sigterm_stops_within_5_seconds(tmp_path: Path) -> None:
    config = _config_dir(tmp_path)
    log = tmp_path / "daemon.log"
    sim = Simulator(SimConfig(accounts=[SimAccount(ACCOUNT, "SIM-1001")], quote_feed="scripted"))
    await sim.start("127.0.0.1", 0)
    try:
        process = _start_daemon(config, sim.base_url, log)
        await _until(lambda: "daemon_protecting" in log.read_text(), 20, "the daemon to protect the account")
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        await _until(lambda: process.poll() is not None, 6, "the daemon to exit")
        assert time.monotonic() - started < 5.0
        assert process.returncode == 0
        assert "daemon_stopped" in log.read_text()
    finally:
        await sim.stop()


async def test_hub_cut_position_opened_while_locked_is_closed_within_1s_of_reconnection(tmp_path: Path) -> None:
    sim = Simulator(SimConfig(accounts=[SimAccount(ACCOUNT, "SIM-1001")], quote_feed="scripted"))
    await sim.start("127.0.0.1", 0)
    gateway = GatewayConfig.for_server(sim.base_url, {
        "authentication": {"storage": {"type": "memory"}},
        "signalr": {"reconnection": {"delays": [0, 100, 200], "maxDelayMs": 200, "jitter": 0, "maxAttempts": 500}},
        "stateReconciliation": {"minInterval": 0}})
    spec = AccountSpec(ACCOUNT, None, Credential("t", "demo", "demo-api-key"), parse_rules_block(
        {"daily_realized_loss": {"enabled": True, "loss_limit": 500}}))
    daemon = Daemon(DaemonOptions(gateway=gateway, accounts=(spec,), database_path=tmp_path / "risk.db",
                                  durable_fsync=False, token_store=MemoryTokenStore))
    reconnected: list[float] = []
    states: list[str] = []
    try:
        sim.market.set_quote("MNQ", 20000.0)
        await daemon.start()
        assert daemon.status()["state"] == "fresh"
        daemon.subscribe_status(lambda status: states.append(status["state"]))
        sim.trader.place_order(ACCOUNT, "MNQ", side="buy", size=3, type="market")
        await _until(lambda: MNQ in daemon.accounts[ACCOUNT].mirror.positions, 5, "the position seen")
        sim.market.set_quote("MNQ", 19900.0)
        await _until(lambda: daemon.accounts[ACCOUNT].engine.locks(ACCOUNT)
                     and not sim.broker.positions(ACCOUNT), 5, "the lock and the flatten")
        await daemon.idle()
        hub = daemon.connections[0].client.user_hub
        hub.on_state(lambda state: reconnected.append(time.monotonic()) if state is HubState.CONNECTED else None)
        sim.faults.cut("user_hub", 1.0)
        await _until(lambda: hub.state is not HubState.CONNECTED, 5, "the hub to drop")
        sim.trader.place_order(ACCOUNT, "MNQ", side="buy", size=2, type="market")   # unseen by the daemon
        assert [p.size for p in sim.broker.positions(ACCOUNT)] == [2]
        await _until(lambda: daemon.stale, 5, "the state to be stale")
        status = daemon.status()
        assert status["state"] == "stale"
        assert status["accounts"][str(ACCOUNT)]["locked"] is True   # locks stay in force while stale
        await _until(lambda: bool(reconnected), 10, "the reconnection")
        await _until(lambda: not [p for p in sim.broker.positions(ACCOUNT) if p.size > 0], 5, "the position closed")
        closed_after = time.monotonic() - reconnected[0]
        assert closed_after < 1.0, f"closed {closed_after:.3f} s after the reconnection"
        await _until(lambda: states[-1] == "fresh", 2, "the status hook to say fresh again")
        assert "stale" in states
        assert sim.recorder.duplicate_orders == []
    finally:
        await daemon.aclose()
        await sim.stop()


async def test_a_stored_lock_without_a_snapshot_is_imposed_again(tmp_path: Path) -> None:
    """Fail closed: the engine snapshot is gone, the store still holds a dated lock → locked until its end."""
    from datetime import UTC, datetime, timedelta

    from risk_manager.domain import SystemClock
    from risk_manager.engine import LockKind
    from risk_manager.store import LockRecord, Store

    now = datetime.now(UTC)
    store = await Store.open(tmp_path / "risk.db", SystemClock())
    await store.add_lock(LockRecord("old-lock", ACCOUNT, "until_reset", "daily loss", now - timedelta(minutes=5),
                                    until=now + timedelta(hours=2), rules=("RULE-003",), flatten=True))
    await store.close()
    sim = Simulator(SimConfig(accounts=[SimAccount(ACCOUNT, "SIM-1001")], quote_feed="scripted"))
    await sim.start("127.0.0.1", 0)
    gateway = GatewayConfig.for_server(sim.base_url, {"authentication": {"storage": {"type": "memory"}}})
    spec = AccountSpec(ACCOUNT, None, Credential("t", "demo", "demo-api-key"), parse_rules_block({}))
    daemon = Daemon(DaemonOptions(gateway=gateway, accounts=(spec,), database_path=tmp_path / "risk.db",
                                  durable_fsync=False, token_store=MemoryTokenStore))
    try:
        sim.market.set_quote("MNQ", 20000.0)
        sim.trader.place_order(ACCOUNT, "MNQ", side="buy", size=1, type="market")   # open before the start
        await daemon.start()
        locks = daemon.accounts[ACCOUNT].engine.locks(ACCOUNT)
        assert [lk.kind for lk in locks] == [LockKind.MANUAL]
        assert abs((locks[0].until - (now + timedelta(hours=2))).total_seconds()) < 1   # type: ignore[operator]
        await _until(lambda: not sim.broker.positions(ACCOUNT), 5, "the flatten of the re-imposed lock")
        sim.trader.place_order(ACCOUNT, "MNQ", side="buy", size=1, type="market")
        await _until(lambda: not sim.broker.positions(ACCOUNT), 5, "a trade while locked closed")
    finally:
        await daemon.aclose()
        await sim.stop()
