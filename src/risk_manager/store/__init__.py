"""The daemon's persistent store: SQLite in WAL mode with one writer (see docs/store.md).

`Store` is the daemon's read-write handle (`await Store.open(path, clock)`); `StoreReader` is the
read-only view for dashboards; the records are the rows as immutable dataclasses.
"""

from risk_manager.store.errors import (
    StoreClosedError,
    StoreCorruptError,
    StoreError,
    StoreUnwritableError,
    StoreVersionError,
)
from risk_manager.store.reader import StoreReader
from risk_manager.store.records import (
    ActionState,
    AuditEntry,
    DailyPnl,
    EnforcementRecord,
    EngineSnapshot,
    JournalEntry,
    LockRecord,
    OrderRecord,
    PendingAction,
    PruneReport,
    SeenTrade,
    TimerRecord,
)
from risk_manager.store.retention import Retention
from risk_manager.store.schema import LATEST_VERSION
from risk_manager.store.writer import Store

__all__ = [
    "LATEST_VERSION",
    "ActionState",
    "AuditEntry",
    "DailyPnl",
    "EnforcementRecord",
    "EngineSnapshot",
    "JournalEntry",
    "LockRecord",
    "OrderRecord",
    "PendingAction",
    "PruneReport",
    "Retention",
    "SeenTrade",
    "Store",
    "StoreClosedError",
    "StoreCorruptError",
    "StoreError",
    "StoreReader",
    "StoreUnwritableError",
    "StoreVersionError",
    "TimerRecord",
]
