"""RULE-008 (stop-loss grace, broker check, fail closed) and RULE-012 (auto stop, breakeven, trailing)."""

from __future__ import annotations

from datetime import timedelta

from risk_manager.domain import OrderSide, OrderStatus, OrderType
from risk_manager.engine import ActionKind, StopsChecked

from .harness import ES, SHORT, Harness, kinds, of, one

GRACE = {"no_stop_loss_grace": {"enabled": True, "grace": "30s"}}


def test_rule008_stop_before_expiry_satisfies() -> None:
    h = Harness(GRACE)
    h.position(ES, 1, avg=5000.0)
    assert h.engine.next_deadline() == h.clock.now() + timedelta(seconds=30)
    h.advance(10)
    h.stop(ES, OrderSide.ASK, 4990.0)
    assert h.advance(25) == []
    assert h.engine.next_deadline() != h.clock.now() + timedelta(seconds=5)


def test_rule008_no_stop_asks_broker_then_closes() -> None:
    h = Harness(GRACE)
    h.position(ES, 1, avg=5000.0)
    assert h.advance(29.9) == []
    check = one(h.advance(0.1), ActionKind.CHECK_STOPS)
    assert check.contract_id == ES and check.rules == ("RULE-008",)
    assert h.advance(10) == []                                   # asked once
    actions = h.command(StopsChecked(1001, ES, ok_broker=True, open_order_ids=(), check_key=check.idempotency_key))
    assert one(actions, ActionKind.CLOSE_POSITION).rules == ("RULE-008",)


def test_rule008_broker_check_finds_a_stop_placed_in_the_broker_screen() -> None:
    h = Harness(GRACE)
    h.position(ES, 2, avg=5000.0)
    check = one(h.advance(30), ActionKind.CHECK_STOPS)
    h.stop(ES, OrderSide.ASK, 4990.0, oid=77)                   # fed back from Order/searchOpen
    assert h.command(StopsChecked(1001, ES, True, (77,), check.idempotency_key)) == []


def test_rule008_broker_unreachable_fails_closed() -> None:
    h = Harness(GRACE)
    h.position(ES, 1)
    h.advance(30)
    assert one(h.command(StopsChecked(1001, ES, ok_broker=False)), ActionKind.CLOSE_POSITION)


def test_rule008_wrong_side_stop_does_not_count_and_short_needs_a_buy_stop() -> None:
    h = Harness(GRACE)
    h.position(ES, 1, SHORT, avg=5000.0)
    h.stop(ES, OrderSide.ASK, 4990.0)                            # a sell stop does not protect a short
    assert one(h.advance(30), ActionKind.CHECK_STOPS)
    h2 = Harness(GRACE)
    h2.position(ES, 1, SHORT, avg=5000.0)
    h2.stop(ES, OrderSide.BID, 5010.0)
    assert h2.advance(30) == []


def test_rule008_scale_in_does_not_restart_and_cancelled_stop_rearms() -> None:
    h = Harness(GRACE)
    h.position(ES, 1)
    h.advance(20)
    h.position(ES, 2)                                            # scale-in: the timer keeps running
    assert one(h.advance(10), ActionKind.CHECK_STOPS)
    h2 = Harness(GRACE)
    h2.position(ES, 1)
    oid, _ = h2.stop(ES, OrderSide.ASK, 4990.0)
    assert h2.advance(60) == []
    h2.stop(ES, OrderSide.ASK, 4990.0, oid=oid, status=OrderStatus.CANCELLED)   # the trader removes the stop
    assert h2.advance(29) == []
    assert one(h2.advance(1), ActionKind.CHECK_STOPS)


def test_rule008_require_full_size() -> None:
    h = Harness({"no_stop_loss_grace": {"enabled": True, "grace": "30s", "require_full_size": True}})
    h.position(ES, 3)
    h.stop(ES, OrderSide.ASK, 4990.0, size=2)
    check = one(h.advance(30), ActionKind.CHECK_STOPS)
    actions = h.command(StopsChecked(1001, ES, True, None, check.idempotency_key))
    assert "less than the position size" in (one(actions, ActionKind.ALERT).message or "")


def test_rule012_auto_stop_before_grace() -> None:
    h = Harness({"trade_management": {"enabled": True, "auto_stop": {"ticks": 8, "after": "5s"}}, **GRACE})
    h.position(ES, 2, avg=5000.0)
    place = one(h.advance(5), ActionKind.PLACE_STOP)
    assert (place.price, place.size, place.side) == (4998.0, 2, int(OrderSide.ASK))
    assert h.advance(1) == []                                    # placed once
    h.stop(ES, OrderSide.ASK, 4998.0)                            # our stop comes back as an order event
    assert h.advance(30) == []                                   # RULE-008 satisfied


def test_rule012_breakeven_moves_stop_never_loosens() -> None:
    h = Harness({"trade_management": {"enabled": True, "breakeven": {"trigger_ticks": 8, "offset_ticks": 1}}})
    h.position(ES, 1, avg=5000.0)
    oid, _ = h.stop(ES, OrderSide.ASK, 4990.0)
    assert h.quote(ES, 5001.75) == []                            # 7 ticks
    move = one(h.quote(ES, 5002.0), ActionKind.MODIFY_STOP)      # 8 ticks → entry + 1 tick
    assert (move.order_id, move.price) == (oid, 5000.25)
    assert h.quote(ES, 5002.25) == []                            # asked once
    h.stop(ES, OrderSide.ASK, 5001.0, oid=oid)                   # the trader tightened past ours
    assert h.quote(ES, 5003.0) == []


def test_rule012_trailing_short() -> None:
    h = Harness({"trade_management": {"enabled": True, "trailing": {"activate_ticks": 4, "distance_ticks": 2}}})
    h.position(ES, 1, SHORT, avg=5000.0)
    oid, _ = h.stop(ES, OrderSide.BID, 5005.0)
    assert h.quote(ES, 4999.25) == []                            # 3 ticks
    move = one(h.quote(ES, 4999.0), ActionKind.MODIFY_STOP)      # best 4999 → stop 4999.5
    assert move.price == 4999.5
    h.stop(ES, OrderSide.BID, 4999.5, oid=oid)
    assert h.quote(ES, 4999.25) == []                            # price retraces: never loosen
    assert one(h.quote(ES, 4998.0), ActionKind.MODIFY_STOP).price == 4998.5


def test_rule012_leaves_broker_trailing_stops_alone() -> None:
    h = Harness({"trade_management": {"enabled": True, "trailing": {"activate_ticks": 4, "distance_ticks": 2}}})
    h.position(ES, 1, avg=5000.0)
    h.order(ES, OrderSide.ASK, OrderType.TRAILING_STOP, stop=4995.0)
    assert of(h.quote(ES, 5002.0), ActionKind.MODIFY_STOP) == []
    assert kinds(h.log) == []


def test_rule008_unanswered_check_fails_closed_once() -> None:
    h = Harness(GRACE)
    h.position(ES, 1)
    assert one(h.advance(30), ActionKind.CHECK_STOPS)
    assert h.engine.next_deadline() == h.clock.now() + timedelta(seconds=15)
    assert h.advance(14) == []
    actions = h.advance(1)
    assert one(actions, ActionKind.CLOSE_POSITION).rules == ("RULE-008",)
    assert h.advance(60) == [] and h.engine.next_deadline() is not None


def test_rule008_answered_check_stays_answered_across_the_daily_reset() -> None:
    h = Harness(GRACE)
    h.position(ES, 1)
    check = one(h.advance(30), ActionKind.CHECK_STOPS)
    h.stop(ES, OrderSide.ASK, 90.0, oid=6)                               # found by Order/searchOpen
    assert h.command(StopsChecked(1001, ES, True, (6,), check.idempotency_key)) == []
    h.stop(ES, OrderSide.ASK, 90.0, oid=6, status=OrderStatus.FILLED)    # a fill is not a removal: no re-arm
    assert of(h.advance(9 * 3600), ActionKind.CLOSE_POSITION) == []      # well past the 17:00 reset
