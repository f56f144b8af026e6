"""Account state, applied once per event before any rule looks at it (the seeds' MOD-005…009).

Positions (direction only from `type`), working orders, trades de-duplicated by id, realized P&L
and fees per trading day, open P&L from the latest quote, rolling trade counters, balances for
RULE-014. Only the engine mutates it; rules read it. Everything here round-trips through JSON
(`to_json`/`from_json`) so the daemon can persist and restore it exactly.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from datetime import date
from enum import IntEnum
from typing import Any

from risk_manager.domain import (
    STOP_ORDER_TYPES,
    WORKING_ORDER_STATUSES,
    Account,
    Order,
    OrderStatus,
    Position,
    PositionType,
    Trade,
    UserEventAction,
)
from risk_manager.engine.actions import Lock, LockKind
from risk_manager.engine.contracts import ContractInfo

ROLLING_WINDOW = 3600.0  # the longest rolling trade window (RULE-006 per_hour)
KEEP_DAYS = 7            # trading days of P&L kept for the dashboard and snapshots


class ChangeKind(IntEnum):
    POSITION = 1
    ORDER = 2
    TRADE = 3
    ACCOUNT = 4
    QUOTE = 5
    TIMER = 6
    COMMAND = 7


@dataclass(slots=True)
class Change:
    """What one event did to one account: the input of the lock check and the rules."""

    kind: ChangeKind
    key: str                        # content key of the event (idempotency keys are built on it) …
    contract_id: str | None = None
    opened: bool = False            # a position went 0 → >0 (or reversed through zero)
    grew: bool = False              # a position opened, grew or reversed
    closed: bool = False            # a position went to 0
    shrank: bool = False            # a position got smaller (but stays open)
    order_appeared: Order | None = None  # an order became working
    trade: Trade | None = None      # a trade counted for the first time
    unreflected: bool = False       # … that closed contracts its position still shows (open P&L to redo)
    can_trade_lost: bool = False
    can_trade_back: bool = False
    damaged: str = ""               # a field of the event that was not a finite number (ignored)
    quote_key: tuple[str, float | None, float] | None = None  # … or, for quotes, its parts (formatted lazily)
    occurrence: tuple[int, int] = (0, 0)  # (growth_seq, last fill id) of the position concerned (docs/rules.md)

    @property
    def cause(self) -> str:
        """The content key of the causing event; for a quote `quote:<contract>:<timestamp>:<price>:<growth>`."""
        if self.quote_key is not None and not self.key:
            cid, stamp, price = self.quote_key
            growth, fill = self.occurrence
            self.key = f"quote:{cid}:{'' if stamp is None else repr(stamp)}:{price:.10g}:{growth}:{fill}"
        return self.key


@dataclass(slots=True)
class PositionState:
    contract_id: str
    position_id: int
    type: PositionType
    size: int
    average_price: float
    symbol: str | None              # None: no contract metadata (fail-closed, see engine)
    opened_at: float                # POSIX seconds, engine clock
    grown_at: float
    stop_lost_at: float = 0.0       # a protecting stop went away (not filled) while open
    growth_seq: int = 0             # account-wide counter: which position grew last
    best_price: float | None = None  # best price since entry (RULE-012 trailing)
    open_pnl: float | None = None   # None until priced (or without metadata)
    best_moved: bool = False        # transient: the last mark set a new best price (not persisted)
    # A closing fill's P&L is realized when its trade event arrives; the position event that takes the
    # contracts off may come before or after it. Until it comes, `unreflected` contracts are already
    # realized and left out of the open P&L (else the loss counts twice). `shrink_credit`: contracts the
    # position events took off whose closing trades have not arrived yet (position before trade, or a
    # lost trade that a reconciliation delivers later) — those trades are reflected already.
    unreflected: int = 0
    shrink_credit: int = 0

    @property
    def signed_size(self) -> int:
        if self.type == PositionType.LONG:
            return self.size
        if self.type == PositionType.SHORT:
            return -self.size
        return 0

    def to_json(self) -> dict[str, Any]:
        return {"contract_id": self.contract_id, "position_id": self.position_id, "type": int(self.type),
                "size": self.size, "average_price": self.average_price, "symbol": self.symbol,
                "opened_at": self.opened_at, "grown_at": self.grown_at, "stop_lost_at": self.stop_lost_at,
                "growth_seq": self.growth_seq, "best_price": self.best_price, "open_pnl": self.open_pnl,
                "unreflected": self.unreflected, "shrink_credit": self.shrink_credit}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> PositionState:
        return cls(contract_id=d["contract_id"], position_id=d["position_id"], type=PositionType(d["type"]),
                   size=d["size"], average_price=d["average_price"], symbol=d["symbol"], opened_at=d["opened_at"],
                   grown_at=d["grown_at"], stop_lost_at=d["stop_lost_at"], growth_seq=d["growth_seq"],
                   best_price=d["best_price"], open_pnl=d["open_pnl"], unreflected=d.get("unreflected", 0),
                   shrink_credit=d.get("shrink_credit", 0))


@dataclass(slots=True)
class DayTotals:
    realized: float = 0.0   # sum of profitAndLoss
    fees: float = 0.0       # fees of every counted fill, opening fills included
    trades: int = 0         # counted fills

    def to_json(self) -> list[float]:
        return [self.realized, self.fees, self.trades]


_NO_TRADES = DayTotals()


def _memo_contract(key: str) -> str:
    """The contract of an idempotency key `kind|account|rules|contract|cause…` (after any `answered|`)."""
    parts = key.removeprefix("answered|").split("|")
    return parts[3] if len(parts) > 3 else ""


def is_stop_for(order: Order, position: PositionState) -> bool:
    """A working stop (types 3/4/5) on the side that closes `position` (rules.md § Stop order)."""
    return (order.type in STOP_ORDER_TYPES and order.contract_id == position.contract_id
            and order.status in WORKING_ORDER_STATUSES and position.size > 0
            and order.side == position.type.closing_side)


def stop_coverage(orders: dict[int, Order], position: PositionState) -> int:
    """Contracts of `position` covered by working stops on the closing side."""
    return sum(o.size for o in orders.values() if is_stop_for(o, position))


@dataclass(slots=True)
class AccountState:
    account_id: int
    name: str | None = None
    balance: float | None = None
    can_trade: bool | None = None
    positions: dict[str, PositionState] = field(default_factory=dict)
    orders: dict[int, Order] = field(default_factory=dict)           # working orders only
    trade_days: dict[int, str] = field(default_factory=dict)         # trade id → trading day (ISO)
    days: dict[str, DayTotals] = field(default_factory=dict)         # trading day (ISO) → totals
    trade_times: list[float] = field(default_factory=list)           # fill times, last hour, sorted
    loss_streak: int = 0
    first_balance: float | None = None
    eod_high: float | None = None
    day_high_balance: float | None = None
    locks: dict[tuple[LockKind, str | None], Lock] = field(default_factory=dict)
    alerts_disarmed: set[str] = field(default_factory=set)         # ladder keys that alerted (hysteresis)
    memo: dict[str, float] = field(default_factory=dict)             # action signature → emitted at
    growth_counter: int = 0
    can_trade_losses: int = 0       # how often canTrade went false: tells a new loss from the same one re-seen
    last_fill: dict[str, int] = field(default_factory=dict)         # contract → highest counted trade id
    open_pnl: float = 0.0          # sum over priced positions
    unpriced: int = 0              # open positions without a price or metadata
    flagged: set[str] = field(default_factory=set)                    # contracts already alerted as unknown

    # --- positions -------------------------------------------------------------------------------

    def occurrence(self, pos: PositionState) -> tuple[int, int]:
        """What tells this state of a position from an earlier one with the same id, size and side: its
        growth number (robust to a fill's trade and position events arriving in either order) and the
        highest fill id on its contract (broker-given, so a restart from an older snapshot, which may
        hand out a growth number again, still gives a new occurrence a new key)."""
        return pos.growth_seq, self.last_fill.get(pos.contract_id, 0)

    def apply_position(self, position: Position, action: UserEventAction, now: float,
                       info: ContractInfo | None, price: float | None, change: Change) -> None:
        cid = position.contract_id
        current = self.positions.get(cid)
        closing = action == UserEventAction.DELETE or position.size <= 0
        if closing:
            if current is not None:
                change.occurrence = self.occurrence(current)
                del self.positions[cid]
                change.closed = True
                self._reprice_total()
            return
        # A new type is a reversal through zero; a new id means the broker opened a new position
        # (we missed the close of the previous one): both start afresh.
        renewed = current is not None and (current.type != position.type or current.position_id != position.id)
        if current is None or renewed:
            self.growth_counter += 1
            current = PositionState(
                contract_id=cid, position_id=position.id, type=position.type, size=position.size,
                average_price=position.average_price, symbol=info.symbol if info is not None else None,
                opened_at=now, grown_at=now, growth_seq=self.growth_counter)
            self.positions[cid] = current
            change.opened = change.grew = True
        else:
            if position.size > current.size:
                self.growth_counter += 1
                current.growth_seq = self.growth_counter
                current.grown_at = now
                change.grew = True
            elif position.size < current.size:
                change.shrank = True
                taken_off = current.size - position.size
                current.shrink_credit += taken_off - min(taken_off, current.unreflected)
            # The broker's position after the fills sent before it: nothing realized is left in it any more.
            current.unreflected = 0
            current.size = position.size
            current.average_price = position.average_price
            current.position_id = position.id
        if info is not None and current.symbol is None:
            current.symbol = info.symbol
        change.occurrence = self.occurrence(current)
        self.mark(current, info, price)
        self._reprice_total()

    def mark(self, pos: PositionState, info: ContractInfo | None, price: float | None) -> None:
        """Open P&L of one position at `price` (None: unknown price or metadata)."""
        if info is None or price is None or pos.type not in (PositionType.LONG, PositionType.SHORT):
            pos.open_pnl = None
            return
        best = pos.best_price
        if pos.type == PositionType.LONG:
            ticks = (price - pos.average_price) / info.tick_size
            moved = best is None or price > best
        else:
            ticks = (pos.average_price - price) / info.tick_size
            moved = best is None or price < best
        if moved:
            pos.best_price = price
        pos.best_moved = moved
        # Money in cents, as the broker reports P&L: the raw float product carries noise (short CL 62.04 at
        # 62.16 is −119.99999999999744), which would miss a limit reached exactly (rules.md: ≤ −limit).
        pos.open_pnl = round(ticks * info.tick_value * (pos.size - pos.unreflected), 2)

    def _reprice_total(self) -> None:
        total, unpriced = 0.0, 0
        for pos in self.positions.values():
            if pos.open_pnl is None:
                unpriced += 1
            else:
                total += pos.open_pnl
        self.open_pnl = round(total, 2)   # a sum of cents, without the float noise of the addition
        self.unpriced = unpriced

    def reprice(self, contract_id: str, info: ContractInfo | None, price: float | None) -> bool:
        pos = self.positions.get(contract_id)
        if pos is None:
            return False
        self.mark(pos, info, price)
        self._reprice_total()
        return True

    # --- orders ----------------------------------------------------------------------------------

    def apply_order(self, order: Order, action: UserEventAction, now: float, change: Change) -> None:
        previous = self.orders.get(order.id)
        working = order.status in WORKING_ORDER_STATUSES and action != UserEventAction.DELETE
        if working:
            self.orders[order.id] = order
            if previous is None:
                change.order_appeared = order
            return
        if previous is None:
            return
        del self.orders[order.id]
        if order.status != OrderStatus.FILLED and previous.type in STOP_ORDER_TYPES:
            pos = self.positions.get(previous.contract_id)
            if pos is not None and previous.side == pos.type.closing_side:
                pos.stop_lost_at = now

    def only_reduces(self, order: Order) -> bool:
        """True when a working order can only reduce an open position: a protective stop, a take-profit,
        the market order of a close. It is on the closing side, and the closing-side orders together are
        no larger than the position (stops and the others counted apart, as OCO brackets pair them)."""
        pos = self.positions.get(order.contract_id)
        if pos is None or pos.type not in (PositionType.LONG, PositionType.SHORT):
            return False
        side = pos.type.closing_side
        if order.side != side:
            return False
        stops = others = 0
        for o in self.orders.values():
            if o.contract_id == order.contract_id and o.side == side:
                if o.type in STOP_ORDER_TYPES:
                    stops += o.size
                else:
                    others += o.size
        return stops <= pos.size and others <= pos.size

    def drop_orders_not_in(self, contract_id: str | None, open_ids: set[int], now: float) -> None:
        """Forget working orders the broker no longer lists (after an `Order/searchOpen`)."""
        for oid in [o.id for o in self.orders.values()
                    if (contract_id is None or o.contract_id == contract_id) and o.id not in open_ids]:
            gone = self.orders.pop(oid)
            pos = self.positions.get(gone.contract_id)
            if pos is not None and gone.type in STOP_ORDER_TYPES and gone.side == pos.type.closing_side:
                pos.stop_lost_at = now

    # --- trades ----------------------------------------------------------------------------------

    def apply_trade(self, trade: Trade, day: date, now: float, change: Change) -> None:
        """Count a fill once: voided fills are ignored, a repeated id changes nothing."""
        if trade.voided or trade.id in self.trade_days:
            return
        key = day.isoformat()
        self.trade_days[trade.id] = key
        if trade.id > self.last_fill.get(trade.contract_id, 0):
            self.last_fill[trade.contract_id] = trade.id
        totals = self.days.get(key)
        if totals is None:
            totals = self.days[key] = DayTotals()
        totals.trades += 1
        pnl, fees = trade.profit_and_loss, trade.fees
        if not math.isfinite(fees):
            fees, change.damaged = 0.0, f"trade {trade.id} fees"
        if pnl is not None and not math.isfinite(pnl):
            pnl, change.damaged = None, f"trade {trade.id} profitAndLoss"
        totals.fees += fees
        if pnl is not None:
            totals.realized += pnl
            self.loss_streak = self.loss_streak + 1 if pnl < 0 else 0
            pos = self.positions.get(trade.contract_id)
            if pos is not None and pos.type in (PositionType.LONG, PositionType.SHORT) \
                    and trade.side == pos.type.closing_side and trade.size > 0:
                reflected = min(trade.size, pos.shrink_credit)
                pos.shrink_credit -= reflected
                pos.unreflected = min(pos.size, pos.unreflected + trade.size - reflected)
                change.unreflected = trade.size > reflected
        ts = trade.creation_timestamp.timestamp()
        bisect.insort(self.trade_times, ts)
        cutoff = max(now, self.trade_times[-1]) - ROLLING_WINDOW
        if self.trade_times[0] <= cutoff:
            del self.trade_times[:bisect.bisect_right(self.trade_times, cutoff)]
        change.trade = trade

    def trades_since(self, since: float) -> int:
        return len(self.trade_times) - bisect.bisect_right(self.trade_times, since)

    def totals(self, day_key: str) -> DayTotals:
        """Counters of one trading day (ISO key); an empty (shared, read-only) record when none."""
        return self.days.get(day_key) or _NO_TRADES

    # --- account ---------------------------------------------------------------------------------

    def apply_account(self, account: Account, change: Change) -> None:
        self.name = account.name
        if self.can_trade is not False and not account.can_trade:
            change.can_trade_lost = True
            self.can_trade_losses += 1
        if self.can_trade is False and account.can_trade:
            change.can_trade_back = True
        self.can_trade = account.can_trade
        if not math.isfinite(account.balance):
            change.damaged = f"account {account.id} balance"
            return
        self.balance = account.balance
        if self.first_balance is None:
            self.first_balance = account.balance
        if self.day_high_balance is None or account.balance > self.day_high_balance:
            self.day_high_balance = account.balance

    def roll_day(self, new_day: date) -> None:
        """At the daily reset: end-of-day balance high, fresh day counters, prune old history."""
        if self.balance is not None:
            self.eod_high = self.balance if self.eod_high is None else max(self.eod_high, self.balance)
        self.day_high_balance = self.balance
        self.loss_streak = 0
        self.alerts_disarmed.clear()
        keep = {(new_day.toordinal() - i) for i in range(KEEP_DAYS)}
        self.days = {k: v for k, v in self.days.items() if date.fromisoformat(k).toordinal() in keep}
        recent = {(new_day.toordinal() - i) for i in range(2)}
        self.trade_days = {t: d for t, d in self.trade_days.items() if date.fromisoformat(d).toordinal() in recent}
        # Enforcement memory: "same request within RETRY_AFTER" entries are stale by now; one-shot
        # timer requests (check_stops, place_stop, modify_stop) are kept while their position is open.
        self.memo = {k: v for k, v in self.memo.items()
                     if not k.startswith("sig|") and _memo_contract(k) in self.positions}

    # --- snapshot --------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id, "name": self.name, "balance": self.balance, "can_trade": self.can_trade,
            "positions": [p.to_json() for p in self.positions.values()],
            "orders": [o.to_wire() for o in self.orders.values()],
            "trade_days": [[t, d] for t, d in self.trade_days.items()],
            "days": {k: v.to_json() for k, v in self.days.items()},
            "trade_times": list(self.trade_times), "loss_streak": self.loss_streak,
            "first_balance": self.first_balance, "eod_high": self.eod_high,
            "day_high_balance": self.day_high_balance,
            "locks": [lock.to_json() for lock in self.locks.values()],
            "alerts_disarmed": sorted(self.alerts_disarmed), "memo": dict(self.memo),
            "growth_counter": self.growth_counter, "flagged": sorted(self.flagged),
            "can_trade_losses": self.can_trade_losses, "last_fill": dict(self.last_fill),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> AccountState:
        state = cls(
            account_id=d["account_id"], name=d["name"], balance=d["balance"], can_trade=d["can_trade"],
            positions={p["contract_id"]: PositionState.from_json(p) for p in d["positions"]},
            orders={o["id"]: Order.from_wire(o) for o in d["orders"]},
            trade_days={int(t): str(day) for t, day in d["trade_days"]},
            days={k: DayTotals(v[0], v[1], int(v[2])) for k, v in d["days"].items()},
            trade_times=[float(t) for t in d["trade_times"]], loss_streak=d["loss_streak"],
            first_balance=d["first_balance"], eod_high=d["eod_high"], day_high_balance=d["day_high_balance"],
            alerts_disarmed=set(d["alerts_disarmed"]),
            memo={k: float(v) for k, v in d["memo"].items()}, growth_counter=d["growth_counter"],
            can_trade_losses=d.get("can_trade_losses", 0),
            last_fill={str(c): int(t) for c, t in d.get("last_fill", {}).items()},
            flagged=set(d["flagged"]),
        )
        for raw in d["locks"]:
            lock = Lock.from_json(raw)
            state.locks[(lock.kind, lock.symbol)] = lock
        state._reprice_total()
        return state
