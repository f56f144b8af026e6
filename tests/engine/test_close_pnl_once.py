"""A closing fill's P&L is the same money as the position's open P&L: it is counted once, whichever of
the trade event and the position event arrives first (scenario rule-03-daily-loss-close-near-limit).

ES: tick 0.25 = $12.50. A long from 5000 marked at 4996.25 is −15 ticks = −$187.50 a contract."""

from __future__ import annotations

from risk_manager.domain import OrderSide, Position, PositionEvent, PositionType, Trade, TradeEvent
from risk_manager.engine import Action, Engine

from .harness import ACC, ES, LONG, SHORT, Harness

RULES = {"daily_realized_loss": {"enabled": True, "loss_limit": 500, "include_fees": False}}


def _trade(h: Harness, pnl: float | None, size: int, side: OrderSide, tid: int) -> list[Action]:
    return h.engine.handle(TradeEvent(Trade(tid, ACC, ES, h.clock.now(), 4996.25, pnl, 0.0, side, size, False, 9)))


def _position(h: Harness, size: int, type_: PositionType = LONG, avg: float = 5000.0) -> list[Action]:
    return h.engine.handle(PositionEvent(Position(7, ACC, ES, h.clock.now(), type_, size, avg)))


def _net(engine: Engine) -> float:
    return engine.status(ACC).net_pnl


def test_full_close_trade_first_is_not_a_double_loss() -> None:
    h = Harness(RULES)
    _position(h, 1)
    assert h.quote(ES, 4991.75) == []                        # −33 ticks = −412.50 open, under the $500 limit
    assert _trade(h, -412.5, 1, OrderSide.ASK, 100) == []    # realized −412.50; the open P&L is gone with it
    assert _net(h.engine) == -412.5                          # not −825
    assert _position(h, 0) == []
    assert _net(h.engine) == -412.5
    assert h.engine.locks(ACC) == []


def test_partial_close_either_order_counts_each_contract_once() -> None:
    trade_first = Harness(RULES)
    _position(trade_first, 2)
    trade_first.quote(ES, 4996.25)                           # 2 × −187.50 = −375 open
    _trade(trade_first, -187.5, 1, OrderSide.ASK, 100)
    assert _net(trade_first.engine) == -375.0
    _position(trade_first, 1)
    assert _net(trade_first.engine) == -375.0

    position_first = Harness(RULES)
    _position(position_first, 2)
    position_first.quote(ES, 4996.25)
    _position(position_first, 1)                             # the broker shows the shrink first
    assert _net(position_first.engine) == -187.5             # the closed contract's loss is not realized yet
    _trade(position_first, -187.5, 1, OrderSide.ASK, 100)
    assert _net(position_first.engine) == -375.0             # realized now, and the open one still counts
    assert position_first.engine.status(ACC).open_pnl == -187.5


def test_reversal_through_zero_counts_the_closed_part_once() -> None:
    h = Harness(RULES)
    _position(h, 1)
    h.quote(ES, 4996.25)
    _trade(h, -187.5, 1, OrderSide.ASK, 100)                 # closing half of a sell 2
    _trade(h, None, 1, OrderSide.ASK, 101)                   # opening half: no P&L
    assert _net(h.engine) == -187.5
    _position(h, 1, SHORT, avg=4996.0)                       # short 1 from 4996 marked at 4996.25: −12.50
    assert _net(h.engine) == -200.0


def test_scale_in_and_repeated_trade_do_not_touch_the_position() -> None:
    h = Harness(RULES)
    _position(h, 1)
    h.quote(ES, 4996.25)
    _trade(h, None, 1, OrderSide.BID, 100)                   # an opening fill (scale-in) realizes nothing
    assert _net(h.engine) == -187.5
    _trade(h, -187.5, 1, OrderSide.ASK, 101)
    _trade(h, -187.5, 1, OrderSide.ASK, 101)                 # the same trade again (reconciliation): once
    assert _net(h.engine) == -187.5
    assert h.engine.status(ACC).open_pnl == 0.0


def test_pending_close_survives_snapshot_restore() -> None:
    h = Harness(RULES)
    _position(h, 2)
    h.quote(ES, 4996.25)
    _trade(h, -187.5, 1, OrderSide.ASK, 100)
    restored = Engine.restore(h.engine.snapshot(), h.config, h.clock, None)
    assert _net(restored) == _net(h.engine) == -375.0
