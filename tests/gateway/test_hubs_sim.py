"""Hub connections and reconciliation against the simulator's SignalR hubs."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from risk_manager.domain import (
    GatewayEvent,
    OrderEvent,
    PositionEvent,
    QuoteEvent,
    TradeEvent,
    UserEvent,
)
from risk_manager.gateway import AccountMirror, GatewayClient, HubState, Reconciler

from .conftest import fast_config

sim_module = pytest.importorskip("risk_manager.sim")

ACCOUNT = 1001


async def eventually(predicate: Any, timeout: float = 5.0) -> None:  # noqa: ASYNC109
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


class Watcher:
    """A caller of the gateway layer: mirror fed by hub events and reconciler events."""

    def __init__(self, client: GatewayClient) -> None:
        self.mirror = AccountMirror(ACCOUNT)
        self.live: list[GatewayEvent] = []
        self.reconciled: list[UserEvent] = []
        self.states: list[HubState] = []
        self.reconciler = Reconciler(client, [ACCOUNT], view=lambda _a: self.mirror, emit=self.apply)
        client.user_hub.on_event(self.on_event)
        client.user_hub.on_state(self.states.append)
        self.reconciler.attach(client.user_hub)

    async def on_event(self, event: GatewayEvent) -> None:
        self.live.append(event)
        if isinstance(event, UserEvent.__args__):  # type: ignore[attr-defined]
            self.mirror.apply(event)

    async def apply(self, events: Sequence[UserEvent]) -> None:
        self.reconciled.extend(events)
        for event in events:
            self.mirror.apply(event)


def assert_mirror_equals_broker(mirror: AccountMirror, sim: Any) -> None:
    broker_positions = {p.contract_id: (p.type, p.size, p.average_price) for p in sim.broker.positions(ACCOUNT)}
    held = {c: (p.type, p.size, p.average_price) for c, p in mirror.positions.items()}
    assert held == broker_positions
    assert set(mirror.open_orders) == {o.id for o in sim.broker.open_orders(ACCOUNT)}
    assert mirror.trade_ids == {t.id for t in sim.broker.trades(ACCOUNT)}
    assert mirror.account is not None and mirror.account.balance == pytest.approx(sim.broker.account(ACCOUNT).balance)


async def start_watched(sim: Any, **sections: dict[str, Any]) -> tuple[GatewayClient, Watcher]:
    client = GatewayClient(fast_config(sim.base_url, **sections), "demo", "demo-key-123")
    await client.start(connect_hubs=False)
    watcher = Watcher(client)
    await client.user_hub.subscribe_account(ACCOUNT)
    await client.start_hubs()
    await client.user_hub.wait_connected(5)
    await watcher.reconciler.wait_fresh(5)
    return client, watcher


async def test_live_events_in_order_and_state_matches(sim: Any) -> None:
    client, w = await start_watched(sim)
    try:
        sim.trader.place_order(ACCOUNT, "ES", side="buy", size=2, type="market")
        await eventually(lambda: len(w.mirror.trade_ids) == 1 and w.mirror.positions)
        kinds = [type(e).__name__ for e in w.live if not isinstance(e, QuoteEvent)]
        first_trade = kinds.index("TradeEvent")
        assert "OrderEvent" in kinds[:first_trade]
        assert kinds.index("PositionEvent", first_trade) > first_trade
        await eventually(lambda: w.mirror.account is not None
                         and w.mirror.account.balance == sim.broker.account(ACCOUNT).balance)
        assert_mirror_equals_broker(w.mirror, sim)
        assert w.states[:2] == [HubState.CONNECTING, HubState.CONNECTED]
    finally:
        await w.reconciler.aclose()
        await client.aclose()


async def test_hub_cut_during_burst_of_fills_is_reconciled(sim: Any) -> None:
    client, w = await start_watched(sim)
    try:
        sim.trader.place_order(ACCOUNT, "ES", side="buy", size=1, type="market")
        limit = sim.trader.place_order(ACCOUNT, "ES", side="buy", size=1, type="limit",
                                       limit_price=sim.broker.contract("ES").tick_size * 1000)
        await eventually(lambda: len(w.mirror.trade_ids) == 1 and limit.id in w.mirror.open_orders)
        assert_mirror_equals_broker(w.mirror, sim)
        sim.faults.cut("user_hub", 0.4)
        await eventually(lambda: client.user_hub.state is not HubState.CONNECTED)
        assert not w.reconciler.fresh
        for i in range(10):  # a burst of fills nobody sees live
            sim.trader.place_order(ACCOUNT, "ES" if i % 2 else "NQ", side="buy" if i % 3 else "sell", size=1,
                                   type="market")
        sim.trader.cancel_order(ACCOUNT, limit.id)
        sim.trader.close_position(ACCOUNT, "NQ")
        await eventually(lambda: client.user_hub.state is HubState.CONNECTED, 5)
        await w.reconciler.wait_fresh(5)
        report = w.reconciler.reports[-1]
        missed = {t.id for t in sim.broker.trades(ACCOUNT)} - {e.trade.id for e in w.live if isinstance(e, TradeEvent)}
        assert missed and report.missed_fills == len(missed)
        assert {e.trade.id for e in report.events if isinstance(e, TradeEvent)} == missed
        gone = [e for e in report.events if isinstance(e, OrderEvent) and e.order.id == limit.id]
        assert gone and gone[0].order.status.name == "CANCELLED"
        nq = sim.broker.contract("NQ").id
        assert any(isinstance(e, PositionEvent) and e.position.contract_id == nq and e.position.size == 0
                   for e in report.events) or nq not in {p.contract_id for p in sim.broker.positions(ACCOUNT)}
        assert_mirror_equals_broker(w.mirror, sim)
        assert client.user_hub.stats.reconnects >= 1
    finally:
        await w.reconciler.aclose()
        await client.aclose()


async def test_dropped_events_are_found_by_a_requested_reconcile(sim: Any) -> None:
    client, w = await start_watched(sim)
    try:
        sim.faults.drop_events("user", 100)
        sim.trader.place_order(ACCOUNT, "ES", side="buy", size=1, type="market")
        await asyncio.sleep(0.1)
        assert not w.mirror.trade_ids
        sim.faults.clear()
        report = await w.reconciler.reconcile("gap suspected")
        assert report.missed_fills == 1
        assert_mirror_equals_broker(w.mirror, sim)
    finally:
        await w.reconciler.aclose()
        await client.aclose()


async def test_rest_polling_while_the_hub_stays_down(sim: Any) -> None:
    client, w = await start_watched(sim, stateReconciliation={"minInterval": 0, "pollAfter": 100,
                                                              "pollInterval": 50})
    try:
        sim.faults.cut("user_hub", 1.5)
        await eventually(lambda: client.user_hub.state is not HubState.CONNECTED)
        sim.trader.place_order(ACCOUNT, "ES", side="buy", size=2, type="market")
        es = sim.broker.contract("ES").id
        await eventually(lambda: es in w.mirror.positions, 1.2)  # seen by polling, hub still cut
        assert client.user_hub.state is not HubState.CONNECTED
        assert w.reconciler.polls >= 1
        await w.reconciler.wait_fresh(5)
        assert_mirror_equals_broker(w.mirror, sim)
    finally:
        await w.reconciler.aclose()
        await client.aclose()


async def test_unwrapped_user_events() -> None:
    simulator = sim_module.Simulator(sim_module.SimConfig(seed=1, quote_feed="scripted", wrap_user_events=False))
    await simulator.start(host="127.0.0.1", port=0)
    try:
        client, w = await start_watched(simulator)
        try:
            simulator.trader.place_order(ACCOUNT, "ES", side="buy", size=1, type="market")
            await eventually(lambda: len(w.mirror.trade_ids) == 1 and w.mirror.positions)
            assert client.user_hub.stats.malformed == 0
        finally:
            await w.reconciler.aclose()
            await client.aclose()
    finally:
        await simulator.stop()


async def test_market_quotes_resubscribed_after_reconnect_and_stale_detection(sim: Any) -> None:
    client = GatewayClient(fast_config(sim.base_url, signalr={"health": {"staleThreshold": 400}}),
                           "demo", "demo-key-123")
    quotes: list[QuoteEvent] = []

    async def on_event(event: GatewayEvent) -> None:
        if isinstance(event, QuoteEvent):
            quotes.append(event)

    try:
        await client.start(connect_hubs=False)
        es = sim.broker.contract("ES").id
        client.market_hub.on_event(on_event)
        await client.market_hub.subscribe_quotes(es)
        await client.start_hubs()
        await client.market_hub.wait_connected(5)
        sim.market.set_quote("ES", 5000.0)
        await eventually(lambda: bool(quotes))
        sim.faults.cut("market_hub", 0.2)
        await eventually(lambda: client.market_hub.state is not HubState.CONNECTED)
        await client.market_hub.wait_connected(5)
        count = len(quotes)
        sim.market.set_quote("ES", 5001.0)
        await eventually(lambda: len(quotes) > count)  # resubscribed automatically
        # scripted feed, no quotes for longer than staleThreshold: a silent market hub is stale
        await eventually(lambda: client.market_hub.stats.stale_reconnects >= 1, 3)
        assert client.user_hub.stats.stale_reconnects == 0  # a quiet user hub is normal
    finally:
        await client.aclose()


async def test_hub_reconnects_with_a_fresh_token_after_expiry(sim: Any) -> None:
    client, w = await start_watched(sim)
    try:
        sim.faults.expire_tokens()
        client.user_hub.drop_connection()
        await eventually(lambda: client.user_hub.state is not HubState.CONNECTED)
        await client.user_hub.wait_connected(5)
        assert client.tokens.logins == 2
    finally:
        await w.reconciler.aclose()
        await client.aclose()


async def test_requests_inside_min_interval_are_deferred_not_dropped(sim: Any) -> None:
    client, w = await start_watched(sim, stateReconciliation={"minInterval": 300})
    try:
        loop = asyncio.get_running_loop()
        before = len(w.reconciler.reports)
        started = loop.time()
        w.reconciler.request("first gap")
        w.reconciler.request("second gap")  # before the deferred pass: covered by its snapshot
        await eventually(lambda: len(w.reconciler.reports) == before + 1)
        assert loop.time() - started >= 0.2
        await asyncio.sleep(0.4)
        assert len(w.reconciler.reports) == before + 1
    finally:
        await w.reconciler.aclose()
        await client.aclose()


async def test_server_pings_keep_a_quiet_hub_alive_and_silence_is_detected() -> None:
    health = {"health": {"pingInterval": 150, "pingTimeout": 150}}
    for keepalive, expect_reconnect in ((0.05, False), (5.0, True)):
        simulator = sim_module.Simulator(sim_module.SimConfig(seed=1, quote_feed="scripted",
                                                              keepalive_interval=keepalive))
        await simulator.start(host="127.0.0.1", port=0)
        client = GatewayClient(fast_config(simulator.base_url, signalr=health), "demo", "demo-key-123")
        try:
            await client.start(connect_hubs=False)
            await client.user_hub.subscribe_account(ACCOUNT)
            await client.user_hub.start()
            await client.user_hub.wait_connected(5)
            await asyncio.sleep(0.8)  # no events at all: only the server's pings, if any
            assert (client.user_hub.stats.reconnects >= 1) is expect_reconnect, keepalive
        finally:
            await client.aclose()
            await simulator.stop()


async def test_gateway_logout_forces_a_fresh_login_and_reconnect(sim: Any) -> None:
    from risk_manager.domain import LogoutEvent

    client, w = await start_watched(sim)
    try:
        # The simulator never sends GatewayLogout on its own: put one on its user-hub connection.
        for conn in list(sim.hubs.connections):
            if conn.hub == "user":
                conn.enqueue('{"type":1,"target":"GatewayLogout","arguments":["session ended"]}\x1e',
                             "GatewayLogout", None)
        await eventually(lambda: any(isinstance(e, LogoutEvent) for e in w.live))
        await eventually(lambda: client.user_hub.stats.reconnects >= 1 and client.user_hub.state is HubState.CONNECTED)
        assert client.tokens.logins == 2
        sim.trader.place_order(ACCOUNT, "ES", side="buy", size=1, type="market")
        await eventually(lambda: len(w.mirror.trade_ids) == 1)  # resubscribed after the re-login
    finally:
        await w.reconciler.aclose()
        await client.aclose()
