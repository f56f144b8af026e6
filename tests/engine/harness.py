"""A small driver for engine tests: builds domain events and runs them through an Engine on a VirtualClock."""

from __future__ import annotations

import itertools
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

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
    Quote,
    QuoteEvent,
    Trade,
    TradeEvent,
    VirtualClock,
    default_catalogue,
)
from risk_manager.engine import Action, ActionKind, Engine, RiskConfig

# Tuesday 2026-03-03 09:00 America/Chicago (CST, UTC−6): inside the default 08:30–15:00 session.
T0 = datetime(2026, 3, 3, 15, 0, tzinfo=UTC)
ES = "CON.F.US.EP.Z26"       # tick 0.25 = $12.50
MES = "CON.F.US.MES.Z26"     # tick 0.25 = $1.25, micro of ES
MNQ = "CON.F.US.MNQ.Z26"     # tick 0.25 = $0.50, micro of NQ
NQ = "CON.F.US.ENQ.Z26"      # tick 0.25 = $5
RTY = "CON.F.US.RTY.Z26"
CL = "CON.F.US.CLE.F27"
ACC = 1001
LONG, SHORT = PositionType.LONG, PositionType.SHORT


class Harness:
    def __init__(self, rules: dict[str, Any] | None = None, start: datetime = T0, **top: Any) -> None:
        self.clock = VirtualClock(start)
        self.config = RiskConfig.model_validate({"rules": rules or {}, **top})
        self.engine = Engine(self.config, self.clock, default_catalogue())
        self._ids = itertools.count(1)
        self.log: list[Action] = []

    def _run(self, event: Any) -> list[Action]:
        actions = self.engine.handle(event)
        self.log.extend(actions)
        return actions

    def position(self, contract: str, size: int, type_: PositionType = LONG, avg: float = 100.0,
                 account: int = ACC, pid: int | None = None) -> list[Action]:
        pid = pid if pid is not None else zlib.crc32(f"{account}:{contract}".encode()) % 100000
        return self._run(PositionEvent(Position(pid, account, contract, self.clock.now(), type_, size, avg)))

    def order(self, contract: str, side: OrderSide, type_: OrderType = OrderType.LIMIT, size: int = 1,
              status: OrderStatus = OrderStatus.OPEN, oid: int | None = None, stop: float | None = None,
              account: int = ACC) -> tuple[int, list[Action]]:
        oid = oid if oid is not None else next(self._ids) + 5000
        order = Order(oid, account, contract, self.clock.now(), status, type_, side, size, stop_price=stop,
                      limit_price=None if type_ != OrderType.LIMIT else 100.0)
        return oid, self._run(OrderEvent(order))

    def stop(self, contract: str, side: OrderSide, price: float, size: int = 1, oid: int | None = None,
             status: OrderStatus = OrderStatus.OPEN) -> tuple[int, list[Action]]:
        return self.order(contract, side, OrderType.STOP, size, status, oid, price)

    def trade(self, pnl: float | None, contract: str = ES, fees: float = 0.0, tid: int | None = None,
              voided: bool = False, account: int = ACC, size: int = 1, at: datetime | None = None,
              side: OrderSide = OrderSide.BID) -> list[Action]:
        tid = tid if tid is not None else next(self._ids)
        trade = Trade(tid, account, contract, at or self.clock.now(), 100.0, pnl, fees, side, size, voided,
                      tid + 90000)
        return self._run(TradeEvent(trade))

    def quote(self, contract: str, last: float | None = None, bid: float | None = None,
              ask: float | None = None) -> list[Action]:
        return self._run(QuoteEvent(contract, Quote(last_price=last, best_bid=bid, best_ask=ask,
                                                    timestamp=self.clock.now())))

    def account(self, balance: float = 50_000.0, can_trade: bool = True, account: int = ACC) -> list[Action]:
        return self._run(AccountEvent(Account(account, f"PRAC-{account}", balance, can_trade)))

    def command(self, cmd: Any) -> list[Action]:
        return self._run(cmd)

    def advance(self, seconds: float) -> list[Action]:
        self.clock.advance(timedelta(seconds=seconds))
        actions = self.engine.on_time()
        self.log.extend(actions)
        return actions

    def advance_to(self, when: datetime) -> list[Action]:
        self.clock.set(when)
        actions = self.engine.on_time()
        self.log.extend(actions)
        return actions


def kinds(actions: list[Action]) -> list[str]:
    return [a.kind.value for a in actions]


def of(actions: list[Action], kind: ActionKind) -> list[Action]:
    return [a for a in actions if a.kind is kind]


def one(actions: list[Action], kind: ActionKind) -> Action:
    found = of(actions, kind)
    assert len(found) == 1, f"expected one {kind.value}, got {kinds(actions)}"
    return found[0]
