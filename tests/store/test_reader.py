"""StoreReader: a read-only second connection for dashboards, live while the daemon writes."""

from __future__ import annotations

import sqlite3
from datetime import date
from pathlib import Path

import pytest

from risk_manager.domain import VirtualClock
from risk_manager.store import (
    DailyPnl,
    EnforcementRecord,
    LockRecord,
    Store,
    StoreCorruptError,
    StoreError,
    StoreReader,
    StoreVersionError,
)
from tests.store.conftest import START


async def test_the_reader_sees_committed_state_while_the_writer_runs(store: Store) -> None:
    lock = LockRecord("lock-1", 7, "cooldown", "loss tier 1", START)
    await store.add_lock(lock)
    store.put_daily_pnl(DailyPnl(7, date(2026, 3, 3), realized=-250.0, trades=4))
    store.log_enforcement(EnforcementRecord("k", 7, {"kind": "flatten_account"}, ("r",), START, START, "verified"))
    assert await store.record_pending("p", 7, {"kind": "cancel_orders"})
    store.append_journal("e", {"n": 1})
    await store.flush()
    with StoreReader(store.path) as reader:
        assert reader.active_locks(7) == [lock]
        assert reader.daily_pnl(7)[0].realized == -250.0
        assert [r.key for r in reader.enforcement_log()] == ["k"]
        assert [a.key for a in reader.unfinished_actions()] == ["p"]
        assert [e.payload for e in reader.journal_tail(5)] == [{"n": 1}]
        store.append_journal("e", {"n": 2})
        await store.flush()
        assert [e.payload for e in reader.journal_tail(1)] == [{"n": 2}]
        assert reader.schema_version() == await store.schema_version()
        with pytest.raises(StoreError, match="attempt to write a readonly database"):
            reader._read("a write", lambda conn: conn.execute("DELETE FROM locks"))


def test_the_reader_needs_an_existing_risk_manager_database(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        StoreReader(tmp_path / "missing.db")
    foreign = tmp_path / "foreign.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreCorruptError, match="no risk-manager schema"):
        StoreReader(foreign)


async def test_the_reader_refuses_a_newer_schema(db_path: Path, clock: VirtualClock) -> None:
    store = await Store.open(db_path, clock)
    await store.close()
    conn = sqlite3.connect(db_path)
    conn.execute("INSERT INTO schema_version VALUES (99, 'x', 'future')")
    conn.commit()
    conn.close()
    with pytest.raises(StoreVersionError, match="upgrade risk-manager"):
        StoreReader(db_path)
