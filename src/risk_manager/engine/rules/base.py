"""What every rule shares: the read-only context, measures for the dashboard, action builders.

A rule is a small class holding its config block. `evaluate(ctx, account, change)` reads state
and returns actions; it never mutates state (the engine does the bookkeeping of what was sent).
`measures()` gives the rule's current value against its limit (dashboard bars, alerts ladder).
Timer-driven rules also implement `deadline()` and `on_time()`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import ClassVar, Generic, NamedTuple, TypeVar

from risk_manager.engine.actions import Action, ActionKind, AlertLevel, Lock, LockKind, make_key
from risk_manager.engine.calendar import SessionBook, TradingCalendar
from risk_manager.engine.config import RiskConfig, RuleConfig
from risk_manager.engine.contracts import ContractBook
from risk_manager.engine.state import AccountState, Change, ChangeKind, PositionState

C = TypeVar("C", bound=RuleConfig)


class Measure(NamedTuple):
    """A rule's current value against its limit. `fraction` is how much of the limit is used."""

    rule_id: str
    label: str
    value: float
    limit: float
    fraction: float
    contract_id: str | None = None


class RuleContext:
    """Read-only view of the engine for rules: config, clock reading, calendar, metadata, prices."""

    def __init__(self, config: RiskConfig, contracts: ContractBook, calendar: TradingCalendar,
                 sessions: SessionBook | None, prices: dict[str, float]) -> None:
        self.config = config
        self.contracts = contracts
        self.calendar = calendar
        self.sessions = sessions
        self.prices = prices
        self.now = 0.0
        self._now_dt: datetime | None = None
        self._today_key = ""
        # Bumped by the engine for every (account, change) evaluation: lets a rule reuse, in `usage`,
        # the value its `evaluate` just computed for the same account (state cannot change in between).
        self.serial = 0

    def set_now(self, now: float) -> None:
        if now != self.now:
            self.now = now
            self._now_dt = None
            self._today_key = ""

    @property
    def now_dt(self) -> datetime:
        if self._now_dt is None:
            self._now_dt = datetime.fromtimestamp(self.now, UTC)
        return self._now_dt

    def today(self) -> date:
        return self.calendar.trading_day(self.now)

    def today_key(self) -> str:
        """The current trading day as an ISO key (what per-day counters are stored under)."""
        if not self._today_key:
            self._today_key = self.calendar.trading_day_key(self.now)
        return self._today_key

    def next_reset_dt(self) -> datetime:
        return datetime.fromtimestamp(self.calendar.next_reset(self.now), UTC)


def latched(account: AccountState, rule_id: str, symbol: str | None = None) -> bool:
    """True while a lock this rule imposed holds: the breach is being enforced, do not fire again."""
    if not account.locks:
        return False
    return any(rule_id in lock.rules and lock.symbol == symbol for lock in account.locks.values())


def alert(account_id: int, rule_id: str, cause: str, message: str, level: AlertLevel = AlertLevel.WARNING,
          contract_id: str | None = None, detail: str = "") -> Action:
    return Action(ActionKind.ALERT, account_id, (rule_id,),
                  make_key(ActionKind.ALERT, account_id, (rule_id,), contract_id, cause, detail),
                  contract_id=contract_id, message=message, level=level)


def close(account_id: int, rule_id: str, cause: str, pos: PositionState) -> Action:
    return Action(ActionKind.CLOSE_POSITION, account_id, (rule_id,),
                  make_key(ActionKind.CLOSE_POSITION, account_id, (rule_id,), pos.contract_id, cause),
                  contract_id=pos.contract_id, symbol=pos.symbol)


def reduce(account_id: int, rule_id: str, cause: str, pos: PositionState, to_size: int) -> Action:
    if to_size <= 0:
        return close(account_id, rule_id, cause, pos)
    return Action(ActionKind.REDUCE_POSITION, account_id, (rule_id,),
                  make_key(ActionKind.REDUCE_POSITION, account_id, (rule_id,), pos.contract_id, cause, str(to_size)),
                  contract_id=pos.contract_id, size=to_size, symbol=pos.symbol)


def cancel(account_id: int, rule_id: str, cause: str, contract_id: str | None = None,
           order_id: int | None = None) -> Action:
    return Action(ActionKind.CANCEL_ORDERS, account_id, (rule_id,),
                  make_key(ActionKind.CANCEL_ORDERS, account_id, (rule_id,), contract_id, cause,
                           str(order_id) if order_id is not None else ""),
                  contract_id=contract_id, order_id=order_id)


def flatten(account_id: int, rule_id: str, cause: str) -> Action:
    return Action(ActionKind.FLATTEN_ACCOUNT, account_id, (rule_id,),
                  make_key(ActionKind.FLATTEN_ACCOUNT, account_id, (rule_id,), None, cause))


def lock(ctx: RuleContext, account_id: int, rule_id: str, cause: str, kind: LockKind, until: datetime | None,
         reason: str, *, flatten_positions: bool, symbol: str | None = None) -> Action:
    the_lock = Lock(account_id=account_id, kind=kind, reason=reason, start=ctx.now_dt, until=until,
                    symbol=symbol, rules=(rule_id,), flatten=flatten_positions)
    return Action(ActionKind.LOCK, account_id, (rule_id,),
                  make_key(ActionKind.LOCK, account_id, (rule_id,), None, cause, f"{kind.value}:{symbol or '*'}"),
                  lock=the_lock, message=reason, symbol=symbol)


def lock_and_flatten(ctx: RuleContext, account_id: int, rule_id: str, cause: str, kind: LockKind,
                     until: datetime | None, reason: str, *, flatten_positions: bool = True) -> list[Action]:
    """The hard-stop response: lock, cancel every order, flatten, and say why."""
    out = [lock(ctx, account_id, rule_id, cause, kind, until, reason, flatten_positions=flatten_positions)]
    if flatten_positions:
        out.append(cancel(account_id, rule_id, cause))
        out.append(flatten(account_id, rule_id, cause))
    out.append(alert(account_id, rule_id, cause, reason, AlertLevel.CRITICAL))
    return out


def cooldown_until(ctx: RuleContext, trade_time: datetime, cooldown: timedelta) -> datetime | None:
    """A cooldown runs from the fill that caused it (never from the future); None when already over —
    e.g. old fills replayed by a start-up reconciliation do not lock the account now."""
    until = min(trade_time, ctx.now_dt) + cooldown
    return until if until > ctx.now_dt else None


def money(value: float) -> str:
    return f"-${-value:,.2f}" if value < 0 else f"${value:,.2f}"


class Rule(Generic[C]):
    rule_id: ClassVar[str]
    name: ClassVar[str]
    triggers: ClassVar[frozenset[ChangeKind]] = frozenset()
    timed: ClassVar[bool] = False

    def __init__(self, config: C) -> None:
        self.config = config

    def evaluate(self, ctx: RuleContext, account: AccountState, change: Change) -> list[Action]:
        return []

    def measures(self, ctx: RuleContext, account: AccountState) -> list[Measure]:
        return []

    def usage(self, ctx: RuleContext, account: AccountState) -> float | None:
        """The largest fraction of a limit in use, or None when the rule cannot say it cheaply
        (the alerts ladder then reads `measures`). Rules with one measure override it: it keeps the
        ladder off the hot path while nothing is near a limit."""
        return None

    def deadline(self, ctx: RuleContext, account: AccountState) -> float | None:
        """The next instant `on_time` has work for this account (timer-driven rules)."""
        return None

    def on_time(self, ctx: RuleContext, account: AccountState) -> list[Action]:
        return []


def fraction(used: float, limit: float) -> float:
    return used / limit if limit > 0 else (1.0 if used > 0 else 0.0)
