"""The engine's own actions, executed: simulator events → Engine → Enforcer → simulator.

Not the daemon (no hubs, no journal): the simulator's broker events are handed to the engine as they
happen, and every action the enforcer executes is submitted. It shows the two layers agree on the
action shapes (locks, cancels with and without an order, flatten, closes while locked).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from risk_manager.domain import OrderEvent, PositionEvent, SystemClock, UserEvent, default_catalogue
from risk_manager.enforcement import OutcomeStatus
from risk_manager.engine import ActionKind, Engine, RiskConfig
from risk_manager.gateway import GatewayClient
from risk_manager.sim import Simulator
from risk_manager.store import Store

from .conftest import ACCOUNT, MNQ, Rig

EXECUTED = {ActionKind.LOCK, ActionKind.CLOSE_POSITION, ActionKind.REDUCE_POSITION, ActionKind.FLATTEN_ACCOUNT,
            ActionKind.CANCEL_ORDERS, ActionKind.MODIFY_STOP, ActionKind.PLACE_STOP}


@pytest.fixture
async def wired(sim: Simulator, client: GatewayClient, store: Store) -> AsyncIterator[tuple[Rig, Engine]]:
    config = RiskConfig.model_validate({"rules": {
        "daily_realized_loss": {"enabled": True, "loss_limit": 300, "include_unrealized": False},
        "max_contracts": {"enabled": True, "limit": 3},
    }})
    engine = Engine(config, SystemClock(), default_catalogue())
    rig = Rig(sim, client, store)

    def on_event(event: UserEvent) -> None:  # the daemon's event path, minus hubs and journal
        if isinstance(event, PositionEvent):
            p = event.position
            book = rig.positions.setdefault(p.account_id, {})
            if p.size > 0:
                book[p.contract_id] = p.size
            else:
                book.pop(p.contract_id, None)
        elif isinstance(event, OrderEvent):
            o = event.order
            orders = [x for x in rig.orders.setdefault(o.account_id, []) if x != (o.id, o.contract_id)]
            rig.orders[o.account_id] = [*orders, (o.id, o.contract_id)] if o.is_working else orders
        for action in engine.handle(event):
            if action.kind in EXECUTED:
                rig.enforcer.submit(action)

    sim.add_user_listener(on_event)
    await rig.enforcer.start()
    try:
        yield rig, engine
    finally:
        await rig.enforcer.aclose()


async def test_oversize_is_reduced_to_the_limit(wired: tuple[Rig, Engine]) -> None:
    rig, _ = wired
    rig.sim.trader.place_order(ACCOUNT, "MNQ", side="buy", size=5, type="market")
    await rig.enforcer.idle()
    assert rig.position_sizes() == {MNQ: 3}
    [outcome] = rig.outcomes
    assert (outcome.action.kind, outcome.status) == (ActionKind.REDUCE_POSITION, OutcomeStatus.DONE)
    assert [(i.kind, i.size) for i in rig.sim.recorder.intents] == [("partialClose", 2)]


async def test_daily_loss_locks_cancels_flattens_and_keeps_the_account_flat(wired: tuple[Rig, Engine]) -> None:
    rig, engine = wired
    sim = rig.sim
    sim.market.set_quote("ES", 6800.0)
    resting = sim.trader.place_order(ACCOUNT, "MNQ", side="buy", size=1, type="limit", limit_price=20000.0)
    sim.trader.place_order(ACCOUNT, "MNQ", side="buy", size=1, type="market")
    sim.trader.place_order(ACCOUNT, "ES", side="buy", size=1, type="market")
    sim.market.set_quote("ES", 6790.0)  # −10 points on ES = −$500 when sold
    sim.trader.place_order(ACCOUNT, "ES", side="sell", size=1, type="market")
    await rig.enforcer.idle()
    kinds = [(o.action.kind, o.status) for o in rig.outcomes]
    assert (ActionKind.LOCK, OutcomeStatus.DONE) in kinds
    assert all(status is not OutcomeStatus.FAILED for _, status in kinds), [o.reason for o in rig.outcomes]
    assert rig.position_sizes() == {}  # the MNQ position the loss rule did not cause is closed too
    assert sim.broker.open_orders(ACCOUNT) == []
    assert resting.id in {i.order_id for i in rig.intents("cancel")}
    [lock] = await rig.store.active_locks(ACCOUNT)
    assert lock.kind == "until_reset" and engine.locks(ACCOUNT)

    before = len(rig.outcomes)
    sim.trader.place_order(ACCOUNT, "ES", side="sell", size=2, type="market")  # a trade while locked
    await rig.enforcer.idle()
    assert rig.position_sizes() == {}
    after = [(o.action.kind, o.status) for o in rig.outcomes[before:]]
    assert (ActionKind.CLOSE_POSITION, OutcomeStatus.DONE) in after, after
    # the market order was cancelled-at-sight too (it had already filled: "not working" = done)
    assert all(status is OutcomeStatus.DONE for _, status in after), after
    assert rig.sim.recorder.duplicate_orders == []
