"""What the store holds, as immutable records. Times are aware UTC datetimes; JSON columns are dicts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from risk_manager.domain import Order


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One appended gateway event or action. `seq` increases strictly, across restarts too."""

    seq: int
    at: datetime
    account_id: int | None
    kind: str
    payload: Any


@dataclass(frozen=True, slots=True)
class LockRecord:
    """An account lock (or a symbol lock when `symbol` is set); active until cleared.

    `kind` is one of rules.md § Locks (`until_reset`, `until_session`, `cooldown`, `until_can_trade`,
    `symbol`, `manual`); a lock ends at `until` or when `condition` holds (e.g. "canTrade").
    `id` is the caller's: the idempotency key of the action that set the lock fits, so a replayed
    event cannot store (or revive) the same lock twice.
    """

    id: str
    account_id: int
    kind: str
    reason: str
    start: datetime
    until: datetime | None = None
    condition: str | None = None
    symbol: str | None = None
    rules: tuple[str, ...] = ()
    created_by: str = "engine"
    flatten: bool = False  # imposed with a flatten: positions are closed while it holds
    cleared_at: datetime | None = None
    cleared_by: str | None = None
    clear_reason: str | None = None

    @property
    def active(self) -> bool:
        return self.cleared_at is None


@dataclass(frozen=True, slots=True)
class DailyPnl:
    account_id: int
    trading_day: date
    realized: float = 0.0
    fees: float = 0.0
    trades: int = 0
    high_balance: float | None = None


@dataclass(frozen=True, slots=True)
class SeenTrade:
    """A fill already counted (trade counts, daily P&L): reconciliation replays never count it twice."""

    account_id: int
    trade_id: int
    trading_day: date
    at: datetime
    contract_id: str
    pnl: float | None = None


@dataclass(frozen=True, slots=True)
class TimerRecord:
    id: str
    account_id: int
    kind: str
    deadline: datetime
    payload: dict[str, Any] = field(default_factory=dict)


class ActionState(StrEnum):
    PENDING = "pending"      # persisted, not yet started
    IN_FLIGHT = "in_flight"  # claimed: the broker call may have been made
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class PendingAction:
    key: str
    account_id: int
    action: dict[str, Any]
    state: ActionState
    attempts: int
    created: datetime
    updated: datetime
    detail: str = ""


@dataclass(frozen=True, slots=True)
class EnforcementRecord:
    """One executed action and its verified outcome (the enforcement log)."""

    key: str
    account_id: int
    action: dict[str, Any]
    rules: tuple[str, ...]
    started: datetime
    finished: datetime
    outcome: str
    detail: str = ""

    @property
    def duration_ms(self) -> float:
        return (self.finished - self.started).total_seconds() * 1000.0


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """An admin act (unlock, config change…): who, when, what, why, from which terminal."""

    at: datetime
    who: str
    what: str
    why: str
    terminal: str
    account_id: int | None = None


@dataclass(frozen=True, slots=True)
class EngineSnapshot:
    """An engine snapshot, consistent with the journal up to `journal_seq`.

    `scope` names what it covers: `"engine"` (the default: one document for every account, as
    `Engine.snapshot()` gives) or e.g. `"account:704"` for a per-account snapshot. `version` is the
    engine's snapshot format version, so a newer engine can refuse or convert.
    """

    scope: str
    version: int
    journal_seq: int
    state: dict[str, Any]
    saved_at: datetime


@dataclass(frozen=True, slots=True)
class OrderRecord:
    """The last known state of an order, and when the store first and last saw it."""

    order: Order
    first_seen: datetime
    last_seen: datetime


@dataclass(frozen=True, slots=True)
class PruneReport:
    """Rows removed by one `prune()`, per table."""

    removed: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.removed.values())
