"""Schema versions: a fresh file gets every migration; a version-1 file is upgraded in place."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from risk_manager.domain import VirtualClock
from risk_manager.store import LATEST_VERSION, LockRecord, Store
from risk_manager.store import schema as schema_module
from risk_manager.store.schema import MIGRATIONS, Migration, migrate, schema_version
from tests.store.conftest import START


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _version_1_database(path: Path) -> None:
    """What a risk-manager of schema version 1 left behind, with a lock and a claim in it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    assert migrate(conn, path, "2026-03-01T00:00:00.000000Z", target=1) == [1]
    conn.execute("INSERT INTO locks (id, account_id, kind, start, reason, rules, created_by) VALUES "
                 "('lock-1', 7, 'until_reset', '2026-03-03T15:00:00.000000Z', 'daily loss', '[\"daily\"]', 'engine')")
    conn.execute("INSERT INTO pending_actions VALUES ('k', 7, '{}', 'done', 1, '2026-03-03T15:00:00.000000Z', "
                 "'2026-03-03T15:00:00.000000Z', '')")
    conn.execute("INSERT INTO journal VALUES (41, '2026-03-03T15:00:00.000000Z', 7, 'e', '{}')")
    conn.close()


async def test_a_fresh_database_gets_every_migration(db_path: Path, clock: VirtualClock) -> None:
    store = await Store.open(db_path, clock)
    assert await store.schema_version() == LATEST_VERSION == MIGRATIONS[-1].version
    await store.close()
    conn = sqlite3.connect(db_path)
    rows = conn.execute("SELECT version, description FROM schema_version ORDER BY version").fetchall()
    assert rows == [(m.version, m.description) for m in MIGRATIONS]
    assert {"journal", "locks", "engine_state", "orders"} <= _tables(conn)
    conn.close()


async def test_version_1_is_upgraded_keeping_its_data(db_path: Path, clock: VirtualClock) -> None:
    _version_1_database(db_path)
    conn = sqlite3.connect(db_path)
    assert schema_version(conn) == 1 and "engine_state" not in _tables(conn)
    conn.close()
    store = await Store.open(db_path, clock)
    try:
        assert await store.schema_version() == LATEST_VERSION
        assert await store.active_locks() == [LockRecord("lock-1", 7, "until_reset", "daily loss", START,
                                                         rules=("daily",))]
        assert not await store.claim("k", 7, {})
        assert store.append_journal("e", {}) == 42  # seqs continue after the old journal
        store.save_engine_state({"ok": True}, version=1)  # a table of version 2
        snapshot = await store.engine_state()
        assert snapshot is not None and snapshot.state == {"ok": True}
    finally:
        await store.close()


async def test_reopening_applies_nothing_twice(db_path: Path, clock: VirtualClock) -> None:
    for _ in range(2):
        store = await Store.open(db_path, clock)
        await store.close()
    conn = sqlite3.connect(db_path, isolation_level=None)
    assert migrate(conn, db_path, "now") == []
    assert conn.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == LATEST_VERSION
    conn.close()


def test_a_failing_migration_leaves_the_database_at_the_previous_version(
        db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _version_1_database(db_path)
    broken = Migration(2, "half good, half broken", ("CREATE TABLE good (x INTEGER)", "CREATE TABLE oops ("))
    monkeypatch.setattr(schema_module, "MIGRATIONS", (MIGRATIONS[0], broken))
    conn = sqlite3.connect(db_path, isolation_level=None)
    with pytest.raises(sqlite3.OperationalError):
        schema_module.migrate(conn, db_path, "now", target=2)
    assert schema_version(conn) == 1
    assert "good" not in _tables(conn)
    conn.close()
