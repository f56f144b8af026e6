"""The `risk-manager run` wiring (`Observability`) around the REAL daemon on the project's simulator (127.0.0.1):
readiness follows a user-hub cut, notifications of an enforcement and of a long disconnection reach a local
webhook receiver with the right payload, and no secret reaches a log line."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from risk_manager.daemon.config_dir import AccountSpec, Credential
from risk_manager.daemon.daemon import Daemon, DaemonOptions
from risk_manager.daemon.observability import Observability
from risk_manager.daemon.ops_config import DashboardConfig, OpsConfig
from risk_manager.engine import ManualLock, parse_rules_block
from risk_manager.gateway import MemoryTokenStore
from risk_manager.health import HealthConfig
from risk_manager.logs import StructuredFormatter
from risk_manager.notify import load_notifications
from risk_manager.service.logfiles import LogFilesConfig
from risk_manager.sim import SimAccount, SimConfig, Simulator
from tests.gateway.conftest import fast_config

ACCOUNT = 1001
API_KEY = "obs-api-key-5e3a9c"
HOOK_SECRET = "hook-path-secret-77f1"


async def eventually(predicate: Callable[[], Any], timeout: float = 5.0) -> None:  # noqa: ASYNC109
    async with asyncio.timeout(timeout):
        while not await predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


@dataclass
class Receiver:
    url: str
    bodies: list[dict[str, Any]] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [b for b in self.bodies if b["kind"] == kind]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    got: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        got.append(await request.json())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post(f"/hooks/{HOOK_SECRET}", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield Receiver(f"http://127.0.0.1:{port}/hooks/{HOOK_SECRET}", got)
    await runner.cleanup()


@dataclass
class Running:
    sim: Simulator
    daemon: Daemon
    ops: Observability
    http: httpx.AsyncClient


@pytest.fixture
async def running(tmp_path: Path, receiver: Receiver) -> AsyncIterator[Running]:
    sim = Simulator(SimConfig(accounts=[SimAccount(ACCOUNT, "OBS-1001")], quote_feed="scripted"))
    await sim.start("127.0.0.1", 0)
    sim.market.set_quote("MNQ", 20000.0)
    risk = parse_rules_block({"daily_realized_loss": {"enabled": True, "loss_limit": 500}}, "obs")
    daemon = Daemon(DaemonOptions(
        gateway=fast_config(sim.base_url),
        accounts=(AccountSpec(ACCOUNT, None, Credential("obs", "obs", API_KEY), risk),),
        database_path=tmp_path / "risk.db", durable_fsync=False, token_store=MemoryTokenStore))
    notifications = load_notifications({"disconnect_after": "300ms", "backoff_base": "50ms",
                                        "channels": [{"type": "webhook", "url": receiver.url}]})
    ops = Observability(OpsConfig(HealthConfig(port=0, metrics=True), notifications,
                                  LogFilesConfig(directory=tmp_path / "logs"),
                                  DashboardConfig(port=0, token_file=tmp_path / "dashboard.token")), tmp_path)
    await ops.start()
    assert ops.health is not None
    try:
        async with httpx.AsyncClient(base_url=ops.health.url, timeout=2) as http:
            starting = await http.get("/health/ready")
            assert starting.status_code == 503 and "starting" in starting.text
            await daemon.start()
            await ops.attach(daemon)
            yield Running(sim, daemon, ops, http)
    finally:
        await ops.shutdown(daemon)
        await sim.stop()


async def test_ready_flips_to_503_when_the_user_hub_is_cut_and_a_long_outage_is_notified(
        running: Running, receiver: Receiver) -> None:
    http = running.http

    async def ready() -> bool:
        return (await http.get("/health/ready")).status_code == 200

    async def not_ready() -> bool:
        return (await http.get("/health/ready")).status_code == 503

    await eventually(ready)

    async def started_notified() -> bool:
        return any(b["message"].startswith("risk-manager started") for b in receiver.of_kind("daemon"))

    await eventually(started_notified, 3)
    running.sim.faults.cut("user_hub", 1.0)
    await eventually(not_ready, 2)
    body = (await http.get("/health/ready")).json()
    assert body["accounts"]["OBS-1001"]["ready"] is False
    assert body["reasons"][0].startswith("account OBS-1001: ")
    assert (await http.get("/health/live")).status_code == 200   # an outage is no reason to restart

    async def outage_notified() -> bool:
        return any("user hub disconnected" in b["message"] for b in receiver.of_kind("disconnect"))

    await eventually(outage_notified, 3)
    await eventually(ready, 8)   # the cut ends, the hub reconnects, the reconciliation makes the state fresh

    async def back_notified() -> bool:
        return any("reconnected" in b["message"] for b in receiver.of_kind("disconnect"))

    await eventually(back_notified, 3)
    (lost,) = [b for b in receiver.of_kind("disconnect") if "disconnected" in b["message"]]
    assert lost["severity"] == "critical" and lost["account"] == "OBS-1001"
    exposition = (await http.get("/metrics")).text
    assert 'risk_manager_reconnects_total{hub="user hub"} 1.0' in exposition


async def test_an_enforcement_is_notified_counted_and_no_secret_is_logged(
        running: Running, receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    sim = running.sim
    sim.trader.place_order(ACCOUNT, "MNQ", side="buy", size=5, type="market")
    await asyncio.sleep(0.2)
    sim.market.set_quote("MNQ", 19930.0)   # 70 points × 5 MNQ × $2 = −$700 open: RULE-003 breached

    async def notified() -> bool:
        return bool(receiver.of_kind("lock")) and any("flatten" in b["message"] and ": done" in b["message"]
                                                       for b in receiver.of_kind("enforcement"))

    await eventually(notified, 5)
    (lock,) = receiver.of_kind("lock")
    assert lock["source"] == "risk-manager" and lock["severity"] == "critical"
    assert lock["account"] == "OBS-1001" and lock["rules"] == ["RULE-003"]
    assert lock["message"].startswith("account locked (until_reset)")
    assert lock["details"]["status"] == "done" and lock["time"].endswith("Z")
    flatten = next(b for b in receiver.of_kind("enforcement") if "flatten" in b["message"])
    assert flatten["rules"] == ["RULE-003"] and flatten["account"] == "OBS-1001"

    exposition = (await running.http.get("/metrics")).text
    assert 'risk_manager_enforcement_actions_total{action="flatten_account",status="done"} 1.0' in exposition
    assert 'risk_manager_rule_breaches_total{rule="RULE-003"} 1.0' in exposition
    assert "risk_manager_active_locks 1.0" in exposition
    assert 'risk_manager_events_total{kind="trade"}' in exposition

    for body in receiver.bodies:
        assert API_KEY not in str(body)
    assert caplog.records
    formatter = StructuredFormatter()   # what every handler of the daemon writes with (stderr and the files)
    logged = "\n".join(formatter.format(record) for record in caplog.records)
    assert API_KEY not in logged and HOOK_SECRET not in logged
    files = "\n".join(p.read_text() for p in (running.ops.config_dir / "logs").iterdir())
    assert "action_outcome" in files and API_KEY not in files and HOOK_SECRET not in files


async def test_a_manual_lock_and_its_end_are_notified(running: Running, receiver: Receiver) -> None:
    done = running.daemon.submit_command(ManualLock(ACCOUNT, timedelta(milliseconds=600), reason="cooling off",
                                                    by="trader"))
    assert done is not None
    await done

    async def both() -> bool:
        return len(receiver.of_kind("lock")) >= 2

    await eventually(both, 5)
    began, ended = receiver.of_kind("lock")
    assert began["message"].startswith("account locked (") and "cooling off" in began["message"]
    assert began["severity"] == "critical"
    assert ended["message"].startswith("account unlocked: the ") and "cooling off" in ended["message"]
    assert ended["severity"] == "info" and ended["account"] == "OBS-1001"


async def test_shutdown_notifies_the_stop_and_closes_everything_within_the_budget(
        running: Running, receiver: Receiver) -> None:
    started = time.perf_counter()
    await running.ops.shutdown(running.daemon, timeout_s=5.0)
    assert time.perf_counter() - started < 5.0
    (stopping,) = [b for b in receiver.of_kind("daemon") if "stopping" in b["message"]]
    assert stopping["severity"] == "warning" and "NOT protected" in stopping["message"]
    assert not receiver.of_kind("disconnect")   # the hubs closing on purpose is not an outage
    with pytest.raises(httpx.ConnectError):
        await running.http.get("/health/live")
