"""The dashboard's fallback when the daemon is not running: what the store (read-only) still knows.

Locks, the latest day's realized P&L and fees, and the enforcement log, per account seen in the
store. No live positions, rules or session: those live in the daemon.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from risk_manager.broadcast.schema import (
    AccountSnapshot,
    ActionSnap,
    LockSnap,
    PnlSnap,
    SessionSnap,
    build_snapshot,
)
from risk_manager.engine.actions import LockKind
from risk_manager.store import StoreReader
from risk_manager.store.records import EnforcementRecord, LockRecord

RECENT = 20


def _lock(record: LockRecord) -> LockSnap:
    if record.until is not None:
        ends_when = record.until.isoformat()
    elif record.condition:
        ends_when = f"when {record.condition}"
    else:
        ends_when = "when an admin clears it" if record.kind == LockKind.MANUAL.value else "never"
    return LockSnap(kind=record.kind, reason=record.reason, rules=list(record.rules), start=record.start,
                    until=record.until, ends_when=ends_when, symbol=record.symbol, flatten=record.flatten,
                    by=record.created_by)


def _action(record: EnforcementRecord) -> ActionSnap:
    return ActionSnap(at=record.finished, kind=str(record.action.get("kind", "?")), rules=list(record.rules),
                      status=record.outcome, reason=record.detail or None,
                      contract_id=record.action.get("contract_id"))


def store_snapshot(path: Path, now: datetime) -> dict[str, Any]:
    """A Snapshot (source "store") read from the database at `path`; raises `StoreError` if it cannot."""
    with StoreReader(path) as reader:
        locks = reader.active_locks()
        log = reader.enforcement_log(limit=200)
        ids = sorted({lock.account_id for lock in locks} | {rec.account_id for rec in log})
        accounts = []
        for aid in ids:
            days = reader.daily_pnl(aid)
            day = days[-1] if days else None
            realized, fees = (day.realized, day.fees) if day else (0.0, 0.0)
            mine = [_lock(lock) for lock in locks if lock.account_id == aid
                    and (lock.until is None or lock.until > now)]
            accounts.append(AccountSnapshot(
                account_id=aid, name=None, connection="disconnected", freshness="stale", last_event_at=None,
                balance=None, can_trade=None, positions=[], orders=[],
                pnl=PnlSnap(realized=realized, fees=fees, open=0.0, net=realized - fees,
                            trades=day.trades if day else 0),
                rules=[], enabled_rules=[], locks=mine, locked=bool(mine),
                actions=[_action(rec) for rec in log if rec.account_id == aid][:RECENT], alerts=[],
                session=SessionSnap(state="unknown", boundary=None, next_reset=None,
                                    trading_day=day.trading_day.isoformat() if day else ""),
            ).model_dump(mode="json"))
    return build_snapshot(accounts, now, source="store")
