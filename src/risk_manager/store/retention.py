"""How long each table keeps its rows, and the pruning of what is older.

Defaults follow the seeds' `database.retention` (enforcement logs 30 days, order history 90 days);
the journal's horizon is configurable (default 30 days). Locks, claims and timers that are still
live are never pruned, whatever their age; daily P&L and the audit log are small and kept.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta

from risk_manager.store.records import PruneReport
from risk_manager.store.tables import iso


@dataclass(frozen=True, slots=True)
class Retention:
    """Days to keep, per table (None keeps forever)."""

    journal_days: int | None = 30
    enforcement_log_days: int | None = 30
    order_history_days: int | None = 90
    seen_trades_days: int | None = 7      # trade-frequency windows reach back one session at most
    finished_actions_days: int | None = 7  # done/failed idempotency keys; events older than this never replay
    cleared_locks_days: int | None = 30
    audit_log_days: int | None = None

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            days = getattr(self, name)
            if days is not None and (isinstance(days, bool) or not isinstance(days, int) or days < 1):
                raise ValueError(f"database.retention.{name}: {days!r} is not allowed; "
                                 "use a whole number of days ≥ 1, or null to keep forever")


# (report name, retention field, DELETE statement with one `?` for the cut-off time)
_PRUNES: tuple[tuple[str, str, str], ...] = (
    ("journal", "journal_days", "DELETE FROM journal WHERE at < ?"),
    ("enforcement_log", "enforcement_log_days", "DELETE FROM enforcement_log WHERE started < ?"),
    ("orders", "order_history_days", "DELETE FROM orders WHERE last_seen < ?"),
    ("seen_trades", "seen_trades_days", "DELETE FROM seen_trades WHERE at < ?"),
    ("pending_actions", "finished_actions_days",
     "DELETE FROM pending_actions WHERE state IN ('done', 'failed') AND updated < ?"),
    ("locks", "cleared_locks_days", "DELETE FROM locks WHERE cleared_at IS NOT NULL AND cleared_at < ?"),
    ("audit_log", "audit_log_days", "DELETE FROM audit_log WHERE at < ?"),
)


def prune(conn: sqlite3.Connection, retention: Retention, now: datetime) -> PruneReport:
    """Delete what `retention` no longer keeps, in the caller's transaction."""
    removed: dict[str, int] = {}
    for table, field_name, statement in _PRUNES:
        days = getattr(retention, field_name)
        if days is not None:
            removed[table] = conn.execute(statement, (iso(now - timedelta(days=days)),)).rowcount
    return PruneReport(removed)
