"""What the engine asks enforcement to do: actions, locks, and the merging of one event's actions."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from risk_manager.domain.wire import format_time, parse_time


class ActionKind(StrEnum):
    CLOSE_POSITION = "close_position"
    REDUCE_POSITION = "reduce_position"
    FLATTEN_ACCOUNT = "flatten_account"
    CANCEL_ORDERS = "cancel_orders"
    LOCK = "lock"
    MODIFY_STOP = "modify_stop"
    PLACE_STOP = "place_stop"
    ALERT = "alert"
    # Beyond rules.md's table: RULE-008 asks the daemon to run Order/searchOpen and answer with
    # a `StopsChecked` command; `unlock` records a lock that ended by an admin's hand (audit log).
    CHECK_STOPS = "check_stops"
    UNLOCK = "unlock"


class LockKind(StrEnum):
    UNTIL_RESET = "until_reset"
    UNTIL_SESSION = "until_session"
    COOLDOWN = "cooldown"
    UNTIL_CAN_TRADE = "until_can_trade"
    SYMBOL = "symbol"
    MANUAL = "manual"


class AlertLevel(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True, slots=True)
class Lock:
    """An account lock (or a lock of one symbol of the account when `symbol` is set).

    `until` is None for locks that end on a condition (`until_can_trade`, `symbol`). `flatten`
    says the lock was imposed with a flatten: open positions are closed while it holds.
    """

    account_id: int
    kind: LockKind
    reason: str
    start: datetime
    until: datetime | None = None
    symbol: str | None = None
    rules: tuple[str, ...] = ()
    flatten: bool = False
    by: str = "engine"

    @property
    def ends(self) -> str:
        """When the lock ends, in words for the dashboard: a time or the condition that ends it."""
        if self.until is not None:
            return format_time(self.until)
        if self.kind is LockKind.UNTIL_CAN_TRADE:
            return "when the broker reports canTrade: true"
        if self.kind is LockKind.SYMBOL:
            return f"when {self.symbol} leaves the block list"
        return "when no further session opens within a year" if self.kind is LockKind.UNTIL_SESSION else "never"

    def applies_to(self, symbol: str | None) -> bool:
        return self.symbol is None or (symbol is not None and symbol.upper() == self.symbol)

    def to_json(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id, "kind": self.kind.value, "reason": self.reason,
            "start": format_time(self.start), "until": None if self.until is None else format_time(self.until),
            "symbol": self.symbol, "rules": list(self.rules), "flatten": self.flatten, "by": self.by,
            "ends": self.ends,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Lock:
        return cls(
            account_id=int(data["account_id"]), kind=LockKind(data["kind"]), reason=str(data["reason"]),
            start=parse_time(data["start"]), until=None if data["until"] is None else parse_time(data["until"]),
            symbol=data["symbol"], rules=tuple(data["rules"]), flatten=bool(data["flatten"]), by=str(data["by"]),
        )


@dataclass(frozen=True, slots=True)
class Action:
    """One request to enforcement. `idempotency_key` is deterministic from the causing event's content."""

    kind: ActionKind
    account_id: int
    rules: tuple[str, ...]
    idempotency_key: str
    contract_id: str | None = None
    size: int | None = None          # reduce_position: the target size; place_stop: the stop's size
    price: float | None = None       # modify_stop / place_stop: the stop price
    order_id: int | None = None      # modify_stop: the stop; cancel_orders: only this order when set
    side: int | None = None          # place_stop: OrderSide value of the stop (closing side)
    lock: Lock | None = None
    message: str | None = None
    level: AlertLevel | None = None
    symbol: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value, "account_id": self.account_id, "rules": list(self.rules),
            "idempotency_key": self.idempotency_key, "contract_id": self.contract_id, "size": self.size,
            "price": self.price, "order_id": self.order_id, "side": self.side,
            "lock": None if self.lock is None else self.lock.to_json(), "message": self.message,
            "level": None if self.level is None else self.level.value, "symbol": self.symbol,
        }


def make_key(kind: ActionKind, account_id: int, rules: Iterable[str], contract_id: str | None, cause: str,
             detail: str = "") -> str:
    """`kind|account|rules|contract|cause[|detail]`: the same breach seen again gives the same key."""
    key = f"{kind.value}|{account_id}|{'+'.join(sorted(set(rules)))}|{contract_id or '-'}|{cause}"
    return f"{key}|{detail}" if detail else key


def _rekey(action: Action, rules: tuple[str, ...]) -> Action:
    """`action` carrying `rules`, its key rebuilt so the rule list in it stays truthful."""
    parts = action.idempotency_key.split("|")
    if len(parts) >= 5:
        parts[2] = "+".join(rules)
    return replace(action, rules=rules, idempotency_key="|".join(parts))


_ORDER = {k: i for i, k in enumerate((
    ActionKind.LOCK, ActionKind.UNLOCK, ActionKind.CANCEL_ORDERS, ActionKind.FLATTEN_ACCOUNT,
    ActionKind.CLOSE_POSITION, ActionKind.REDUCE_POSITION, ActionKind.MODIFY_STOP, ActionKind.PLACE_STOP,
    ActionKind.CHECK_STOPS, ActionKind.ALERT))}


def _merge_rules(*groups: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted({r for g in groups for r in g}))


def _longer(a: Lock, b: Lock) -> Lock:
    """The lock that ends later (a lock without an end outlasts any dated one), rules of both."""
    if a.until is None:
        winner = a
    elif b.until is None:
        winner = b
    else:
        winner = a if a.until >= b.until else b
    return replace(winner, rules=_merge_rules(a.rules, b.rules), flatten=a.flatten or b.flatten)


def merge_actions(actions: list[Action]) -> list[Action]:
    """Merge one event's actions (rules.md § Evaluation order and conflicts).

    Per account: `flatten_account` subsumes closes and reductions; an account-wide `cancel_orders`
    subsumes per-contract ones; a close subsumes a reduction of the same contract; of several
    reductions of one contract the smallest target wins; the longest lock of each (kind, symbol)
    wins. Every surviving action lists every rule that asked for what it covers. Output is ordered
    locks first (written to the store before any broker call), then cancels, closes, stops, alerts.
    """
    if len(actions) <= 1:
        return actions
    out: list[Action] = []
    for account_id in sorted({a.account_id for a in actions}):
        out.extend(_merge_account([a for a in actions if a.account_id == account_id]))
    return out


def _merge_account(actions: list[Action]) -> list[Action]:
    flatten = [a for a in actions if a.kind is ActionKind.FLATTEN_ACCOUNT]
    cancel_all = [a for a in actions if a.kind is ActionKind.CANCEL_ORDERS and a.contract_id is None
                  and a.order_id is None]
    merged: dict[tuple[Any, ...], Action] = {}
    absorbed_into_flatten: list[str] = []
    absorbed_into_cancel: list[str] = []
    closes = {a.contract_id for a in actions if a.kind is ActionKind.CLOSE_POSITION}
    for action in actions:
        kind = action.kind
        if flatten and kind in (ActionKind.CLOSE_POSITION, ActionKind.REDUCE_POSITION):
            absorbed_into_flatten.extend(action.rules)
            continue
        if cancel_all and kind is ActionKind.CANCEL_ORDERS and (action.contract_id or action.order_id):
            absorbed_into_cancel.extend(action.rules)
            continue
        if kind is ActionKind.REDUCE_POSITION and action.contract_id in closes:
            key: tuple[Any, ...] = (ActionKind.CLOSE_POSITION, action.contract_id)
            close = merged.get(key)
            if close is not None:
                merged[key] = _rekey(close, _merge_rules(close.rules, action.rules))
            else:  # the close comes later in the list: remember the rules on a placeholder
                merged[("absorbed-reduce", action.contract_id, action.idempotency_key)] = action
            continue
        if kind is ActionKind.LOCK and action.lock is not None:
            key = (kind, action.lock.kind, action.lock.symbol)
        elif kind is ActionKind.ALERT:
            key = (kind, action.message, action.contract_id)
        elif kind in (ActionKind.MODIFY_STOP,):
            key = (kind, action.order_id)
        elif kind in (ActionKind.CANCEL_ORDERS,):
            key = (kind, action.contract_id, action.order_id)
        else:
            key = (kind, action.contract_id)
        previous = merged.get(key)
        if previous is None:
            merged[key] = action
            continue
        rules = _merge_rules(previous.rules, action.rules)
        if kind is ActionKind.LOCK and previous.lock is not None and action.lock is not None:
            lock = _longer(previous.lock, action.lock)
            winner = previous if lock.until == previous.lock.until and lock.reason == previous.lock.reason else action
            merged[key] = _rekey(replace(winner, lock=replace(lock, rules=rules)), rules)
        elif kind is ActionKind.REDUCE_POSITION:
            winner = previous if (previous.size or 0) <= (action.size or 0) else action
            merged[key] = _rekey(winner, rules)
        elif kind is ActionKind.MODIFY_STOP:
            merged[key] = _rekey(previous, rules)  # callers already chose the tightest price
        else:
            merged[key] = _rekey(previous, rules)
    # a cancel of a whole contract subsumes cancels of single orders of that contract
    for key, action in list(merged.items()):
        if action.kind is ActionKind.CANCEL_ORDERS and action.order_id is not None:
            wide_key = (ActionKind.CANCEL_ORDERS, action.contract_id, None)
            wide = merged.get(wide_key)
            if wide is not None:
                merged[wide_key] = _rekey(wide, _merge_rules(wide.rules, action.rules))
                del merged[key]
    result: list[Action] = []
    for key, action in merged.items():
        if key[0] == "absorbed-reduce":
            close = merged.get((ActionKind.CLOSE_POSITION, key[1]))
            if close is not None:
                merged[(ActionKind.CLOSE_POSITION, key[1])] = _rekey(close, _merge_rules(close.rules, action.rules))
    for key, action in merged.items():
        if key[0] == "absorbed-reduce":
            continue
        if action.kind is ActionKind.FLATTEN_ACCOUNT and absorbed_into_flatten:
            action = _rekey(action, _merge_rules(action.rules, absorbed_into_flatten))
        elif (action.kind is ActionKind.CANCEL_ORDERS and action.contract_id is None and action.order_id is None
              and absorbed_into_cancel):
            action = _rekey(action, _merge_rules(action.rules, absorbed_into_cancel))
        result.append(action)
    result.sort(key=lambda a: _ORDER[a.kind])
    return result
