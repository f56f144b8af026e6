"""cancel_orders, modify_stop (never looser), place_stop (exactly once) against the simulator."""

from __future__ import annotations

from risk_manager.domain import OrderSide, OrderType
from risk_manager.enforcement import OutcomeStatus
from risk_manager.engine.actions import ActionKind
from risk_manager.gateway import custom_tag_for

from .conftest import ACCOUNT, ES, MNQ, Rig, action


def _working(rig: Rig) -> dict[int, str]:
    return {o.id: o.contract_id for o in rig.sim.broker.open_orders(ACCOUNT)}


async def test_cancel_orders_of_one_contract_uses_the_hint_then_the_broker(rig: Rig) -> None:
    resting = rig.sim.trader.place_order(ACCOUNT, "MNQ", side="buy", size=1, type="limit", limit_price=20000.0)
    missed = rig.sim.trader.place_order(ACCOUNT, "MNQ", side="sell", size=1, type="limit", limit_price=30000.0)
    other = rig.sim.trader.place_order(ACCOUNT, "ES", side="buy", size=1, type="limit", limit_price=5000.0)
    rig.orders[ACCOUNT] = [(resting.id, MNQ), other.id]  # a bare id cannot be matched to a contract: not used
    outcome = await rig.one(action(ActionKind.CANCEL_ORDERS, "cancel-mnq", contract_id=MNQ))
    assert outcome.status is OutcomeStatus.DONE, outcome.reason
    assert _working(rig) == {other.id: ES}  # the ES order is left alone
    cancelled = [i.order_id for i in rig.intents("cancel")]
    assert cancelled[0] == resting.id and sorted(cancelled) == sorted([resting.id, missed.id])


async def test_cancel_all_orders_of_the_account(rig: Rig) -> None:
    ids = [rig.sim.trader.place_order(ACCOUNT, sym, side="buy", size=1, type="limit", limit_price=price).id
           for sym, price in (("MNQ", 20000.0), ("ES", 5000.0), ("CL", 50.0))]
    rig.orders[ACCOUNT] = [ids[0]]
    outcome = await rig.one(action(ActionKind.CANCEL_ORDERS, "cancel-all"))
    assert outcome.status is OutcomeStatus.DONE and _working(rig) == {}
    assert sorted(i.order_id for i in rig.intents("cancel")) == sorted(ids)
    assert outcome.detail == "verified: no working order left (3 cancel request(s))"


async def test_cancel_one_order_by_id_and_an_order_already_gone(rig: Rig) -> None:
    keep = rig.sim.trader.place_order(ACCOUNT, "MNQ", side="buy", size=1, type="limit", limit_price=20000.0)
    target = rig.sim.trader.place_order(ACCOUNT, "MNQ", side="buy", size=1, type="limit", limit_price=20001.0)
    outcome = await rig.one(action(ActionKind.CANCEL_ORDERS, "cancel-one", contract_id=MNQ, order_id=target.id))
    assert outcome.status is OutcomeStatus.DONE and _working(rig) == {keep.id: MNQ}
    again = await rig.one(action(ActionKind.CANCEL_ORDERS, "cancel-one-again", contract_id=MNQ, order_id=target.id))
    assert again.status is OutcomeStatus.DONE  # "not working" from the broker = already done
    assert [i.outcome for i in rig.intents("cancel")] == ["ok", "error 3"]


async def test_cancel_with_a_lost_response_is_verified(rig: Rig) -> None:
    order = rig.sim.trader.place_order(ACCOUNT, "ES", side="sell", size=2, type="limit", limit_price=9000.0)
    rig.sim.faults.lose_responses(1)
    outcome = await rig.one(action(ActionKind.CANCEL_ORDERS, "cancel-lost", order_id=order.id))
    assert outcome.status is OutcomeStatus.DONE, outcome.reason
    assert _working(rig) == {} and len(rig.intents("cancel")) == 1


def _long_with_stop(rig: Rig, stop: float) -> int:
    rig.sim.market.set_quote("MNQ", 25000.0)
    rig.sim.trader.place_order(ACCOUNT, "MNQ", side="buy", size=2, type="market")
    return rig.sim.trader.place_order(ACCOUNT, "MNQ", side="sell", size=2, type="stop", stop_price=stop).id


async def test_modify_stop_moves_a_stop_tighter(rig: Rig) -> None:
    stop_id = _long_with_stop(rig, 24950.0)
    outcome = await rig.one(action(ActionKind.MODIFY_STOP, "modify-up", contract_id=MNQ, order_id=stop_id,
                                   price=24980.0))
    assert outcome.status is OutcomeStatus.DONE, outcome.reason
    assert rig.sim.broker.order(ACCOUNT, stop_id).stop_price == 24980.0  # type: ignore[union-attr]
    assert outcome.detail == f"verified: stop {stop_id} at 24980 (was 24950)"


async def test_modify_stop_refuses_to_loosen(rig: Rig) -> None:
    stop_id = _long_with_stop(rig, 24950.0)
    outcome = await rig.one(action(ActionKind.MODIFY_STOP, "modify-down", contract_id=MNQ, order_id=stop_id,
                                   price=24900.0))
    assert outcome.status is OutcomeStatus.SKIPPED
    assert outcome.reason is not None and "refused to loosen" in outcome.reason
    assert rig.sim.broker.order(ACCOUNT, stop_id).stop_price == 24950.0  # type: ignore[union-attr]
    assert rig.intents("modify") == []


async def test_modify_stop_of_a_short_only_moves_down_and_a_gone_stop_is_skipped(rig: Rig) -> None:
    rig.sim.market.set_quote("ES", 6800.0)
    rig.sim.trader.place_order(ACCOUNT, "ES", side="sell", size=1, type="market")
    stop = rig.sim.trader.place_order(ACCOUNT, "ES", side="buy", size=1, type="stop", stop_price=6810.0)
    looser = await rig.one(action(ActionKind.MODIFY_STOP, "m1", contract_id=ES, order_id=stop.id, price=6820.0))
    assert looser.status is OutcomeStatus.SKIPPED
    tighter = await rig.one(action(ActionKind.MODIFY_STOP, "m2", contract_id=ES, order_id=stop.id, price=6805.0))
    assert tighter.status is OutcomeStatus.DONE, tighter.reason
    rig.sim.trader.cancel_order(ACCOUNT, stop.id)
    gone = await rig.one(action(ActionKind.MODIFY_STOP, "m3", contract_id=ES, order_id=stop.id, price=6801.0))
    assert gone.status is OutcomeStatus.SKIPPED and "no longer working" in (gone.reason or "")
    assert [i.kind for i in rig.sim.recorder.intents] == ["modify"]


async def test_modify_of_a_non_stop_fails(rig: Rig) -> None:
    order = rig.sim.trader.place_order(ACCOUNT, "MNQ", side="buy", size=1, type="limit", limit_price=20000.0)
    outcome = await rig.one(action(ActionKind.MODIFY_STOP, "m-limit", order_id=order.id, price=20100.0))
    assert outcome.status is OutcomeStatus.FAILED and "not a stop" in (outcome.reason or "")


async def test_place_stop_places_one_stop_even_when_the_response_is_lost(rig: Rig) -> None:
    rig.sim.market.set_quote("MNQ", 25000.0)
    rig.sim.trader.place_order(ACCOUNT, "MNQ", side="buy", size=3, type="market")
    rig.sim.faults.lose_responses(1)
    stop = action(ActionKind.PLACE_STOP, "auto-stop-1", contract_id=MNQ, size=3, price=24990.0,
                  side=int(OrderSide.ASK))
    outcome = await rig.one(stop)
    assert outcome.status is OutcomeStatus.DONE, outcome.reason
    [placed] = rig.sim.broker.open_orders(ACCOUNT)
    assert (placed.type, placed.side, placed.size, placed.stop_price) == (OrderType.STOP, OrderSide.ASK, 3, 24990.0)
    assert placed.custom_tag == custom_tag_for("auto-stop-1")
    assert rig.sim.recorder.duplicate_orders == []
    assert len(rig.intents("place")) == 1


async def test_place_stop_without_a_position_or_against_its_side_is_skipped(rig: Rig) -> None:
    flat = await rig.one(action(ActionKind.PLACE_STOP, "stop-flat", contract_id=MNQ, size=1, price=24000.0,
                                side=int(OrderSide.ASK)))
    assert flat.status is OutcomeStatus.SKIPPED and "would open one" in (flat.reason or "")
    rig.sim.trader.place_order(ACCOUNT, "MNQ", side="sell", size=1, type="market")  # now short
    wrong = await rig.one(action(ActionKind.PLACE_STOP, "stop-side", contract_id=MNQ, size=1, price=24000.0,
                                 side=int(OrderSide.ASK)))
    assert wrong.status is OutcomeStatus.SKIPPED and "would not protect it" in (wrong.reason or "")
    assert rig.intents("place") == []


async def test_place_stop_refused_by_the_broker_fails(rig: Rig) -> None:
    rig.sim.market.set_quote("MNQ", 25000.0)
    rig.sim.trader.place_order(ACCOUNT, "MNQ", side="buy", size=1, type="market")
    through = action(ActionKind.PLACE_STOP, "stop-through", contract_id=MNQ, size=1, price=25100.0)
    outcome = await rig.one(through)
    assert outcome.status is OutcomeStatus.FAILED
    assert outcome.reason is not None and outcome.reason.startswith("the broker refused the stop at 25100")


async def test_a_stop_move_the_broker_refuses_fails(rig: Rig) -> None:
    stop_id = _long_with_stop(rig, 24950.0)
    outcome = await rig.one(action(ActionKind.MODIFY_STOP, "modify-through", contract_id=MNQ, order_id=stop_id,
                                   price=25010.0))  # tighter, but through the market
    assert outcome.status is OutcomeStatus.FAILED
    assert (outcome.reason or "").startswith(f"the broker refused to move stop {stop_id} to 25010")
    assert rig.sim.broker.order(ACCOUNT, stop_id).stop_price == 24950.0  # type: ignore[union-attr]
