"""The reconciler's diff against the simulator's books: what a caller that missed events gets back.

Each test builds the caller's view (an `AccountMirror`) from a first reconciliation, changes the
broker behind its back with the scripted trader, and checks the events of the next pass: a missed
close, an order gone with its real final status, a fill reported once however often we reconcile,
and no invented state when the broker cannot tell."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from risk_manager.domain import AccountEvent, OrderEvent, OrderStatus, PositionEvent, TradeEvent, UserEvent
from risk_manager.gateway import AccountMirror, GatewayClient, HubState, Reconciler
from risk_manager.gateway.reconcile import cme_trading_day_start

from .conftest import fast_config
from .test_hubs_sim import eventually

ACCOUNT = 1001


class Caller:
    """A caller of the gateway layer whose view is fed only by the reconciler."""

    def __init__(self, client: GatewayClient, **config: Any) -> None:
        self.mirror = AccountMirror(ACCOUNT)
        self.batches: list[list[UserEvent]] = []
        settings = client.config.state_reconciliation.model_copy(update=config)
        self.reconciler = Reconciler(client, [ACCOUNT], view=lambda _a: self.mirror, emit=self.apply, config=settings)

    async def apply(self, events: Sequence[UserEvent]) -> None:
        self.batches.append(list(events))
        for event in events:
            self.mirror.apply(event)

    async def reconcile(self) -> list[UserEvent]:
        return (await self.reconciler.reconcile("test")).events


@pytest.fixture
async def client(sim: Any) -> AsyncIterator[GatewayClient]:
    gateway = GatewayClient(fast_config(sim.base_url), "demo", "demo-key-123")
    await gateway.start(connect_hubs=False)
    try:
        yield gateway
    finally:
        await gateway.aclose()


def far_below(sim: Any) -> float:
    es = sim.broker.contract("ES")
    return float(es.tick_size * round((sim.market.set_quote("ES", 5000.0).last_price - 100) / es.tick_size))


async def test_missed_close_gone_order_and_a_fill_reported_once(sim: Any, client: GatewayClient) -> None:
    caller = Caller(client)
    sim.trader.place_order(ACCOUNT, "ES", side="buy", size=2, type="market")
    limit = sim.trader.place_order(ACCOUNT, "ES", side="buy", size=1, type="limit", limit_price=far_below(sim))
    first = await caller.reconcile()
    assert [type(e).__name__ for e in first] == ["OrderEvent", "OrderEvent", "TradeEvent", "PositionEvent",
                                                  "AccountEvent"]
    es = sim.broker.contract("ES").id
    assert caller.mirror.positions[es].size == 2 and limit.id in caller.mirror.open_orders

    sim.trader.close_position(ACCOUNT, "ES")  # both behind the caller's back
    sim.trader.cancel_order(ACCOUNT, limit.id)
    events = await caller.reconcile()
    orders = [e.order for e in events if isinstance(e, OrderEvent)]
    assert {o.id: o.status for o in orders}[limit.id] == OrderStatus.CANCELLED  # gone, with its real status
    closing = [o for o in orders if o.id != limit.id]
    assert len(closing) == 1 and closing[0].status == OrderStatus.FILLED  # the order of the missed fill
    trades = [e.trade for e in events if isinstance(e, TradeEvent)]
    assert len(trades) == 1 and trades[0].order_id == closing[0].id and trades[0].profit_and_loss is not None
    closes = [e.position for e in events if isinstance(e, PositionEvent)]
    assert [(p.contract_id, p.size) for p in closes] == [(es, 0)]
    assert isinstance(events[-1], AccountEvent)
    assert caller.reconciler.reports[-1].missed_fills == 1 and caller.reconciler.reports[-1].missed_closes == 1
    assert caller.mirror.positions == {} and caller.mirror.open_orders == {}

    assert await caller.reconcile() == []  # nothing new: the fill is not reported again
    assert len(caller.mirror.trades) == 2


async def test_no_final_state_invented_and_a_newer_view_is_kept(sim: Any, client: GatewayClient,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    caller = Caller(client)
    limit = sim.trader.place_order(ACCOUNT, "ES", side="buy", size=1, type="limit", limit_price=far_below(sim))
    await caller.reconcile()
    held = caller.mirror.open_orders[limit.id]
    # The view saw a newer state of this order than the snapshot (a live event during the pass).
    later = (held.update_timestamp or held.creation_timestamp) + timedelta(seconds=5)
    caller.mirror.open_orders[limit.id] = dataclasses.replace(held, size=3, update_timestamp=later)
    # An order the broker has never heard of (the view is wrong, but the broker cannot say how it ended).
    ghost = dataclasses.replace(held, id=987_654, creation_timestamp=held.creation_timestamp - timedelta(hours=1))
    caller.mirror.open_orders[ghost.id] = ghost
    events = await caller.reconcile()
    assert events == []
    assert "order_final_state_unknown" in caplog.text and "order_id=987654" in caplog.text
    assert caller.mirror.open_orders[limit.id].size == 3


async def test_parts_switched_off_are_neither_fetched_nor_diffed(sim: Any, client: GatewayClient) -> None:
    caller = Caller(client, compare_positions=False, compare_orders=False, compare_account=False)
    sim.trader.place_order(ACCOUNT, "ES", side="buy", size=1, type="market")
    sim.trader.place_order(ACCOUNT, "ES", side="buy", size=1, type="limit", limit_price=far_below(sim))
    before = len(sim.recorder.requests)
    events = await caller.reconcile()
    paths = {r.path for r in list(sim.recorder.requests)[before:]}
    assert paths == {"/api/Trade/search", "/api/Order/search"}
    assert [type(e).__name__ for e in events] == ["OrderEvent", "TradeEvent"]  # the fill and its order only


async def test_disabled_reconciliation_is_fresh_without_asking(sim: Any, client: GatewayClient) -> None:
    caller = Caller(client, enabled=False)
    seen: list[bool] = []
    caller.reconciler.on_fresh(seen.append)
    before = len(sim.recorder.requests)
    caller.reconciler.request("gap")
    assert caller.reconciler.fresh and seen == [True]
    assert len(sim.recorder.requests) == before


async def test_a_failed_pass_stays_stale_and_is_retried(sim: Any, caplog: pytest.LogCaptureFixture) -> None:
    async with GatewayClient(fast_config(sim.base_url, errorHandling={"retries": {"maxAttempts": 0}}),
                             "demo", "demo-key-123") as client:
        caller = Caller(client)
        sim.faults.http_errors(503, 1)

        def broken(fresh: bool) -> None:
            raise RuntimeError("observer bug")

        caller.reconciler.on_fresh(broken)
        caller.reconciler.request("gap")
        caller.reconciler.request("second gap")  # while the first runs: one more pass, not a second task
        await caller.reconciler.wait_fresh(3)
        assert "reconcile_failed" in caplog.text and "HTTP 503" in caplog.text
        assert "fresh_listener_failed" in caplog.text  # an observer's bug does not stop it
        assert [r.reason for r in caller.reconciler.reports] == ["repeat"]  # one good pass after the failure
        await caller.reconciler.aclose()


async def test_busy_while_a_pass_is_due_or_running_not_while_it_backs_off(
        sim: Any, caplog: pytest.LogCaptureFixture) -> None:
    """`busy` tells a caller waiting for quiet (the replay runner, through `Daemon.busy`) that missed
    events may still come — also for a reconciliation that leaves the state fresh (token swap, chaos
    seed 381) — but not during the back-off after a failed pass, or a REST outage would never be quiet."""
    async with GatewayClient(fast_config(sim.base_url, errorHandling={"retries": {"maxAttempts": 0}}),
                             "demo", "demo-key-123") as client:
        caller = Caller(client)
        assert not caller.reconciler.busy
        sim.faults.http_errors(503, 1)
        caller.reconciler.request("token_swap")
        assert caller.reconciler.busy  # requested: not yet run
        await eventually(lambda: "reconcile_failed" in caplog.text, 3)
        assert not caller.reconciler.busy  # sleeping out the back-off
        await caller.reconciler.wait_fresh(3)
        await eventually(lambda: not caller.reconciler.busy, 3)
        assert [r.reason for r in caller.reconciler.reports] == ["repeat"]
        await caller.reconciler.aclose()


async def test_on_reconnect_off_marks_fresh_without_a_new_pass(sim: Any) -> None:
    client = GatewayClient(fast_config(sim.base_url), "demo", "demo-key-123")
    await client.start(connect_hubs=False)
    caller = Caller(client, on_reconnect=False)
    try:
        await client.user_hub.subscribe_account(ACCOUNT)
        await client.user_hub.start()
        await client.user_hub.wait_connected(5)
        caller.reconciler.attach(client.user_hub)  # already connected: reconciles once
        await caller.reconciler.wait_fresh(5)
        assert len(caller.reconciler.reports) == 1
        freshness: list[bool] = []
        caller.reconciler.on_fresh(freshness.append)
        client.user_hub.drop_connection()
        await eventually(lambda: freshness == [False, True], 3)  # stale while down, then fresh
        assert client.user_hub.stats.reconnects == 1
        assert len(caller.reconciler.reports) == 1  # without a second pass
    finally:
        await caller.reconciler.aclose()
        await client.aclose()


async def test_polling_reports_a_cancelled_order_and_survives_errors(sim: Any,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    config = fast_config(sim.base_url, errorHandling={"retries": {"maxAttempts": 0}},
                         stateReconciliation={"pollAfter": 0, "pollInterval": 30})
    client = GatewayClient(config, "demo", "demo-key-123")
    await client.start(connect_hubs=False)
    caller = Caller(client)
    try:
        limit = sim.trader.place_order(ACCOUNT, "ES", side="buy", size=1, type="limit", limit_price=far_below(sim))
        await client.user_hub.subscribe_account(ACCOUNT)
        caller.reconciler.attach(client.user_hub)
        await client.user_hub.start()
        await caller.reconciler.wait_fresh(5)
        assert limit.id in caller.mirror.open_orders
        sim.faults.cut("user_hub", 3)
        with caplog.at_level(logging.WARNING):
            sim.faults.http_errors(503, 2)
            await eventually(lambda: "rest_poll_failed" in caplog.text, 3)
            sim.trader.cancel_order(ACCOUNT, limit.id)
            await eventually(lambda: limit.id not in caller.mirror.open_orders, 3)
        gone = [e.order for batch in caller.batches for e in batch if isinstance(e, OrderEvent)]
        assert gone[-1].id == limit.id and gone[-1].status == OrderStatus.CANCELLED
        assert client.user_hub.state is not HubState.CONNECTED  # seen by polling, the hub still down
    finally:
        sim.faults.clear()
        await caller.reconciler.aclose()
        await client.aclose()


def test_cme_trading_day_starts_at_17_chicago() -> None:
    before_open = datetime(2026, 3, 3, 20, 0, tzinfo=UTC)  # 14:00 in Chicago: the day began yesterday 17:00
    assert cme_trading_day_start(before_open) == datetime(2026, 3, 2, 23, 0, tzinfo=UTC)
    after_open = datetime(2026, 3, 3, 23, 30, tzinfo=UTC)  # 17:30 in Chicago: a new day began at 17:00
    assert cme_trading_day_start(after_open) == datetime(2026, 3, 3, 23, 0, tzinfo=UTC)


def test_mirror_ignores_other_accounts() -> None:
    mirror = AccountMirror(ACCOUNT)
    from risk_manager.domain import Account

    mirror.apply(AccountEvent(Account(id=2002, name="other", balance=1.0, can_trade=True)))
    assert mirror.account is None
