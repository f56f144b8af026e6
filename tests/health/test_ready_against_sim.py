"""/health/ready follows a real hub connection to the project's simulator on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from risk_manager.gateway import AccountMirror, GatewayClient, HubState, Reconciler
from risk_manager.health import HealthServer, LivenessMonitor, Metrics, ReadinessBoard
from risk_manager.sim import SimConfig, Simulator
from tests.gateway.conftest import fast_config

ACCOUNT = 1001


async def eventually(predicate: Callable[[], Any], timeout: float = 5.0) -> None:  # noqa: ASYNC109
    """Poll the endpoint (an HTTP probe has no event to wait on) until `predicate` holds."""
    async with asyncio.timeout(timeout):
        while not await predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator(SimConfig(seed=1, quote_feed="scripted"))
    await simulator.start(host="127.0.0.1", port=0)
    try:
        yield simulator
    finally:
        await simulator.stop()


async def test_ready_flips_when_the_user_hub_is_cut_and_back_after_reconnect(sim: Simulator) -> None:
    client = GatewayClient(fast_config(sim.base_url), "demo", "demo-key-123")
    await client.start(connect_hubs=False)
    mirror = AccountMirror(ACCOUNT)

    async def apply(events: Any) -> None:
        for event in events:
            mirror.apply(event)

    reconciler = Reconciler(client, [ACCOUNT], view=lambda _a: mirror, emit=apply)
    reconciler.attach(client.user_hub)
    metrics = Metrics()
    board = ReadinessBoard(metrics)
    board.watch_hub(client.user_hub)
    board.add_account("PRAC-1", ["user hub"])
    reconciler.on_fresh(lambda fresh: board.set_fresh("PRAC-1", fresh, "reconciling after a gap"))
    tasks = LivenessMonitor()
    try:
        async with HealthServer("127.0.0.1", 0, live=tasks, ready=board, metrics=metrics) as server, \
                httpx.AsyncClient(base_url=server.url, timeout=2) as http:
            before = await http.get("/health/ready")
            assert before.status_code == 503  # hubs not started yet
            assert "account PRAC-1: user hub is disconnected" in before.json()["reasons"][0]

            await client.user_hub.subscribe_account(ACCOUNT)
            await client.start_hubs()

            async def ready() -> bool:
                return (await http.get("/health/ready")).status_code == 200

            async def not_ready() -> bool:
                return (await http.get("/health/ready")).status_code == 503

            await eventually(ready)
            sim.faults.cut("user_hub", 2)
            await eventually(not_ready, 2)
            body = (await http.get("/health/ready")).json()
            assert client.user_hub.state is not HubState.CONNECTED
            assert body["ready"] is False and body["hubs"]["user hub"] in ("reconnecting", "connecting")
            assert body["reasons"][0].startswith("account PRAC-1: user hub is ")
            assert body["accounts"]["PRAC-1"]["ready"] is False
            assert (await http.get("/health/live")).status_code == 200  # an outage is not a reason to restart

            await eventually(ready, 8)  # the cut ends, the hub reconnects, the reconciliation makes it fresh
            assert client.user_hub.state is HubState.CONNECTED and reconciler.fresh
            exposition = (await http.get("/metrics")).text
            assert 'risk_manager_reconnects_total{hub="user hub"} 1.0' in exposition
            assert "risk_manager_connected_hubs 1.0" in exposition
            assert "risk_manager_stale_accounts 0.0" in exposition
    finally:
        await reconciler.aclose()
        await client.aclose()
