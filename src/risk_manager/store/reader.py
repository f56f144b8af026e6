"""`StoreReader`: a read-only view of the daemon's database (`mode=ro`), for a dashboard fallback.

It opens its own connection and never writes; in WAL mode it reads while the daemon writes, seeing
the last committed state. Synchronous (each query takes a few milliseconds at most); call it from a
thread if you are on an event loop.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Self, TypeVar

from risk_manager.store import tables
from risk_manager.store.database_file import connect_reader, storage_error
from risk_manager.store.records import (
    ActionState,
    DailyPnl,
    EnforcementRecord,
    JournalEntry,
    LockRecord,
    PendingAction,
)
from risk_manager.store.schema import schema_version

T = TypeVar("T")


class StoreReader:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path).expanduser().resolve()
        self._conn = connect_reader(self.path)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read(self, what: str, query: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return query(self._conn)
        except sqlite3.Error as exc:
            raise storage_error(self.path, exc, f"reading {what}") from exc

    def schema_version(self) -> int:
        return self._read("the schema version", schema_version)

    def active_locks(self, account_id: int | None = None) -> list[LockRecord]:
        return self._read("locks", lambda conn: tables.active_locks(conn, account_id))

    def daily_pnl(self, account_id: int, trading_day: date | None = None) -> list[DailyPnl]:
        return self._read("daily P&L", lambda conn: tables.daily_pnl(conn, account_id, trading_day))

    def enforcement_log(self, account_id: int | None = None, limit: int = 100) -> list[EnforcementRecord]:
        return self._read("the enforcement log", lambda conn: tables.enforcement_log(conn, account_id, limit))

    def unfinished_actions(self) -> list[PendingAction]:
        states = (ActionState.PENDING, ActionState.IN_FLIGHT)
        return self._read("pending actions", lambda conn: tables.pending_actions(conn, states))

    def journal_tail(self, count: int = 100) -> list[JournalEntry]:
        return self._read("the journal", lambda conn: tables.journal_tail(conn, count))

