"""A closing fill's P&L is counted once, whichever of its trade and position events arrives first.

The trade event realizes the P&L; the position event takes the contracts off. Between the two, the
contracts the trade closed must not also count in the open P&L (that was the known bug: a close at
−$423 judged −$846 against a $500 daily limit). Trades a reconciliation delivers after a position
event that already took the contracts off (a lost trade event) must not be subtracted a second time
(the reverted first fix did, and missed a breach).
"""

from __future__ import annotations

from risk_manager.domain import OrderSide, default_catalogue
from risk_manager.engine import ActionKind, Engine

from .harness import ACC, ES, Harness

# ES: tick 0.25 = $12.50, so one point is $50 a contract.
LIMIT_500 = {"daily_realized_loss": {"enabled": True, "loss_limit": 500}}
SELL = OrderSide.ASK


def open_long_3_down_3_points(h: Harness) -> None:
    h.quote(ES, last=100.0, bid=100.0, ask=100.0)
    h.position(ES, 3, avg=100.0)
    h.quote(ES, last=97.0, bid=97.0, ask=97.0)          # open P&L −$450, limit $500
    assert h.engine.status(ACC).open_pnl == -450.0


def test_trade_before_position_counts_the_close_once() -> None:
    h = Harness(LIMIT_500)
    open_long_3_down_3_points(h)
    assert h.trade(-450.0, side=SELL, size=3) == []      # realized −450; the position still shows 3
    status = h.engine.status(ACC)
    assert (status.realized_pnl, status.open_pnl) == (-450.0, 0.0)
    assert h.position(ES, 0) == []
    assert not h.engine.locks(ACC)


def test_position_before_trade_counts_the_close_once() -> None:
    h = Harness(LIMIT_500)
    open_long_3_down_3_points(h)
    assert h.position(ES, 0) == []
    assert h.trade(-450.0, side=SELL, size=3) == []
    assert h.engine.status(ACC).realized_pnl == -450.0 and not h.engine.locks(ACC)


def test_partial_close_then_the_rest_stays_in_open_pnl() -> None:
    h = Harness(LIMIT_500)
    open_long_3_down_3_points(h)
    h.trade(-150.0, side=SELL, size=1)                   # one of three closed, its position event not yet here
    assert h.engine.status(ACC).open_pnl == -300.0
    h.position(ES, 2, avg=100.0)
    assert h.engine.status(ACC).open_pnl == -300.0       # the broker's position: 2 left, still −$300 open
    actions = h.quote(ES, last=96.0, bid=96.0, ask=96.0)  # 2 × −4 points = −$400 open, −$150 realized
    assert ActionKind.FLATTEN_ACCOUNT in [a.kind for a in actions] and h.engine.locks(ACC)


def test_a_lost_trade_delivered_by_reconciliation_after_the_position_is_not_subtracted_again() -> None:
    h = Harness(LIMIT_500)
    open_long_3_down_3_points(h)
    h.position(ES, 1, avg=100.0)       # two closed; their trade event was lost
    h.trade(-300.0, side=SELL, size=2)  # … and found by the reconciliation afterwards
    status = h.engine.status(ACC)
    assert (status.realized_pnl, status.open_pnl) == (-300.0, -150.0)
    actions = h.quote(ES, last=95.0, bid=95.0, ask=95.0)  # the last contract: −$250 open → −$550 in all
    assert ActionKind.FLATTEN_ACCOUNT in [a.kind for a in actions] and h.engine.locks(ACC)


def test_the_adjustment_survives_a_restart_and_ends_with_the_position_event() -> None:
    h = Harness(LIMIT_500)
    open_long_3_down_3_points(h)
    h.trade(-300.0, side=SELL, size=2)
    h.engine = Engine.restore(h.engine.snapshot(), h.config, h.clock, default_catalogue())
    assert h.engine.status(ACC).open_pnl == -150.0
    h.position(ES, 1, avg=100.0)
    assert h.engine.status(ACC).open_pnl == -150.0
    h.position(ES, 2, avg=100.0)                          # grew again: both contracts in the open P&L
    assert h.engine.status(ACC).open_pnl == -300.0


def test_an_opening_fill_changes_nothing() -> None:
    h = Harness(LIMIT_500)
    open_long_3_down_3_points(h)
    h.trade(None, side=OrderSide.BID, size=1)            # a buy adding to the long: no P&L, no adjustment
    assert h.engine.status(ACC).open_pnl == -450.0
