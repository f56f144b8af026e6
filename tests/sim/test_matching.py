"""The matching engine: fills, P&L, fees, partial fills, reversal, order types, brackets, canTrade.

These drive the simulator in-process (the broker's own screen), without a server: the wire is
covered by test_rest.py and test_hubs.py.
"""

from __future__ import annotations

import pytest

from risk_manager.domain import (
    AccountEvent,
    OrderEvent,
    OrderSide,
    OrderStatus,
    OrderType,
    PositionEvent,
    PositionType,
    TradeEvent,
    UserEvent,
)
from risk_manager.sim import Bracket, BrokerReject, SimConfig, Simulator, TraderError
from tests.sim.conftest import ES, MNQ


@pytest.fixture
def sim() -> Simulator:
    return Simulator(SimConfig(quote_feed="scripted"))


@pytest.fixture
def events(sim: Simulator) -> list[UserEvent]:
    seen: list[UserEvent] = []
    sim.add_user_listener(seen.append)
    return seen


def kinds(events: list[UserEvent]) -> list[str]:
    return [type(e).__name__.removesuffix("Event") for e in events]


def test_long_round_trip_pnl_fees_and_balance(sim: Simulator, events: list[UserEvent]) -> None:
    sim.market.set_quote("MNQ", 20000.0)
    entry = sim.trader.place_order(1001, "MNQ", "buy", 2)
    assert entry.status == OrderStatus.FILLED and entry.filled_price == 20000.25  # buy at the ask
    assert kinds(events) == ["Order", "Order", "Trade", "Position", "Account"]
    opening = sim.broker.trades(1001)[0]
    assert opening.profit_and_loss is None and opening.fees == 0.74 and opening.size == 2
    sim.market.set_quote("MNQ", 20010.0)
    sim.trader.place_order(1001, "MNQ", "sell", 2)  # sells at the bid 20009.75
    closing = sim.broker.trades(1001)[1]
    assert closing.price == 20009.75
    assert closing.profit_and_loss == pytest.approx(38 * 0.50 * 2)  # 38 ticks × $0.50 × 2
    assert closing.fees == 0.74
    assert sim.broker.positions(1001) == []
    assert sim.broker.account(1001).balance == pytest.approx(50_000 + 38.0 - 1.48)
    assert sim.broker.realized_pnl(1001) == 38.0 and sim.broker.fees(1001) == 1.48
    closed = [e for e in events if isinstance(e, PositionEvent)][-1]
    assert closed.position.size == 0


def test_short_round_trip_on_es(sim: Simulator) -> None:
    sim.market.set_quote("ES", 6800.0)
    sim.trader.place_order(1001, "ES", "sell", 3)  # at the bid 6799.75
    pos = sim.broker.positions(1001)[0]
    assert pos.type == PositionType.SHORT and pos.size == 3 and pos.average_price == 6799.75
    sim.market.set_quote("ES", 6790.0)
    sim.trader.close_position(1001, "ES")  # buys at the ask 6790.25
    closing = sim.broker.trades(1001)[-1]
    assert closing.side == OrderSide.BID and closing.price == 6790.25
    assert closing.profit_and_loss == pytest.approx(38 * 12.50 * 3)
    assert closing.fees == pytest.approx(4.20)
    assert sim.broker.account(1001).balance == pytest.approx(50_000 + 1425.0 - 8.40)


def test_losing_trade_lowers_the_balance(sim: Simulator) -> None:
    sim.market.set_quote("MNQ", 20000.0)
    sim.trader.place_order(1001, "MNQ", "buy", 1)
    sim.market.set_quote("MNQ", 19900.0)
    sim.trader.close_position(1001, "MNQ")
    trade = sim.broker.trades(1001)[-1]
    assert trade.profit_and_loss == pytest.approx((19899.75 - 20000.25) / 0.25 * 0.5)


def test_average_price_when_adding(sim: Simulator) -> None:
    sim.market.set_quote("MNQ", 20000.0)
    sim.trader.place_order(1001, "MNQ", "buy", 1)  # 20000.25
    sim.market.set_quote("MNQ", 20010.0)
    sim.trader.place_order(1001, "MNQ", "buy", 3)  # 20010.25
    pos = sim.broker.positions(1001)[0]
    assert pos.size == 4 and pos.average_price == pytest.approx((20000.25 + 3 * 20010.25) / 4)
    sim.trader.place_order(1001, "MNQ", "sell", 4)  # at 20009.75
    assert sim.broker.trades(1001)[-1].profit_and_loss == pytest.approx(
        (20009.75 - pos.average_price) / 0.25 * 0.5 * 4)


def test_partial_fills_one_chunk_per_step(sim: Simulator, events: list[UserEvent]) -> None:
    sim.market.set_quote("MNQ", 20000.0)
    order = sim.trader.place_order(1001, "MNQ", "buy", 3, fill=[1, 1, 1])
    assert order.status == OrderStatus.OPEN and order.fill_volume == 1
    sim.market.set_quote("MNQ", 20004.0)
    sim.broker.step()
    sim.broker.step()
    final = sim.broker.order(1001, order.id)
    assert final is not None and final.status == OrderStatus.FILLED and final.fill_volume == 3
    fills = [e.order for e in events if isinstance(e, OrderEvent) and e.order.fill_volume]
    assert [(o.fill_volume, o.status) for o in fills] == [(1, OrderStatus.OPEN), (2, OrderStatus.OPEN),
                                                          (3, OrderStatus.FILLED)]
    assert final.filled_price == pytest.approx((20000.25 + 2 * 20004.25) / 3)
    trades = sim.broker.trades(1001)
    assert [t.size for t in trades] == [1, 1, 1] and all(t.fees == 0.37 for t in trades)
    assert sim.broker.positions(1001)[0].size == 3


def test_partial_plan_shorter_than_the_order_fills_the_rest_last(sim: Simulator) -> None:
    order = sim.trader.place_order(1001, "MNQ", "buy", 5, fill=[2])
    assert order.fill_volume == 2
    sim.broker.step()
    done = sim.broker.order(1001, order.id)
    assert done is not None and done.fill_volume == 5 and done.status == OrderStatus.FILLED
    with pytest.raises(TraderError, match="fill plan"):
        sim.trader.place_order(1001, "MNQ", "buy", 2, fill=[2, 1])


def test_reversal_through_zero(sim: Simulator, events: list[UserEvent]) -> None:
    sim.market.set_quote("MNQ", 20000.0)
    sim.trader.place_order(1001, "MNQ", "buy", 2)  # long 2 @ 20000.25
    position_id = sim.broker.positions(1001)[0].id
    sim.market.set_quote("MNQ", 20020.0)
    events.clear()
    sim.trader.place_order(1001, "MNQ", "sell", 5)  # at 20019.75: close 2, open short 3
    assert kinds(events) == ["Order", "Order", "Trade", "Trade", "Position", "Account"]
    closing, opening = sim.broker.trades(1001)[-2:]
    assert closing.size == 2 and closing.profit_and_loss == pytest.approx(78 * 0.5 * 2)
    assert opening.size == 3 and opening.profit_and_loss is None
    assert (closing.fees, opening.fees) == (0.74, 1.11)
    pos = sim.broker.positions(1001)[0]
    assert (pos.type, pos.size, pos.average_price, pos.id) == (PositionType.SHORT, 3, 20019.75, position_id)
    assert sim.broker.account(1001).balance == pytest.approx(50_000 - 0.74 + 78.0 - 0.74 - 1.11)


def test_fees_off() -> None:
    sim = Simulator(SimConfig(quote_feed="scripted", fees=False))
    sim.trader.place_order(1001, "MNQ", "buy", 1)
    assert sim.broker.trades(1001)[0].fees == 0.0
    assert sim.broker.account(1001).balance == 50_000.0


def test_resting_limits_fill_at_their_price_marketable_ones_at_the_market(sim: Simulator) -> None:
    sim.market.set_quote("MNQ", 20000.0)
    buy = sim.trader.place_order(1001, "MNQ", "buy", 1, type="limit", limit_price=19990.0)
    assert buy.status == OrderStatus.OPEN
    sim.market.set_quote("MNQ", 19992.0)  # ask 19992.25 > 19990: nothing
    assert sim.broker.order(1001, buy.id).status == OrderStatus.OPEN  # type: ignore[union-attr]
    sim.market.set_quote("MNQ", 19985.0)  # ask 19985.25 <= 19990: fills at the limit
    filled = sim.broker.order(1001, buy.id)
    assert filled is not None and filled.status == OrderStatus.FILLED and filled.filled_price == 19990.0
    marketable = sim.trader.place_order(1001, "MNQ", "sell", 1, type="limit", limit_price=19900.0)
    assert marketable.status == OrderStatus.FILLED and marketable.filled_price == 19984.75  # the bid


def test_stops_trigger_on_last_and_fill_at_the_market(sim: Simulator) -> None:
    sim.market.set_quote("MNQ", 20000.0)
    sim.trader.place_order(1001, "MNQ", "buy", 3)
    stop = sim.trader.place_order(1001, "MNQ", "sell", 3, type="stop", stop_price=19990.0)
    assert stop.status == OrderStatus.OPEN and stop.stop_price == 19990.0
    sim.market.set_quote("MNQ", 19990.25)
    assert sim.broker.order(1001, stop.id).status == OrderStatus.OPEN  # type: ignore[union-attr]
    sim.market.set_quote("MNQ", 19900.0, bid=19899.75, ask=19900.25)  # gap through the stop
    done = sim.broker.order(1001, stop.id)
    assert done is not None and done.status == OrderStatus.FILLED and done.filled_price == 19899.75
    assert sim.broker.positions(1001) == []
    buy_stop = sim.trader.place_order(1001, "MNQ", "buy", 1, type="stop", stop_price=19910.0)
    sim.market.set_quote("MNQ", 19910.0)
    assert sim.broker.order(1001, buy_stop.id).filled_price == 19910.25  # type: ignore[union-attr]


def test_stop_through_the_market_is_rejected(sim: Simulator) -> None:
    sim.market.set_quote("MNQ", 20000.0)
    with pytest.raises(TraderError, match="stop price"):
        sim.trader.place_order(1001, "MNQ", "sell", 1, type="stop", stop_price=20001.0)


def test_stop_limit_triggers_then_works_as_a_limit(sim: Simulator) -> None:
    sim.market.set_quote("MNQ", 20000.0)
    order = sim.trader.place_order(1001, "MNQ", "buy", 1, type="stop_limit", stop_price=20010.0,
                                   limit_price=20011.0)
    assert order.type == OrderType.STOP_LIMIT
    sim.market.set_quote("MNQ", 20015.0)  # triggers, but the ask 20015.25 is above the limit
    working = sim.broker.order(1001, order.id)
    assert working is not None and working.status == OrderStatus.OPEN
    sim.market.set_quote("MNQ", 20010.0)  # ask 20010.25 <= 20011: fills at the limit (resting)
    assert sim.broker.order(1001, order.id).filled_price == 20011.0  # type: ignore[union-attr]


def test_trailing_stop_follows_the_best_price(sim: Simulator, events: list[UserEvent]) -> None:
    sim.market.set_quote("MNQ", 20000.0)
    sim.trader.place_order(1001, "MNQ", "buy", 1)
    trail = sim.trader.place_order(1001, "MNQ", "sell", 1, type="trailing_stop", trail_ticks=8)
    assert trail.stop_price == 19998.0
    sim.market.set_quote("MNQ", 20010.0)
    assert sim.broker.order(1001, trail.id).stop_price == 20008.0  # type: ignore[union-attr]
    sim.market.set_quote("MNQ", 20009.0)  # lower: the stop stays
    assert sim.broker.order(1001, trail.id).stop_price == 20008.0  # type: ignore[union-attr]
    sim.market.set_quote("MNQ", 20008.0)
    done = sim.broker.order(1001, trail.id)
    assert done is not None and done.status == OrderStatus.FILLED and done.filled_price == 20007.75


def test_trailing_stop_from_trail_price_anchor(sim: Simulator) -> None:
    sim.market.set_quote("MNQ", 20000.0)
    order = sim.broker.place(1001, MNQ, OrderType.TRAILING_STOP, OrderSide.ASK, 1, trail_price=19995.0)
    assert order.stop_price == 19995.0 and order.trail_price == 19995.0
    sim.market.set_quote("MNQ", 20004.0)
    assert sim.broker.order(1001, order.id).stop_price == 19999.0  # type: ignore[union-attr]
    with pytest.raises(BrokerReject, match="wrong side"):
        sim.broker.place(1001, MNQ, OrderType.TRAILING_STOP, OrderSide.ASK, 1, trail_price=20010.0)


@pytest.mark.parametrize(("sl_ticks", "tp_ticks"), [(-10, 20), (10, 20), (10, -20)])
def test_brackets_create_oco_children_on_the_protective_side(sim: Simulator, sl_ticks: int, tp_ticks: int) -> None:
    sim.market.set_quote("MNQ", 20000.0)
    entry = sim.broker.place(1001, MNQ, OrderType.MARKET, OrderSide.BID, 2, stop_loss=Bracket(sl_ticks, OrderType.STOP),
                             take_profit=Bracket(tp_ticks, OrderType.LIMIT))
    children = sim.broker.open_orders(1001)
    stop = next(o for o in children if o.type == OrderType.STOP)
    target = next(o for o in children if o.type == OrderType.LIMIT)
    assert stop.stop_price == 20000.25 - 2.5 and target.limit_price == 20000.25 + 5.0
    assert stop.side == target.side == OrderSide.ASK and stop.size == target.size == 2
    assert stop.parent_order_id == target.parent_order_id == entry.id
    assert (stop.linked_order_id, target.linked_order_id) == (target.id, stop.id)
    sim.market.set_quote("MNQ", 20006.0)  # bid 20005.75 >= target: the target fills, the stop is cancelled
    assert sim.broker.order(1001, target.id).status == OrderStatus.FILLED  # type: ignore[union-attr]
    assert sim.broker.order(1001, stop.id).status == OrderStatus.CANCELLED  # type: ignore[union-attr]
    assert sim.broker.positions(1001) == [] and sim.broker.open_orders(1001) == []


def test_short_bracket_and_flattening_cancels_the_children(sim: Simulator) -> None:
    sim.market.set_quote("ES", 6800.0)
    sim.broker.place(1001, ES, OrderType.MARKET, OrderSide.ASK, 1, stop_loss=Bracket(8, OrderType.STOP),
                     take_profit=Bracket(8, OrderType.LIMIT))
    stop = next(o for o in sim.broker.open_orders(1001) if o.type == OrderType.STOP)
    assert stop.stop_price == 6799.75 + 2.0 and stop.side == OrderSide.BID
    sim.trader.close_position(1001, "ES")
    assert sim.broker.open_orders(1001) == []


def test_cancel_by_tag_and_cancelling_a_filled_order_changes_nothing(sim: Simulator) -> None:
    sim.market.set_quote("MNQ", 20000.0)
    sim.trader.place_order(1001, "MNQ", "buy", 1, type="limit", limit_price=19000.0, tag="dip")
    cancelled = sim.trader.cancel_order(1001, tag="dip")
    assert cancelled.status == OrderStatus.CANCELLED
    filled = sim.trader.place_order(1001, "MNQ", "buy", 1, tag="now")
    assert sim.trader.cancel_order(1001, order_id=filled.id).status == OrderStatus.FILLED
    with pytest.raises(TraderError):
        sim.trader.cancel_order(1001, tag="never")
    with pytest.raises(TraderError, match="already used"):
        sim.trader.place_order(1001, "MNQ", "buy", 1, tag="now")


def test_cannot_trade_gives_rejected_orders_but_closes_work(sim: Simulator, events: list[UserEvent]) -> None:
    sim.trader.place_order(1001, "MNQ", "buy", 2)
    sim.set_account(1001, can_trade=False)
    assert isinstance(events[-1], AccountEvent) and events[-1].account.can_trade is False
    rejected = sim.trader.place_order(1001, "MNQ", "buy", 1)
    assert rejected.status == OrderStatus.REJECTED
    reducing = sim.trader.place_order(1001, "MNQ", "sell", 1)
    assert reducing.status == OrderStatus.FILLED
    sim.trader.close_position(1001, "MNQ")
    assert sim.broker.positions(1001) == []
    sim.trader.close_position(1001, "MNQ")  # already flat: nothing happens


def test_insufficient_funds(sim: Simulator) -> None:
    sim.set_account(1001, balance=0.0)
    assert sim.trader.place_order(1001, "MNQ", "buy", 1).status == OrderStatus.REJECTED


def test_trader_input_errors(sim: Simulator) -> None:
    with pytest.raises(TraderError, match="unknown symbol"):
        sim.trader.place_order(1001, "ZZZ", "buy", 1)
    with pytest.raises(TraderError, match="side"):
        sim.trader.place_order(1001, "MNQ", "long", 1)  # type: ignore[arg-type]
    with pytest.raises(TraderError, match="does not exist"):
        sim.trader.place_order(42, "MNQ", "buy", 1)
    with pytest.raises(TraderError, match="limitPrice"):
        sim.trader.place_order(1001, "MNQ", "buy", 1, type="limit")


def test_trade_events_decode_as_the_domain_model(sim: Simulator, events: list[UserEvent]) -> None:
    sim.trader.place_order(1001, "MNQ", "buy", 1)
    trade = next(e for e in events if isinstance(e, TradeEvent)).trade
    assert trade.order_id == sim.broker.orders(1001)[0].id and trade.voided is False


def test_trailing_bracket_leg_only_tightens(sim: Simulator) -> None:
    sim.market.set_quote("MNQ", 20000.0)
    sim.broker.place(1001, MNQ, OrderType.MARKET, OrderSide.BID, 1, stop_loss=Bracket(8, OrderType.TRAILING_STOP))
    leg = sim.broker.open_orders(1001)[0]
    assert leg.type == OrderType.TRAILING_STOP and leg.stop_price == 20000.25 - 2.0
    sim.market.set_quote("MNQ", 19999.0)  # lower: a trailing stop never loosens
    assert sim.broker.order(1001, leg.id).stop_price == 19998.25  # type: ignore[union-attr]
    sim.market.set_quote("MNQ", 20005.0)
    assert sim.broker.order(1001, leg.id).stop_price == 20003.0  # type: ignore[union-attr]
    sim.market.set_quote("MNQ", 20003.0)
    assert sim.broker.order(1001, leg.id).status == OrderStatus.FILLED  # type: ignore[union-attr]
