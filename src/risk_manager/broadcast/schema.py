"""The dashboard's snapshot, schema version 1 (docs/dashboard.md): pydantic models + builders.

The daemon builds one `AccountSnapshot` per account with the pure `account_snapshot(...)` (from the
engine's `AccountStatus` plus what only the daemon knows: connection, freshness, working orders,
recent enforcement outcomes and alerts), wraps them with `build_snapshot(...)` and hands the dict to
`BroadcastServer.publish`. Clients parse with `Snapshot.model_validate`.

Compatibility: fields may be ADDED within `v: 1` (clients ignore fields they do not know); renaming,
removing or changing the meaning of a field bumps `v`. The shipped JSON Schema
(`snapshot.schema.json`, `risk-manager status --schema`) is generated from these models.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from risk_manager.domain import Order, OrderSide
from risk_manager.engine.actions import Action, Lock
from risk_manager.engine.status import AccountStatus

SCHEMA_VERSION = 1
MAX_RECENT = 20  # actions and alerts kept per account in a snapshot (newest first)

Connection = Literal["connected", "reconnecting", "disconnected"]
Freshness = Literal["fresh", "stale"]

# Hub states (`risk_manager.gateway.hubs.HubState`) → the dashboard's three connection states.
_CONNECTION_OF = {"connected": "connected", "connecting": "reconnecting", "reconnecting": "reconnecting",
                  "disconnected": "disconnected"}

_TIME = TypeAdapter(datetime)


class _Model(BaseModel):
    # Unknown fields are ignored, so a v1 client reads a v1 snapshot with fields added later.
    model_config = ConfigDict(extra="ignore", frozen=True)


class PositionSnap(_Model):
    contract_id: str
    symbol: str | None
    side: str = Field(description="long | short | undefined")
    size: int
    entry: float = Field(description="average entry price")
    last_price: float | None
    open_pnl: float | None
    stop_covered: int = Field(0, description="contracts covered by working stops on the closing side")


class OrderSnap(_Model):
    id: int
    contract_id: str
    type: str = Field(description="limit | market | stop_limit | stop | trailing_stop | join_bid | join_ask")
    side: str = Field(description="buy | sell")
    size: int
    limit_price: float | None = None
    stop_price: float | None = None
    status: str
    created: datetime


class PnlSnap(_Model):
    realized: float
    fees: float
    open: float
    net: float = Field(description="realized − fees + open")
    trades: int


class RuleSnap(_Model):
    rule_id: str
    name: str
    label: str
    value: float
    limit: float
    fraction: float = Field(description="value / limit: 0 … 1, ≥ 1 at or past the limit")
    contract_id: str | None = None


class LockSnap(_Model):
    kind: str = Field(description="until_reset | until_session | cooldown | until_can_trade | symbol | manual")
    reason: str
    rules: list[str]
    start: datetime
    until: datetime | None = Field(description="when the lock ends; null when a condition ends it")
    ends_when: str = Field(description="what ends the lock, in words (the end time when `until` is set)")
    symbol: str | None = None
    flatten: bool = False
    by: str = "engine"


class ActionSnap(_Model):
    at: datetime
    kind: str = Field(description="close_position | flatten_account | cancel_orders | lock | … (engine ActionKind)")
    rules: list[str]
    status: str = Field(description="the enforcement outcome: done | failed | skipped | …")
    reason: str | None = None
    contract_id: str | None = None


class AlertSnap(_Model):
    at: datetime
    level: str = Field(description="info | warning | critical")
    message: str
    rules: list[str]


class SessionSnap(_Model):
    state: Literal["open", "closed", "always", "unknown"] = Field(
        description="always: RULE-009 is off; unknown: read from the store, the daemon is not running")
    boundary: datetime | None = Field(description="the end of the open session, or the start of the next")
    next_reset: datetime | None = Field(description="the next daily reset (null when unknown)")
    trading_day: str


class AccountSnapshot(_Model):
    account_id: int
    name: str | None
    connection: Connection
    freshness: Freshness
    last_event_at: datetime | None = Field(description="the last broker event for this account (age = at − this)")
    balance: float | None
    can_trade: bool | None
    positions: list[PositionSnap]
    orders: list[OrderSnap] = Field(description="working orders")
    pnl: PnlSnap
    rules: list[RuleSnap] = Field(description="the measures of every enabled rule")
    enabled_rules: list[str]
    locks: list[LockSnap]
    locked: bool
    actions: list[ActionSnap] = Field(description=f"latest enforcement outcomes, newest first (≤ {MAX_RECENT})")
    alerts: list[AlertSnap] = Field(description=f"latest alerts, newest first (≤ {MAX_RECENT})")
    session: SessionSnap
    unknown_contracts: list[str] = Field(default_factory=list)


class Snapshot(_Model):
    """The whole picture: what `status --json` prints and what a client holds after applying diffs."""

    v: Literal[1] = 1
    at: datetime | None = Field(description="the daemon's clock when the snapshot was taken")
    source: Literal["daemon", "store"] = Field("daemon", description="store: read from the database, "
                                               "the daemon is not running (no live positions or rules)")
    daemon: dict[str, Any] | None = Field(None, description="daemon-wide health (free form within v1)")
    accounts: dict[str, AccountSnapshot] = Field(description="by account id (as a string)")


@dataclass(frozen=True, slots=True)
class ActionEntry:
    """One enforcement outcome as the dashboard shows it (the daemon converts its own outcome type)."""

    at: datetime
    kind: str
    rules: tuple[str, ...]
    status: str
    reason: str | None = None
    contract_id: str | None = None

    @classmethod
    def of(cls, action: Action, status: str, at: datetime, reason: str | None = None) -> ActionEntry:
        return cls(at, action.kind.value, action.rules, status, reason, action.contract_id)


@dataclass(frozen=True, slots=True)
class AlertEntry:
    at: datetime
    level: str
    message: str
    rules: tuple[str, ...] = ()


def connection_state(hub_state: str) -> Connection:
    """A hub state (`HubState.value`: connected, connecting, reconnecting, disconnected) → the snapshot's."""
    try:
        return _CONNECTION_OF[hub_state]  # type: ignore[return-value]
    except KeyError:
        raise ValueError(f"unknown hub state {hub_state!r}: expected one of {sorted(_CONNECTION_OF)}") from None


def lock_snapshot(lock: Lock) -> LockSnap:
    return LockSnap(kind=lock.kind.value, reason=lock.reason, rules=list(lock.rules), start=lock.start,
                    until=lock.until, ends_when=lock.ends,
                    symbol=lock.symbol, flatten=lock.flatten, by=lock.by)


def _order_snapshot(order: Order) -> OrderSnap:
    side = "buy" if order.side == OrderSide.BID else "sell"
    return OrderSnap(id=order.id, contract_id=order.contract_id, type=order.type.name.lower(), side=side,
                     size=order.size, limit_price=order.limit_price, stop_price=order.stop_price,
                     status=order.status.name.lower(), created=order.creation_timestamp)


def account_snapshot(status: AccountStatus, connection: Connection, fresh: bool, last_event_at: datetime | None,
                     orders: Iterable[Order], recent_actions: Iterable[ActionEntry],
                     recent_alerts: Iterable[AlertEntry], now: datetime) -> dict[str, Any]:
    """One account's part of the snapshot (JSON-ready). Pure.

    `orders`: the account's orders (only working ones are kept); `recent_actions` / `recent_alerts`:
    any order (sorted newest first here, the latest `MAX_RECENT` kept). `now` (the daemon's clock)
    drops locks whose `until` has passed but which the engine has not expired yet.
    """
    if connection not in ("connected", "reconnecting", "disconnected"):
        raise ValueError(f"connection {connection!r}: expected connected, reconnecting or disconnected")
    if status.session_open is None:
        session_state: Literal["open", "closed", "always"] = "always"
    else:
        session_state = "open" if status.session_open else "closed"
    actions = sorted(recent_actions, key=lambda a: a.at, reverse=True)[:MAX_RECENT]
    alerts = sorted(recent_alerts, key=lambda a: a.at, reverse=True)[:MAX_RECENT]
    snap = AccountSnapshot(
        account_id=status.account_id, name=status.name, connection=connection,
        freshness="fresh" if fresh else "stale", last_event_at=last_event_at, balance=status.balance,
        can_trade=status.can_trade,
        positions=[PositionSnap(contract_id=p.contract_id, symbol=p.symbol, side=p.side, size=p.size,
                                entry=p.average_price, last_price=p.price, open_pnl=p.open_pnl,
                                stop_covered=p.stop_covered) for p in status.positions],
        orders=[_order_snapshot(o) for o in sorted(orders, key=lambda o: o.id) if o.is_working],
        pnl=PnlSnap(realized=status.realized_pnl, fees=status.fees, open=status.open_pnl, net=status.net_pnl,
                    trades=status.trades_today),
        rules=[RuleSnap(rule_id=r.rule_id, name=r.name, label=r.label, value=r.value, limit=r.limit,
                        fraction=r.fraction, contract_id=r.contract_id) for r in status.rules],
        enabled_rules=list(status.enabled_rules),
        locks=[lock_snapshot(lock) for lock in status.locks if lock.until is None or lock.until > now],
        locked=status.locked,
        actions=[ActionSnap(at=a.at, kind=a.kind, rules=list(a.rules), status=a.status, reason=a.reason,
                            contract_id=a.contract_id) for a in actions],
        alerts=[AlertSnap(at=a.at, level=a.level, message=a.message, rules=list(a.rules)) for a in alerts],
        session=SessionSnap(state=session_state, boundary=status.session_boundary, next_reset=status.next_reset,
                            trading_day=status.trading_day),
        unknown_contracts=list(status.unknown_contracts),
    )
    return snap.model_dump(mode="json")


def build_snapshot(accounts: Iterable[Mapping[str, Any]], at: datetime, daemon: Mapping[str, Any] | None = None,
                   source: Literal["daemon", "store"] = "daemon") -> dict[str, Any]:
    """The dict `BroadcastServer.publish` takes: `accounts` are `account_snapshot(...)` results."""
    return {"v": SCHEMA_VERSION, "at": _TIME.dump_python(at, mode="json"), "source": source,
            "daemon": None if daemon is None else dict(daemon),
            "accounts": {str(a["account_id"]): dict(a) for a in accounts}}


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a `Snapshot` (draft 2020-12), generated from the models."""
    schema = Snapshot.model_json_schema(mode="serialization")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://github.com/risk-manager/risk-manager/snapshot.v1.schema.json"
    return schema


def shipped_json_schema() -> dict[str, Any]:
    """The schema file shipped in the package (a test keeps it equal to `json_schema()`)."""
    text = resources.files("risk_manager.broadcast").joinpath("snapshot.schema.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


class RecentActivity:
    """The latest enforcement outcomes and alerts per account, bounded: what the daemon feeds as
    `recent_actions` / `recent_alerts` to `account_snapshot`."""

    def __init__(self, keep: int = MAX_RECENT) -> None:
        self._keep = keep
        self._actions: dict[int, deque[ActionEntry]] = {}
        self._alerts: dict[int, deque[AlertEntry]] = {}

    def add_action(self, account_id: int, entry: ActionEntry) -> None:
        self._actions.setdefault(account_id, deque(maxlen=self._keep)).append(entry)

    def add_alert(self, account_id: int, entry: AlertEntry) -> None:
        self._alerts.setdefault(account_id, deque(maxlen=self._keep)).append(entry)

    def actions(self, account_id: int) -> list[ActionEntry]:
        return list(self._actions.get(account_id, ()))

    def alerts(self, account_id: int) -> list[AlertEntry]:
        return list(self._alerts.get(account_id, ()))
