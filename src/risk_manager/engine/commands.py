"""Engine commands: inputs that are not broker events (admin actions, answers to engine requests)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from risk_manager.engine.actions import LockKind


@dataclass(frozen=True, slots=True)
class ManualLock:
    """The admin (or the trader's "lock me out" button) locks the account for `duration`."""

    account_id: int
    duration: timedelta
    reason: str = "manual lock"
    by: str = "admin"
    symbol: str | None = None
    flatten: bool = False


@dataclass(frozen=True, slots=True)
class ClearLock:
    """The admin clears locks (all, or of one kind / symbol). Refused unless admin.allow_manual_unlock."""

    account_id: int
    kind: LockKind | None = None
    symbol: str | None = None
    by: str = "admin"
    reason: str = ""


@dataclass(frozen=True, slots=True)
class StopsChecked:
    """The daemon's answer to a `check_stops` action (RULE-008).

    Feed the broker's open orders (`Order/searchOpen`) as OrderEvents first, then this command.
    `ok_broker=False` means the broker could not be asked: the engine fails closed. With
    `open_order_ids`, working orders of the contract not in the list are forgotten first.
    `check_key` is the idempotency key of the `check_stops` action being answered.
    """

    account_id: int
    contract_id: str
    ok_broker: bool
    open_order_ids: tuple[int, ...] | None = None
    check_key: str = ""


@dataclass(frozen=True, slots=True)
class ResetAccount:
    """Start RULE-014's tracking afresh (e.g. a new evaluation account): starting balance and EOD high."""

    account_id: int
    starting_balance: float | None = None
    by: str = "admin"
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Reconciled:
    """A REST reconciliation of one account finished (after a connect or a gap).

    Feed what the broker listed first — `Position/searchOpen` as PositionEvents, `Order/searchOpen`
    as OrderEvents, today's trades as TradeEvents (repeats are ignored) — then this command with
    the ids of what is open: positions and working orders the engine still holds but the broker no
    longer lists (their close/cancel event was lost) are dropped.
    """

    account_id: int
    open_contract_ids: tuple[str, ...]
    open_order_ids: tuple[int, ...]


EngineCommand = ManualLock | ClearLock | StopsChecked | ResetAccount | Reconciled
