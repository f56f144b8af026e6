"""The oracle against hand-made histories: no daemon, no simulator — just the broker's truth as events."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from risk_manager.chaos.oracle import (
    RECONCILE_PATH,
    History,
    OracleConfigError,
    TruthEvent,
    TruthQuote,
    TruthRequest,
    Window,
    judge,
)
from risk_manager.domain import (
    Account,
    AccountEvent,
    Order,
    OrderEvent,
    OrderSide,
    OrderStatus,
    OrderType,
    Position,
    PositionEvent,
    PositionType,
    Trade,
    TradeEvent,
    UserEvent,
)

T0 = datetime(2026, 3, 3, 15, 0, tzinfo=UTC)
ES = "CON.F.US.EP.Z26"     # tick 0.25, $12.50
NQ = "CON.F.US.ENQ.Z26"
ACC = 1001


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@dataclass
class Book:
    """Writes a history as the simulator's broker would emit it: order → trade → position."""

    rules: dict[str, Any]
    events: list[TruthEvent] = field(default_factory=list)
    requests: list[TruthRequest] = field(default_factory=list)
    signed: dict[str, int] = field(default_factory=dict)
    avg: dict[str, float] = field(default_factory=dict)
    next_id: int = 1
    delivered: bool = True

    def emit(self, when: float, event: UserEvent) -> None:
        self.events.append(TruthEvent(at(when), event, self.delivered, len(self.requests)))

    def fill(self, when: float, contract: str, qty: int, price: float, tag: str | None = "t-1",
             pnl: float | None = None, fees: float = 0.0) -> None:
        """A filled order of `qty` (positive buy, negative sell) and the resulting position."""
        oid = self.next_id
        self.next_id += 1
        side = OrderSide.BID if qty > 0 else OrderSide.ASK
        order = Order(oid, ACC, contract, at(when), OrderStatus.FILLED, OrderType.MARKET, side, abs(qty),
                      fill_volume=abs(qty), custom_tag=tag)
        self.emit(when, OrderEvent(order))
        self.emit(when, TradeEvent(Trade(oid + 5000, ACC, contract, at(when), price, pnl, fees, side, abs(qty),
                                         False, oid)))
        before = self.signed.get(contract, 0)
        after = before + qty
        if before == 0 or (before > 0) == (qty > 0):
            self.avg[contract] = price
        self.signed[contract] = after
        ptype = PositionType.LONG if after > 0 else PositionType.SHORT if after < 0 else PositionType.UNDEFINED
        self.emit(when, PositionEvent(Position(7, ACC, contract, at(when), ptype, abs(after), self.avg[contract])))

    def working(self, when: float, oid: int, contract: str, qty: int, status: OrderStatus = OrderStatus.OPEN,
                tag: str = "t-9") -> None:
        side = OrderSide.BID if qty > 0 else OrderSide.ASK
        self.emit(when, OrderEvent(Order(oid, ACC, contract, at(when), status, OrderType.LIMIT, side, abs(qty),
                                         limit_price=1.0, custom_tag=tag)))

    def can_trade(self, when: float, value: bool) -> None:
        self.emit(when, AccountEvent(Account(ACC, "A", 50_000.0, value)))

    def reconcile(self, when: float) -> None:
        self.requests.append(TruthRequest(len(self.requests), RECONCILE_PATH, ACC, 200, at(when)))

    def history(self, end: float, **extra: Any) -> History:
        checkpoints = sorted({e.at for e in self.events} | {at(end)})
        return History(rules=self.rules, accounts=[ACC], events=self.events, requests=self.requests,
                       checkpoints=checkpoints, **extra)


MAX3 = {"max_contracts": {"enabled": True, "limit": 3}}


def test_breach_enforced_at_once_is_clean() -> None:
    book = Book(MAX3)
    book.fill(1, ES, 4, 6800.0)
    book.fill(1, ES, -1, 6800.0, tag=None, pnl=0.0)       # the daemon's reduce, same virtual instant
    result = judge(book.history(end=30))
    assert result.clean, result.violations
    assert result.breaches == 0   # resolved within the instant: never seen at a checkpoint


def test_breach_enforced_within_a_second_is_clean() -> None:
    book = Book(MAX3)
    book.fill(1, ES, 4, 6800.0)
    book.fill(1.8, ES, -1, 6800.0, tag=None, pnl=0.0)
    result = judge(book.history(end=30))
    assert result.clean, result.violations
    assert result.breaches == 1


def test_breach_enforced_late_is_a_violation() -> None:
    book = Book(MAX3)
    book.fill(1, ES, 4, 6800.0)
    book.fill(2.5, ES, -1, 6800.0, tag=None, pnl=0.0)
    result = judge(book.history(end=30))
    [violation] = result.violations
    assert violation.kind == "missed_breach"
    assert violation.account == ACC
    assert violation.at == at(1)
    assert "4 contracts open, limit 3" in violation.detail


def test_breach_never_enforced_is_a_violation_at_the_end() -> None:
    book = Book(MAX3)
    book.fill(1, ES, 4, 6800.0)
    [violation] = judge(book.history(end=10)).violations
    assert violation.kind == "missed_breach"


def test_breach_after_the_end_of_the_run_is_not_judged() -> None:
    book = Book(MAX3)
    book.fill(10, ES, 4, 6800.0)
    result = judge(book.history(end=10.5))
    assert result.clean
    assert result.unjudged == 1


def test_a_lost_event_is_due_one_second_after_the_reconciliation_that_finds_it() -> None:
    book = Book(MAX3)
    book.delivered = False                 # dropped on the user hub
    book.fill(1, ES, 4, 6800.0)
    book.delivered = True
    book.can_trade(6, True)                # a later, unrelated event still arrives
    book.reconcile(8)                      # the reconciliation after a gap finds the position
    book.fill(8.5, ES, -1, 6800.0, tag=None, pnl=0.0)
    assert judge(book.history(end=30)).clean

    late = Book(MAX3)
    late.delivered = False
    late.fill(1, ES, 4, 6800.0)
    late.delivered = True
    late.reconcile(8)
    late.fill(9.5, ES, -1, 6800.0, tag=None, pnl=0.0)
    late.can_trade(9.5, True)
    [violation] = judge(late.history(end=30)).violations
    assert "could know of it at " + at(8).isoformat() in violation.detail


def test_a_rest_cut_delays_the_deadline_to_its_end() -> None:
    book = Book(MAX3)
    book.fill(1, ES, 4, 6800.0)
    book.fill(5.5, ES, -1, 6800.0, tag=None, pnl=0.0)
    assert judge(book.history(end=30, rest_cuts=[Window(at(0.5), at(5))])).clean
    assert not judge(book.history(end=30)).clean


def test_a_close_that_flips_the_position_is_a_violation() -> None:
    book = Book({})
    book.fill(1, ES, 2, 6800.0)
    book.fill(2, ES, -3, 6801.0, tag=None, pnl=25.0)    # an untagged (daemon) order took it short
    [violation] = judge(book.history(end=5)).violations
    assert violation.kind == "flipped_position"
    assert "+2 to -1" in violation.detail


def test_the_trader_may_reverse_a_position() -> None:
    book = Book({})
    book.fill(1, ES, 2, 6800.0)
    book.fill(2, ES, -3, 6801.0, tag="t-2", pnl=25.0)
    assert judge(book.history(end=5)).clean


def test_duplicate_orders_429s_and_crashes_are_violations() -> None:
    history = Book({}).history(end=1, duplicate_orders=["place account 1001 tag 'rm-1'"], http_429=3,
                               injected_429=2, crash="ReplayError: the system did not go quiet")
    kinds = sorted(v.kind for v in judge(history).violations)
    assert kinds == ["crash", "duplicate_order", "http_429"]
    assert judge(Book({}).history(end=1, http_429=2, injected_429=2)).clean


def test_a_daily_loss_locks_the_account_for_the_rest_of_the_day() -> None:
    book = Book({"daily_realized_loss": {"enabled": True, "loss_limit": 500, "include_unrealized": False}})
    book.fill(1, ES, 2, 6800.0)
    book.fill(2, ES, -2, 6790.0, tag="t-2", pnl=-500.0)   # the trader closes at a loss: −500 reaches the limit
    book.fill(60, NQ, 1, 25000.0, tag="t-3")              # a new position, an hour before the reset
    book.fill(60.5, NQ, -1, 25000.0, tag=None, pnl=0.0)   # closed by the daemon in time
    book.working(70, 77, ES, 1)                           # a resting order while locked…
    book.working(70.2, 77, ES, 1, OrderStatus.CANCELLED)  # …cancelled in time
    book.fill(80, NQ, 1, 25000.0, tag="t-4")              # never closed
    [violation] = judge(book.history(end=100)).violations
    assert violation.at == at(80)
    assert "while locked by RULE-003" in violation.detail


def test_an_order_that_can_only_reduce_is_allowed_while_locked() -> None:
    book = Book({"auth_loss_guard": {"enabled": True}})
    book.fill(1, ES, 2, 6800.0)
    book.working(1, 50, ES, -2)                  # the trader's protective stop
    book.can_trade(3, False)
    book.fill(3, ES, -2, 6800.0, tag=None, pnl=0.0)  # the daemon flattens; the stop now could open a short
    book.working(3.4, 50, ES, -2, OrderStatus.CANCELLED)
    assert judge(book.history(end=10)).clean


def test_open_pnl_breach_waits_for_a_delivered_quote() -> None:
    rules = {"daily_unrealized_loss": {"enabled": True, "loss_limit": 100}}
    book = Book(rules)
    book.fill(1, ES, 1, 6800.0)
    quotes = [TruthQuote(at(0), ES, 6800.0), TruthQuote(at(2), ES, 6790.0), TruthQuote(at(6), ES, 6789.0)]
    book.fill(6.5, ES, -1, 6789.0, tag=None, pnl=-137.5)
    # The quote at 2 s (−$500) was dropped on the market hub: the daemon sees the price at 6 s.
    assert judge(book.history(end=20, quotes=quotes, market_drops=[at(2)])).clean
    [violation] = judge(book.history(end=20, quotes=quotes)).violations
    assert "open P&L -500.00" in violation.detail


def test_cooldown_after_a_losing_trade() -> None:
    book = Book({"cooldown_after_loss": {"enabled": True, "tiers": [{"loss": 100, "cooldown": "2m"}]}})
    book.fill(1, ES, 1, 6800.0)
    book.fill(2, ES, -1, 6790.0, tag="t-2", pnl=-125.0)
    book.fill(30, ES, 1, 6790.0, tag="t-3")     # inside the cooldown, never closed
    book.fill(200, ES, -1, 6790.0, tag="t-4", pnl=0.0)
    book.fill(200, ES, 1, 6790.0, tag="t-5")    # after the cooldown: allowed
    [violation] = judge(book.history(end=300)).violations
    assert violation.at == at(30)


def test_a_rule_the_oracle_does_not_model_is_refused() -> None:
    with pytest.raises(OracleConfigError, match="session_block_outside"):
        judge(Book({"session_block_outside": {"enabled": True}}).history(end=1))
